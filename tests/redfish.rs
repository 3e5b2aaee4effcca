//! The node's Redfish service, end to end: a real agent process on
//! simulated hardware, its TLS listener, and real clients — the DMTF
//! Redfish Service Validator, redfishtool and sushy (PyPI, in
//! `target/redfish-venv`, installed by `scripts/test.sh`), and a raw
//! HTTPS client for everything a client can get wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Agent;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN_PW: &str = "admin-pass-1";
const OPERATOR_PW: &str = "operator-pass-1";
const VIEWER_PW: &str = "viewer-pass-1";

fn venv(program: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/redfish-venv/bin")
        .join(program);
    assert!(
        p.is_file(),
        "{} is missing: run `bash scripts/test.sh` (it installs redfish-service-validator, redfishtool and sushy from PyPI into target/redfish-venv)",
        p.display()
    );
    p
}

fn hashes() -> &'static [String; 3] {
    static H: std::sync::OnceLock<[String; 3]> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        let h = |p: &str| onprem::redfish::auth::hash_password(p).unwrap();
        [h(ADMIN_PW), h(OPERATOR_PW), h(VIEWER_PW)]
    })
}

/// A bundle for a simulated Pi with a UPS HAT, a fan, a rail and a
/// relay-switched blade; reboots allowed, power-off not.
fn bundle(version: u64, accounts: &[(&str, &str, usize)]) -> String {
    let accounts: String = accounts
        .iter()
        .map(|(user, role, h)| {
            format!(
                "      - {{ userName: {user}, role: {role}, passwordHash: '{}' }}\n",
                hashes()[*h]
            )
        })
        .collect();
    format!(
        r#"apiVersion: onprem/v1
kind: Bundle
metadata: {{ name: redfish-node, version: {version} }}
spec:
  hardware:
    profile: pi-sixfab-ups
    devices:
      - {{ driver: emc230x, name: fan, bus: 1, address: 0x2f, fan: 1 }}
      - {{ driver: ina219, name: vin, bus: 1, address: 0x40, shuntOhms: 0.1, maxAmps: 3.2 }}
      - {{ driver: gpio-relay, name: blade1, pin: 17 }}
  power:
    period: 200ms
    switches: [{{ name: blade1, restore: last-state }}]
    host: {{ allowReboot: true, allowShutdown: false }}
  redfish:
    listen: 127.0.0.1:0
    lockoutThreshold: 3
    lockoutDuration: 2s
    accounts:
{accounts}"#
    )
}

const ALL: &[(&str, &str, usize)] = &[
    ("admin", "Administrator", 0),
    ("operator", "Operator", 1),
    ("viewer", "ReadOnly", 2),
];

