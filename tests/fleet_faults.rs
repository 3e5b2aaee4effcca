//! Faults of the control plane and dial-home, as whole processes over
//! loopback TLS: the control plane stopped (SIGTERM, SIGKILL) and started
//! again on the same address while agents keep sampling, one of them
//! restarted in the meantime; an agent buffer too small for the outage;
//! a staged rollout whose canary fails; a delivered bundle whose bytes or
//! signature were altered; malformed REST and gRPC requests.
//!
//! Telemetry is checked where it ends up: the control plane's SQLite
//! store (opened read-only), against what the agents hold in their
//! on-disk buffers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Agent;
use common::fake_agent::{Answer, FakeAgent};
use common::fleet::bundle_record;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use onprem::controlplane::pki;
use onprem::proto::v1 as pb;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

/// How long any one condition may take to come true.
const LIMIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn now_ms() -> i64 {
    onprem::controlplane::core::now_ms()
}

/// Polls `f` every 100 ms until it gives a value; panics after `limit`.
async fn poll<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- an HTTP/2 client over TLS (REST and raw gRPC) ---------------------

#[derive(Debug)]
struct Reply {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
    trailers: Option<http::HeaderMap>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// `grpc-status`, from the trailers or (trailers-only answer) the
    /// headers.
    fn grpc_status(&self) -> Option<i32> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok()?.parse().ok())
    }

    fn grpc_message(&self) -> String {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-message"))
            .or_else(|| self.headers.get("grpc-message"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

/// One request on a new HTTP/2 connection over TLS to 127.0.0.1:`port`.
async fn h2(
    tls: &Arc<rustls::ClientConfig>,
    port: u16,
    req: http::Request<Full<Bytes>>,
) -> std::io::Result<Reply> {
    let other = std::io::Error::other;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(name, tcp)
        .await?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(other)?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(other)?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(other)?;
    let trailers = body.trailers().cloned();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.to_bytes().to_vec(),
        trailers,
    })
}

fn request(
    method: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("https://127.0.0.1:{port}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body))).unwrap()
}

/// A gRPC message frame: uncompressed, length-prefixed.
fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    v.extend_from_slice(msg);
    v
}

// ---- the control plane as a child process ------------------------------

/// `onprem control-plane` on a fixed loopback port (kept across restarts,
/// so that agents dial the same URL), its log appended to `cp.log`.
struct Cp {
    state: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
    tls: Arc<rustls::ClientConfig>,
    fingerprint: String,
    admin: String,
}

impl Cp {
    fn spawn(state: &Path, log: &Path, port: u16) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_onprem"))
            .arg("control-plane")
            .arg("--state-dir")
            .arg(state)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--heartbeat-seconds", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn onprem control-plane")
    }

    async fn start(dir: &Path) -> Cp {
        let state = dir.join("cp");
        let log = dir.join("cp.log");
        let port = free_port();
        let child = Self::spawn(&state, &log, port);
        // The CA and the first admin token are written before it listens.
        let (ca, admin) = poll("the control plane's CA and admin token", LIMIT, || {
            let state = state.clone();
            async move {
                let ca = std::fs::read_to_string(state.join("ca.crt")).ok()?;
                let admin = std::fs::read_to_string(state.join("admin.token")).ok()?;
                Some((ca, admin.trim().to_owned()))
            }
        })
        .await;
        let der = pki::parse_certs(&ca, "ca.crt").unwrap().remove(0);
        let cp = Cp {
            state,
            log,
            port,
            child: Some(child),
            tls: Arc::new(pki::client_config(&ca, None).unwrap()),
            fingerprint: format!("sha256:{}", pki::fingerprint(&der)),
            admin,
        };
        cp.serving().await;
        cp
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    async fn serving(&self) {
        poll("the control plane to serve", LIMIT, || async {
            let r = h2(
                &self.tls,
                self.port,
                request("GET", self.port, "/healthz", &[], vec![]),
            )
            .await
            .ok()?;
            (r.status == 200).then_some(())
        })
        .await;
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM: it stops serving, writes back what it holds, exits 0.
    fn term(&mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let mut c = self.child.take().unwrap();
        let deadline = std::time::Instant::now() + LIMIT;
        let status = loop {
            if let Some(s) = c.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the control plane did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "control plane exited with {status}");
    }

    /// SIGKILL: nothing is written back; only what was committed stays.
    fn kill(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    async fn restart(&mut self) {
        assert!(self.child.is_none());
        self.child = Some(Self::spawn(&self.state, &self.log, self.port));
        self.serving().await;
    }

    /// Still running (not crashed)?
    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        if let Some(c) = content_type {
            headers.push(("content-type", c));
        }
        h2(
            &self.tls,
            self.port,
            request(method, self.port, path, &headers, body),
        )
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// GET as admin; must answer 200.
    async fn get(&self, path: &str) -> serde_json::Value {
        let r = self
            .call("GET", path, Some(&self.admin), None, vec![])
            .await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    async fn apply(&self, yaml: &str) -> serde_json::Value {
        let r = self
            .call(
                "POST",
                "/api/v1/apply",
                Some(&self.admin),
                Some("application/yaml"),
                yaml.as_bytes().to_vec(),
            )
            .await;
        let j = r.json();
        assert_eq!(r.status, 200, "{j}");
        assert_eq!(j["applied"], true, "{j}");
        j
    }

    async fn token(&self, body: serde_json::Value) -> String {
        let r = self
            .call(
                "POST",
                "/api/v1/tokens",
                Some(&self.admin),
                Some("application/json"),
                body.to_string().into_bytes(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["token"].as_str().unwrap().to_owned()
    }

    async fn device(&self, name: &str) -> serde_json::Value {
        self.get(&format!("/api/v1/devices/{name}")).await
    }

    /// The samples the store holds from `device_id`, by sequence.
    fn samples(&self, device_id: &str) -> Vec<pb::Sample> {
        let conn = rusqlite::Connection::open_with_flags(
            self.state.join("onprem.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        let mut st = conn
            .prepare("SELECT seq, ts_ms, data FROM samples WHERE device = ?1 ORDER BY seq")
            .unwrap();
        st.query_map([device_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .unwrap()
        .map(|r| {
            let (seq, ts, data) = r.unwrap();
            let s = pb::Sample::decode(data.as_slice()).unwrap();
            assert_eq!(
                (s.seq, s.timestamp_ms),
                (seq as u64, ts),
                "row and sample differ"
            );
            s
        })
        .collect()
    }
}

impl Drop for Cp {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- control plane log (last lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

// ---- agents --------------------------------------------------------------

/// The flags of an agent on a simulated node dialling home to `cp`.
fn agent_args(url: &str, fingerprint: &str, state: &Path, name: &str, token: &str) -> Vec<String> {
    vec![
        "--hardware=sim".into(),
        format!("--state-dir={}", state.display()),
        format!("--control-plane={url}"),
        format!("--enrol-token={token}"),
        format!("--ca-fingerprint={fingerprint}"),
        format!("--device-name={name}"),
        "--collector.disable-defaults".into(),
        "--collector.devices".into(),
        "--collector.loops".into(),
    ]
}

/// Starts an agent process (blocking until it listens) off the runtime's
/// threads.
async fn start_agent(args: Vec<String>) -> Agent {
    tokio::task::spawn_blocking(move || Agent::start(&args))
        .await
        .unwrap()
}

/// SIGTERM, and a clean exit.
async fn stop_agent(mut a: Agent) {
    a.signal("TERM");
    let status = tokio::task::spawn_blocking(move || a.wait_exit(LIMIT))
        .await
        .unwrap();
    assert!(status.success(), "agent exited with {status}");
}

/// `(seq, timestamp)` of every whole record in the agent's telemetry
/// buffer (`[len u32][crc u32][seq u64][payload]` per record, the payload
/// an encoded `Sample`).
fn buffered(agent_state: &Path) -> Vec<(u64, i64)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(agent_state.join("telemetry")) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("seg-") && name.ends_with(".log")) {
            continue;
        }
        let Ok(b) = std::fs::read(e.path()) else {
            continue; // deleted meanwhile
        };
        let mut at = 0;
        while at + 16 <= b.len() {
            let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
            if at + 16 + len > b.len() {
                break; // being written
            }
            let seq = u64::from_le_bytes(b[at + 8..at + 16].try_into().unwrap());
            if let Ok(s) = pb::Sample::decode(&b[at + 16..at + 16 + len]) {
                out.push((seq, s.timestamp_ms));
            }
            at += 16 + len;
        }
    }
    out.sort_unstable();
    out
}

/// A field of the agent's buffer cursor (`acked`, `dropped_total`,
/// `dropped_through`, `last_seq`); 0 before it is first written.
fn cursor(agent_state: &Path, field: &str) -> u64 {
    std::fs::read_to_string(agent_state.join("telemetry/cursor"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// Sequence numbers `from..=to` each once, taken in order (timestamps
/// strictly rising: a sample stored twice under two numbers would repeat
/// its timestamp).
fn assert_contiguous(who: &str, s: &[pb::Sample], from: u64) {
    let seqs: Vec<u64> = s.iter().map(|s| s.seq).collect();
    let want: Vec<u64> = (from..from + s.len() as u64).collect();
    assert_eq!(
        seqs, want,
        "{who}: sequence numbers not contiguous from {from}"
    );
    for w in s.windows(2) {
        assert!(
            w[0].timestamp_ms < w[1].timestamp_ms,
            "{who}: sample {} taken at {} is not before sample {} at {}",
            w[0].seq,
            w[0].timestamp_ms,
            w[1].seq,
            w[1].timestamp_ms
        );
    }
}

/// A control plane with a bundle sampling telemetry every second (its
/// buffer bound `buffer_bytes` when given), and agents `names` that run it.
async fn fleet(
    dir: &Path,
    names: &[&str],
    buffer_bytes: Option<u64>,
    extra_args: &[String],
) -> (Cp, Vec<(String, PathBuf, Vec<String>, Agent)>) {
    let cp = Cp::start(dir).await;
    let mut telemetry = "  telemetry:\n    interval: 1s\n".to_owned();
    if let Some(b) = buffer_bytes {
        telemetry.push_str(&format!("    bufferBytes: {b}\n"));
    }
    cp.apply(&bundle_record(
        "sampled",
        "{matchLabels: {fleet: faults}}",
        &telemetry,
    ))
    .await;
    let version = cp.get("/api/v1/rollouts").await[0]["version"]
        .as_u64()
        .unwrap();
    let mut agents = Vec::new();
    for name in names {
        let token = cp
            .token(serde_json::json!({"type": "enrol", "labels": {"fleet": "faults"}}))
            .await;
        let state = dir.join(name);
        let mut args = agent_args(&cp.url(), &cp.fingerprint, &state, name, &token);
        args.extend_from_slice(extra_args);
        let a = start_agent(args.clone()).await;
        agents.push((name.to_string(), state, args, a));
    }
    let mut ids = Vec::new();
    for (name, ..) in &agents {
        let d = poll(
            &format!("{name} to run version {version}"),
            LIMIT,
            || async {
                let d = cp.device(name).await;
                (d["current"]["version"] == version && d["online"] == true).then_some(d)
            },
        )
        .await;
        ids.push(d["id"].as_str().unwrap().to_owned());
    }
    let agents = agents
        .into_iter()
        .zip(ids)
        .map(|((_, state, args, a), id)| (id, state, args, a))
        .collect();
    (cp, agents)
}

enum Outage {
    Term,
    Kill,
}

/// The control plane goes away (`how`) and comes back on the same
/// address; one agent keeps running, the other is restarted while it is
/// away. Every sample either took arrives once, in order, those taken
/// during the outage included.
async fn outage(how: Outage) {
    let dir = tempfile::tempdir().unwrap();
    let (mut cp, mut agents) = fleet(dir.path(), &["steady", "restarted"], None, &[]).await;
    for (id, ..) in &agents {
        poll("samples before the outage", LIMIT, || async {
            (cp.samples(id).len() >= 2).then_some(())
        })
        .await;
    }

    let down = now_ms();
    match how {
        Outage::Term => cp.term(),
        Outage::Kill => cp.kill(),
    }
    // The second agent stops and starts again while the control plane is
    // away: its buffer and its numbering survive.
    let (id, state, args, a) = agents.pop().unwrap();
    stop_agent(a).await;
    let a = start_agent(args.clone()).await;
    agents.push((id, state, args, a));
    // The outage lasts until every agent has buffered three samples
    // taken after the control plane went away.
    for (_, state, ..) in &agents {
        poll("samples buffered during the outage", LIMIT, || async {
            let n = buffered(state).iter().filter(|(_, ts)| *ts > down).count();
            (n >= 3).then_some(())
        })
        .await;
    }
    let last: Vec<u64> = agents
        .iter()
        .map(|(_, state, ..)| buffered(state).last().unwrap().0)
        .collect();
    let up = now_ms();
    cp.restart().await;

    for ((id, state, ..), last) in agents.iter().zip(last) {
        let got = poll(
            &format!("every sample up to {last} at the control plane"),
            LIMIT,
            || async {
                let s = cp.samples(id);
                (s.last().is_some_and(|s| s.seq >= last)).then_some(s)
            },
        )
        .await;
        assert_contiguous(id, &got, 1);
        let during = got
            .iter()
            .filter(|s| s.timestamp_ms > down && s.timestamp_ms <= up)
            .count();
        assert!(
            during >= 3,
            "{id}: {during} samples taken during the outage arrived"
        );
        eprintln!(
            "{id}: samples 1..={} arrived once, in order; {during} taken during the outage",
            got.len()
        );
        // The agent let go of what the control plane acknowledged.
        poll("the agent's acknowledgement", LIMIT, || async {
            (cursor(state, "acked") >= last).then_some(())
        })
        .await;
        assert_eq!(cursor(state, "dropped_total"), 0);
    }
    // Later samples go on arriving after the numbers of the outage.
    for (id, ..) in &agents {
        let n = cp.samples(id).len();
        let s = poll("samples after the outage", LIMIT, || async {
            let s = cp.samples(id);
            (s.len() >= n + 2).then_some(s)
        })
        .await;
        assert_contiguous(id, &s, 1);
    }
    assert!(!cp.log_text().contains("panicked"), "{}", cp.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_stopped_and_restarted_every_buffered_sample_arrives_once_in_order() {
    outage(Outage::Term).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_killed_loses_nothing_committed_and_repeats_nothing() {
    outage(Outage::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_drops_the_oldest_samples_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    // Padding series (selected like every onprem_* metric) make each
    // sample about 13 KiB, so that the smallest bound the bundle may set,
    // 64 KiB, holds four or five of them and the outage can be short.
    let textfile = dir.path().join("textfile");
    std::fs::create_dir_all(&textfile).unwrap();
    let mut pad = "# TYPE onprem_faults_padding gauge\n".to_owned();
    for i in 0..300 {
        pad.push_str(&format!("onprem_faults_padding{{n=\"{i:04}\"}} {i}\n"));
    }
    std::fs::write(textfile.join("padding.prom"), pad).unwrap();
    let extra = [
        "--collector.textfile".to_owned(),
        format!("--collector.textfile.directory={}", textfile.display()),
    ];
    let (mut cp, agents) = fleet(dir.path(), &["small"], Some(64 * 1024), &extra).await;
    let (id, state, _, _agent) = &agents[0];
    poll("samples before the outage", LIMIT, || async {
        (cp.samples(id).len() >= 2).then_some(())
    })
    .await;

    cp.term();
    let acked = cursor(state, "acked");
    // What the control plane stored before it stopped: it may hold a
    // sample or two whose acknowledgement the stop cut off, which the
    // agent still buffers (and may drop).
    let stored = cp.samples(id).last().map_or(0, |s| s.seq);
    // The outage lasts until the buffer has dropped three samples the
    // control plane never got.
    poll("the full buffer to drop samples", LIMIT, || async {
        (cursor(state, "dropped_through") >= stored + 3).then_some(())
    })
    .await;
    let last = buffered(state).last().unwrap().0;
    cp.restart().await;

    let got = poll("the buffered samples after the outage", LIMIT, || async {
        let s = cp.samples(id);
        (s.last().is_some_and(|s| s.seq >= last)).then_some(s)
    })
    .await;
    let dropped = cursor(state, "dropped_total");
    let through = cursor(state, "dropped_through");
    // What the control plane had before the outage, then nothing up to
    // the last dropped number, then every later one.
    let (before, after): (Vec<pb::Sample>, Vec<pb::Sample>) =
        got.into_iter().partition(|s| s.seq <= stored);
    assert!(!before.is_empty() && !after.is_empty());
    assert_contiguous("before the outage", &before, 1);
    let held = before.last().unwrap().seq;
    assert_eq!(
        after[0].seq,
        through + 1,
        "the first sample after the gap is the one after the last dropped"
    );
    assert_contiguous("after the outage", &after, through + 1);
    assert!(before.last().unwrap().timestamp_ms < after[0].timestamp_ms);
    // The gap is what the agent counted as dropped (less any sample the
    // control plane stored whose acknowledgement the outage cut off).
    assert!(through > held, "dropped through {through}, held {held}");
    let gap = through - held;
    assert!(gap >= 3, "gap of {gap}");
    assert!(held >= acked);
    assert_eq!(gap, dropped - (held - acked), "gap vs dropped counter");
    eprintln!(
        "held 1..={held} (agent acked {acked}), dropped {dropped}, then {}..={}",
        through + 1,
        after.last().unwrap().seq
    );
    // The agent reports its counter; the control plane shows it.
    let name = "small";
    poll(
        "the dropped counter at the control plane",
        LIMIT,
        || async {
            let d = cp.device(name).await;
            (d["telemetryDropped"] == dropped).then_some(())
        },
    )
    .await;
    let m = cp
        .call("GET", "/metrics", Some(&cp.admin), None, vec![])
        .await;
    assert_eq!(m.status, 200);
    let line = format!(
        "onprem_cp_device_telemetry_dropped_total{{device=\"{name}\",facility=\"\"}} {dropped}"
    );
    assert!(
        m.text().lines().any(|l| l == line),
        "{line} not in\n{}",
        m.text()
    );
}

// ---- a staged rollout whose canary fails ---------------------------------

/// A fake agent (tests/common/fake_agent.rs) answering every bundle with
/// `outcome`: applied, it runs the version, as a real agent reports.
async fn fake_agent(
    cp: &onprem::controlplane::Handle,
    token: &str,
    name: &str,
    outcome: pb::Outcome,
) -> FakeAgent {
    FakeAgent::start(cp, token, name, answer(outcome)).await
}

fn answer(outcome: pb::Outcome) -> Answer {
    Arc::new(move |d: &pb::BundleDelivery| pb::BundleResult {
        version: d.version,
        digest: d.digest.clone(),
        outcome: outcome as i32,
        message: "fans loop failed to start; rolled back".into(),
        status: Some(if outcome == pb::Outcome::Applied {
            pb::Status {
                bundle_version: d.version,
                bundle_digest: d.digest.clone(),
                bundle_source: "control-plane".into(),
                ..Default::default()
            }
        } else {
            pb::Status::default()
        }),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_rollout_halts_when_its_canary_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = common::fleet::control_plane(dir.path(), &stop).await;
    let admin = common::fleet::admin(&cp);
    let token = || common::fleet::enrol_token(&cp, &[("board", "pi5")]);
    // Devices are taken in name order: the canary sorts first.
    let canary = fake_agent(&cp, &token(), "a-canary", pb::Outcome::RolledBack).await;
    let mut rest = Vec::new();
    for n in ["b-1", "b-2", "b-3"] {
        rest.push((n, fake_agent(&cp, &token(), n, pb::Outcome::Applied).await));
    }
    poll("four devices online", LIMIT, || async {
        let d = cp.core.devices();
        (d.len() == 4 && d.iter().all(|d| d.online)).then_some(())
    })
    .await;

    let doc = pb::Document {
        source: "staged.yaml".into(),
        text: bundle_record(
            "staged",
            "{matchLabels: {board: pi5}}",
            "  rollout: {strategy: Staged, canary: 1, batchSize: 1, progressDeadline: 10m}\n",
        ),
    };
    let r = cp.core.apply(&admin, &[doc], false).unwrap();
    assert!(r.applied, "{:?}", r.results);
    let rollout = poll("the rollout to halt", LIMIT, || async {
        cp.core
            .rollouts()
            .into_iter()
            .find(|r| r.phase != "Progressing")
    })
    .await;
    assert_eq!(rollout.phase, "Halted", "{rollout:?}");
    assert!(
        rollout.message.contains("a-canary RolledBack"),
        "{}",
        rollout.message
    );
    assert_eq!(rollout.batch, 0);
    assert_eq!(rollout.batches.len(), 4, "{:?}", rollout.batches);
    let canary_id = cp.core.device("a-canary").unwrap().device.id;
    assert_eq!(rollout.batches[0], vec![canary_id]);
    let got = canary.deliveries();
    assert_eq!(got.len(), 1, "the canary got the bundle once");
    assert_eq!(got[0].version, rollout.version);
    assert!(!got[0].signature.is_empty());
    let c = cp.core.device("a-canary").unwrap().device;
    assert!(c.tainted, "{c:?}");
    assert_eq!(c.last_result.outcome, "RolledBack");

    // The other devices go on talking (each message is a chance to
    // deliver) and never get the bundle, nor is it meant for them.
    let seen: Vec<u64> = rest.iter().map(|(_, a)| a.beats()).collect();
    for ((n, a), seen) in rest.iter().zip(seen) {
        poll(
            &format!("{n} to send three more heartbeats"),
            LIMIT,
            || async { (a.beats() >= seen + 3).then_some(()) },
        )
        .await;
    }
    for (n, a) in &rest {
        assert!(a.deliveries().is_empty(), "{n} got {:?}", a.deliveries());
        let d = cp.core.device(n).unwrap().device;
        assert_ne!(d.desired_version, rollout.version, "{n}");
        assert_eq!(d.current.version, 0, "{n}");
    }
    assert!(
        canary.deliveries().len() == 1,
        "the refused bundle was sent again"
    );
    assert_eq!(cp.core.rollouts()[0].phase, "Halted");
    // A device that enrols while the rollout stands halted does not skip
    // the staging either.
    let late = fake_agent(&cp, &token(), "c-late", pb::Outcome::Applied).await;
    poll("c-late online", LIMIT, || async {
        cp.core
            .device("c-late")
            .is_some_and(|d| d.online)
            .then_some(())
    })
    .await;
    let seen = late.beats();
    poll("c-late to send three heartbeats", LIMIT, || async {
        (late.beats() >= seen + 3).then_some(())
    })
    .await;
    assert!(late.deliveries().is_empty(), "{:?}", late.deliveries());
    let d = cp.core.device("c-late").unwrap().device;
    assert_ne!(d.desired_version, rollout.version, "{d:?}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_joins_a_staged_rollout_waits_for_it_to_complete() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = common::fleet::control_plane(dir.path(), &stop).await;
    let admin = common::fleet::admin(&cp);
    let token = || common::fleet::enrol_token(&cp, &[("board", "pi5")]);
    // The canary answers only when the test lets it.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let canary = FakeAgent::start_gated(
        &cp,
        &token(),
        "a-canary",
        answer(pb::Outcome::Applied),
        Arc::clone(&gate),
    )
    .await;
    let second = fake_agent(&cp, &token(), "b-1", pb::Outcome::Applied).await;
    let doc = pb::Document {
        source: "staged.yaml".into(),
        text: bundle_record(
            "staged",
            "{matchLabels: {board: pi5}}",
            "  rollout: {strategy: Staged, canary: 1, batchSize: 1, progressDeadline: 10m}\n",
        ),
    };
    let r = cp.core.apply(&admin, &[doc], false).unwrap();
    assert!(r.applied, "{:?}", r.results);
    poll("the canary's delivery", LIMIT, || async {
        (!canary.deliveries().is_empty()).then_some(())
    })
    .await;
    let version = cp.core.rollouts()[0].version;

    // A device enrols while the canary batch is under way: it waits.
    let late = fake_agent(&cp, &token(), "c-late", pb::Outcome::Applied).await;
    let seen = late.beats();
    poll("c-late to send three heartbeats", LIMIT, || async {
        (late.beats() >= seen + 3).then_some(())
    })
    .await;
    assert!(late.deliveries().is_empty(), "c-late skipped the staging");
    assert!(
        second.deliveries().is_empty(),
        "b-1 got it before the canary converged"
    );
    assert_eq!(cp.core.rollouts()[0].phase, "Progressing");
    assert_ne!(
        cp.core.device("c-late").unwrap().device.desired_version,
        version
    );

    // The canary converges: the batches go on, and when the rollout is
    // complete the latecomer gets the version too.
    gate.add_permits(1);
    poll("the rollout to complete", LIMIT, || async {
        (cp.core.rollouts()[0].phase == "Complete").then_some(())
    })
    .await;
    poll("c-late's delivery", LIMIT, || async {
        let d = cp.core.device("c-late")?.device;
        (late.deliveries().len() == 1 && d.current.version == version).then_some(())
    })
    .await;
    assert_eq!(second.deliveries().len(), 1);
    assert_eq!(late.deliveries()[0].version, version);
    stop.cancel();
}

// ---- a tampered bundle, refused by a real agent --------------------------

type ControlTx = tokio::sync::mpsc::Sender<Result<pb::ControlMessage, tonic::Status>>;

/// A control plane of our own: the real PKI (CA, serving certificate,
/// bundle-signing key) and listener, an `AgentService` that enrols anyone
/// and lets the test say what goes down the session.
#[derive(Clone)]
struct FakeCp {
    pki: Arc<pki::Pki>,
    session: Arc<Mutex<Option<ControlTx>>>,
    from_agent: tokio::sync::mpsc::UnboundedSender<pb::AgentMessage>,
}

type ControlStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::ControlMessage, tonic::Status>> + Send>,
>;

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for FakeCp {
    async fn enrol(
        &self,
        req: tonic::Request<pb::EnrolRequest>,
    ) -> Result<tonic::Response<pb::EnrolResponse>, tonic::Status> {
        let r = req.into_inner();
        let (cert, _) = self
            .pki
            .issue_client(&r.csr_pem, "fake-device")
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        Ok(tonic::Response::new(pb::EnrolResponse {
            device_id: "fake-device".into(),
            device_name: r.name,
            certificate_pem: cert,
            ca_pem: self.pki.ca_pem().to_owned(),
            bundle_keys: vec![self.pki.signing.public().to_string()],
        }))
    }

    type TunnelStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<pb::TunnelFrame, tonic::Status>> + Send>,
    >;

    async fn tunnel(
        &self,
        _: tonic::Request<tonic::Streaming<pb::TunnelFrame>>,
    ) -> Result<tonic::Response<Self::TunnelStream>, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "this fake control plane has no tunnels",
        ))
    }

    type SessionStream = ControlStream;

    async fn session(
        &self,
        req: tonic::Request<tonic::Streaming<pb::AgentMessage>>,
    ) -> Result<tonic::Response<ControlStream>, tonic::Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let welcome = pb::control_message::Msg::Welcome(pb::Welcome {
            device_id: "fake-device".into(),
            device_name: "node".into(),
            heartbeat_seconds: 1,
            telemetry_acked_seq: 0,
            bundle_keys: vec![self.pki.signing.public().to_string()],
            // As an older control plane: no warm tunnel streams.
            warm_tunnels: 0,
        });
        tx.send(Ok(pb::ControlMessage { msg: Some(welcome) }))
            .await
            .unwrap();
        *self.session.lock().unwrap() = Some(tx);
        let fwd = self.from_agent.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                if fwd.send(m).is_err() {
                    return;
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn upload(
        &self,
        req: tonic::Request<pb::TelemetryBatch>,
    ) -> Result<tonic::Response<pb::TelemetryAck>, tonic::Status> {
        let acked_seq = req.into_inner().samples.iter().map(|s| s.seq).max();
        Ok(tonic::Response::new(pb::TelemetryAck {
            acked_seq: acked_seq.unwrap_or(0),
        }))
    }
}

/// Sends `d` down the agent's session and waits for its result.
async fn offer(
    cp: &FakeCp,
    from_agent: &mut tokio::sync::mpsc::UnboundedReceiver<pb::AgentMessage>,
    d: pb::BundleDelivery,
) -> pb::BundleResult {
    let tx = cp.session.lock().unwrap().clone().expect("a session");
    tx.send(Ok(pb::ControlMessage {
        msg: Some(pb::control_message::Msg::Bundle(d)),
    }))
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let m = tokio::time::timeout_at(deadline, from_agent.recv())
            .await
            .expect("no bundle result")
            .expect("session closed");
        if let Some(pb::agent_message::Msg::BundleResult(r)) = m.msg {
            return r;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_bundle_is_refused_and_the_running_one_stays() {
    use onprem::bundle::sign::SecretKey;
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("fake-cp");
    std::fs::create_dir(&pki_dir).unwrap();
    let pki = pki::Pki::open(&pki_dir, &["127.0.0.1".to_owned()]).unwrap();
    let tls = Arc::new(pki.server_config().unwrap());
    let (from_tx, mut from_agent) = tokio::sync::mpsc::unbounded_channel();
    let fake = FakeCp {
        pki: Arc::new(pki),
        session: Arc::default(),
        from_agent: from_tx,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = tonic::service::Routes::new(pb::agent_service_server::AgentServiceServer::new(
        fake.clone(),
    ))
    .into_axum_router();
    let stop = CancellationToken::new();
    tokio::spawn(onprem::controlplane::server::serve(
        listener,
        tls,
        app,
        stop.clone(),
    ));

    let args = agent_args(
        &format!("https://127.0.0.1:{port}"),
        &fake.pki.ca_fingerprint(),
        &dir.path().join("node"),
        "node",
        "onpe_aaaaaaaaaaaaaaaaaaaa_fake",
    );
    let agent = start_agent(args).await;
    loop {
        let m = tokio::time::timeout(LIMIT, from_agent.recv())
            .await
            .expect("no Hello")
            .unwrap();
        if matches!(m.msg, Some(pb::agent_message::Msg::Hello(_))) {
            break;
        }
    }

    let sign = |key: &SecretKey, text: &str| format!("{}\n", key.sign(text.as_bytes()));
    let v1 = onprem::bundle::examples::EXAMPLES
        .iter()
        .find(|(n, _)| *n == "pi5-fan-curve")
        .map(|(_, t)| (*t).to_owned())
        .unwrap();
    assert!(v1.contains("version: 1\n") && v1.contains("period: 1s\n"));
    let v2 =
        v1.replacen("version: 1\n", "version: 2\n", 1)
            .replacen("period: 1s\n", "period: 2s\n", 1);
    let delivery = |version: u64, text: &str, signature: String| pb::BundleDelivery {
        version,
        name: "pi5-fan-curve".into(),
        text: text.to_owned(),
        signature,
        digest: String::new(),
    };
    let running = |r: &pb::BundleResult| r.status.as_ref().map_or(0, |s| s.bundle_version);

    let r = offer(
        &fake,
        &mut from_agent,
        delivery(1, &v1, sign(&fake.pki.signing, &v1)),
    )
    .await;
    assert_eq!(r.outcome(), pb::Outcome::Applied, "{r:?}");
    assert_eq!(running(&r), 1);

    // The bytes changed after signing; the signature changed; a key the
    // agent did not pin at enrolment.
    let mut flipped = sign(&fake.pki.signing, &v2).into_bytes();
    let at = flipped.len() - 10; // inside the base64 of the signature
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    let other = SecretKey::generate().unwrap();
    let tampered = [
        (
            "altered bytes",
            sign(&fake.pki.signing, &v1),
            "bad signature",
        ),
        (
            "altered signature",
            String::from_utf8(flipped).unwrap(),
            "bad signature",
        ),
        ("unpinned key", sign(&other, &v2), "unknown key"),
    ];
    for (what, sig, why) in tampered {
        let r = offer(&fake, &mut from_agent, delivery(2, &v2, sig)).await;
        assert_eq!(r.outcome(), pb::Outcome::Rejected, "{what}: {r:?}");
        assert!(
            r.message.starts_with("signature: ") && r.message.contains(why),
            "{what}: {}",
            r.message
        );
        assert_eq!(running(&r), 1, "{what}: the running bundle changed");
    }
    let text = tokio::task::spawn_blocking({
        let addr = agent.addr;
        move || {
            common::Client::new(addr)
                .get("/metrics", &[])
                .unwrap()
                .text()
        }
    })
    .await
    .unwrap();
    let info = common::samples(&text, "onprem_bundle_info");
    assert!(
        info.len() == 1 && info[0].contains("version=\"1\""),
        "{info:?}"
    );
    assert_eq!(
        common::value(&text, "onprem_bundle_updates_total{result=\"rejected\"}"),
        Some(3.0)
    );
    assert_eq!(
        common::value(&text, "onprem_bundle_updates_total{result=\"applied\"}"),
        Some(1.0)
    );

    // The same bundle, signed as it is, is taken.
    let r = offer(
        &fake,
        &mut from_agent,
        delivery(2, &v2, sign(&fake.pki.signing, &v2)),
    )
    .await;
    assert_eq!(r.outcome(), pb::Outcome::Applied, "{r:?}");
    assert_eq!(running(&r), 2);
    drop(agent);
    stop.cancel();
}

// ---- malformed requests --------------------------------------------------

/// What is sent: a description, method, path, API token, content type
/// and body; and the status wanted.
type RestCase<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Vec<u8>,
    u16,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_client_errors_and_the_control_plane_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut cp = Cp::start(dir.path()).await;
    let admin = cp.admin.clone();
    let viewer = cp
        .token(serde_json::json!({"type": "api", "role": "viewer", "user": "val"}))
        .await;
    let facility = b"apiVersion: onprem/v1\nkind: Facility\nmetadata: {name: lab}\n".to_vec();
    let yaml = Some("application/yaml");
    let json = Some("application/json");

    // REST: (what, method, path, token, content type, body, status).
    let cases: Vec<RestCase<'_>> = vec![
        (
            "no token",
            "POST",
            "/api/v1/apply",
            None,
            yaml,
            facility.clone(),
            401,
        ),
        (
            "not a token",
            "POST",
            "/api/v1/apply",
            Some("hunter2"),
            yaml,
            facility.clone(),
            401,
        ),
        (
            "unknown token",
            "POST",
            "/api/v1/apply",
            Some("onp_aaaaaaaaaaaaaaaaaaaa_nope"),
            yaml,
            facility.clone(),
            401,
        ),
        (
            "viewer applies",
            "POST",
            "/api/v1/apply",
            Some(&viewer),
            yaml,
            facility.clone(),
            403,
        ),
        (
            "viewer makes a token",
            "POST",
            "/api/v1/tokens",
            Some(&viewer),
            json,
            b"{}".to_vec(),
            403,
        ),
        (
            "YAML that does not parse",
            "POST",
            "/api/v1/apply",
            Some(&admin),
            yaml,
            b"kind: [Facility\nmetadata: {name: \n  - : :\n".to_vec(),
            422,
        ),
        (
            "unknown kind",
            "POST",
            "/api/v1/apply",
            Some(&admin),
            yaml,
            b"apiVersion: onprem/v1\nkind: Spaceship\nmetadata: {name: x}\n".to_vec(),
            422,
        ),
        (
            "a record without a name",
            "POST",
            "/api/v1/apply",
            Some(&admin),
            yaml,
            b"apiVersion: onprem/v1\nkind: Facility\n".to_vec(),
            422,
        ),
        (
            "not UTF-8",
            "POST",
            "/api/v1/apply",
            Some(&admin),
            yaml,
            vec![0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28],
            400,
        ),
        (
            "a body over the limit",
            "POST",
            "/api/v1/apply",
            Some(&admin),
            yaml,
            vec![b'#'; 3 << 20],
            413,
        ),
        (
            "a token body that is not JSON",
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            json,
            b"{\"type\": ".to_vec(),
            400,
        ),
        (
            "a token body with an unknown field",
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            json,
            b"{\"kind\": \"enrol\"}".to_vec(),
            422,
        ),
        (
            "a token of an unknown type",
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            json,
            b"{\"type\": \"root\"}".to_vec(),
            400,
        ),
        (
            "an unknown kind to list",
            "GET",
            "/api/v1/spaceships",
            Some(&admin),
            None,
            vec![],
            400,
        ),
        (
            "an unknown device",
            "GET",
            "/api/v1/describe/devices/nope",
            Some(&admin),
            None,
            vec![],
            404,
        ),
        (
            "a query parameter that is not a bool",
            "POST",
            "/api/v1/apply?dryRun=maybe",
            Some(&admin),
            yaml,
            facility.clone(),
            400,
        ),
    ];
    for (what, method, path, token, ctype, body, status) in cases {
        let r = cp.call(method, path, token, ctype, body).await;
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.text());
        // Every error is JSON, the framework's rejections (body limit,
        // UTF-8, JSON syntax) too.
        let json = r
            .headers
            .get("content-type")
            .is_some_and(|c| c == "application/json");
        assert!(json, "{what}: {}", r.text());
        let j = r.json();
        if j.get("results").is_some() {
            // An apply refused: every record's problems, nothing stored.
            assert_eq!(j["applied"], false, "{what}: {j}");
            let errors = j["results"][0]["errors"].as_array().unwrap();
            assert!(!errors.is_empty(), "{what}: {j}");
        }
        // The error: the status and a message.
        assert_eq!(j["error"]["code"], status, "{what}: {j}");
        assert!(
            !j["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{what}"
        );
    }
    // Nothing of that was stored.
    assert_eq!(cp.get("/api/v1/facilities").await, serde_json::json!([]));

    // gRPC with bodies that are not the message.
    let auth = format!("Bearer {admin}");
    let port = cp.port;
    let grpc = move |path: &str, body: Vec<u8>, auth: Option<&str>| {
        let mut h = vec![("content-type", "application/grpc"), ("te", "trailers")];
        if let Some(a) = auth {
            h.push(("authorization", a));
        }
        request("POST", port, path, &h, body)
    };
    let enrol = cp.token(serde_json::json!({"type": "enrol"})).await;
    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 7919 % 251) as u8).collect();
    let mut compressed = grpc_frame(&pb::WhoAmIRequest {}.encode_to_vec());
    compressed[0] = 1; // compressed, with no grpc-encoding
    let mut short = grpc_frame(b"\x0a\x05abc");
    short[4] = 200; // says 200 bytes, has 5
    let grpc_cases: Vec<(&str, http::Request<Full<Bytes>>, i32)> = vec![
        (
            "garbage for ApplyRequest",
            grpc("/onprem.v1.Fleet/Apply", grpc_frame(&garbage), Some(&auth)),
            tonic::Code::Internal as i32,
        ),
        (
            "a truncated frame",
            grpc("/onprem.v1.Fleet/Apply", short.clone(), Some(&auth)),
            tonic::Code::Internal as i32,
        ),
        // The token is checked before the body is read.
        (
            "garbage for ApplyRequest without a token",
            grpc("/onprem.v1.Fleet/Apply", grpc_frame(&garbage), None),
            tonic::Code::Unauthenticated as i32,
        ),
        (
            "a truncated frame with a token that is not one",
            grpc("/onprem.v1.Fleet/Apply", short, Some("Bearer hunter2")),
            tonic::Code::Unauthenticated as i32,
        ),
        (
            "a compressed frame without an encoding",
            grpc("/onprem.v1.Fleet/WhoAmI", compressed, Some(&auth)),
            tonic::Code::Internal as i32,
        ),
        (
            "garbage for a telemetry batch",
            grpc("/onprem.v1.AgentService/Upload", grpc_frame(&garbage), None),
            tonic::Code::Internal as i32,
        ),
        (
            "a telemetry batch without a client certificate",
            grpc(
                "/onprem.v1.AgentService/Upload",
                grpc_frame(
                    &pb::TelemetryBatch {
                        samples: vec![pb::Sample {
                            seq: 1,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }
                    .encode_to_vec(),
                ),
                None,
            ),
            tonic::Code::Unauthenticated as i32,
        ),
        (
            "garbage for an enrolment",
            grpc("/onprem.v1.AgentService/Enrol", grpc_frame(&garbage), None),
            tonic::Code::Internal as i32,
        ),
        (
            "an enrolment with a CSR that is not one",
            grpc(
                "/onprem.v1.AgentService/Enrol",
                grpc_frame(
                    &pb::EnrolRequest {
                        token: enrol.clone(),
                        csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n".into(),
                        name: "n1".into(),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                ),
                None,
            ),
            tonic::Code::InvalidArgument as i32,
        ),
        (
            "a fleet call without a token",
            grpc(
                "/onprem.v1.Fleet/WhoAmI",
                grpc_frame(&pb::WhoAmIRequest {}.encode_to_vec()),
                None,
            ),
            tonic::Code::Unauthenticated as i32,
        ),
        (
            "an unknown method",
            grpc("/onprem.v1.Fleet/Launch", grpc_frame(&[]), Some(&auth)),
            tonic::Code::Unimplemented as i32,
        ),
    ];
    for (what, req, code) in grpc_cases {
        let r = h2(&cp.tls, cp.port, req)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            r.grpc_status(),
            Some(code),
            "{what}: HTTP {} {:?} {}",
            r.status,
            r.grpc_message(),
            r.text()
        );
    }

    // The refused enrolment did not use up its one-time token.
    onprem::dialhome::identity::enrol(
        &cp.url(),
        &enrol,
        &onprem::dialhome::identity::CaTrust::Fingerprint(cp.fingerprint.clone()),
        "n1",
        pb::HardwareFacts::default(),
    )
    .await
    .unwrap();

    // A session without a client certificate.
    let ch = onprem::dialhome::connect::channel(&cp.url(), Arc::clone(&cp.tls), LIMIT).unwrap();
    let mut client = pb::agent_service_client::AgentServiceClient::new(ch);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::AgentMessage::default()).await.unwrap();
    let e = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    assert!(e.message().contains("no client certificate"), "{e}");

    // Not TLS at all.
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", cp.port))
            .await
            .unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut buf)).await;
    }

    // Still serving, and nothing panicked.
    assert!(cp.alive(), "the control plane exited");
    let who = cp.get("/api/v1/whoami").await;
    assert_eq!(who["user"], "admin");
    let r = h2(
        &cp.tls,
        cp.port,
        grpc(
            "/onprem.v1.Fleet/WhoAmI",
            grpc_frame(&pb::WhoAmIRequest {}.encode_to_vec()),
            Some(&auth),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.grpc_status(), Some(0), "{:?}", r.grpc_message());
    let log = cp.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

// ---- tunnels across restarts ----------------------------------------------

/// Echoes every byte back.
async fn echo_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// One round trip through the forwarded port, on a new connection.
async fn echo_once(
    local: std::net::SocketAddr,
    msg: &[u8],
) -> Result<tokio::net::TcpStream, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(local)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(msg).await.map_err(|e| e.to_string())?;
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .map_err(|_| "no echo".to_owned())?
        .map_err(|e| e.to_string())?;
    if got != msg {
        return Err("a different echo".into());
    }
    Ok(s)
}

/// The connection ends (EOF or an error), without hanging.
async fn closes(mut s: tokio::net::TcpStream, what: &str) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await;
    match r {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("{what}: {n} unexpected bytes"),
        Err(_) => panic!("{what}: the forwarded connection stayed open"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_connection_closes_when_either_end_restarts_and_new_ones_work_after() {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_server().await;
    let mut cp = Cp::start(dir.path()).await;
    cp.apply(&bundle_record(
        "tunnelled",
        "{matchLabels: {fleet: tunnel}}",
        &format!("  tunnel: {{ allowedPorts: [{echo}] }}\n"),
    ))
    .await;
    let token = cp
        .token(serde_json::json!({"type": "enrol", "labels": {"fleet": "tunnel"}}))
        .await;
    let args = agent_args(
        &cp.url(),
        &cp.fingerprint,
        &dir.path().join("node"),
        "node",
        &token,
    );
    let agent = start_agent(args.clone()).await;
    poll("the node converged", LIMIT, || async {
        let d = cp.device("node").await;
        (d["online"] == true && d["current"]["version"].as_u64() > Some(0)).then_some(())
    })
    .await;
    let config = dir.path().join("cli.yaml");
    let login = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args([
            "login",
            &cp.url(),
            "--token",
            &cp.admin,
            "--ca-fingerprint",
            &cp.fingerprint,
        ])
        .env("ONPREM_CONFIG", &config)
        .env_remove("ONPREM_TOKEN")
        .output()
        .unwrap();
    assert!(login.status.success(), "{login:?}");
    let mut fwd = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args(["port-forward", "device/node", &format!(":{echo}")])
        .env("ONPREM_CONFIG", &config)
        .env_remove("ONPREM_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let local: std::net::SocketAddr = {
        use std::io::BufRead as _;
        let out = fwd.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            std::io::BufReader::new(out)
                .lines()
                .next()
                .unwrap()
                .unwrap()
        })
        .await
        .unwrap();
        line.strip_prefix("Forwarding from ")
            .and_then(|r| r.split(" -> ").next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let works = |tag: &'static str| async move {
        poll(
            &format!("a new forwarded connection ({tag})"),
            LIMIT,
            || async { echo_once(local, tag.as_bytes()).await.ok() },
        )
        .await
    };

    // The agent restarts: the open connection closes, a new one works
    // once the node is back.
    let c1 = works("before").await;
    stop_agent(agent).await;
    closes(c1, "agent stopped").await;
    assert!(
        echo_once(local, b"while away").await.is_err(),
        "no node, no tunnel"
    );
    let agent = start_agent(args.clone()).await;
    let c2 = works("agent back").await;

    // The control plane restarts: the same.
    cp.term();
    closes(c2, "control plane stopped").await;
    cp.restart().await;
    let c3 = works("control plane back").await;
    drop(c3);
    let _ = fwd.kill();
    let _ = fwd.wait();
    stop_agent(agent).await;
}
