//! A bundle whose Redfish service cannot take its settings (the `listen`
//! address is taken, the certificate cannot be read) fails to apply: it
//! is rolled back to the bundle before, the old listener serves on, and
//! the condition and events name the address and what the OS said. With
//! nothing to roll back to, the bundle is reported as failed, not
//! applied. A real agent process on simulated hardware, a port held by
//! the test, and a real HTTPS client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::Agent;
use serde_json::Value;

/// A simulated Pi 5 serving Redfish on `listen`, with one account;
/// `extra` lines go into the `redfish` section.
fn bundle(version: u64, listen: &str, extra: &str) -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| onprem::redfish::auth::hash_password("admin-pass-1").unwrap());
    format!(
        r#"apiVersion: onprem/v1
kind: Bundle
metadata: {{ name: rebind, version: {version} }}
spec:
  hardware: {{ profile: pi5-fan }}
  fans:
    zones:
      - name: cpu
        fans: [fan]
        sensors: [{{ name: cpu }}]
        controllers: [{{ type: curve, points: [[40, 30], [70, 100]] }}]
  redfish:
    listen: "{listen}"
    accounts:
      - {{ userName: admin, role: Administrator, passwordHash: '{hash}' }}
{extra}"#
    )
}

struct Node {
    agent: Agent,
    dir: tempfile::TempDir,
}

impl Node {
    fn start(first: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bundle.yaml"), first).unwrap();
        let agent = Agent::start(&[
            "--hardware=sim".into(),
            format!("--bundle={}", dir.path().join("bundle.yaml").display()),
            format!("--state-dir={}", dir.path().join("state").display()),
        ]);
        Node { agent, dir }
    }

    fn status(&self) -> Value {
        let r = self.agent.client().get("/-/status", &[]).unwrap();
        serde_json::from_str(&r.text()).unwrap()
    }

    /// Polls `/-/status` until `ok` holds for it (20 s at most).
    fn until(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.status();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what} within 20 s; status: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn redfish(&self) -> Option<SocketAddr> {
        self.status()["redfish"]["address"]
            .as_str()
            .map(|a| a.parse().unwrap())
    }

    /// Replaces the bundle file and has the agent read it now.
    fn give(&self, text: &str) {
        std::fs::write(self.dir.path().join("bundle.yaml"), text).unwrap();
        self.agent.signal("HUP");
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

    /// `GET path` over HTTPS at `addr`, trusting the node's self-signed
    /// certificate: the status code.
    fn https_get(&self, addr: SocketAddr, path: &str) -> u16 {
        let pem = std::fs::read_to_string(self.dir.path().join("state/redfish/tls.crt")).unwrap();
        let cfg = common::tls_client_config(&pem);
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let conn = rustls::ClientConnection::new(cfg, name).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let head = String::from_utf8_lossy(&out);
        head.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP response: {head:?}"))
    }
}

fn bundle_field<'a>(s: &'a Value, f: &str) -> &'a Value {
    &s["bundle"][f]
}

