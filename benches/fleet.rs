//! Control-plane scale: many lightweight simulated agents against one
//! release `onprem control-plane` on this machine.
//!
//! For each fleet size (default 1,000 and 10,000), a fresh control plane
//! runs as a child process; the bench process plays the agents, each
//! with its own key, client certificate and mutual-TLS connection, and
//! sends what a real agent sends on its session (Hello with facts and
//! status, heartbeats at the period the Welcome gives, a BundleResult
//! with the new status after each BundleDelivery), without verifying or
//! applying anything. Phases, each timed, with the control plane's CPU:
//!
//! 1. enrol: an enrolment token per agent (`Fleet/CreateToken`), then
//!    `Enrol` with a fresh key and CSR, 64 in flight;
//! 2. connect: every agent opens its session (256 handshakes in flight)
//!    until every one has its Welcome;
//! 3. idle: resident memory, and CPU over `ONPREM_BENCH_IDLE_SECONDS`
//!    (default 10: one heartbeat period) with every agent connected;
//! 4. rollout: a Bundle record (`selector: all`, AllAtOnce, the
//!    `pi5-fan-curve` example) through `Fleet/Apply`, until every agent
//!    has answered its delivery and the control plane reports the
//!    rollout Complete; then `Fleet/Get devices` confirms every device
//!    online and converged.
//!
//! Run: `ulimit -n 65536; cargo bench --bench fleet`
//! (`ONPREM_BENCH_AGENTS=1000,10000` sets the sizes). Without a high
//! enough open-file limit, the bench raises its soft limit to the hard
//! one by running itself again through `sh -c 'ulimit -n …'`, or says
//! what to do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use onprem::controlplane::pki;
use onprem::dialhome::connect;
use onprem::dialhome::connect::Channel;
use onprem::proto::v1 as pb;
use onprem::proto::v1::agent_service_client::AgentServiceClient;
use onprem::proto::v1::fleet_client::FleetClient;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

const ENROL_IN_FLIGHT: usize = 64;
const CONNECT_IN_FLIGHT: usize = 256;
const MIB: f64 = 1024.0 * 1024.0;

// ---- the control plane's process ----------------------------------------

fn status_kb(pid: u32, key: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(key))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// Resident memory, bytes.
fn rss(pid: u32) -> f64 {
    status_kb(pid, "VmRSS:") * 1024.0
}

/// Peak resident memory, bytes.
fn hwm(pid: u32) -> f64 {
    status_kb(pid, "VmHWM:") * 1024.0
}

/// CPU seconds of every thread, from schedstat (nanoseconds); exited
/// threads only in stat's coarser utime+stime: the larger of the two.
fn cpu_seconds(pid: u32) -> f64 {
    let mut ns = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    (ns as f64 / 1e9).max(ticks / 100.0)
}

