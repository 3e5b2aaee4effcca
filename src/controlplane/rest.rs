//! The REST API (the fleet API's operations over HTTP+JSON), its OpenAPI
//! document, the WebSocket stream of live changes, and the fleet
//! `/metrics`.
//!
//! Every route but `/healthz` and `/api/v1/openapi.json` needs
//! `Authorization: Bearer <API token>` (`/metrics` too, unless the
//! control plane runs with `--public-metrics`), checked by `authenticate`
//! before anything else of the request is looked at: a request without a
//! good token is a 401 whatever its path, method, query or body. Every
//! error is JSON, the OpenAPI document's `Error` schema:
//! `{"error": {"code": 403, "status": "Forbidden", "message": "…"}}`:
//! ours ([`ApiError`]), the framework's rejections (a body over the limit,
//! a query that does not parse, a method a path does not take) rewritten
//! into it by [`json_errors`], and an unknown path under `/api/` (404).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::Principal;
use super::core::{ApiError, Core, Live};
use crate::proto::v1 as pb;

#[derive(Clone)]
struct App {
    core: Arc<Core>,
    public_metrics: bool,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = match &self {
            ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::FailedPrecondition(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (code, Json(error_body(code, &self.to_string()))).into_response()
    }
}

/// The `status` word of an error body for the HTTP status `code` (the
/// OpenAPI document's `Error.error.status` enum).
pub fn status_name(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "Invalid",
        401 => "Unauthenticated",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        413 => "TooLarge",
        415 => "UnsupportedMediaType",
        422 => "Unprocessable",
        426 => "UpgradeRequired",
        503 => "Unavailable",
        c if c < 500 => "Invalid",
        _ => "Internal",
    }
}

/// `{"error": {"code", "status", "message"}}`: the body of every error.
pub fn error_body(code: StatusCode, message: &str) -> serde_json::Value {
    let message = if message.trim().is_empty() {
        code.canonical_reason().unwrap_or("error")
    } else {
        message.trim()
    };
    serde_json::json!({"error": {
        "code": code.as_u16(),
        "status": status_name(code),
        "message": message,
    }})
}

/// The most of a framework rejection's text kept as the message.
const MAX_REJECTION_TEXT: usize = 4096;

/// Rewrites an error response that is not ours (axum's rejections are
/// plain text, a 405 has no body) into the `Error` schema, keeping its
/// status and text and an `Allow` header.
async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let what = format!("{} {}", req.method(), req.uri().path());
    let resp = next.run(req).await;
    let code = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(code.is_client_error() || code.is_server_error()) || json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REJECTION_TEXT).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = match code {
        _ if !text.is_empty() => text,
        StatusCode::METHOD_NOT_ALLOWED => format!("{what}: the path does not take this method"),
        StatusCode::NOT_FOUND => format!("{what}: no such path"),
        _ => String::new(),
    };
    let mut out = (code, Json(error_body(code, &message))).into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

/// An unknown path under `/api/`.
async fn no_such_path(req: axum::extract::Request) -> ApiError {
    ApiError::NotFound(format!(
        "{} {}: no such path (the API is described at /api/v1/openapi.json)",
        req.method(),
        req.uri().path()
    ))
}

type R<T> = Result<T, ApiError>;

/// The paths anyone may read, without a token.
const OPEN_PATHS: &[&str] = &["/healthz", "/api/v1/openapi.json"];

/// Authenticates every request before its route, method, query or body
/// is looked at (a request without a good token learns nothing of them:
/// 401), and hands the [`Principal`] to the handler. `/healthz`, the
/// OpenAPI document and, with `--public-metrics`, `/metrics` need none.
async fn authenticate(
    State(app): State<App>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    let open = OPEN_PATHS.contains(&path) || (app.public_metrics && path == "/metrics");
    if !open {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match app.core.authenticate(bearer) {
            Ok(p) => {
                req.extensions_mut().insert(p);
            }
            Err(e) => return e.into_response(),
        }
    }
    next.run(req).await
}

/// The caller, as [`authenticate`] found it.
type Who = axum::Extension<Principal>;

