//! Floods a running node agent the way an attacker or a careless operator
//! would, and watches what it does meanwhile: the overload test
//! (`tests/overload.rs`) and the overload bench (`benches/overload.rs`)
//! share it.
//!
//! Each [`Flood`] runs on its own threads until [`Running::stop`]:
//!
//! - **idle connections**: TCP connections to `/metrics` and to Redfish
//!   that never send a byte, opened as fast as they are accepted;
//! - **slow headers**: requests whose header arrives one byte at a time
//!   (slowloris), reconnecting when the server cuts them;
//! - **bad logins**: Redfish requests with Basic credentials that are
//!   wrong (a known user with a wrong password, unknown users), in
//!   parallel over TLS;
//! - **huge bundle**: a bundle file far over the size limit dropped in
//!   place of the node's bundle;
//! - **nested bundle**: a small bundle nested 100,000 levels deep (the
//!   YAML parser's quadratic case) dropped in place.
//!
//! [`Watch`] samples the agent's resident memory from `/proc` meanwhile;
//! [`fans_intervals`] reads the fans loop's tick-interval histogram from a
//! scrape.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The fans loop's period in [`bundle`], seconds.
pub const FANS_PERIOD: f64 = 0.5;

/// The file-descriptor limit [`launch`] puts the agent under, as a small
/// board's unit might (`LimitNOFILE=1024`).
pub const NOFILE: u32 = 1024;

/// The administrator's password in [`bundle`].
pub const ADMIN_PW: &str = "admin-pass-1";

/// A simulated Pi 5 with its fan (fans loop every 500 ms) and Redfish
/// with one administrator (locked for 2 s after 5 wrong passwords).
pub fn bundle(version: u64) -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| onprem::redfish::auth::hash_password(ADMIN_PW).unwrap());
    format!(
        r#"apiVersion: onprem/v1
kind: Bundle
metadata: {{ name: flooded, version: {version} }}
spec:
  hardware:
    profile: pi5-fan
    devices:
      - {{ driver: emc230x, name: aux, bus: 10, address: 0x2f, fan: 1 }}
  fans:
    period: 500ms
    zones:
      - name: cpu
        fans: [aux]
        sensors: [{{ name: cpu }}]
        controllers: [{{ type: curve, points: [[40, 30], [70, 100]] }}]
  redfish:
    listen: 127.0.0.1:0
    lockoutThreshold: 5
    lockoutDuration: 2s
    accounts:
      - {{ userName: admin, role: Administrator, passwordHash: '{hash}' }}
"#
    )
}

/// Starts the agent binary on [`bundle`] in `dir` (simulated hardware),
/// puts it under an open-files limit of `nofile`, and waits for Redfish.
pub fn launch(dir: &Path, nofile: u32) -> (super::Agent, Node) {
    let path = dir.join("bundle.yaml");
    std::fs::write(&path, bundle(1)).unwrap();
    let agent = super::Agent::start(&[
        "--hardware=sim".into(),
        format!("--bundle={}", path.display()),
        format!("--state-dir={}", dir.join("state").display()),
    ]);
    let pid = agent.child.id();
    let ok = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={nofile}:{nofile}"))
        .status()
        .expect("prlimit (util-linux)");
    assert!(ok.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let redfish: SocketAddr = loop {
        let addr = onprem::httpc::Client::new(agent.addr)
            .with_timeout(Duration::from_secs(5))
            .get("/-/status", &[])
            .ok()
            .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
            .and_then(|v| v["redfish"]["address"].as_str()?.parse().ok());
        if let Some(a) = addr {
            break a;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Redfish did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let ca_pem = std::fs::read_to_string(dir.join("state/redfish/tls.crt")).unwrap();
    let node = Node {
        pid,
        metrics: agent.addr,
        redfish,
        ca_pem,
        bundle: path,
        user: "admin".into(),
    };
    (agent, node)
}

/// Whether the administrator's Basic-auth GET of the Systems collection
/// gets a 200.
pub fn admin_can_read(node: &Node) -> bool {
    use base64::Engine as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tls = connector(&node.ca_pem);
        let Some(mut s) = tls_connect(&tls, node.redfish).await else {
            return false;
        };
        let cred = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PW}"));
        let req = format!(
            "GET /redfish/v1/Systems HTTP/1.1\r\nHost: node\r\nAuthorization: Basic {cred}\r\nConnection: close\r\n\r\n"
        );
        if s.write_all(req.as_bytes()).await.is_err() {
            return false;
        }
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
        out.starts_with(b"HTTP/1.1 200")
    })
}

