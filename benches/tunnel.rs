//! The reverse tunnel against a direct connection and against rathole
//! with its TLS transport (the tunnel users pick today), side by side on
//! loopback, in one run.
//!
//! Set-up (every process the release build or the peer's own binary):
//!
//! - the node side: an `onprem agent` on simulated hardware, enrolled
//!   with an `onprem control-plane`, serving Redfish (TLS) on a fixed
//!   port; Debian's `iperf3 -s`; an idle TCP sink;
//! - **direct**: the client connects to those ports;
//! - **onprem**: `onprem port-forward device/node …` on the user's side
//!   (each connection one stream CLI → control plane → agent);
//! - **rathole**: `rathole` server (user's side) and client (node side)
//!   with `transport.type = "tls"`, one service per port.
//!
//! Figures:
//!
//! 1. bulk throughput: `iperf3 -c … -t $ONPREM_BENCH_SECONDS` (default
//!    5; 0 skips it) through each path, the receiver's rate, as a ratio
//!    to direct; the CPU time the path's relay processes spend per
//!    gigabyte received, in all and each (every process shares the same
//!    cores, so this is what bounds the rate, and it varies less from run
//!    to run); and the share of the two cores left idle during the run
//!    (how far the path keeps them busy);
//! 2. added latency of a small Redfish GET (`/redfish/v1/`, about 1 KiB)
//!    over TLS to the agent's Redfish service: p50 and p99 on one
//!    keep-alive connection (5,000 GETs per path, interleaved), and with a
//!    new connection (TCP + the Redfish TLS handshake) each time (300 per
//!    path, interleaved); "added" is the path's figure minus direct's;
//! 3. memory per open tunnelled connection: 100 idle connections through
//!    the path to the sink, the growth of every process of the path
//!    (onprem: agent, control plane, port-forward; rathole: server,
//!    client) divided by 100, and again for a second hundred opened
//!    behind the first (the cost of one more connection once the heap
//!    has grown); and the agent's and control plane's resident memory
//!    with the first 100 open.
//!
//! Run: `cargo bench --bench tunnel`. Needs `iperf3` (Debian) and
//! `rathole` (`cargo install rathole`; found on `PATH`, in
//! `~/.cargo/bin`, or at `$ONPREM_RATHOLE`) and `openssl` (for rathole's
//! PKCS#12 identity).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEEPALIVE_GETS: usize = 5000;
const NEW_CONN_GETS: usize = 300;
const OPEN_CONNS: usize = 100;
const PASSWORD: &str = "bench-redfish-pw";

