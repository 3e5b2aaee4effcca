//! The control plane's REST API and fleet `/metrics` as their users see
//! them, over loopback TLS: every error body against the `Error` schema of
//! the OpenAPI document the control plane serves; one record by name (or
//! a 404, and the CLI's exit 6); an API token's `usedAt`; and the fleet
//! `/metrics` keeping what the node said of each family (TYPE, HELP),
//! checked with `promtool check metrics` against the node's own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::cli::expect;
use common::fleet::{bundle_record, enrol_token, http1, start_agent};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use onprem::controlplane::{self, Handle, pki};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// How long any one condition may take to come true.
const LIMIT: Duration = Duration::from_secs(60);

// ---- an HTTP/2 client over TLS -----------------------------------------

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }
}

/// The REST API of one control plane, as a client sees it.
struct Api {
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    admin: String,
}

impl Api {
    fn new(cp: &Handle, admin: &str) -> Api {
        Api {
            port: cp.addr.port(),
            tls: Arc::new(pki::client_config(&cp.ca_pem, None).unwrap()),
            admin: admin.to_owned(),
        }
    }

    /// One request on a new HTTP/2 connection.
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await
            .unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("https://127.0.0.1:{}{path}", self.port));
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if let Some(c) = content_type {
            b = b.header("content-type", c);
        }
        let resp = sender
            .send_request(b.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let (parts, body) = resp.into_parts();
        Reply {
            status: parts.status.as_u16(),
            content_type: parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            body: body.collect().await.unwrap().to_bytes().to_vec(),
        }
    }

    /// GET as admin.
    async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, Some(&self.admin), None, vec![])
            .await
    }

    /// GET as admin; must answer 200.
    async fn get_ok(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    async fn apply(&self, yaml: &str) {
        let r = self
            .call(
                "POST",
                "/api/v1/apply",
                Some(&self.admin),
                Some("application/yaml"),
                yaml.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// A new API token: `(id, token)`.
    async fn token(&self, role: &str, user: &str) -> (String, String) {
        let r = self
            .call(
                "POST",
                "/api/v1/tokens",
                Some(&self.admin),
                Some("application/json"),
                serde_json::json!({"type": "api", "role": role, "user": user})
                    .to_string()
                    .into_bytes(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        (
            j["id"].as_str().unwrap().to_owned(),
            j["token"].as_str().unwrap().to_owned(),
        )
    }
}

async fn control_plane(dir: &Path, stop: &CancellationToken) -> Handle {
    let mut o = controlplane::Options::for_tests(dir.join("cp"));
    o.heartbeat_seconds = 1;
    controlplane::start(o, stop.clone()).await.unwrap()
}

// ---- the CLI -------------------------------------------------------------

/// Logs in as `token`; the config file.
async fn login(dir: &Path, cp: &Handle, token: &str) -> std::path::PathBuf {
    let config = dir.join("login.yaml");
    expect(
        &config,
        &[
            "login",
            &cp.url(),
            "--token",
            token,
            "--ca-fingerprint",
            &cp.ca_fingerprint,
        ],
        0,
    )
    .await;
    config
}

// ---- a JSON Schema subset, as the OpenAPI document uses it ---------------

/// Checks `v` against `schema` (`$ref`, `allOf`, `type`, `enum`,
/// `required`, `properties`, `additionalProperties: false`, `items`,
/// `minimum`, `maximum`, `minLength`), `$ref`s resolved in `doc`.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("the OpenAPI document has no {r}"));
        return validate(doc, target, v, at, errors);
    }
    for s in schema["allOf"].as_array().into_iter().flatten() {
        validate(doc, s, v, at, errors);
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            other => panic!("type {other} in the OpenAPI document"),
        };
        if !ok {
            errors.push(format!("{at}: not a {t}: {v}"));
            return;
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errors.push(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let (Some(min), Some(x)) = (schema["minimum"].as_f64(), v.as_f64()) {
        if x < min {
            errors.push(format!("{at}: {x} < {min}"));
        }
    }
    if let (Some(max), Some(x)) = (schema["maximum"].as_f64(), v.as_f64()) {
        if x > max {
            errors.push(format!("{at}: {x} > {max}"));
        }
    }
    if let (Some(min), Some(s)) = (schema["minLength"].as_u64(), v.as_str()) {
        if (s.chars().count() as u64) < min {
            errors.push(format!("{at}: shorter than {min}"));
        }
    }
    for r in schema["required"].as_array().into_iter().flatten() {
        let r = r.as_str().unwrap();
        if v.get(r).is_none() {
            errors.push(format!("{at}: no {r:?}"));
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            if let Some(x) = v.get(k) {
                validate(doc, s, x, &format!("{at}.{k}"), errors);
            }
        }
        if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
            for k in v.as_object().into_iter().flat_map(|o| o.keys()) {
                if !props.contains_key(k) {
                    errors.push(format!("{at}: {k:?} is not in the schema"));
                }
            }
        }
    }
    if let Some(items) = schema.get("items") {
        for (i, x) in v.as_array().into_iter().flatten().enumerate() {
            validate(doc, items, x, &format!("{at}[{i}]"), errors);
        }
    }
}

/// The operation of the OpenAPI document that serves `method path`: the
/// path template with the most literal segments that matches.
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> Option<(&'a str, &'a Value)> {
    let path = path.split('?').next().unwrap_or_default();
    let segs: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(template, item)| {
            let t: Vec<&str> = template.split('/').collect();
            let fits = t.len() == segs.len()
                && t.iter().zip(&segs).all(|(a, b)| {
                    (a.starts_with('{') && a.ends_with('}') && !b.is_empty()) || a == b
                });
            let op = item.get(method.to_lowercase())?;
            fits.then(|| {
                (
                    t.iter().filter(|s| !s.starts_with('{')).count(),
                    template,
                    op,
                )
            })
        })
        .max_by_key(|(literal, ..)| *literal)
        .map(|(_, template, op)| (template.as_str(), op))
}

/// The schema the document gives for `status` of `op` (or its `default`).
fn response_schema<'a>(doc: &'a Value, op: &'a Value, status: u16) -> Option<&'a Value> {
    let mut r = op["responses"]
        .get(status.to_string())
        .or_else(|| op["responses"].get("default"))?;
    if let Some(reference) = r.get("$ref").and_then(Value::as_str) {
        r = doc.pointer(reference.trim_start_matches('#'))?;
    }
    r.pointer("/content/application~1json/schema")
}

// ---- item: every error body is the documented one -----------------------

/// What is sent and the status wanted.
struct Case<'a> {
    what: &'a str,
    method: &'a str,
    path: String,
    token: Option<&'a str>,
    content_type: Option<&'a str>,
    body: Vec<u8>,
    status: u16,
}

fn case<'a>(
    what: &'a str,
    method: &'a str,
    path: &str,
    token: Option<&'a str>,
    status: u16,
) -> Case<'a> {
    Case {
        what,
        method,
        path: path.to_owned(),
        token,
        content_type: None,
        body: Vec::new(),
        status,
    }
}