struct Node {
    agent: Agent,
    dir: tempfile::TempDir,
    redfish: SocketAddr,
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bundle.yaml"), bundle(1, ALL)).unwrap();
        let agent = Agent::start(&[
            "--hardware=sim".into(),
            format!("--bundle={}", dir.path().join("bundle.yaml").display()),
            format!("--state-dir={}", dir.path().join("state").display()),
        ]);
        let mut n = Node {
            agent,
            dir,
            redfish: "127.0.0.1:1".parse().unwrap(),
        };
        n.redfish = n.wait_redfish();
        n
    }

    fn status(&self) -> Value {
        let r = self.agent.client().get("/-/status", &[]).unwrap();
        serde_json::from_str(&r.text()).unwrap()
    }

    fn wait_redfish(&self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(a) = self.status()["redfish"]["address"].as_str() {
                return a.parse().unwrap();
            }
            assert!(Instant::now() < deadline, "Redfish did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.redfish)
    }

    fn host_actions(&self) -> Vec<(String, String)> {
        self.status()["hostActions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["kind"].as_str().unwrap().to_owned(),
                    a["why"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn events(&self) -> Vec<String> {
        self.status()["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["reason"].as_str().unwrap(),
                    e["message"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// An HTTPS client trusting the node's self-signed certificate.
    fn client(&self) -> Https {
        let pem = std::fs::read_to_string(self.dir.path().join("state/redfish/tls.crt")).unwrap();
        Https::new(self.redfish, &pem)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // The agent must never have panicked, whatever it was sent.
        while let Ok(l) = self.agent.log.try_recv() {
            assert!(!l.contains("panicked"), "agent log: {l}");
        }
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The first message id of a Redfish error body.
    fn message_id(&self) -> String {
        self.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

struct Https {
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
}

impl Https {
    fn new(addr: SocketAddr, ca_pem: &str) -> Https {
        let cfg = common::tls_client_config(ca_pem);
        Https {
            addr,
            tls: tokio_rustls::TlsConnector::from(cfg),
        }
    }

    /// One HTTP/1.1 request on a new connection.
    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
        let mut s = self.tls.connect(name, tcp).await.unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&out[..split]).to_string();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Resp {
            status,
            headers,
            body: out[split + 4..].to_vec(),
        }
    }

    async fn get(&self, path: &str, auth: &[(&str, &str)]) -> Resp {
        self.call("GET", path, auth, b"").await
    }

    async fn json(&self, method: &str, path: &str, auth: &[(&str, &str)], body: &Value) -> Resp {
        let mut h = auth.to_vec();
        h.push(("Content-Type", "application/json"));
        self.call(method, path, &h, body.to_string().as_bytes())
            .await
    }

    /// Logs in; returns the token and the session's URI.
    async fn login(&self, user: &str, pw: &str) -> (String, String) {
        let r = self
            .json(
                "POST",
                "/redfish/v1/SessionService/Sessions",
                &[],
                &json!({ "UserName": user, "Password": pw }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        (
            r.header("X-Auth-Token").unwrap().to_owned(),
            r.header("Location").unwrap().to_owned(),
        )
    }
}

fn basic(user: &str, pw: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

#[test]
fn the_dmtf_validator_finds_no_failures() {
    let node = Node::start();
    let logs = node.dir.path().join("validator");
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redfish/csdl");
    for authtype in ["Session", "Basic"] {
        let out = Command::new(venv("rf_service_validator"))
            .args(["--rhost", &node.url()])
            .args(["--user", "admin", "--password", ADMIN_PW])
            .args(["--authtype", authtype, "--skipschema"])
            .arg("--schema_directory")
            .arg(&schemas)
            .arg("--logdir")
            .arg(&logs)
            .args(["--config", "/dev/null"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut fails = String::new();
        for e in std::fs::read_dir(&logs).unwrap() {
            for f in std::fs::read_dir(e.unwrap().path()).unwrap() {
                let p = f.unwrap().path();
                if p.to_string_lossy().ends_with(".log") {
                    for l in std::fs::read_to_string(&p).unwrap().lines() {
                        if l.contains(" - ERROR - ") {
                            fails.push_str(l);
                            fails.push('\n');
                        }
                    }
                }
            }
        }
        assert!(
            out.status.success(),
            "validator ({authtype}) failed:\n{stdout}\n{fails}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // It walked the whole tree, not only the root.
        for uri in [
            "/redfish/v1/Systems/1",
            "/redfish/v1/Chassis/1/ThermalSubsystem/Fans/fan",
            "/redfish/v1/Chassis/1/PowerSubsystem/Batteries/ups/Metrics",
            "/redfish/v1/Chassis/1/Sensors/vin_Power",
            "/redfish/v1/Chassis/blade1",
            "/redfish/v1/Managers/1/LogServices/Log/Entries",
            "/redfish/v1/AccountService/Roles/ReadOnly",
        ] {
            assert!(
                stdout.contains(&format!("Validating {uri}...")),
                "{uri} not validated:\n{stdout}"
            );
        }
        std::fs::remove_dir_all(&logs).unwrap();
    }
}

#[test]
fn redfishtool_and_sushy_list_read_and_reset() {
    let node = Node::start();
    let port = node.redfish.port().to_string();
    let rt = |user: &str, pw: &str, args: &[&str]| {
        let out = Command::new(venv("redfishtool"))
            .args(["-r", &format!("127.0.0.1:{port}"), "-u", user, "-p", pw])
            .args(["-S", "Always"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (rc, out) = rt("admin", ADMIN_PW, &["Systems"]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("/redfish/v1/Systems/1"), "{out}");
    let (rc, out) = rt("viewer", VIEWER_PW, &["Chassis", "-1", "Thermal"]);
    assert_eq!(rc, 0, "{out}");
    let thermal: Value = serde_json::from_str(&out).unwrap();
    assert!(
        thermal["Temperatures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["Name"] == "cpu temp" && t["ReadingCelsius"].as_f64().unwrap() > 0.0),
        "{out}"
    );
    assert_eq!(thermal["Fans"][0]["ReadingUnits"], "RPM");
    let (rc, out) = rt("viewer", VIEWER_PW, &["Chassis", "-1", "Power"]);
    assert_eq!(rc, 0, "{out}");
    let power: Value = serde_json::from_str(&out).unwrap();
    assert!(
        power["PowerSupplies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["Name"] == "vin" && p["LineInputVoltage"].as_f64().unwrap() > 4.0),
        "{out}"
    );
    // Reset through the power loop: recorded on the simulated host.
    let (rc, out) = rt(
        "admin",
        ADMIN_PW,
        &["Systems", "-1", "reset", "GracefulRestart"],
    );
    assert_eq!(rc, 0, "{out}");
    // Power-off is not allowed by the bundle: not in the allowable values,
    // so redfishtool refuses before sending (exit 8).
    let (rc, out) = rt(
        "admin",
        ADMIN_PW,
        &["Systems", "-1", "reset", "GracefulShutdown"],
    );
    assert_eq!(rc, 8, "{out}");
    // A read-only account may not reset.
    let (rc, out) = rt(
        "viewer",
        VIEWER_PW,
        &["Systems", "-1", "reset", "GracefulRestart"],
    );
    assert_ne!(rc, 0, "{out}");
    // Wrong password: redfishtool's exit 5 (401).
    let (rc, out) = rt("admin", "wrong-password", &["Systems"]);
    assert_eq!(rc, 5, "{out}");

    // sushy, as the operator, with a session.
    let out = Command::new(venv("python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redfish/sushy_check.py"))
        .args([&node.url(), "operator", OPERATOR_PW, "ForceRestart"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sushy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["systems"], json!(["/redfish/v1/Systems/1"]));
    assert_eq!(seen["power_state"], "On");
    assert_eq!(
        seen["allowed"],
        json!(["ForceRestart", "GracefulRestart", "On"])
    );
    assert_eq!(seen["power_cycle"], "InvalidParameterValueError");
    assert!(
        seen["temperatures"].as_array().unwrap().len() >= 2,
        "{seen}"
    );
    assert_eq!(seen["fans"][0][2], "RPM");
    assert!(
        seen["supplies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s[0] == "vin"),
        "{seen}"
    );

    // The power loop took both, with who asked.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let taken = node.host_actions();
        if taken.len() >= 2 {
            assert_eq!(
                taken,
                vec![
                    ("reboot".to_owned(), "redfish:admin".to_owned()),
                    ("forceReboot".to_owned(), "redfish:operator".to_owned()),
                ]
            );
            break;
        }
        assert!(Instant::now() < deadline, "host actions: {taken:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // `/-/status` (unauthenticated) says that a login failed, not whose;
    // the Redfish log service says whose.
    let events = node.events();
    assert!(
        events.iter().any(|e| e.starts_with("LoginFailed")),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.contains("\"admin\"")),
        "{events:?}"
    );
    let entries = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(node.client().get(
            "/redfish/v1/Managers/1/LogServices/Log/Entries",
            &[("Authorization", &basic("admin", ADMIN_PW))],
        ));
    assert!(
        String::from_utf8_lossy(&entries.body).contains("Redfish login as \\\"admin\\\""),
        "{}",
        String::from_utf8_lossy(&entries.body)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_redfish_errors_with_the_right_status() {
    let node = tokio::task::spawn_blocking(Node::start).await.unwrap();
    let c = node.client();
    let admin = basic("admin", ADMIN_PW);
    let a: &[(&str, &str)] = &[("Authorization", admin.as_str())];

    // Unauthenticated: the root yes, anything else 401 with a challenge.
    let r = c.get("/redfish/v1/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("OData-Version"), Some("4.0"));
    assert!(r.header("ETag").is_some());
    let r = c.get("/redfish/v1/Systems/1", &[]).await;
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").unwrap().starts_with("Basic"));
    assert_eq!(r.message_id(), "Base.1.16.0.NoValidSession");
    let r = c
        .get("/redfish/v1/Systems/1", &[("X-Auth-Token", "nope")])
        .await;
    assert_eq!(r.status, 401);
    let bad = basic("admin", "not-it");
    let r = c
        .get("/redfish/v1/Systems/1", &[("Authorization", bad.as_str())])
        .await;
    assert_eq!(r.status, 401);
    let r = c
        .get("/redfish/v1/Systems/1", &[("Authorization", "Basic !!!")])
        .await;
    assert_eq!(r.status, 401);

    // $metadata and the OData service document.
    let r = c.get("/redfish/v1/$metadata", &[]).await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("ServiceRoot.v1_20_0.ServiceContainer"));
    let r = c.get("/redfish/v1/odata", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"][0]["url"], "/redfish/v1/");

    // ETag and If-None-Match.
    let r = c.get("/redfish/v1/AccountService", a).await;
    assert_eq!(r.status, 200);
    let tag = r.header("ETag").unwrap().to_owned();
    assert!(
        r.header("Link")
            .unwrap()
            .contains("AccountService.v1_18_1.json")
    );
    let mut h = a.to_vec();
    h.push(("If-None-Match", tag.as_str()));
    assert_eq!(c.get("/redfish/v1/AccountService", &h).await.status, 304);

    // Sessions: malformed JSON, wrong types, missing and unknown
    // properties, wrong password.
    let post = |body: &'static [u8]| {
        let c = &c;
        async move {
            c.call(
                "POST",
                "/redfish/v1/SessionService/Sessions",
                &[("Content-Type", "application/json")],
                body,
            )
            .await
        }
    };
    let r = post(b"{\"UserName\": ").await;
    assert_eq!(
        (r.status, r.message_id()),
        (400, "Base.1.16.0.MalformedJSON".into())
    );
    let r = post(b"[1, 2]").await;
    assert_eq!(
        (r.status, r.message_id()),
        (400, "Base.1.16.0.MalformedJSON".into())
    );
    let r = post(b"{\"UserName\": 7, \"Password\": \"x\"}").await;
    assert_eq!(
        (r.status, r.message_id()),
        (400, "Base.1.16.0.PropertyValueTypeError".into())
    );
    let r = post(b"{\"UserName\": \"admin\"}").await;
    assert_eq!(
        (r.status, r.message_id()),
        (400, "Base.1.16.0.CreateFailedMissingReqProperties".into())
    );
    let r = post(b"{\"UserName\": \"admin\", \"Password\": \"x\", \"Role\": \"root\"}").await;
    assert_eq!(
        (r.status, r.message_id()),
        (400, "Base.1.16.0.PropertyUnknown".into())
    );
    let r = c
        .call(
            "POST",
            "/redfish/v1/SessionService/Sessions",
            &[("Content-Type", "text/plain")],
            b"admin",
        )
        .await;
    assert_eq!(r.status, 415);
    let big = vec![b' '; 70 * 1024];
    let r = c
        .call("POST", "/redfish/v1/SessionService/Sessions", &[], &big)
        .await;
    assert_eq!(
        (r.status, r.message_id()),
        (413, "Base.1.16.0.PayloadTooLarge".into())
    );

    // A session: works, logs out, then its token is refused.
    let (token, location) = c.login("viewer", VIEWER_PW).await;
    let t: &[(&str, &str)] = &[("X-Auth-Token", token.as_str())];
    assert_eq!(c.get("/redfish/v1/Chassis/1", t).await.status, 200);
    // A viewer sees its own session only, and not the admin account.
    let r = c.get("/redfish/v1/SessionService/Sessions", t).await;
    assert_eq!(r.json()["Members"], json!([{ "@odata.id": location }]));
    assert_eq!(
        c.get("/redfish/v1/AccountService/Accounts/admin", t)
            .await
            .status,
        403
    );
    let r = c.get("/redfish/v1/AccountService/Accounts/viewer", t).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["Password"], Value::Null);
    // …and may not reset or patch.
    let r = c
        .json(
            "POST",
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            t,
            &json!({ "ResetType": "GracefulRestart" }),
        )
        .await;
    assert_eq!(
        (r.status, r.message_id()),
        (403, "Base.1.16.0.InsufficientPrivilege".into())
    );
    assert_eq!(c.call("DELETE", &location, t, b"").await.status, 204);
    let r = c.get("/redfish/v1/Chassis/1", t).await;
    assert_eq!(
        (r.status, r.message_id()),
        (401, "Base.1.16.0.NoValidSession".into())
    );

    // Reset: bad types and values.
    let reset = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset";
    let r = c
        .json("POST", reset, a, &json!({ "ResetType": "Explode" }))
        .await;
    assert_eq!(
        (r.status, r.message_id()),
        (400, "Base.1.16.0.ActionParameterValueNotInList".into())
    );
    let r = c
        .json("POST", reset, a, &json!({ "ResetType": "ForceOff" }))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["@Message.ExtendedInfo"][0]["Resolution"]
            .as_str()
            .unwrap()
            .contains("allowShutdown"),
        "{}",
        r.json()
    );
    let r = c.json("POST", reset, a, &json!({ "ResetType": 3 })).await;
    assert_eq!(
        (r.status, r.message_id()),
        (400, "Base.1.16.0.ActionParameterValueTypeError".into())
    );
    let r = c.json("POST", reset, a, &json!({})).await;
    assert_eq!(
        (r.status, r.message_id()),
        (400, "Base.1.16.0.ActionParameterMissing".into())
    );
    let r = c
        .json("POST", reset, a, &json!({ "ResetType": "On", "Delay": 5 }))
        .await;
    assert_eq!(
        (r.status, r.message_id()),
        (400, "Base.1.16.0.ActionParameterUnknown".into())
    );
    // `On` for a node that is on: nothing to do.
    let r = c
        .json("POST", reset, a, &json!({ "ResetType": "On" }))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(c.get(reset, a).await.status, 405);

    // PATCH: read-only and unknown properties, wrong ETag.
    let r = c
        .json(
            "PATCH",
            "/redfish/v1/Systems/1",
            a,
            &json!({ "HostName": "x", "Bogus": 1 }),
        )
        .await;
    assert_eq!(r.status, 400);
    let ids: Vec<String> = r.json()["error"]["@Message.ExtendedInfo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["MessageId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        [
            "Base.1.16.0.PropertyUnknown",
            "Base.1.16.0.PropertyNotWritable"
        ]
    );
    let r = c
        .json(
            "PATCH",
            "/redfish/v1/SessionService",
            a,
            &json!({ "SessionTimeout": 60 }),
        )
        .await;
    assert_eq!(
        (r.status, r.message_id()),
        (400, "Base.1.16.0.PropertyNotWritable".into())
    );
    let mut h = a.to_vec();
    h.push(("If-Match", "W/\"0000\""));
    let r = c
        .json(
            "PATCH",
            "/redfish/v1/AccountService/Accounts/viewer",
            &h,
            &json!({ "Locked": false }),
        )
        .await;
    assert_eq!(
        (r.status, r.message_id()),
        (412, "Base.1.16.0.PreconditionFailed".into())
    );
    let r = c
        .json(
            "PATCH",
            "/redfish/v1/AccountService/Accounts/viewer",
            a,
            &json!({ "Locked": "no" }),
        )
        .await;
    assert_eq!(
        (r.status, r.message_id()),
        (400, "Base.1.16.0.PropertyValueTypeError".into())
    );

    // Methods, URIs, queries and headers.
    let r = c
        .call("DELETE", "/redfish/v1/Chassis/1/Sensors/cpu_Temp", a, b"")
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    let r = c.get("/redfish/v1/Chassis/2", a).await;
    assert_eq!(
        (r.status, r.message_id()),
        (404, "Base.1.16.0.ResourceMissingAtURI".into())
    );
    assert_eq!(c.get("/redfish/v2/", a).await.status, 404);
    let r = c.get("/redfish/v1/Systems?$expand=.", a).await;
    assert_eq!(
        (r.status, r.message_id()),
        (501, "Base.1.16.0.QueryNotSupported".into())
    );
    assert_eq!(c.get("/redfish/v1/Systems?only=1", a).await.status, 200);
    let mut h = a.to_vec();
    h.push(("OData-Version", "3.0"));
    assert_eq!(c.get("/redfish/v1/Systems", &h).await.status, 412);
    assert_eq!(
        c.call("HEAD", "/redfish/v1/Systems", a, b"").await.status,
        200
    );

    // Lockout: three failures lock the account (then even the right
    // password fails), an administrator unlocks it.
    for _ in 0..3 {
        let r = c
            .json(
                "POST",
                "/redfish/v1/SessionService/Sessions",
                &[],
                &json!({ "UserName": "operator", "Password": "guess" }),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let r = c
        .json(
            "POST",
            "/redfish/v1/SessionService/Sessions",
            &[],
            &json!({ "UserName": "operator", "Password": OPERATOR_PW }),
        )
        .await;
    assert_eq!(r.status, 401, "locked");
    let acct = "/redfish/v1/AccountService/Accounts/operator";
    assert_eq!(c.get(acct, a).await.json()["Locked"], true);
    let r = c.json("PATCH", acct, a, &json!({ "Locked": true })).await;
    assert_eq!(r.status, 400);
    let r = c.json("PATCH", acct, a, &json!({ "Locked": false })).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["Locked"], false);
    c.login("operator", OPERATOR_PW).await;
    let events = tokio::task::spawn_blocking(move || {
        let e = node.events();
        drop(node);
        e
    })
    .await
    .unwrap();
    for reason in ["AccountLocked", "AccountUnlocked", "LoginFailed"] {
        assert!(
            events.iter().any(|e| e.starts_with(reason)),
            "{reason}: {events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blade_chassis_reset_switches_its_relay_through_the_power_loop() {
    let node = tokio::task::spawn_blocking(Node::start).await.unwrap();
    let c = node.client();
    let op = basic("operator", OPERATOR_PW);
    let o: &[(&str, &str)] = &[("Authorization", op.as_str())];
    let state = || async {
        c.get("/redfish/v1/Chassis/blade1", o).await.json()["PowerState"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let until = |want: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if state().await == want {
                return;
            }
            assert!(Instant::now() < deadline, "blade1 never {want}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let reset = "/redfish/v1/Chassis/blade1/Actions/Chassis.Reset";
    let info = c
        .get("/redfish/v1/Chassis/blade1/ResetActionInfo", o)
        .await
        .json();
    assert_eq!(
        info["Parameters"][0]["AllowableValues"],
        json!(["On", "ForceOff", "PowerCycle"])
    );
    assert_eq!(
        c.json("POST", reset, o, &json!({ "ResetType": "On" }))
            .await
            .status,
        204
    );
    until("On").await;
    assert_eq!(
        c.json("POST", reset, o, &json!({ "ResetType": "ForceOff" }))
            .await
            .status,
        204
    );
    until("Off").await;
    // A power cycle: off (already), then on again by itself.
    let t0 = Instant::now();
    assert_eq!(
        c.json("POST", reset, o, &json!({ "ResetType": "PowerCycle" }))
            .await
            .status,
        204
    );
    until("On").await;
    assert!(t0.elapsed() >= Duration::from_secs(4), "{:?}", t0.elapsed());
    let r = c
        .json("POST", reset, o, &json!({ "ResetType": "GracefulRestart" }))
        .await;
    assert_eq!(r.status, 400);
    let view = basic("viewer", VIEWER_PW);
    let r = c
        .json(
            "POST",
            reset,
            &[("Authorization", view.as_str())],
            &json!({ "ResetType": "On" }),
        )
        .await;
    assert_eq!(r.status, 403);
    let events = tokio::task::spawn_blocking(move || node.events())
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.starts_with("SwitchSet")
            && e.contains("blade1 switched off (requested by redfish:operator)")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_bundle_changes_accounts_and_ends_their_sessions() {
    let node = tokio::task::spawn_blocking(Node::start).await.unwrap();
    let c = node.client();
    let (admin, _) = c.login("admin", ADMIN_PW).await;
    let (viewer, _) = c.login("viewer", VIEWER_PW).await;
    // Version 2 drops the viewer and makes the operator read-only.
    std::fs::write(
        node.dir.path().join("bundle.yaml"),
        bundle(
            2,
            &[("admin", "Administrator", 0), ("operator", "ReadOnly", 1)],
        ),
    )
    .unwrap();
    node.agent.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c
            .get(
                "/redfish/v1/Systems/1",
                &[("X-Auth-Token", viewer.as_str())],
            )
            .await;
        if r.status == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the viewer's session outlived its account"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The admin's session survives; the address is the same.
    let r = c
        .get(
            "/redfish/v1/AccountService/Accounts",
            &[("X-Auth-Token", admin.as_str())],
        )
        .await;
    assert_eq!(r.status, 200);
    let members: Vec<String> = r.json()["Members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["@odata.id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        members,
        [
            "/redfish/v1/AccountService/Accounts/admin",
            "/redfish/v1/AccountService/Accounts/operator"
        ]
    );
    let op = basic("operator", OPERATOR_PW);
    let r = c
        .json(
            "POST",
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            &[("Authorization", op.as_str())],
            &json!({ "ResetType": "GracefulRestart" }),
        )
        .await;
    assert_eq!(r.status, 403, "the operator is read-only now");
    let r = c
        .json(
            "POST",
            "/redfish/v1/SessionService/Sessions",
            &[],
            &json!({ "UserName": "viewer", "Password": VIEWER_PW }),
        )
        .await;
    assert_eq!(r.status, 401);
    tokio::task::spawn_blocking(move || drop(node))
        .await
        .unwrap();
}