/// What a flood is aimed at.
#[derive(Clone)]
pub struct Node {
    /// The agent's process id.
    pub pid: u32,
    /// Its `/metrics` listener.
    pub metrics: SocketAddr,
    /// Its Redfish (HTTPS) listener.
    pub redfish: SocketAddr,
    /// The Redfish certificate (PEM), to trust.
    pub ca_pem: String,
    /// The bundle file the agent watches.
    pub bundle: PathBuf,
    /// A Redfish user name the bundle has.
    pub user: String,
}

/// One kind of flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// Connections that never send a byte.
    IdleConnections,
    /// Headers one byte at a time.
    SlowHeaders,
    /// Wrong Redfish credentials, in parallel.
    BadLogins,
    /// A bundle far over the size limit.
    HugeBundle,
    /// A bundle nested far too deep.
    NestedBundle,
}

impl Flood {
    /// Every flood, in the order the bench runs them.
    pub const ALL: [Flood; 5] = [
        Flood::IdleConnections,
        Flood::SlowHeaders,
        Flood::BadLogins,
        Flood::HugeBundle,
        Flood::NestedBundle,
    ];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Flood::IdleConnections => "idle connections",
            Flood::SlowHeaders => "slow headers",
            Flood::BadLogins => "bad logins",
            Flood::HugeBundle => "huge bundle",
            Flood::NestedBundle => "nested bundle",
        }
    }
}

/// How hard each flood pushes.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Idle connections held open (half to each listener).
    pub idle: usize,
    /// Slow-header clients.
    pub slow: usize,
    /// Bad-login clients in parallel.
    pub logins: usize,
    /// Size of the huge bundle, bytes.
    pub huge_bytes: usize,
    /// Nesting depth of the nested bundle.
    pub depth: usize,
}

impl Default for Scale {
    fn default() -> Self {
        Scale {
            idle: 2000,
            slow: 64,
            logins: 64,
            huge_bytes: 50 << 20,
            depth: 100_000,
        }
    }
}

/// What the floods saw of the agent, counted.
#[derive(Debug, Default)]
pub struct Counts {
    /// Idle connections that connected.
    pub idle_open: AtomicU64,
    /// Idle connection attempts refused or timed out.
    pub idle_failed: AtomicU64,
    /// Slow-header connections the server cut.
    pub slow_cut: AtomicU64,
    /// Bad logins answered 401.
    pub login_401: AtomicU64,
    /// Bad logins answered 503 (busy).
    pub login_503: AtomicU64,
    /// Bad logins answered otherwise (status or error).
    pub login_other: AtomicU64,
}

/// Floods running until [`stop`](Running::stop).
pub struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// What they saw.
    pub counts: Arc<Counts>,
}

impl Running {
    /// Stops every flood and closes its connections.
    pub fn stop(self) -> Arc<Counts> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        self.counts
    }
}