fn find(program: &str, hint: &str, env: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let mut dirs: Vec<PathBuf> = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(PathBuf::from)
        .collect();
    if let Ok(home) = std::env::var("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    for d in dirs {
        let p = d.join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!("{program} not found: {hint}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// CPU time of every thread of `pid` so far, in nanoseconds.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The machine's total and idle CPU time so far (`/proc/stat`, in
/// clock ticks): the idle share of a step shows how far the path keeps
/// both cores busy.
fn cpu_idle_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    (
        ticks.iter().sum(),
        ticks[3] + ticks.get(4).copied().unwrap_or(0),
    )
}

/// "name value, name value…" for a path's processes.
fn each(pids: &[(&str, u32)], values: &[f64], digits: usize) -> String {
    pids.iter()
        .zip(values)
        .map(|((n, _), v)| format!("{n} {v:.digits$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn onprem(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args(args)
        .env("ONPREM_CONFIG", config)
        .env_remove("ONPREM_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "onprem {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `$ONPREM_BENCH_{who}_WORKERS`, when set, as the process's
/// `ONPREM_WORKER_THREADS` (for comparing runtimes per relay).
fn workers(mut c: Command, who: &str) -> Command {
    if let Ok(w) = std::env::var(format!("ONPREM_BENCH_{who}_WORKERS")) {
        c.env("ONPREM_WORKER_THREADS", w);
    }
    c
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An idle sink: accepts and holds connections until they close.
fn sink() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut b = [0u8; 1024];
                while matches!(s.read(&mut b), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

// ---- Redfish GETs over TLS -----------------------------------------------

struct Tls {
    cfg: Arc<rustls::ClientConfig>,
}

impl Tls {
    fn new(cert_pem: &str) -> Tls {
        let mut roots = rustls::RootCertStore::empty();
        for c in onprem::controlplane::pki::parse_certs(cert_pem, "redfish cert").unwrap() {
            roots.add(c).unwrap();
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Tls { cfg: Arc::new(cfg) }
    }

    fn connect(
        &self,
        addr: SocketAddr,
    ) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        self.try_connect(addr).unwrap()
    }

    fn try_connect(
        &self,
        addr: SocketAddr,
    ) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::clone(&self.cfg), name).unwrap();
        Ok(rustls::StreamOwned::new(conn, tcp))
    }
}

/// One GET of the service root on `s`; the body's length.
fn try_get(s: &mut impl ReadWrite) -> std::io::Result<usize> {
    let bad = |m: String| std::io::Error::other(m);
    s.write_all(b"GET /redfish/v1/ HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    s.flush()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(bad(head));
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| bad(format!("no length: {head}")))?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok(len)
}

fn get(s: &mut impl ReadWrite) -> usize {
    try_get(s).unwrap()
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

// ---- iperf3 ----------------------------------------------------------------

/// The receiver's rate (bit/s) and the bytes it received.
fn iperf(iperf3: &Path, port: u16, seconds: u64) -> (f64, f64) {
    let out = Command::new(iperf3)
        .args(["-c", "127.0.0.1", "-p", &port.to_string(), "-J"])
        .args(["-t", &seconds.to_string()])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3 on {port}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let got = &v["end"]["sum_received"];
    match (got["bits_per_second"].as_f64(), got["bytes"].as_f64()) {
        (Some(r), Some(b)) => (r, b),
        _ => panic!("iperf3 on {port}: {v}"),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let iperf3 = find("iperf3", "apt-get install iperf3", "ONPREM_IPERF3");
    let rathole = find("rathole", "cargo install rathole", "ONPREM_RATHOLE");
    let openssl = find("openssl", "apt-get install openssl", "ONPREM_OPENSSL");
    let seconds: u64 = std::env::var("ONPREM_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut procs = Procs(Vec::new());

    // The node's services.
    let iperf_port = free_port();
    procs.0.push(
        Command::new(&iperf3)
            .args(["-s", "-p", &iperf_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sink_port = sink();
    let redfish_port = free_port();

    // The control plane, the CLI, the agent.
    let cp_port = free_port();
    let cp = workers(Command::new(env!("CARGO_BIN_EXE_onprem")), "CP")
        .args(["control-plane", "--listen", &format!("127.0.0.1:{cp_port}")])
        .arg("--state-dir")
        .arg(d.join("cp"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cp_pid = cp.id();
    procs.0.push(cp);
    wait_for(
        "the control plane's admin token",
        Duration::from_secs(30),
        || d.join("cp/admin.token").exists() && d.join("cp/ca.crt").exists(),
    );
    let admin = std::fs::read_to_string(d.join("cp/admin.token")).unwrap();
    let ca = std::fs::read_to_string(d.join("cp/ca.crt")).unwrap();
    let der = onprem::controlplane::pki::parse_certs(&ca, "ca")
        .unwrap()
        .remove(0);
    let fp = format!("sha256:{}", onprem::controlplane::pki::fingerprint(&der));
    let url = format!("https://127.0.0.1:{cp_port}");
    let config = d.join("cli.yaml");
    wait_for("login", Duration::from_secs(30), || {
        Command::new(env!("CARGO_BIN_EXE_onprem"))
            .args([
                "login",
                &url,
                "--token",
                admin.trim(),
                "--ca-fingerprint",
                &fp,
            ])
            .env("ONPREM_CONFIG", &config)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let hash = onprem::redfish::auth::hash_password(PASSWORD).unwrap();
    let bundle = format!(
        "apiVersion: onprem/v1\nkind: Bundle\nmetadata: {{ name: bench-node }}\nspec:\n  selector: {{ matchLabels: {{ bench: tunnel }} }}\n  hardware: {{ profile: pi5-fan }}\n  redfish:\n    listen: 127.0.0.1:{redfish_port}\n    accounts: [{{ userName: admin, role: Administrator, passwordHash: '{hash}' }}]\n  tunnel: {{ allowedPorts: [{iperf_port}, {redfish_port}, {sink_port}] }}\n"
    );
    std::fs::write(d.join("bundle.yaml"), bundle).unwrap();
    onprem(
        &config,
        &["apply", "-f", d.join("bundle.yaml").to_str().unwrap()],
    );
    let token = onprem(
        &config,
        &["token", "create", "--enrol", "--label", "bench=tunnel"],
    );
    let agent = workers(Command::new(env!("CARGO_BIN_EXE_onprem")), "AGENT")
        .args([
            "agent",
            "--hardware=sim",
            "--web.listen-address=127.0.0.1:0",
        ])
        .arg(format!("--state-dir={}", d.join("node").display()))
        .arg(format!("--control-plane={url}"))
        .arg(format!("--enrol-token={}", token.trim()))
        .arg(format!("--ca-fingerprint={fp}"))
        .args([
            "--device-name=node",
            "--collector.disable-defaults",
            "--collector.devices",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent_pid = agent.id();
    procs.0.push(agent);
    wait_for(
        "the agent's Redfish service",
        Duration::from_secs(60),
        || {
            TcpStream::connect(("127.0.0.1", redfish_port)).is_ok()
                && d.join("node/redfish/tls.crt").exists()
        },
    );
    let tls = Tls::new(&std::fs::read_to_string(d.join("node/redfish/tls.crt")).unwrap());

    // onprem port-forward.
    let mut pf = workers(Command::new(env!("CARGO_BIN_EXE_onprem")), "PF")
        .args(["port-forward", "device/node"])
        .args([
            format!(":{iperf_port}"),
            format!(":{redfish_port}"),
            format!(":{sink_port}"),
        ])
        .env("ONPREM_CONFIG", &config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pf_pid = pf.id();
    let mut lines = BufReader::new(pf.stdout.take().unwrap()).lines();
    let mut ours = Vec::new();
    for _ in 0..3 {
        let l = lines.next().unwrap().unwrap();
        let a: SocketAddr = l
            .strip_prefix("Forwarding from ")
            .and_then(|r| r.split(" -> ").next())
            .unwrap()
            .parse()
            .unwrap();
        ours.push(a);
    }
    procs.0.push(pf);

    // rathole with TLS: a self-signed identity for its server.
    let (cert, key) = onprem::redfish::tls::self_signed(&["localhost".into()]).unwrap();
    std::fs::write(d.join("rh.crt"), &cert).unwrap();
    std::fs::write(d.join("rh.key"), &key).unwrap();
    let ok = Command::new(&openssl)
        .args(["pkcs12", "-export", "-passout", "pass:bench"])
        .arg("-out")
        .arg(d.join("rh.pfx"))
        .arg("-inkey")
        .arg(d.join("rh.key"))
        .arg("-in")
        .arg(d.join("rh.crt"))
        .status()
        .unwrap();
    assert!(ok.success(), "openssl pkcs12");
    let rh_port = free_port();
    let rh: Vec<(u16, u16)> = [iperf_port, redfish_port, sink_port]
        .iter()
        .map(|p| (*p, free_port()))
        .collect();
    let mut server = format!(
        "[server]\nbind_addr = \"127.0.0.1:{rh_port}\"\n[server.transport]\ntype = \"tls\"\n[server.transport.tcp]\nnodelay = true\n[server.transport.tls]\npkcs12 = \"{}\"\npkcs12_password = \"bench\"\n",
        d.join("rh.pfx").display()
    );
    let mut client = format!(
        "[client]\nremote_addr = \"localhost:{rh_port}\"\n[client.transport]\ntype = \"tls\"\n[client.transport.tcp]\nnodelay = true\n[client.transport.tls]\ntrusted_root = \"{}\"\nhostname = \"localhost\"\n",
        d.join("rh.crt").display()
    );
    for (node, user) in &rh {
        server.push_str(&format!(
            "[server.services.s{node}]\ntoken = \"bench\"\nbind_addr = \"127.0.0.1:{user}\"\nnodelay = true\n"
        ));
        client.push_str(&format!(
            "[client.services.s{node}]\ntoken = \"bench\"\nlocal_addr = \"127.0.0.1:{node}\"\nnodelay = true\n"
        ));
    }
    std::fs::write(d.join("rh-server.toml"), server).unwrap();
    std::fs::write(d.join("rh-client.toml"), client).unwrap();
    let rs = Command::new(&rathole)
        .arg("--server")
        .arg(d.join("rh-server.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rs_pid = rs.id();
    procs.0.push(rs);
    std::thread::sleep(Duration::from_millis(300));
    let rc = Command::new(&rathole)
        .arg("--client")
        .arg(d.join("rh-client.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rc_pid = rc.id();
    procs.0.push(rc);
    let theirs: Vec<SocketAddr> = rh
        .iter()
        .map(|(_, u)| SocketAddr::from(([127, 0, 0, 1], *u)))
        .collect();
    let direct: Vec<SocketAddr> = [iperf_port, redfish_port, sink_port]
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    // Every path answers a Redfish GET before anything is measured.
    for (name, a) in [
        ("onprem", ours[1]),
        ("rathole", theirs[1]),
        ("direct", direct[1]),
    ] {
        wait_for(
            &format!("{name} to carry a Redfish GET"),
            Duration::from_secs(60),
            || tls.try_connect(a).and_then(|mut s| try_get(&mut s)).is_ok(),
        );
    }
    let paths = [("direct", &direct), ("onprem", &ours), ("rathole", &theirs)];
    println!(
        "# onprem tunnel bench: {} s iperf3 runs, {KEEPALIVE_GETS} keep-alive and {NEW_CONN_GETS} new-connection Redfish GETs per path, {OPEN_CONNS} open connections",
        seconds
    );

    // Each path's relay processes.
    let ours_pids = [
        ("agent", agent_pid),
        ("control plane", cp_pid),
        ("port-forward", pf_pid),
    ];
    let theirs_pids = [("rathole client", rc_pid), ("rathole server", rs_pid)];

    // 1. Throughput, and the CPU time the path's relays spend per
    // gigabyte (on two shared cores, what bounds the rate).
    let relays: [&[(&str, u32)]; 3] = [&[], &ours_pids, &theirs_pids];
    let mut bps = Vec::new();
    let mut cpu_per_gb = Vec::new();
    let mut cpu_each = Vec::new();
    let mut idle = Vec::new();
    for ((name, a), pids) in paths.iter().zip(relays) {
        if seconds == 0 {
            bps.push(f64::NAN);
            cpu_per_gb.push(f64::NAN);
            cpu_each.push(String::new());
            idle.push(f64::NAN);
            continue;
        }
        let before: Vec<u64> = pids.iter().map(|(_, p)| cpu_ns(*p)).collect();
        let (total0, idle0) = cpu_idle_ticks();
        let (r, bytes) = iperf(&iperf3, a[0].port(), seconds);
        let (total1, idle1) = cpu_idle_ticks();
        let gb = bytes / 1e9;
        let spent: Vec<f64> = pids
            .iter()
            .zip(&before)
            .map(|((_, p), b)| (cpu_ns(*p) - b) as f64 / 1e9 / gb)
            .collect();
        let per_gb: f64 = spent.iter().sum();
        let each = each(pids, &spent, 2);
        let idle_share = (idle1 - idle0) as f64 / (total1 - total0).max(1) as f64;
        if pids.is_empty() {
            println!(
                "throughput {name:<8} {:>9.1} Mbit/s, idle {:.0} %",
                r / 1e6,
                idle_share * 100.0
            );
        } else {
            println!(
                "throughput {name:<8} {:>9.1} Mbit/s, relays' CPU {per_gb:.2} s per GB ({each}), idle {:.0} %",
                r / 1e6,
                idle_share * 100.0
            );
        }
        bps.push(r);
        cpu_per_gb.push(per_gb);
        cpu_each.push(each);
        idle.push(idle_share);
    }

    // 2. Latency, interleaved.
    println!(
        "# pids: agent {agent_pid}, control plane {cp_pid}, port-forward {pf_pid}, rathole client {rc_pid}, rathole server {rs_pid}"
    );
    let cpu_pids: Vec<(&str, u32)> = ours_pids.iter().chain(&theirs_pids).copied().collect();
    let cpu_before: Vec<u64> = cpu_pids.iter().map(|(_, p)| cpu_ns(*p)).collect();
    let mut keep: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut conns: Vec<_> = paths.iter().map(|(_, a)| tls.connect(a[1])).collect();
    for c in &mut conns {
        get(c);
    }
    for _ in 0..KEEPALIVE_GETS {
        for (i, c) in conns.iter_mut().enumerate() {
            let t = Instant::now();
            get(c);
            keep[i].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    drop(conns);
    let cpu_per_get: Vec<(&str, f64)> = cpu_pids
        .iter()
        .zip(&cpu_before)
        .map(|((n, p), b)| (*n, (cpu_ns(*p) - b) as f64 / 1e3 / KEEPALIVE_GETS as f64))
        .collect();
    let mut fresh: Vec<Vec<f64>> = vec![Vec::new(); 3];
    for _ in 0..NEW_CONN_GETS {
        for (i, (_, a)) in paths.iter().enumerate() {
            let t = Instant::now();
            let mut s = tls.connect(a[1]);
            get(&mut s);
            fresh[i].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let stats: Vec<[f64; 4]> = (0..3)
        .map(|i| {
            [
                pct(&mut keep[i], 0.5),
                pct(&mut keep[i], 0.99),
                pct(&mut fresh[i], 0.5),
                pct(&mut fresh[i], 0.99),
            ]
        })
        .collect();

    // 3. Memory per open connection.
    // Resident memory before, with 100 open, and with 100 more (the
    // second hundred: the cost of one more connection once the heap has
    // grown for the first).
    let measure = |pids: &[(&str, u32)], target: SocketAddr| {
        let rss = || -> Vec<f64> { pids.iter().map(|(_, p)| rss_kib(*p)).collect() };
        let before = rss();
        let mut open = Vec::new();
        let mut marks = Vec::new();
        for _ in 0..2 {
            for _ in 0..OPEN_CONNS {
                let mut s = TcpStream::connect(target).unwrap();
                s.write_all(b"x").unwrap();
                open.push(s);
            }
            std::thread::sleep(Duration::from_secs(2));
            marks.push(rss());
        }
        drop(open);
        let more = marks.pop().unwrap();
        (before, marks.pop().unwrap(), more)
    };
    let (ob, oa, om) = measure(&ours_pids, ours[2]);
    std::thread::sleep(Duration::from_secs(2));
    let (tb, ta, tm) = measure(&theirs_pids, theirs[2]);

    let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { f64::NAN };
    println!();
    println!("| figure | direct | onprem | rathole (TLS) | onprem vs rathole |");
    println!("|---|---|---|---|---|");
    println!(
        "| bulk throughput (iperf3) | {:.0} Mbit/s | {:.0} Mbit/s (**{:.2}×** direct) | {:.0} Mbit/s ({:.2}× direct) | {:.2}× |",
        bps[0] / 1e6,
        bps[1] / 1e6,
        ratio(bps[1], bps[0]),
        bps[2] / 1e6,
        ratio(bps[2], bps[0]),
        ratio(bps[1], bps[2])
    );
    println!(
        "| CPU of the relays per GB through (iperf3) | | {:.2} s ({}) | {:.2} s ({}) | {:.2}× |",
        cpu_per_gb[1],
        cpu_each[1],
        cpu_per_gb[2],
        cpu_each[2],
        ratio(cpu_per_gb[1], cpu_per_gb[2])
    );
    println!(
        "| both cores idle during the iperf3 run | {:.0} % | {:.0} % | {:.0} % | |",
        idle[0] * 100.0,
        idle[1] * 100.0,
        idle[2] * 100.0
    );
    let names = [
        "keep-alive p50",
        "keep-alive p99",
        "new connection p50",
        "new connection p99",
    ];
    for (k, n) in names.iter().enumerate() {
        println!(
            "| Redfish GET, {n} | {:.3} ms | {:.3} ms (**{:+.3} ms**) | {:.3} ms ({:+.3} ms) | |",
            stats[0][k],
            stats[1][k],
            stats[1][k] - stats[0][k],
            stats[2][k],
            stats[2][k] - stats[0][k],
        );
    }
    let per = |b: &[f64], a: &[f64]| -> Vec<f64> {
        b.iter()
            .zip(a)
            .map(|(x, y)| (y - x) * 1024.0 / OPEN_CONNS as f64)
            .collect()
    };
    for (what, (op, tp)) in [
        (
            "memory per open connection, all ends",
            (per(&ob, &oa), per(&tb, &ta)),
        ),
        (
            "memory per open connection, the second hundred",
            (per(&oa, &om), per(&ta, &tm)),
        ),
    ] {
        let kb = |v: &[f64]| v.iter().map(|b| b / 1000.0).collect::<Vec<_>>();
        let osum: f64 = op.iter().sum();
        let tsum: f64 = tp.iter().sum();
        println!(
            "| {what} | | **{:.1} kB** ({}) | {:.1} kB ({}) | {:.2}× |",
            osum / 1000.0,
            each(&ours_pids, &kb(&op), 1),
            tsum / 1000.0,
            each(&theirs_pids, &kb(&tp), 1),
            ratio(osum, tsum)
        );
    }
    println!(
        "| resident memory with {OPEN_CONNS} open tunnels | | agent {:.1} MiB, control plane {:.1} MiB, port-forward {:.1} MiB | client {:.1} MiB, server {:.1} MiB | |",
        oa[0] / 1024.0,
        oa[1] / 1024.0,
        oa[2] / 1024.0,
        ta[0] / 1024.0,
        ta[1] / 1024.0
    );
    println!(
        "| CPU per keep-alive GET (µs) | | agent {:.0} (serves all three paths), control plane {:.0}, port-forward {:.0} | client {:.0}, server {:.0} | |",
        cpu_per_get[0].1, cpu_per_get[1].1, cpu_per_get[2].1, cpu_per_get[3].1, cpu_per_get[4].1
    );
    drop(procs);
}