struct ControlPlane {
    child: Child,
    url: String,
    ca_pem: String,
    admin: String,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ControlPlane {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn start(dir: &Path) -> ControlPlane {
        let state = dir.join("cp");
        let log = std::fs::File::create(dir.join("control-plane.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_onprem"))
            .arg("control-plane")
            .arg(format!("--state-dir={}", state.display()))
            .arg("--listen=127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("the control plane exited; see control-plane.log")
                .unwrap();
            if let Some(u) = line.split("listening on ").nth(1) {
                break u.trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let token = state.join("admin.token");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !token.exists() {
            assert!(Instant::now() < deadline, "no {}", token.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        ControlPlane {
            child,
            url,
            ca_pem: std::fs::read_to_string(state.join("ca.crt")).unwrap(),
            admin: std::fs::read_to_string(&token).unwrap().trim().to_owned(),
        }
    }
}

// ---- the fleet API ------------------------------------------------------

#[derive(Clone)]
struct Admin {
    client: FleetClient<Channel>,
    bearer: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl Admin {
    fn new(cp: &ControlPlane) -> Admin {
        let tls = Arc::new(pki::client_config(&cp.ca_pem, None).unwrap());
        let ch = connect::channel(&cp.url, tls, Duration::from_secs(30)).unwrap();
        Admin {
            client: FleetClient::new(ch).max_decoding_message_size(usize::MAX),
            bearer: format!("Bearer {}", cp.admin).parse().unwrap(),
        }
    }

    fn req<T>(&self, m: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(m);
        r.metadata_mut()
            .insert("authorization", self.bearer.clone());
        r
    }

    async fn enrol_token(&mut self) -> String {
        let r = self.req(pb::CreateTokenRequest {
            r#type: "enrol".into(),
            labels: [("fleet".to_owned(), "bench".to_owned())].into(),
            ..Default::default()
        });
        self.client
            .create_token(r)
            .await
            .unwrap()
            .into_inner()
            .token
    }

    async fn get(&mut self, kind: &str) -> Vec<serde_json::Value> {
        let r = self.req(pb::GetRequest {
            kind: kind.into(),
            ..Default::default()
        });
        let items = self.client.get(r).await.unwrap().into_inner().items_json;
        serde_json::from_slice(&items).unwrap()
    }

    async fn apply(&mut self, text: String) -> pb::ApplyResponse {
        let r = self.req(pb::ApplyRequest {
            documents: vec![pb::Document {
                source: "bench.yaml".into(),
                text,
            }],
            dry_run: false,
        });
        self.client.apply(r).await.unwrap().into_inner()
    }
}

/// The `pi5-fan-curve` example as a Bundle record for every device.
fn bundle_record() -> String {
    let text = onprem::bundle::examples::EXAMPLES
        .iter()
        .find(|(n, _)| *n == "pi5-fan-curve")
        .map(|(_, t)| *t)
        .unwrap();
    text.replacen(
        "spec:\n",
        "spec:\n  selector: all\n  rollout: {strategy: AllAtOnce, progressDeadline: 600s}\n",
        1,
    )
}

// ---- the agents ---------------------------------------------------------

struct Enrolled {
    name: String,
    cert_pem: String,
    key_pem: String,
}

fn facts(name: &str) -> pb::HardwareFacts {
    pb::HardwareFacts {
        manufacturer: "Raspberry Pi".into(),
        model: "Raspberry Pi 5 Model B Rev 1.0 (simulated)".into(),
        serial: format!("bench-{name}"),
        hostname: name.into(),
        arch: "aarch64".into(),
        cores: 4,
        memory_bytes: 8 << 30,
        agent_version: onprem::VERSION.into(),
        ..Default::default()
    }
}

async fn enrol_one(
    admin: &mut Admin,
    agents: &mut AgentServiceClient<Channel>,
    i: usize,
) -> Enrolled {
    let name = format!("bench-{i:05}");
    let token = admin.enrol_token().await;
    let (key_pem, csr_pem) = pki::new_csr(&name).unwrap();
    let r = agents
        .enrol(pb::EnrolRequest {
            token,
            csr_pem,
            facts: Some(facts(&name)),
            name: name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    Enrolled {
        name: r.device_name,
        cert_pem: r.certificate_pem,
        key_pem,
    }
}

/// What the node reports: the bundle it runs (none before the rollout)
/// and its conditions, as `standalone::status_source` makes them.
fn status(bundle: Option<&pb::BundleDelivery>) -> pb::Status {
    let now = onprem::controlplane::core::now();
    match bundle {
        None => pb::Status {
            conditions: vec![pb::Condition {
                r#type: "Bundle".into(),
                status: "False".into(),
                reason: "NoBundle".into(),
                message: "no bundle yet".into(),
                last_transition_unix: now,
                observed_version: 0,
            }],
            ..Default::default()
        },
        Some(d) => pb::Status {
            bundle_name: d.name.clone(),
            bundle_version: d.version,
            bundle_digest: d.digest.clone(),
            bundle_source: "control-plane".into(),
            conditions: vec![
                pb::Condition {
                    r#type: "Bundle".into(),
                    status: "True".into(),
                    reason: "Applied".into(),
                    message: format!("version {} applied", d.version),
                    last_transition_unix: now,
                    observed_version: d.version,
                },
                pb::Condition {
                    r#type: "Loop/fans".into(),
                    status: "True".into(),
                    reason: "Running".into(),
                    message: String::new(),
                    last_transition_unix: now,
                    observed_version: d.version,
                },
            ],
            ..Default::default()
        },
    }
}

#[derive(Default)]
struct Counters {
    welcomed: AtomicUsize,
    delivered: AtomicUsize,
    /// Dials that got no Welcome.
    failed: AtomicUsize,
    /// Sessions that ended (the control plane dropped them).
    dropped: AtomicUsize,
}

fn msg(m: pb::agent_message::Msg) -> pb::AgentMessage {
    pb::AgentMessage { msg: Some(m) }
}

/// Dials, sends Hello, waits for the Welcome: the session's sender,
/// heartbeat period and inbound stream. `gate` bounds the handshakes in
/// flight.
async fn dial(
    e: &Enrolled,
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    gate: &Semaphore,
    running: Option<&pb::BundleDelivery>,
) -> Result<
    (
        mpsc::Sender<pb::AgentMessage>,
        Duration,
        tonic::Streaming<pb::ControlMessage>,
    ),
    String,
> {
    let _permit = gate.acquire().await.unwrap();
    let ch = connect::channel(url, Arc::clone(tls), Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    let mut client = AgentServiceClient::new(ch);
    let (tx, rx) = mpsc::channel::<pb::AgentMessage>(4);
    tx.send(msg(pb::agent_message::Msg::Hello(pb::Hello {
        facts: Some(facts(&e.name)),
        status: Some(status(running)),
    })))
    .await
    .map_err(|e| e.to_string())?;
    let mut inbound = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner();
    match inbound.message().await {
        Ok(Some(pb::ControlMessage {
            msg: Some(pb::control_message::Msg::Welcome(w)),
        })) => Ok((
            tx,
            Duration::from_secs(u64::from(w.heartbeat_seconds.max(1))),
            inbound,
        )),
        other => Err(format!("no welcome: {other:?}")),
    }
}

/// One agent, until `stop`: its session, heartbeats, an answer to every
/// delivery; when the session fails or ends, it dials again after 1–2 s
/// (a real agent backs off from 0.8 s).
async fn agent(
    e: Enrolled,
    url: String,
    ca_pem: Arc<String>,
    gate: Arc<Semaphore>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let tls = Arc::new(pki::client_config(&ca_pem, Some((&e.cert_pem, &e.key_pem))).unwrap());
    let mut running: Option<pb::BundleDelivery> = None;
    let mut welcomed = false;
    loop {
        let r = tokio::select! {
            _ = stop.cancelled() => return,
            r = dial(&e, &url, &tls, &gate, running.as_ref()) => r,
        };
        let (tx, period, mut inbound) = match r {
            Ok(x) => x,
            Err(why) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                if counters.failed.load(Ordering::Relaxed) <= 10 {
                    eprintln!("{}: {why}", e.name);
                }
                tokio::time::sleep(Duration::from_millis(
                    1000 + u64::from(getrandom::u32().unwrap_or(0) % 1000),
                ))
                .await;
                continue;
            }
        };
        if !welcomed {
            welcomed = true;
            counters.welcomed.fetch_add(1, Ordering::Relaxed);
        }
        // Heartbeats start a random part of a period in, as agents that
        // connected at different times would.
        let offset = period.mul_f64(f64::from(getrandom::u32().unwrap_or(0)) / f64::from(u32::MAX));
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let why = loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = beat.tick() => {
                    let now = onprem::controlplane::core::now_ms();
                    if tx.send(msg(pb::agent_message::Msg::Heartbeat(pb::Heartbeat { unix_ms: now }))).await.is_err() {
                        break "session closed".to_owned();
                    }
                }
                m = inbound.message() => match m {
                    Ok(Some(pb::ControlMessage { msg: Some(pb::control_message::Msg::Bundle(d)) })) => {
                        let r = pb::BundleResult {
                            version: d.version,
                            digest: d.digest.clone(),
                            outcome: pb::Outcome::Applied as i32,
                            message: String::new(),
                            status: Some(status(Some(&d))),
                        };
                        if tx.send(msg(pb::agent_message::Msg::BundleResult(r))).await.is_err() {
                            break "session closed".to_owned();
                        }
                        if running.as_ref().is_none_or(|r| r.version != d.version) {
                            counters.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        running = Some(pb::BundleDelivery { text: String::new(), signature: String::new(), ..d });
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break "session ended".to_owned(),
                    Err(s) => break s.message().to_owned(),
                }
            }
        };
        counters.dropped.fetch_add(1, Ordering::Relaxed);
        if counters.dropped.load(Ordering::Relaxed) <= 10 {
            eprintln!("{}: {why}; dialling again", e.name);
        }
        tokio::time::sleep(Duration::from_millis(
            1000 + u64::from(getrandom::u32().unwrap_or(0) % 1000),
        ))
        .await;
    }
}

// ---- one run ------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct Figures {
    agents: usize,
    rss_start: f64,
    enrol_s: f64,
    enrol_cpu: f64,
    connect_s: f64,
    connect_cpu: f64,
    rss_idle: f64,
    idle_cpu_pct: f64,
    rollout_delivered_s: f64,
    rollout_s: f64,
    rollout_cpu: f64,
    rss_after: f64,
    hwm: f64,
    failed: usize,
    dropped: usize,
}

async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn run(n: usize, idle_secs: u64) -> Figures {
    let tmp = tempfile::tempdir().unwrap();
    let dir = if std::env::var_os("ONPREM_BENCH_KEEP").is_some() {
        let d = tmp.keep();
        eprintln!("[{n}] state and log kept in {}", d.display());
        d
    } else {
        tmp.path().to_owned()
    };
    let cp = ControlPlane::start(&dir);
    let pid = cp.pid();
    let mut fig = Figures {
        agents: n,
        ..Default::default()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    fig.rss_start = rss(pid);
    let admin = Admin::new(&cp);

    // 1. Enrol.
    eprintln!("[{n}] enrolling");
    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    let enrol_ch = {
        let tls = Arc::new(pki::client_config(&cp.ca_pem, None).unwrap());
        connect::channel(&cp.url, tls, Duration::from_secs(30)).unwrap()
    };
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..ENROL_IN_FLIGHT.min(n) {
        let mut admin = admin.clone();
        let mut agents = AgentServiceClient::new(enrol_ch.clone());
        let next = Arc::clone(&next);
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return out;
                }
                out.push(enrol_one(&mut admin, &mut agents, i).await);
            }
        }));
    }
    let mut enrolled = Vec::with_capacity(n);
    for w in workers {
        enrolled.extend(w.await.unwrap());
    }
    drop(enrol_ch);
    fig.enrol_s = t.elapsed().as_secs_f64();
    fig.enrol_cpu = cpu_seconds(pid) - cpu0;
    eprintln!("[{n}] enrolled in {:.1} s", fig.enrol_s);

    // 2. Connect.
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(CONNECT_IN_FLIGHT));
    let ca = Arc::new(cp.ca_pem.clone());
    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for e in enrolled {
        tasks.push(tokio::spawn(agent(
            e,
            cp.url.clone(),
            Arc::clone(&ca),
            Arc::clone(&gate),
            Arc::clone(&counters),
            stop.clone(),
        )));
    }
    until("every agent welcomed", Duration::from_secs(600), || {
        counters.welcomed.load(Ordering::Relaxed) >= n
    })
    .await;
    fig.connect_s = t.elapsed().as_secs_f64();
    fig.connect_cpu = cpu_seconds(pid) - cpu0;
    eprintln!("[{n}] connected in {:.1} s", fig.connect_s);

    // 3. Idle, every agent connected and sending heartbeats.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    fig.idle_cpu_pct = 100.0 * (cpu_seconds(pid) - cpu0) / t.elapsed().as_secs_f64();
    fig.rss_idle = rss(pid);
    eprintln!(
        "[{n}] idle: {:.1} MiB, {:.1} % of a core",
        fig.rss_idle / MIB,
        fig.idle_cpu_pct
    );

    // 4. Roll a bundle out to every agent.
    let mut admin2 = admin.clone();
    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    let r = admin2.apply(bundle_record()).await;
    assert!(r.applied, "{:?}", r.results);
    let delivered_at = {
        let counters = Arc::clone(&counters);
        tokio::spawn(async move {
            until("every agent answered", Duration::from_secs(600), || {
                counters.delivered.load(Ordering::Relaxed) >= n
            })
            .await;
            t.elapsed().as_secs_f64()
        })
    };
    let version = loop {
        let rs = admin2.get("rollouts").await;
        let done = rs.iter().find(|r| r["phase"] == "Complete");
        if let Some(r) = done {
            break r["version"].as_u64().unwrap();
        }
        if let Some(r) = rs.iter().find(|r| r["phase"] == "Halted") {
            panic!("rollout halted: {}", r["message"]);
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "rollout not complete"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    fig.rollout_s = t.elapsed().as_secs_f64();
    fig.rollout_delivered_s = delivered_at.await.unwrap();
    fig.rollout_cpu = cpu_seconds(pid) - cpu0;
    fig.rss_after = rss(pid);
    fig.hwm = hwm(pid);
    eprintln!("[{n}] rolled out in {:.1} s", fig.rollout_s);

    // The control plane's own view: every device online and converged.
    let devices = admin2.get("devices").await;
    assert_eq!(devices.len(), n);
    let bad: Vec<&serde_json::Value> = devices
        .iter()
        .filter(|d| {
            d["online"] != true
                || d["converged"] != true
                || d["current"]["version"].as_u64() != Some(version)
        })
        .collect();
    assert!(bad.is_empty(), "{} devices not converged", bad.len());
    fig.failed = counters.failed.load(Ordering::Relaxed);
    fig.dropped = counters.dropped.load(Ordering::Relaxed);

    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    drop(cp);
    fig
}

// ---- open files ---------------------------------------------------------

fn open_files_limit() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/limits").unwrap();
    let l = s.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let f: Vec<&str> = l.split_whitespace().collect();
    let parse = |v: &str| v.parse::<u64>().unwrap_or(u64::MAX);
    (parse(f[3]), parse(f[4]))
}

/// Makes sure this process (and the control plane it starts) may open a
/// socket per agent and more: runs itself again with the soft limit
/// raised to the hard one when it is too low.
fn ensure_open_files(need: u64) {
    let (soft, hard) = open_files_limit();
    if soft >= need {
        return;
    }
    if hard < need {
        eprintln!(
            "the open-file limit is {soft} (hard {hard}); {need} are needed: raise it (`ulimit -n 65536`, as root if the hard limit is lower) and run again"
        );
        std::process::exit(2);
    }
    if std::env::var_os("ONPREM_BENCH_REEXEC").is_some() {
        eprintln!("cannot raise the open-file limit to {need}");
        std::process::exit(2);
    }
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {hard} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env("ONPREM_BENCH_REEXEC", "1")
        .status()
        .unwrap();
    std::process::exit(status.code().unwrap_or(1));
}

// ---- main ---------------------------------------------------------------

fn main() {
    let sizes: Vec<usize> = std::env::var("ONPREM_BENCH_AGENTS")
        .ok()
        .map(|s| s.split(',').map(|v| v.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| vec![1000, 10_000]);
    let idle_secs: u64 = std::env::var("ONPREM_BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let max = sizes.iter().copied().max().unwrap_or(0) as u64;
    ensure_open_files(max + 1024);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut all = Vec::new();
    for &n in &sizes {
        all.push(rt.block_on(run(n, idle_secs)));
    }

    let fmt_n = |n: usize| {
        if n >= 1000 {
            format!("{},{:03}", n / 1000, n % 1000)
        } else {
            n.to_string()
        }
    };
    let mut head = "| figure |".to_owned();
    let mut sep = "|---|".to_owned();
    for f in &all {
        head.push_str(&format!(" {} agents |", fmt_n(f.agents)));
        sep.push_str("---|");
    }
    println!("\n{head} aim (10,000) |\n{sep}---|");
    let row = |name: &str, aim: &str, v: &dyn Fn(&Figures) -> String| {
        let mut s = format!("| {name} |");
        for f in &all {
            s.push_str(&format!(" {} |", v(f)));
        }
        println!("{s} {aim} |");
    };
    row("control plane RSS at start", "", &|f| {
        format!("{:.1} MiB", f.rss_start / MIB)
    });
    row("enrol all (token + Enrol, 64 in flight)", "", &|f| {
        format!("{:.1} s ({:.1} s CPU)", f.enrol_s, f.enrol_cpu)
    });
    row("connect all (256 handshakes in flight)", "", &|f| {
        format!("{:.1} s ({:.1} s CPU)", f.connect_s, f.connect_cpu)
    });
    row("RSS, all connected, idle", "< 1 GiB", &|f| {
        format!("{:.1} MiB", f.rss_idle / MIB)
    });
    row("RSS per connected agent", "", &|f| {
        format!(
            "{:.1} KiB",
            (f.rss_idle - f.rss_start) / 1024.0 / f.agents as f64
        )
    });
    row("CPU, idle (heartbeats every 10 s)", "", &|f| {
        format!("{:.1} % of a core", f.idle_cpu_pct)
    });
    row("rollout: every agent answered", "", &|f| {
        format!("{:.2} s", f.rollout_delivered_s)
    });
    row("rollout: Complete at the control plane", "< 30 s", &|f| {
        format!("{:.2} s", f.rollout_s)
    });
    row("CPU during the rollout", "", &|f| {
        format!("{:.1} s", f.rollout_cpu)
    });
    row("RSS after the rollout", "", &|f| {
        format!("{:.1} MiB", f.rss_after / MIB)
    });
    row("peak RSS (VmHWM)", "< 1 GiB", &|f| {
        format!("{:.1} MiB", f.hwm / MIB)
    });
    row(
        "dials without a Welcome / sessions dropped",
        "0 / 0",
        &|f| format!("{} / {}", f.failed, f.dropped),
    );
}
