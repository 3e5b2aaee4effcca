//! Helpers for the process tests: run the real `onprem` binary on
//! loopback port 0, learn its address from its log, scrape it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cli;
pub mod expo;
pub mod fake_agent;
pub mod fleet;
pub mod flood;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use onprem::httpc::Client;

/// The fixture tree.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Flags that point every collector at the fixture tree.
pub fn fixture_flags(root: &Path) -> Vec<String> {
    vec![
        format!("--path.procfs={}", root.join("proc").display()),
        format!("--path.sysfs={}", root.join("sys").display()),
        format!("--path.rootfs={}", root.join("rootfs").display()),
        format!("--path.udev.data={}", root.join("udev").display()),
        format!(
            "--collector.textfile.directory={}",
            root.join("textfile").display()
        ),
    ]
}

/// A running agent process.
pub struct Agent {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: mpsc::Receiver<String>,
}

impl Agent {
    /// Starts `onprem agent ARGS --web.listen-address=127.0.0.1:0` and
    /// waits until it logs its address (it logs it once bound and after
    /// the first collection).
    pub fn start(args: &[String]) -> Agent {
        Self::start_with(args, |_| {})
    }

    /// Like [`start`], letting the caller adjust the command (env, uid).
    pub fn start_with(args: &[String], adjust: impl FnOnce(&mut Command)) -> Agent {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_onprem"));
        cmd.arg("agent").args(args);
        if !args.iter().any(|a| a.starts_with("--web.listen-address")) {
            cmd.arg("--web.listen-address=127.0.0.1:0");
        }
        if !args.iter().any(|a| a.starts_with("--config")) {
            // An empty file: every setting at its default, whatever the
            // machine's /etc/onprem holds.
            cmd.arg(format!(
                "--config={}",
                fixtures().join("agent-empty.yaml").display()
            ));
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        adjust(&mut cmd);
        let mut child = cmd.spawn().expect("spawn onprem");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[agent] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    if let Some(rest) = line.split("address=").nth(1) {
                        if line.contains("listening") {
                            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
                            return Agent {
                                child,
                                addr,
                                log: rx,
                            };
                        }
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let status = child.try_wait().ok().flatten();
                    panic!(
                        "agent did not report its address (exit: {status:?}); log:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// GET /metrics as Prometheus text.
    pub fn scrape(&self) -> String {
        let r = self.client().get("/metrics", &[]).expect("scrape");
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits until the process exits (panics after `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the agent did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        loop {
            match self.log.recv_timeout(Duration::from_secs(20)) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {needle:?} within 20 s"),
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Metric value lines of `text` whose name (before `{` or space) is `name`.
pub fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .collect()
}

/// The value of the sample whose line starts with `prefix` (name plus
/// labels as printed).
pub fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .and_then(|l| {
            let v = l.rsplit(' ').next()?;
            v.parse().ok()
        })
}

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// Panics with a clear message when a peer program is missing.
pub fn require(program: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!("{program} not found: install {package} (scripts/test.sh installs every test peer)");
}

/// A TLS client configuration trusting only the certificates in `ca_pem`
/// (a node's self-signed Redfish certificate, a control plane's CA).
pub fn tls_client_config(ca_pem: &str) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in onprem::pki::parse_certs(ca_pem, "cert").unwrap() {
        roots.add(c).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    std::sync::Arc::new(cfg)
}

/// [`tls_client_config`] as a tokio connector.
pub fn tls_connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(tls_client_config(ca_pem))
}