#[test]
fn a_redfish_address_in_use_rolls_the_bundle_back_and_the_old_listener_serves_on() {
    let node = Node::start(&bundle(1, "127.0.0.1:0", ""));
    node.until("version 1 applied", |s| {
        bundle_field(s, "reason") == "Applied" && s["redfish"]["address"].is_string()
    });
    let old = node.redfish().unwrap();
    assert_eq!(node.https_get(old, "/redfish/v1"), 200);

    // Version 2 wants a port the test holds.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let taken = format!("127.0.0.1:{port}");
    node.give(&bundle(2, &taken, ""));
    let s = node.until("version 2 rolled back", |s| {
        bundle_field(s, "rolledBackTotal").as_u64() == Some(1)
    });
    assert_eq!(bundle_field(&s, "status"), "False", "{s:#}");
    assert_eq!(bundle_field(&s, "reason"), "RolledBack", "{s:#}");
    let msg = bundle_field(&s, "message").as_str().unwrap();
    assert!(
        msg.contains(&format!("binding the Redfish service to {taken}"))
            && msg.contains("Address already in use")
            && msg.contains("rolled back to rebind version 1"),
        "{msg}"
    );
    // The previous bundle runs, and its listener never closed.
    assert_eq!(bundle_field(&s, "version").as_u64(), Some(1), "{s:#}");
    assert_eq!(node.redfish(), Some(old));
    assert_eq!(node.https_get(old, "/redfish/v1"), 200);
    let m = node.agent.scrape();
    assert!(
        m.lines()
            .any(|l| l.starts_with("onprem_bundle_info{") && l.contains("version=\"1\"")),
        "{m}"
    );
    assert!(
        m.contains("onprem_bundle_updates_total{result=\"rolled_back\"} 1"),
        "{m}"
    );
    let events = node.events();
    assert!(
        events.iter().any(|e| e.starts_with("RedfishNotApplied")
            && e.contains(&taken)
            && e.contains("Address already in use")
            && e.contains(&format!("keeps serving on {old}"))),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("RolledBack") && e.contains(&taken)),
        "{events:#?}"
    );

    // A certificate that cannot be read, on the same address: the same.
    node.give(&bundle(
        3,
        "127.0.0.1:0",
        "    tls: { certFile: /nonexistent/cert.pem, keyFile: /nonexistent/key.pem }\n",
    ));
    let s = node.until("version 3 rolled back", |s| {
        bundle_field(s, "rolledBackTotal").as_u64() == Some(2)
    });
    let msg = bundle_field(&s, "message").as_str().unwrap();
    assert!(msg.contains("/nonexistent/cert.pem"), "{msg}");
    assert_eq!(node.redfish(), Some(old));
    assert_eq!(node.https_get(old, "/redfish/v1"), 200);

    // Once the port is free, the bundle that wanted it applies, and the
    // service moves there.
    drop(busy);
    node.give(&bundle(4, &taken, ""));
    let s = node.until("version 4 applied", |s| {
        bundle_field(s, "reason") == "Applied" && bundle_field(s, "version").as_u64() == Some(4)
    });
    assert_eq!(s["redfish"]["address"], taken.as_str(), "{s:#}");
    assert_eq!(node.https_get(taken.parse().unwrap(), "/redfish/v1"), 200);
    assert!(
        TcpStream::connect(old).is_err(),
        "the old listener still accepts"
    );
}

#[test]
fn a_first_bundle_whose_redfish_cannot_bind_is_reported_failed_not_applied() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().to_string();
    let node = Node::start(&bundle(1, &taken, ""));
    let s = node.until("the first bundle's failure", |s| {
        bundle_field(s, "rolledBackTotal").as_u64() == Some(1)
    });
    assert_eq!(bundle_field(&s, "status"), "False", "{s:#}");
    assert_ne!(bundle_field(&s, "reason"), "Applied", "{s:#}");
    let msg = bundle_field(&s, "message").as_str().unwrap();
    assert!(
        msg.contains(&taken)
            && msg.contains("Address already in use")
            && msg.contains("nothing to roll back to"),
        "{msg}"
    );
    assert!(s["redfish"]["address"].is_null(), "{s:#}");
    assert!(
        node.events()
            .iter()
            .any(|e| e.starts_with("RedfishNotServing") && e.contains(&taken)),
        "{:#?}",
        node.events()
    );
    // The fans loop runs all the same.
    node.until("the fans loop running", |s| {
        s["loops"].as_array().is_some_and(|l| {
            l.iter()
                .any(|l| l["name"] == "fans" && l["runs"].as_u64() > Some(1))
        })
    });
}

#[test]
fn a_new_address_on_the_same_port_takes_the_port_over() {
    let node = Node::start(&bundle(1, "127.0.0.1:0", ""));
    node.until("version 1 applied", |s| {
        bundle_field(s, "reason") == "Applied" && s["redfish"]["address"].is_string()
    });
    let old = node.redfish().unwrap();
    // Every address of the host, the same port: only one listener can
    // have it, so the old one hands it over.
    let wide = format!("0.0.0.0:{}", old.port());
    node.give(&bundle(2, &wide, ""));
    let s = node.until("version 2 applied", |s| {
        bundle_field(s, "version").as_u64() == Some(2)
    });
    assert_eq!(bundle_field(&s, "reason"), "Applied", "{s:#}");
    assert_eq!(s["redfish"]["address"], wide.as_str(), "{s:#}");
    assert_eq!(node.https_get(old, "/redfish/v1"), 200);
}