impl<'a> Case<'a> {
    fn body(mut self, content_type: &'a str, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = Some(content_type);
        self.body = body.into();
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rest_error_is_the_error_schema_of_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let api = Api::new(&cp, cp.admin_token.as_deref().unwrap());
    let doc = {
        let r = api
            .call("GET", "/api/v1/openapi.json", None, None, vec![])
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let error_schema = &doc["components"]["schemas"]["Error"];
    assert!(error_schema.is_object(), "no Error schema");
    let (_, viewer) = api.token("viewer", "val").await;
    let (revoked_id, revoked) = api.token("viewer", "gone").await;
    let r = api
        .call(
            "DELETE",
            &format!("/api/v1/tokens/{revoked_id}"),
            Some(&api.admin),
            None,
            vec![],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let admin = api.admin.clone();
    let admin = Some(admin.as_str());
    let viewer = Some(viewer.as_str());
    let facility = "apiVersion: onprem/v1\nkind: Facility\nmetadata: {name: lab}\n";
    let yaml = "application/yaml";
    let json = "application/json";

    let cases = vec![
        // 401
        case("metrics without a token", "GET", "/metrics", None, 401),
        case("not a token", "GET", "/api/v1/whoami", Some("hunter2"), 401),
        case(
            "an unknown token",
            "GET",
            "/api/v1/devices",
            Some("onp_aaaaaaaaaaaaaaaaaaaa_nope"),
            401,
        ),
        case(
            "a revoked token",
            "GET",
            "/api/v1/whoami",
            Some(&revoked),
            401,
        ),
        case("apply without a token", "POST", "/api/v1/apply", None, 401).body(yaml, facility),
        // Authentication first: nothing else of the request is looked at.
        case(
            "a token body that does not fit, without a token",
            "POST",
            "/api/v1/tokens",
            None,
            401,
        )
        .body(json, "{\"kind\": \"enrol\"}"),
        case(
            "an unknown query parameter, without a token",
            "GET",
            "/api/v1/devices?colour=red",
            None,
            401,
        ),
        case(
            "a method a path does not take, without a token",
            "PUT",
            "/api/v1/apply",
            None,
            401,
        ),
        case(
            "a path the API does not have, without a token",
            "GET",
            "/api/v2/devices",
            None,
            401,
        ),
        case(
            "a watch of no such kind, without a token",
            "GET",
            "/api/v1/watch?kind=spaceships",
            None,
            401,
        ),
        // 403
        case("a viewer applies", "POST", "/api/v1/apply", viewer, 403).body(yaml, facility),
        case("a viewer lists users", "GET", "/api/v1/users", viewer, 403),
        case(
            "a viewer lists tokens",
            "GET",
            "/api/v1/tokens",
            viewer,
            403,
        ),
        case(
            "a viewer reads the audit log",
            "GET",
            "/api/v1/audit/1",
            viewer,
            403,
        ),
        case(
            "a viewer deletes",
            "DELETE",
            "/api/v1/facilities/lab",
            viewer,
            403,
        ),
        case(
            "a viewer makes a token",
            "POST",
            "/api/v1/tokens",
            viewer,
            403,
        )
        .body(json, "{}"),
        // 400
        case("an unknown kind", "GET", "/api/v1/spaceships", admin, 400),
        case(
            "an unknown kind of one record",
            "GET",
            "/api/v1/spaceships/x",
            admin,
            400,
        ),
        case(
            "a selector that does not parse",
            "GET",
            "/api/v1/devices?selector=a%20in%20(",
            admin,
            400,
        ),
        case(
            "an unknown query parameter",
            "GET",
            "/api/v1/devices?colour=red",
            admin,
            400,
        ),
        case(
            "a query parameter that is not a bool",
            "POST",
            "/api/v1/apply?dryRun=maybe",
            admin,
            400,
        )
        .body(yaml, facility),
        case(
            "a body that is not UTF-8",
            "POST",
            "/api/v1/apply",
            admin,
            400,
        )
        .body(yaml, vec![0xff, 0xfe, 0x00, 0x80]),
        case(
            "a token body that is not JSON",
            "POST",
            "/api/v1/tokens",
            admin,
            400,
        )
        .body(json, "{\"type\": "),
        case("a token of no type", "POST", "/api/v1/tokens", admin, 400)
            .body(json, "{\"type\": \"root\"}"),
        // Checked before the upgrade (over HTTP/2: before the 405 of a
        // GET that is not an extended CONNECT).
        case(
            "a watch of no such kind",
            "GET",
            "/api/v1/watch?kind=spaceships",
            admin,
            400,
        ),
        // 404
        case(
            "an unknown device described",
            "GET",
            "/api/v1/describe/devices/nope",
            admin,
            404,
        ),
        case(
            "an unknown device",
            "GET",
            "/api/v1/devices/nope",
            admin,
            404,
        ),
        case("an unknown user", "GET", "/api/v1/users/nosuch", admin, 404),
        case(
            "an unknown audit entry",
            "GET",
            "/api/v1/audit/999999",
            admin,
            404,
        ),
        case(
            "an unknown rollout",
            "GET",
            "/api/v1/rollouts/nosuch",
            admin,
            404,
        ),
        case(
            "events of an unknown device",
            "GET",
            "/api/v1/events?device=nosuch",
            admin,
            404,
        ),
        case(
            "deleting what is not there",
            "DELETE",
            "/api/v1/facilities/nosuch",
            admin,
            404,
        ),
        case(
            "acknowledging an unknown alert",
            "POST",
            "/api/v1/alerts/nosuch/ack",
            admin,
            404,
        )
        .body(json, "{}"),
        case(
            "a path the API does not have",
            "GET",
            "/api/v1/devices/a/b/c",
            admin,
            404,
        ),
        case("another", "GET", "/api/v2/devices", admin, 404),
        // 405
        case(
            "a method a path does not take",
            "PUT",
            "/api/v1/apply",
            admin,
            405,
        ),
        case("another", "POST", "/metrics", admin, 405),
        // Over HTTP/2 a WebSocket is an extended CONNECT.
        case(
            "a watch that is not one",
            "GET",
            "/api/v1/watch",
            admin,
            405,
        ),
        // 413
        case("a body over the limit", "POST", "/api/v1/apply", admin, 413)
            .body(yaml, vec![b'#'; 3 << 20]),
        // 415
        case(
            "a token body without its content type",
            "POST",
            "/api/v1/tokens",
            admin,
            415,
        )
        .body("text/plain", "{}"),
        // 422
        case("a record refused", "POST", "/api/v1/apply", admin, 422).body(
            yaml,
            "apiVersion: onprem/v1\nkind: Spaceship\nmetadata: {name: x}\n",
        ),
        case(
            "a token body with an unknown field",
            "POST",
            "/api/v1/tokens",
            admin,
            422,
        )
        .body(json, "{\"kind\": \"enrol\"}"),
    ];
    let mut problems = Vec::new();
    for c in cases {
        let r = api
            .call(c.method, &c.path, c.token, c.content_type, c.body)
            .await;
        let what = format!("{} ({} {})", c.what, c.method, c.path);
        if r.status != c.status {
            problems.push(format!(
                "{what}: {} not {}: {}",
                r.status,
                c.status,
                r.text()
            ));
            continue;
        }
        if !r.content_type.starts_with("application/json") {
            problems.push(format!(
                "{what}: content-type {:?}: {}",
                r.content_type,
                r.text()
            ));
            continue;
        }
        let body = r.json();
        let mut errors = Vec::new();
        validate(&doc, error_schema, &body, "body", &mut errors);
        if body["error"]["code"] != c.status {
            errors.push(format!("error.code is not {}", c.status));
        }
        // Where the document describes the operation, it documents this
        // status, and the body is what it says.
        if let Some((template, op)) = operation(&doc, c.method, &c.path) {
            match response_schema(&doc, op, c.status) {
                Some(schema) => validate(&doc, schema, &body, "body", &mut errors),
                None => errors.push(format!(
                    "{} {template} does not document {}",
                    c.method, c.status
                )),
            }
        }
        if !errors.is_empty() {
            problems.push(format!("{what}: {body}: {}", errors.join("; ")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Nothing of that was stored.
    assert_eq!(
        api.get_ok("/api/v1/facilities").await,
        serde_json::json!([])
    );
    stop.cancel();
}

// ---- item: a watch of no such kind is a 400, never an upgrade ------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_of_no_such_kind_is_refused_before_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let auth = format!(
        "authorization: Bearer {}",
        cp.admin_token.as_deref().unwrap()
    );
    let upgrade = [
        auth.as_str(),
        "connection: Upgrade",
        "upgrade: websocket",
        "sec-websocket-version: 13",
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    let r = http1(&cp, "GET", "/api/v1/watch?kind=spaceships", &upgrade).await;
    assert_eq!(r.status, 400, "{r:?}");
    let body: Value = serde_json::from_str(&r.body).unwrap();
    let m = body["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("kind") && m.contains("spaceships") && m.contains("devices or events"),
        "{m}"
    );
    // The kinds it takes upgrade; an unknown parameter does not.
    for kind in ["devices", "events"] {
        let r = http1(&cp, "GET", &format!("/api/v1/watch?kind={kind}"), &upgrade).await;
        assert_eq!(r.status, 101, "{kind}: {r:?}");
    }
    let r = http1(&cp, "GET", "/api/v1/watch?colour=red", &upgrade).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("colour"), "{r:?}");
    // Without a token: 401, whatever the query.
    let r = http1(&cp, "GET", "/api/v1/watch?kind=spaceships", &upgrade[1..]).await;
    assert_eq!(r.status, 401, "{r:?}");
    stop.cancel();
}

// ---- item: one record by name, or 404 / exit 6 ---------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_named_user_audit_entry_or_rollout_is_that_one_or_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let admin = cp.admin_token.clone().unwrap();
    let api = Api::new(&cp, &admin);
    api.token("viewer", "val").await;
    api.token("operator", "otto").await;
    api.apply(&bundle_record("first", "{matchLabels: {board: a}}", ""))
        .await;
    api.apply(&bundle_record("second", "{matchLabels: {board: b}}", ""))
        .await;

    // Users: the one named, never the first.
    for user in ["admin", "val", "otto"] {
        let u = api.get_ok(&format!("/api/v1/users/{user}")).await;
        assert_eq!(u["name"], user, "{u}");
    }
    // Rollouts by their bundle.
    for bundle in ["first", "second"] {
        let r = api.get_ok(&format!("/api/v1/rollouts/{bundle}")).await;
        assert_eq!(r["bundle"], bundle, "{r}");
    }
    // The audit log and events by sequence.
    let audit = api.get_ok("/api/v1/audit").await;
    let last = audit.as_array().unwrap().last().unwrap()["seq"].clone();
    assert_ne!(audit[0]["seq"], last, "{audit}");
    let e = api.get_ok(&format!("/api/v1/audit/{last}")).await;
    assert_eq!(e["seq"], last, "{e}");
    // Not there: 404, whatever else exists.
    for path in [
        "/api/v1/users/nosuch",
        "/api/v1/rollouts/nosuch",
        "/api/v1/audit/999999",
        "/api/v1/events/999999",
    ] {
        let r = api.get(path).await;
        assert_eq!(r.status, 404, "GET {path}: {}", r.text());
        assert_eq!(r.json()["error"]["status"], "NotFound");
    }

    // The CLI: the one record, or exit 6 with nothing on stdout.
    let config = login(dir.path(), &cp, &admin).await;
    let r = expect(&config, &["get", "users", "val", "-o", "json"], 0).await;
    let users: Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["val"], "{r:?}");
    let r = expect(&config, &["get", "rollouts", "second", "-o", "name"], 0).await;
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
    for (kind, name) in [
        ("users", "nosuch"),
        ("rollouts", "nosuch"),
        ("audit", "999999"),
    ] {
        let r = expect(&config, &["get", kind, name], 6).await;
        assert!(r.stdout.is_empty(), "{r:?}");
        assert!(r.stderr.contains(name), "{r:?}");
    }
    stop.cancel();
}

// ---- item: an API token's last use ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_tokens_use_is_recorded_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let admin = cp.admin_token.clone().unwrap();
    let api = Api::new(&cp, &admin);
    let (used_id, used) = api.token("viewer", "val").await;
    let (idle_id, _) = api.token("viewer", "ida").await;
    let before = onprem::controlplane::core::now_ms() / 1000;
    let r = api
        .call("GET", "/api/v1/whoami", Some(&used), None, vec![])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let used_at = |tokens: &Value, id: &str| {
        tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .map(|t| t["usedAt"].as_i64().unwrap_or(0))
            .unwrap()
    };
    let tokens = api.get_ok("/api/v1/tokens").await;
    let at = used_at(&tokens, &used_id);
    assert!(
        at >= before,
        "usedAt {at} of a token used at {before}: {tokens}"
    );
    assert_eq!(used_at(&tokens, &idle_id), 0, "{tokens}");

    // Stored: it outlives a restart of the control plane.
    cp.stop().await;
    let cp = control_plane(dir.path(), &stop).await;
    let api = Api::new(&cp, &admin);
    let tokens = api.get_ok("/api/v1/tokens").await;
    assert_eq!(used_at(&tokens, &used_id), at, "{tokens}");

    // `token list` shows it: a use for the one, never for the other.
    let config = login(dir.path(), &cp, &admin).await;
    let r = expect(&config, &["token", "list"], 0).await;
    let row = |id: &str| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no {id}: {r:?}"))
            .to_owned()
    };
    assert!(!row(&used_id).contains("<never>"), "{r:?}");
    assert!(row(&idle_id).contains("<never>"), "{r:?}");
    stop.cancel();
}

// ---- item: the fleet /metrics keeps what the nodes said ------------------

/// `promtool check metrics` of `text`: its problems, `name problem`.
fn promtool(text: &str) -> BTreeSet<String> {
    use std::io::Write as _;
    let bin = common::require("promtool", "the Debian package prometheus");
    let mut child = Command::new(bin)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "promtool cannot parse it ({}): {all}\n{text}",
        out.status
    );
    all.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `family -> (TYPE, HELP)` of a text exposition.
fn headers(text: &str) -> BTreeMap<String, (String, String)> {
    let mut out: BTreeMap<String, (String, String)> = BTreeMap::new();
    for l in text.lines() {
        let mut w = l.splitn(4, ' ');
        match (w.next(), w.next(), w.next()) {
            (Some("#"), Some("TYPE"), Some(name)) => {
                out.entry(name.to_owned()).or_default().0 = w.next().unwrap_or("").to_owned();
            }
            (Some("#"), Some("HELP"), Some(name)) => {
                out.entry(name.to_owned()).or_default().1 = w.next().unwrap_or("").to_owned();
            }
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_metrics_keep_each_familys_type_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let admin = cp.admin_token.clone().unwrap();
    let api = Api::new(&cp, &admin);
    api.apply(&bundle_record(
        "sampled",
        "{matchLabels: {fleet: metrics}}",
        "  telemetry:\n    interval: 1s\n",
    ))
    .await;
    let token = enrol_token(&cp, &[("fleet", "metrics")]);
    let node = start_agent(&cp, dir.path(), "node-a", &token, &stop).await;

    // The node's samples reach the fleet /metrics.
    let fleet_metrics = || async {
        let r = api.get("/metrics").await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    };
    let mut fleet = String::new();
    for _ in 0..(LIMIT.as_millis() / 200) {
        fleet = fleet_metrics().await;
        if fleet.contains("device=\"node-a\"") && fleet.contains("onprem_loop_") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        fleet.contains("device=\"node-a\""),
        "no series of node-a in the fleet /metrics:\n{fleet}"
    );
    let own = tokio::task::spawn_blocking(move || {
        let r = common::Client::new(node).get("/metrics", &[]).unwrap();
        assert_eq!(r.status, 200);
        r.text()
    })
    .await
    .unwrap();

    // Every family of the node's in the fleet output: the node's TYPE and
    // HELP.
    let node_h = headers(&own);
    let fleet_h = headers(&fleet);
    let from_node: BTreeSet<&str> = fleet
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("device=\"node-a\""))
        // The control plane's own per-device series are not the node's.
        .filter(|l| !l.starts_with("onprem_cp_"))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|series| {
            ["", "_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| series.strip_suffix(suffix))
                .find(|family| fleet_h.contains_key(*family))
                .unwrap_or(series)
        })
        .collect();
    assert!(from_node.len() > 5, "{from_node:?}");
    let mut lost = Vec::new();
    for family in &from_node {
        match (node_h.get(*family), fleet_h.get(*family)) {
            (Some(n), Some(f)) if n == f => {}
            (n, f) => lost.push(format!("{family}: node {n:?}, fleet {f:?}")),
        }
    }
    assert!(
        lost.is_empty(),
        "families changed on the way:\n{}",
        lost.join("\n")
    );

    // promtool finds nothing in the fleet output that it does not find in
    // the node's own.
    let node_problems = promtool(&own);
    let fleet_problems = promtool(&fleet);
    let more: Vec<&String> = fleet_problems.difference(&node_problems).collect();
    assert!(
        more.is_empty(),
        "promtool finds in the fleet /metrics what it does not in the node's:\n{more:#?}"
    );
    stop.cancel();
}