async fn blocking<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&Core) -> R<T> + Send + 'static,
) -> R<T> {
    let core = Arc::clone(&app.core);
    tokio::task::spawn_blocking(move || f(&core))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// The routes.
pub fn router(core: Arc<Core>, public_metrics: bool) -> Router {
    let app = App {
        core,
        public_metrics,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/apply", post(apply))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/alerts/{id}/ack", post(ack))
        .route("/api/v1/watch", get(watch))
        .route("/api/v1/describe/{kind}/{name}", get(describe))
        .route("/api/v1/{kind}", get(list))
        .route("/api/v1/{kind}/{name}", get(one).delete(delete))
        .route("/api/{*rest}", any(no_such_path))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            authenticate,
        ))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(app)
}

async fn whoami(axum::Extension(p): Who) -> R<Json<serde_json::Value>> {
    Ok(Json(
        serde_json::json!({"user": p.user, "role": p.role, "tokenId": p.token_id, "version": crate::VERSION, "commit": crate::GIT_COMMIT}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListQuery {
    #[serde(default)]
    selector: String,
    #[serde(default)]
    device: String,
}

async fn list(
    State(app): State<App>,
    axum::Extension(p): Who,
    Path(kind): Path<String>,
    Query(q): Query<ListQuery>,
) -> R<Json<serde_json::Value>> {
    let req = pb::GetRequest {
        kind,
        name: String::new(),
        selector: q.selector,
        device: q.device,
    };
    Ok(Json(blocking(&app, move |c| c.get(&p, &req)).await?))
}

/// `GET /api/v1/tokens`: the list, as for every kind (the path is also
/// `POST`'s, which would otherwise answer 405).
async fn list_tokens(state: State<App>, p: Who, q: Query<ListQuery>) -> R<Json<serde_json::Value>> {
    list(state, p, Path("tokens".to_owned()), q).await
}

async fn one(
    State(app): State<App>,
    axum::Extension(p): Who,
    Path((kind, name)): Path<(String, String)>,
) -> R<Json<serde_json::Value>> {
    let req = pb::GetRequest {
        kind,
        name,
        ..Default::default()
    };
    let (kind, name) = (req.kind.clone(), req.name.clone());
    let v = blocking(&app, move |c| c.get(&p, &req)).await?;
    v.as_array()
        .and_then(|a| a.first().cloned())
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no {kind} {name:?}")))
}

async fn describe(
    State(app): State<App>,
    Path((kind, name)): Path<(String, String)>,
) -> R<Json<serde_json::Value>> {
    Ok(Json(
        blocking(&app, move |c| c.describe(&kind, &name)).await?,
    ))
}

async fn delete(
    State(app): State<App>,
    axum::Extension(p): Who,
    Path((kind, name)): Path<(String, String)>,
) -> R<Response> {
    let n2 = name.clone();
    let deleted = blocking(&app, move |c| c.delete(&p, &kind, &n2)).await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound(format!("no {name:?}")))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
}

async fn apply(
    State(app): State<App>,
    axum::Extension(p): Who,
    Query(q): Query<ApplyQuery>,
    body: String,
) -> R<Response> {
    let docs = vec![pb::Document {
        source: "request".into(),
        text: body,
    }];
    let resp = blocking(&app, move |c| c.apply(&p, &docs, q.dry_run)).await?;
    let results: Vec<serde_json::Value> = resp
        .results
        .iter()
        .map(|r| {
            serde_json::json!({
                "index": r.index, "kind": r.kind, "name": r.name, "outcome": r.outcome,
                "diff": r.diff,
                "errors": r.errors.iter().map(|e| serde_json::json!({"path": e.path, "message": e.message})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let invalid = results.iter().filter(|r| r["outcome"] == "invalid").count();
    let total = results.len();
    let mut body =
        serde_json::json!({"applied": resp.applied, "dryRun": q.dry_run, "results": results});
    if invalid == 0 {
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    // Refused: the error of the `Error` schema beside every record's
    // problems.
    let code = StatusCode::UNPROCESSABLE_ENTITY;
    let message = format!("{invalid} of {total} records invalid; nothing was stored");
    body["error"] = error_body(code, &message)["error"].clone();
    Ok((code, Json(body)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenBody {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    ttl_seconds: u64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    description: String,
}

async fn create_token(
    State(app): State<App>,
    axum::Extension(p): Who,
    Json(b): Json<TokenBody>,
) -> R<Json<serde_json::Value>> {
    let req = pb::CreateTokenRequest {
        r#type: b.kind,
        role: b.role,
        user: b.user,
        ttl_seconds: b.ttl_seconds,
        labels: b.labels.into_iter().collect(),
        description: b.description,
    };
    let r = blocking(&app, move |c| c.create_token(&p, &req)).await?;
    Ok(Json(
        serde_json::json!({"id": r.id, "token": r.token, "expires": r.expires_unix}),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    comment: String,
}

async fn ack(
    State(app): State<App>,
    axum::Extension(p): Who,
    Path(id): Path<String>,
    body: Option<Json<AckBody>>,
) -> R<StatusCode> {
    let comment = body.map(|b| b.0.comment).unwrap_or_default();
    blocking(&app, move |c| c.ack(&p, &id, &comment)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchQuery {
    /// One of [`WATCH_KINDS`], or left out for both.
    #[serde(default)]
    kind: String,
    /// Events: the last this many (at most [`RECENT_EVENTS`]) first,
    /// oldest first, then the new ones.
    #[serde(default)]
    recent: usize,
}

/// What `GET /api/v1/watch?kind=` takes (left out: both).
pub const WATCH_KINDS: &[&str] = &["devices", "events"];

/// The most events a watch asks to see first: as many as `get events`
/// shows.
pub const RECENT_EVENTS: usize = 500;

/// Close code of a watch whose token was revoked or expired: 1008,
/// policy violation (RFC 6455 7.4.1).
const CLOSE_TOKEN_ENDED: u16 = 1008;

/// `GET /api/v1/watch`: the query is checked before the upgrade (a kind
/// that is not one is a 400, never a socket that sends nothing); the
/// stream ends, with a close frame saying why, when the token is revoked
/// or expires.
async fn watch(
    State(app): State<App>,
    axum::Extension(p): Who,
    Query(q): Query<WatchQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> R<Response> {
    if !q.kind.is_empty() && !WATCH_KINDS.contains(&q.kind.as_str()) {
        return Err(ApiError::Invalid(format!(
            "kind: {:?} is not something to watch: {} (or leave it out for both)",
            q.kind,
            WATCH_KINDS.join(" or ")
        )));
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let core = Arc::clone(&app.core);
    let ended = core.token_ended(&p);
    Ok(ws.on_upgrade(move |socket| stream_live(socket, core, q.kind, q.recent, ended)))
}

/// Sends the devices as they are (and the `recent` last events), then
/// every change, until the client goes. An event published while the
/// recent ones are read can come twice: the client knows it by its time
/// and content.
async fn stream_live(
    mut socket: WebSocket,
    core: Arc<Core>,
    kind: String,
    recent: usize,
    ended: impl std::future::Future<Output = String> + Send,
) {
    let mut rx = core.subscribe();
    let want_devices = kind.is_empty() || kind == "devices";
    let want_events = kind.is_empty() || kind == "events";
    let mut ended = std::pin::pin!(ended);
    if want_devices {
        for device in core.devices() {
            let msg = serde_json::to_string(&Live::Device {
                device: Box::new(device),
            })
            .unwrap_or_default();
            if socket.send(Message::Text(msg.into())).await.is_err() {
                return;
            }
        }
    }
    if want_events && recent > 0 {
        let c = Arc::clone(&core);
        let n = recent.min(RECENT_EVENTS);
        let events = match tokio::task::spawn_blocking(move || c.recent_events(n)).await {
            Ok(Ok(events)) => events,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "watch: cannot read the recent events");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        for event in events {
            let msg = serde_json::to_string(&Live::Event { event }).unwrap_or_default();
            if socket.send(Message::Text(msg.into())).await.is_err() {
                return;
            }
        }
    }
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Ok(l) => {
                    let keep = match &l {
                        Live::Device { .. } => want_devices,
                        Live::Event { .. } => want_events,
                    };
                    if !keep {
                        continue;
                    }
                    let msg = serde_json::to_string(&l).unwrap_or_default();
                    if socket.send(Message::Text(msg.into())).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let msg = serde_json::json!({"type": "lagged", "missed": n}).to_string();
                    if socket.send(Message::Text(msg.into())).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            why = &mut ended => {
                let frame = axum::extract::ws::CloseFrame {
                    code: CLOSE_TOKEN_ENDED,
                    reason: close_reason(&why).into(),
                };
                let _ = socket.send(Message::Close(Some(frame))).await;
                return;
            }
        }
    }
}

/// `why` cut to what a close frame carries (123 bytes), at a character
/// boundary.
fn close_reason(why: &str) -> String {
    let mut end = why.len().min(123);
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    why[..end].to_owned()
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The fleet's metrics: every device's latest series with `device` and
/// `facility` labels, and the control plane's own.
pub fn render_metrics(core: &Core) -> String {
    let mut out = String::new();
    let devices = core.devices();
    let online = devices.iter().filter(|d| d.online).count();
    let _ = writeln!(
        out,
        "# HELP onprem_cp_devices Enrolled devices by connection state."
    );
    let _ = writeln!(out, "# TYPE onprem_cp_devices gauge");
    let _ = writeln!(out, "onprem_cp_devices{{state=\"online\"}} {online}");
    let _ = writeln!(
        out,
        "onprem_cp_devices{{state=\"offline\"}} {}",
        devices.len() - online
    );
    let mut per = |name: &str, help: &str, f: &dyn Fn(&super::core::DeviceView) -> String| {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for d in &devices {
            let _ = writeln!(
                out,
                "{name}{{device=\"{}\",facility=\"{}\"}} {}",
                esc(&d.device.name),
                esc(&d.device.facility),
                f(d)
            );
        }
    };
    per(
        "onprem_cp_device_online",
        "1 when the device's session is up.",
        &|d| u8::from(d.online).to_string(),
    );
    per(
        "onprem_cp_device_desired_version",
        "Bundle version the control plane wants the device to run.",
        &|d| d.device.desired_version.to_string(),
    );
    per(
        "onprem_cp_device_current_version",
        "Bundle version the device reports running.",
        &|d| d.device.current.version.to_string(),
    );
    per(
        "onprem_cp_device_tainted",
        "1 when the device runs something other than what is wanted.",
        &|d| u8::from(d.device.tainted).to_string(),
    );
    per(
        "onprem_cp_device_converged",
        "1 when the device runs its desired bundle version, applied, with every loop ready.",
        &|d| u8::from(d.converged).to_string(),
    );
    per(
        "onprem_cp_device_loops",
        "Reconcile loops the device's agent reports.",
        &|d| d.health.loops.to_string(),
    );
    per(
        "onprem_cp_device_loops_ready",
        "Reconcile loops the device's agent reports ready.",
        &|d| d.health.loops_ready.to_string(),
    );
    per(
        "onprem_cp_device_last_seen_seconds",
        "Unix time of the device's last message.",
        &|d| d.device.last_seen.to_string(),
    );
    per(
        "onprem_cp_device_telemetry_dropped_total",
        "Samples the device's agent dropped from its full buffer.",
        &|d| d.device.telemetry_dropped.to_string(),
    );
    let _ = writeln!(
        out,
        "# HELP onprem_cp_device_state 1 for the device's state (Converged, Progressing, Degraded, Failed, Override, NoBundle), 0 for the others."
    );
    let _ = writeln!(out, "# TYPE onprem_cp_device_state gauge");
    for d in &devices {
        for st in super::health::State::ALL {
            let _ = writeln!(
                out,
                "onprem_cp_device_state{{device=\"{}\",facility=\"{}\",state=\"{}\"}} {}",
                esc(&d.device.name),
                esc(&d.device.facility),
                st.as_str(),
                u8::from(d.health.state == st)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP onprem_cp_devices_by_state Enrolled devices by state (see onprem_cp_device_state)."
    );
    let _ = writeln!(out, "# TYPE onprem_cp_devices_by_state gauge");
    for st in super::health::State::ALL {
        let _ = writeln!(
            out,
            "onprem_cp_devices_by_state{{state=\"{}\"}} {}",
            st.as_str(),
            devices.iter().filter(|d| d.health.state == st).count()
        );
    }
    core.tunnel_metrics(&mut out);
    render_device_series(&mut out, &core.latest());
    out
}

/// One family of the devices' series in the fleet `/metrics`.
#[derive(Default)]
struct FleetFamily {
    /// What the first device that said so says the family is.
    meta: Option<pb::MetricMetadata>,
    lines: Vec<String>,
}

/// The devices' latest series, each family once with the TYPE and HELP
/// its devices uploaded (`untyped` without HELP for a device that said
/// nothing of it: an agent from before metadata), every series with
/// `device` and `facility` labels. A family in the control plane's own
/// namespace (`onprem_cp_`), a series or label name that is not one, is
/// left out: the output always parses.
pub fn render_device_series(out: &mut String, latest: &[(String, String, super::core::Latest)]) {
    use crate::exporter::textparse::{valid_label_name, valid_metric_name};
    let mut families: BTreeMap<String, FleetFamily> = BTreeMap::new();
    for (device, facility, latest) in latest {
        for s in &latest.series {
            if !valid_metric_name(&s.name) {
                continue;
            }
            let meta = latest.families.family_of(&s.name);
            let family = meta.map_or(s.name.as_str(), |m| m.family.as_str());
            if family.starts_with("onprem_cp_") {
                continue;
            }
            let mut labels: Vec<String> = s
                .labels
                .iter()
                .filter(|l| {
                    valid_label_name(&l.name)
                        && !matches!(l.name.as_str(), "__name__" | "device" | "facility")
                })
                .map(|l| format!("{}=\"{}\"", l.name, esc(&l.value)))
                .collect();
            labels.push(format!("device=\"{}\"", esc(device)));
            labels.push(format!("facility=\"{}\"", esc(facility)));
            let f = families.entry(family.to_owned()).or_default();
            if f.meta.is_none() {
                f.meta = meta.cloned();
            }
            f.lines.push(format!(
                "{}{{{}}} {} {}",
                s.name,
                labels.join(","),
                fmt_value(s.value),
                latest.ts_ms
            ));
        }
    }
    for (name, f) in families {
        match &f.meta {
            Some(m) => {
                if !m.help.is_empty() {
                    let help = m.help.replace('\\', "\\\\").replace('\n', "\\n");
                    let _ = writeln!(out, "# HELP {name} {help}");
                }
                let _ = writeln!(out, "# TYPE {name} {}", m.r#type().text_name());
            }
            None => {
                let _ = writeln!(out, "# TYPE {name} untyped");
            }
        }
        for l in f.lines {
            let _ = writeln!(out, "{l}");
        }
    }
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        v.to_string()
    }
}

async fn metrics(State(app): State<App>) -> R<Response> {
    let body = blocking(&app, |c| Ok(render_metrics(c))).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The OpenAPI 3.0 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Error` schema's `error` object in the served document.
    fn error_schema() -> serde_json::Value {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        doc["components"]["schemas"]["Error"]["properties"]["error"].clone()
    }

    /// Every error our handlers give (409, 500 and 503 included, which no
    /// request can be made to give on purpose) has the documented body.
    #[tokio::test]
    async fn every_api_error_has_the_documented_body() {
        let schema = error_schema();
        let statuses = schema["properties"]["status"]["enum"].as_array().unwrap();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(required, ["code", "status", "message"]);
        let cases = [
            (ApiError::Invalid("i".into()), 400),
            (ApiError::Unauthenticated("u".into()), 401),
            (ApiError::Forbidden("f".into()), 403),
            (ApiError::NotFound("n".into()), 404),
            (ApiError::Conflict("c".into()), 409),
            (ApiError::FailedPrecondition("p".into()), 409),
            (ApiError::Internal("x".into()), 500),
            (ApiError::Unavailable("o".into()), 503),
        ];
        for (e, code) in cases {
            let message = e.to_string();
            let r = e.into_response();
            assert_eq!(r.status().as_u16(), code);
            assert_eq!(
                r.headers()[header::CONTENT_TYPE],
                "application/json",
                "{code}"
            );
            let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let err = v["error"].as_object().unwrap();
            assert_eq!(err.len(), 3, "{v}");
            assert_eq!(v["error"]["code"], code, "{v}");
            assert_eq!(v["error"]["message"], message.as_str(), "{v}");
            assert!(statuses.contains(&v["error"]["status"]), "{v}");
        }
        // Every status word a response can carry is in the schema.
        for code in 400..600u16 {
            let c = StatusCode::from_u16(code).unwrap();
            let word = serde_json::Value::from(status_name(c));
            assert!(statuses.contains(&word), "{code}: {word}");
            // An empty message is never sent.
            assert!(
                !error_body(c, " ")["error"]["message"]
                    .as_str()
                    .unwrap()
                    .is_empty()
            );
        }
    }
}
