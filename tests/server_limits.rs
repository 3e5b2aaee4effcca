//! The agent's servers keep their bounds (`src/serverlimits.rs`,
//! `src/redfish/auth.rs`), tried on the real binary on simulated
//! hardware: idle connections beyond the cap do not take descriptors and
//! do not keep a scrape out; slow headers and idle keep-alive connections
//! are cut; a flood of bad Redfish logins, unknown users included, keeps
//! memory bounded and is answered 401 or 503, never left hanging; a
//! ReadOnly account cannot take the administrators' sessions; and
//! `/-/status` names no one who failed to log in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Agent;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN_PW: &str = "admin-pass-1";
const VIEWER_PW: &str = "viewer-pass-1";

/// An Argon2id hash with the smallest parameters, for tests that log in
/// many times and are not about hashing's cost.
fn cheap_hash(pw: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"onprem-test-salt").unwrap();
    a.hash_password(pw.as_bytes(), &salt).unwrap().to_string()
}

/// A simulated Pi whose bundle enables Redfish with `accounts`
/// (`userName`, role, hash).
fn bundle(accounts: &[(String, &str, String)]) -> String {
    let accounts: String = accounts
        .iter()
        .map(|(user, role, hash)| {
            format!("      - {{ userName: {user}, role: {role}, passwordHash: '{hash}' }}\n")
        })
        .collect();
    format!(
        r#"apiVersion: onprem/v1
kind: Bundle
metadata: {{ name: limits-node, version: 1 }}
spec:
  hardware:
    profile: pi-sixfab-ups
    devices:
      - {{ driver: emc230x, name: fan, bus: 1, address: 0x2f, fan: 1 }}
  redfish:
    listen: 127.0.0.1:0
    lockoutThreshold: 0
    accounts:
{accounts}"#
    )
}

struct Node {
    agent: Agent,
    dir: tempfile::TempDir,
    redfish: SocketAddr,
}