/// Starts `floods` against `node`.
pub fn start(node: &Node, floods: &[Flood], scale: Scale) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let mut threads = Vec::new();
    for &f in floods {
        let (node, stop, counts) = (node.clone(), Arc::clone(&stop), Arc::clone(&counts));
        threads.push(std::thread::spawn(move || match f {
            Flood::IdleConnections => idle(&node, scale.idle, &stop, &counts),
            Flood::SlowHeaders => runtime().block_on(slow(node, scale.slow, stop, counts)),
            Flood::BadLogins => runtime().block_on(logins(node, scale.logins, stop, counts)),
            Flood::HugeBundle => drop_in(&node.bundle, &huge_bundle(scale.huge_bytes)),
            Flood::NestedBundle => drop_in(&node.bundle, &nested_bundle(scale.depth)),
        }));
    }
    Running {
        stop,
        threads,
        counts,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Replaces `path` with `text` at once (a rename, as an editor or a
/// deployment tool does).
pub fn drop_in(path: &Path, text: &[u8]) {
    let tmp = path.with_extension("flood-tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A bundle of `bytes` bytes: a valid head, then a comment that goes on.
pub fn huge_bundle(bytes: usize) -> Vec<u8> {
    let mut v = b"apiVersion: onprem/v1\nkind: Bundle\nmetadata: { name: huge, version: 99 }\nspec:\n  fans:\n    zones: []\n".to_vec();
    let line = format!("# {}\n", "x".repeat(1021));
    while v.len() < bytes {
        v.extend_from_slice(line.as_bytes());
    }
    v.truncate(bytes);
    v
}

/// A bundle whose `metadata.labels` is a flow mapping nested `depth`
/// levels deep (`{a: {a: …}}`), about five bytes a level.
pub fn nested_bundle(depth: usize) -> Vec<u8> {
    let mut s = String::from(
        "apiVersion: onprem/v1\nkind: Bundle\nmetadata:\n  name: nested\n  version: 98\n  labels: ",
    );
    s.push_str(&"{a: ".repeat(depth));
    s.push('1');
    s.push_str(&"}".repeat(depth));
    s.push_str("\nspec: {}\n");
    s.into_bytes()
}

fn idle(node: &Node, n: usize, stop: &AtomicBool, counts: &Counts) {
    let mut held = Vec::with_capacity(n);
    let targets = [node.metrics, node.redfish];
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        if held.len() < n {
            match TcpStream::connect_timeout(&targets[i % 2], Duration::from_millis(500)) {
                Ok(s) => {
                    counts.idle_open.fetch_add(1, Ordering::Relaxed);
                    held.push(s);
                }
                Err(_) => {
                    counts.idle_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            i += 1;
        } else {
            // All open: look again for connections the server closed, and
            // open new ones in their place.
            held.retain(|s: &TcpStream| {
                let _ = s.set_nonblocking(true);
                let mut b = [0u8; 1];
                !matches!((&*s).read(&mut b), Ok(0))
            });
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// An HTTP request head that never ends, sent one byte at a time.
const SLOW_HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: node\r\nX-Slow: ";

async fn slow(node: Node, n: usize, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let tls = connector(&node.ca_pem);
    let mut tasks = Vec::new();
    for i in 0..n {
        let (node, tls) = (node.clone(), tls.clone());
        let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let cut = if i % 2 == 0 {
                    match tokio::net::TcpStream::connect(node.metrics).await {
                        Ok(s) => dribble(s, &stop).await,
                        Err(_) => true,
                    }
                } else {
                    match tls_connect(&tls, node.redfish).await {
                        Some(s) => dribble(s, &stop).await,
                        None => true,
                    }
                };
                if cut {
                    counts.slow_cut.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Writes [`SLOW_HEAD`] a byte at a time, a byte every 200 ms, then one
/// more header byte at a time for ever; true when the server cut it.
async fn dribble<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    stop: &AtomicBool,
) -> bool {
    let mut i = 0usize;
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::SeqCst) {
        let b = SLOW_HEAD.get(i).copied().unwrap_or(b'x');
        i += 1;
        if s.write_all(&[b]).await.is_err() {
            return true;
        }
        // The server may answer (408, 400) and close: a read that ends.
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => return true,
            Err(_) => {}
        }
    }
    false
}

/// `n` clients, each sending one request after another with wrong Basic
/// credentials: even clients a known user with a wrong password, odd ones
/// a new unknown user each time.
async fn logins(node: Node, n: usize, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    use base64::Engine as _;
    let tls = connector(&node.ca_pem);
    let mut tasks = Vec::new();
    for i in 0..n {
        let (node, tls) = (node.clone(), tls.clone());
        let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
        tasks.push(tokio::spawn(async move {
            let mut k = 0u64;
            while !stop.load(Ordering::SeqCst) {
                k += 1;
                let user = if i % 2 == 0 {
                    node.user.clone()
                } else {
                    format!("intruder-{i}-{k}")
                };
                let cred = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:wrong-password-{k}"));
                let req = format!(
                    "GET /redfish/v1/Systems HTTP/1.1\r\nHost: node\r\nAuthorization: Basic {cred}\r\nConnection: close\r\n\r\n"
                );
                let status = async {
                    let mut s = tls_connect(&tls, node.redfish).await?;
                    s.write_all(req.as_bytes()).await.ok()?;
                    let mut out = Vec::new();
                    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
                    let head = String::from_utf8_lossy(&out);
                    head.split_whitespace().nth(1)?.parse::<u16>().ok()
                }
                .await;
                match status {
                    Some(401) => counts.login_401.fetch_add(1, Ordering::Relaxed),
                    Some(503) => counts.login_503.fetch_add(1, Ordering::Relaxed),
                    _ => counts.login_other.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// A TLS client trusting `ca_pem`.
pub fn connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    super::tls_connector(ca_pem)
}

async fn tls_connect(
    tls: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
) -> Option<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    tokio::time::timeout(Duration::from_secs(10), tls.connect(name, tcp))
        .await
        .ok()?
        .ok()
}

/// Samples the agent's resident memory every 50 ms until stopped.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    samples: Arc<Mutex<Vec<f64>>>,
}

/// What a [`Watch`] saw.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    /// Resident memory at the start, MiB.
    pub rss_start: f64,
    /// The highest resident memory sampled, MiB.
    pub rss_peak: f64,
    /// Resident memory at the end, MiB.
    pub rss_end: f64,
}

impl Watch {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(vec![rss_mib(pid)]));
        let (s, v) = (Arc::clone(&stop), Arc::clone(&samples));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
                v.lock().unwrap().push(rss_mib(pid));
            }
        });
        Watch {
            stop,
            thread: Some(thread),
            samples,
        }
    }

    /// Stops sampling.
    pub fn stop(mut self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let v = self.samples.lock().unwrap();
        Seen {
            rss_start: v[0],
            rss_peak: v.iter().copied().fold(0.0, f64::max),
            rss_end: *v.last().unwrap_or(&0.0),
        }
    }
}

/// Resident memory of `pid`, MiB (0 once it is gone).
pub fn rss_mib(pid: u32) -> f64 {
    status_kib(pid, "VmRSS:") / 1024.0
}

/// A `kB` line of `/proc/PID/status`.
pub fn status_kib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Open file descriptors of `pid`.
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The fans loop's tick intervals as `/metrics` shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Intervals {
    /// `(le, cumulative count)`.
    pub buckets: Vec<(f64, f64)>,
    /// Sum, seconds.
    pub sum: f64,
    /// Count.
    pub count: f64,
}

impl Intervals {
    /// Intervals observed since `before`.
    pub fn since(&self, before: &Intervals) -> Intervals {
        Intervals {
            buckets: self
                .buckets
                .iter()
                .map(|(le, n)| {
                    let old = before
                        .buckets
                        .iter()
                        .find(|(l, _)| l == le)
                        .map_or(0.0, |(_, o)| *o);
                    (*le, n - old)
                })
                .collect(),
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    /// Intervals longer than `secs` (which must be a bucket bound).
    pub fn over(&self, secs: f64) -> f64 {
        let within = self
            .buckets
            .iter()
            .find(|(le, _)| (*le - secs).abs() < 1e-9)
            .map(|(_, n)| *n)
            .unwrap_or_else(|| panic!("no bucket le={secs} in {:?}", self.buckets));
        self.count - within
    }

    /// The mean interval, seconds.
    pub fn mean(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            f64::NAN
        }
    }

    /// The smallest bucket bound that holds every interval: the longest
    /// interval is at most this.
    pub fn max_bound(&self) -> f64 {
        self.buckets
            .iter()
            .find(|(_, n)| *n >= self.count)
            .map_or(f64::INFINITY, |(le, _)| *le)
    }
}

/// Reads `onprem_loop_interval_seconds{loop="NAME"}` from a scrape.
pub fn loop_intervals(text: &str, name: &str) -> Intervals {
    let mut out = Intervals::default();
    let label = format!("loop=\"{name}\"");
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, v)) = l.rsplit_once(' ') else {
            continue;
        };
        if !key.contains(&label) {
            continue;
        }
        let Ok(v) = v.parse::<f64>() else { continue };
        if key.starts_with("onprem_loop_interval_seconds_bucket{") {
            let le = key
                .split("le=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::NAN)
            };
            out.buckets.push((le, v));
        } else if key.starts_with("onprem_loop_interval_seconds_sum{") {
            out.sum = v;
        } else if key.starts_with("onprem_loop_interval_seconds_count{") {
            out.count = v;
        }
    }
    out
}

/// The fans loop's intervals.
pub fn fans_intervals(text: &str) -> Intervals {
    loop_intervals(text, "fans")
}

/// GETs `/metrics` on a new connection: the body, or why not, within
/// `limit`.
pub fn scrape(addr: SocketAddr, limit: Duration) -> Result<String, String> {
    let r = onprem::httpc::Client::new(addr)
        .with_timeout(limit)
        .get("/metrics", &[])
        .map_err(|e| e.to_string())?;
    if r.status == 200 {
        Ok(r.text())
    } else {
        Err(format!("status {}: {}", r.status, r.text()))
    }
}