impl Node {
    fn start(accounts: &[(String, &str, String)], flags: &[&str]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bundle.yaml"), bundle(accounts)).unwrap();
        let mut args = vec![
            "--hardware=sim".to_owned(),
            format!("--bundle={}", dir.path().join("bundle.yaml").display()),
            format!("--state-dir={}", dir.path().join("state").display()),
        ];
        args.extend(flags.iter().map(|f| (*f).to_owned()));
        let agent = Agent::start(&args);
        let deadline = Instant::now() + Duration::from_secs(20);
        let redfish = loop {
            if let Some(a) = status(&agent)["redfish"]["address"].as_str() {
                break a.parse().unwrap();
            }
            assert!(Instant::now() < deadline, "Redfish did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Node {
            agent,
            dir,
            redfish,
        }
    }

    fn pid(&self) -> u32 {
        self.agent.child.id()
    }

    fn https(&self) -> Https {
        let pem = std::fs::read_to_string(self.dir.path().join("state/redfish/tls.crt")).unwrap();
        Https::new(self.redfish, &pem)
    }
}

fn status(agent: &Agent) -> Value {
    let r = agent.client().get("/-/status", &[]).unwrap();
    serde_json::from_str(&r.text()).unwrap()
}

/// Sockets the process holds open.
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

/// A `kB` field of `/proc/PID/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Whether the server has closed `s` (EOF or an error on a read that
/// does not wait).
fn closed_by_server(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut r = s;
    let mut buf = [0u8; 1024];
    let r = loop {
        match r.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    r
}

/// Waits until the server closes `s`, sending `drip` (if any) one byte
/// every 100 ms meanwhile; false when `limit` passes first.
fn cut_within(s: &mut TcpStream, drip: &[u8], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut i = 0;
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if !drip.is_empty() && s.write_all(&drip[i % drip.len()..][..1]).is_err() {
            return true;
        }
        i += 1;
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

struct Https {
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
}

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

    fn message_id(&self) -> String {
        self.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Https {
    fn new(addr: SocketAddr, ca_pem: &str) -> Https {
        let cfg = common::tls_client_config(ca_pem);
        Https {
            addr,
            tls: tokio_rustls::TlsConnector::from(cfg),
        }
    }

    /// One HTTP/1.1 request on a new connection; also returns the
    /// client's address.
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (Resp, SocketAddr) {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let local = tcp.local_addr().unwrap();
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
        let resp = Resp {
            status,
            headers,
            body: out[split + 4..].to_vec(),
        };
        (resp, local)
    }

    async fn login(&self, user: &str, pw: &str) -> (Resp, SocketAddr) {
        let body = json!({ "UserName": user, "Password": pw }).to_string();
        self.call(
            "POST",
            "/redfish/v1/SessionService/Sessions",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await
    }
}

fn basic(user: &str, pw: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

const CAP: usize = 16;

#[test]
fn idle_connections_stay_under_the_cap_and_a_scrape_gets_through() {
    let admin = vec![("admin".to_owned(), "Administrator", cheap_hash(ADMIN_PW))];
    let cap = CAP.to_string();
    let node = Node::start(
        &admin,
        &[
            &format!("--web.max-connections={cap}"),
            // Long timeouts: the cap, not a timeout, bounds the flood.
            "--web.header-timeout=600",
            "--web.idle-timeout=600",
        ],
    );
    let before = sockets(node.pid());
    // Three times the cap on each listener, none sending a byte.
    let mut idle: Vec<TcpStream> = Vec::new();
    for target in [node.agent.addr, node.redfish] {
        for _ in 0..3 * CAP {
            idle.push(TcpStream::connect(target).unwrap());
        }
    }
    // The agent makes room for each new connection by closing an idle
    // one: twice the cap of them on each listener are closed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let closed = idle.iter().filter(|s| closed_by_server(s)).count();
        let held = sockets(node.pid());
        assert!(
            held <= before + 2 * (CAP + 1),
            "the agent holds {held} sockets ({before} before the flood, cap {CAP} per listener)"
        );
        if closed >= 4 * CAP {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {closed} of {} idle connections were closed",
            idle.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // With the cap reached by idle connections, a scrape still gets through.
    let text = node.agent.scrape();
    assert!(text.contains("node_scrape_collector_success"));
    assert!(sockets(node.pid()) <= before + 2 * (CAP + 1));
    // And Redfish still answers.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (r, _) = rt.block_on(node.https().call("GET", "/redfish/v1/", &[], b""));
    assert_eq!(r.status, 200);
    drop(idle);
}

#[test]
fn slow_headers_and_idle_connections_are_cut() {
    let admin = vec![("admin".to_owned(), "Administrator", cheap_hash(ADMIN_PW))];
    let node = Node::start(&admin, &["--web.header-timeout=1", "--web.idle-timeout=2"]);
    let limit = Duration::from_secs(15);
    // Slowloris on /metrics: a header byte at a time.
    let mut s = TcpStream::connect(node.agent.addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert!(
        cut_within(&mut s, b"X-Slow: aaaaaaaaaaaaaaaa\r\n", limit),
        "a slow header on /metrics was not cut"
    );
    // A connection that never sends a byte: /metrics, and Redfish (no
    // TLS handshake).
    for target in [node.agent.addr, node.redfish] {
        let mut s = TcpStream::connect(target).unwrap();
        assert!(
            cut_within(&mut s, b"", limit),
            "a silent connection to {target} was not cut"
        );
    }
    // A keep-alive connection after its request: cut after the idle
    // timeout, having been served.
    let mut s = TcpStream::connect(node.agent.addr).unwrap();
    s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        cut_within(&mut s, b"", limit),
        "an idle keep-alive connection was not cut"
    );
    // A Redfish body that trickles in (a request in flight, which the
    // cap never closes for room): 408 once the header timeout has passed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let https = node.https();
    let started = Instant::now();
    let (status, head) = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(https.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(https.addr.ip().into());
        let mut s = https.tls.connect(name, tcp).await.unwrap();
        let head = format!(
            "POST /redfish/v1/SessionService/Sessions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"UserName\": ",
            https.addr
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // A byte every 200 ms until the server answers or closes.
        while started.elapsed() < limit {
            if s.write_all(b" ").await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Err(_) => {}
            }
        }
        let text = String::from_utf8_lossy(&out).to_string();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, text)
    });
    assert_eq!(status, 408, "a trickling Redfish body: {head}");
    // The agent still serves.
    node.agent.scrape();
}

/// Peak memory above the agent's resident set before a flood of bad
/// logins: two Argon2 verifications at once take 38 MiB; the rest is
/// TLS sessions and thread stacks.
const LOGIN_FLOOD_PEAK: u64 = 128 << 20;
/// Resident memory above the level before the flood once it is over.
const LOGIN_FLOOD_AFTER: u64 = 48 << 20;

#[test]
fn parallel_bad_logins_keep_memory_bounded_and_are_answered() {
    // Real hashes (19 MiB each to verify), as `onprem hash-password` makes.
    let hash = onprem::redfish::auth::hash_password(ADMIN_PW).unwrap();
    let admin = vec![("admin".to_owned(), "Administrator", hash)];
    let node = Node::start(&admin, &[]);
    let https = Arc::new(node.https());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    // Warm up: one bad login of each kind, so that the baseline includes
    // what a first login sets up once (thread pool, TLS).
    for user in ["admin", "nobody"] {
        let (r, _) = rt.block_on(https.call(
            "GET",
            "/redfish/v1/Systems",
            &[("Authorization", &basic(user, "wrong"))],
            b"",
        ));
        assert_eq!(r.status, 401);
    }
    let before = status_bytes(node.pid(), "VmRSS");
    let flood = 64;
    let answers: Vec<(u16, Option<String>, String)> = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..flood {
            let https = Arc::clone(&https);
            // Half unknown users, half the admin with wrong passwords.
            let user = if i % 2 == 0 {
                format!("ghost{i}")
            } else {
                "admin".to_owned()
            };
            let auth = basic(&user, &format!("wrong-{i}"));
            tasks.push(tokio::spawn(async move {
                let (r, _) = tokio::time::timeout(
                    Duration::from_secs(120),
                    https.call(
                        "GET",
                        "/redfish/v1/Systems",
                        &[("Authorization", &auth)],
                        b"",
                    ),
                )
                .await
                .expect("a bad login was left hanging");
                let id = if r.status == 503 {
                    r.message_id()
                } else {
                    String::new()
                };
                (r.status, r.header("Retry-After").map(str::to_owned), id)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let peak = status_bytes(node.pid(), "VmHWM");
    eprintln!(
        "resident memory: {} MiB before {flood} bad logins, peak {} MiB",
        before >> 20,
        peak >> 20
    );
    for (status, retry, id) in &answers {
        match status {
            401 => {}
            503 => {
                assert_eq!(retry.as_deref(), Some("1"), "503 without Retry-After");
                assert!(id.ends_with(".ServiceTemporarilyUnavailable"), "{id}");
            }
            other => panic!("a bad login got {other}"),
        }
    }
    assert!(
        answers.iter().any(|(s, _, _)| *s == 401),
        "some bad logins were verified"
    );
    assert!(
        peak < before + LOGIN_FLOOD_PEAK,
        "peak resident memory {} MiB, {} MiB before the flood",
        peak >> 20,
        before >> 20
    );
    // Afterwards the memory goes back.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = status_bytes(node.pid(), "VmRSS");
        if now < before + LOGIN_FLOOD_AFTER {
            eprintln!("resident memory after the flood: {} MiB", now >> 20);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "resident memory {} MiB after the flood, {} MiB before",
            now >> 20,
            before >> 20
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The right password still works.
    let (r, _) = rt.block_on(https.call(
        "GET",
        "/redfish/v1/Systems",
        &[("Authorization", &basic("admin", ADMIN_PW))],
        b"",
    ));
    assert_eq!(r.status, 200);
}

#[test]
fn a_readonly_account_cannot_take_the_administrators_sessions_and_status_names_no_one() {
    const PER_ACCOUNT: usize = onprem::redfish::auth::MAX_SESSIONS_PER_ACCOUNT;
    const ALL: usize = onprem::redfish::auth::MAX_SESSIONS;
    const RESERVED: usize = onprem::redfish::auth::ADMIN_RESERVED_SESSIONS;
    let viewers = ALL.div_ceil(PER_ACCOUNT);
    let mut accounts = vec![("admin".to_owned(), "Administrator", cheap_hash(ADMIN_PW))];
    for v in 0..viewers {
        accounts.push((format!("viewer{v}"), "ReadOnly", cheap_hash(VIEWER_PW)));
    }
    let node = Node::start(&accounts, &[]);
    let https = node.https();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // One ReadOnly account: at most PER_ACCOUNT sessions.
        let mut opened = 0;
        for _ in 0..PER_ACCOUNT {
            let (r, _) = https.login("viewer0", VIEWER_PW).await;
            assert_eq!(r.status, 201);
            opened += 1;
        }
        let (r, _) = https.login("viewer0", VIEWER_PW).await;
        assert_eq!(
            r.status, 503,
            "a ReadOnly account took more than {PER_ACCOUNT} sessions"
        );
        assert!(r.message_id().ends_with(".SessionLimitExceeded"));
        // All ReadOnly accounts together stop short of the administrators'
        // reserve.
        for v in 1..viewers {
            for _ in 0..PER_ACCOUNT {
                let (r, _) = https.login(&format!("viewer{v}"), VIEWER_PW).await;
                if r.status == 201 {
                    opened += 1;
                } else {
                    assert_eq!(r.status, 503);
                }
            }
        }
        assert_eq!(opened, ALL - RESERVED, "sessions ReadOnly accounts opened");
        // The administrator still logs in.
        let (r, _) = https.login("admin", ADMIN_PW).await;
        assert_eq!(r.status, 201, "the administrator was locked out");
    });
    // Failed logins: an unknown user and a wrong password.
    let (unknown, client) = rt.block_on(https.login("mallory-7f3a", "guess"));
    assert_eq!(unknown.status, 401);
    let (wrong, _) = rt.block_on(https.login("admin", "guess"));
    assert_eq!(wrong.status, 401);
    // /-/status (unauthenticated) says that logins failed, not who or from
    // where.
    let st = status(&node.agent);
    let events = st["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["reason"] == "LoginFailed"),
        "{events:?}"
    );
    let text = st.to_string();
    for secret in [
        "mallory-7f3a",
        "\\\"admin\\\"",
        &client.to_string(),
        "unknown user",
        "wrong password",
    ] {
        assert!(!text.contains(secret), "/-/status shows {secret}: {text}");
    }
    // The Redfish log service, to an administrator, says all.
    let log = rt.block_on(https.call(
        "GET",
        "/redfish/v1/Managers/1/LogServices/Log/Entries",
        &[("Authorization", &basic("admin", ADMIN_PW))],
        b"",
    ));
    assert_eq!(log.0.status, 200);
    let entries = String::from_utf8_lossy(&log.0.body).to_string();
    assert!(entries.contains("mallory-7f3a"), "{entries}");
    assert!(entries.contains(&client.to_string()), "{entries}");
}
