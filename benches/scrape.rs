//! Scrape cost of the onprem agent beside node_exporter (Debian's
//! `prometheus-node-exporter`), in one interleaved run on this machine:
//! the same 17 collectors on both, sequential keep-alive scrapes over
//! loopback, A, B, A, B…
//!
//! Figures: resident memory at start and after 200 scrapes, CPU seconds
//! per 1,000 scrapes (plain and gzip), p50/p99 scrape latency, output
//! size, and the ratios onprem / node_exporter.
//!
//! Run: `cargo bench --bench scrape` (ONPREM_BENCH_SCRAPES sets the count,
//! default 1000). Needs `prometheus-node-exporter` (scripts/test.sh
//! installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use onprem::httpc::Client;

const COLLECTORS: &[&str] = &[
    "cpu",
    "meminfo",
    "loadavg",
    "filesystem",
    "diskstats",
    "netdev",
    "hwmon",
    "thermal_zone",
    "uname",
    "time",
    "stat",
    "vmstat",
    "netclass",
    "powersupplyclass",
    "pressure",
    "cpufreq",
    "textfile",
];

struct Proc {
    name: &'static str,
    child: Child,
    client: Client,
    lat: Vec<f64>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_bytes(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    kb * 1024.0
}

/// CPU seconds of every thread, from schedstat (nanoseconds).
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
    // Exited threads are gone from task/; their time stays in stat's
    // utime+stime, which is coarser. Take the larger.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    (ns as f64 / 1e9).max(ticks / 100.0)
}

fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_onprem(fixtures: &Path) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onprem"));
    cmd.arg("agent")
        .arg(format!(
            "--config={}",
            fixtures.join("agent-empty.yaml").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .arg("--collector.disable-defaults")
        .args(COLLECTORS.iter().map(|c| format!("--collector.{c}")))
        .arg(format!(
            "--collector.textfile.directory={}",
            fixtures.join("textfile").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("agent exited").unwrap();
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    wait_listening(addr);
    Proc {
        name: "onprem",
        child,
        client: Client::new(addr),
        lat: Vec::new(),
    }
}

fn start_node_exporter(fixtures: &Path) -> Proc {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let child = Command::new("prometheus-node-exporter")
        .arg("--collector.disable-defaults")
        .args(COLLECTORS.iter().map(|c| format!("--collector.{c}")))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--collector.netdev.device-exclude=")
        .arg(format!("--collector.textfile.directory={}", fixtures.join("textfile").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-node-exporter not found: install Debian's prometheus-node-exporter (scripts/test.sh does)");
    wait_listening(addr);
    Proc {
        name: "node_exporter",
        child,
        client: Client::new(addr),
        lat: Vec::new(),
    }
}

fn scrape(p: &mut Proc, gzip: bool) -> usize {
    let mut headers = vec![("Accept", "text/plain;version=0.0.4")];
    if gzip {
        headers.push(("Accept-Encoding", "gzip"));
    }
    let t = Instant::now();
    let r = p.client.get("/metrics", &headers).unwrap();
    let el = t.elapsed().as_secs_f64();
    assert_eq!(r.status, 200, "{} answered {}", p.name, r.status);
    p.lat.push(el);
    r.body.len()
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i]
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    let n: usize = std::env::var("ONPREM_BENCH_SCRAPES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
        .max(200);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut a = start_onprem(&fixtures);
    let mut b = start_node_exporter(&fixtures);
    std::thread::sleep(Duration::from_millis(300));
    let rss_start = [rss_bytes(a.child.id()), rss_bytes(b.child.id())];

    // Output size, families and samples of one scrape each.
    let text = |p: &mut Proc| {
        p.client
            .get("/metrics", &[("Accept", "text/plain;version=0.0.4")])
            .unwrap()
            .text()
    };
    let shape = |t: &str| {
        (
            t.lines().filter(|l| l.starts_with("# TYPE")).count(),
            t.lines().filter(|l| !l.starts_with('#')).count(),
            t.len(),
        )
    };
    let (sa, sb) = (shape(&text(&mut a)), shape(&text(&mut b)));

    // Warm up, then interleave.
    for _ in 0..10 {
        scrape(&mut a, false);
        scrape(&mut b, false);
    }
    a.lat.clear();
    b.lat.clear();
    let cpu0 = [cpu_seconds(a.child.id()), cpu_seconds(b.child.id())];
    let mut rss_200 = [0.0; 2];
    for i in 0..n {
        scrape(&mut a, false);
        scrape(&mut b, false);
        if i + 1 == 200 {
            rss_200 = [rss_bytes(a.child.id()), rss_bytes(b.child.id())];
        }
    }
    let cpu1 = [cpu_seconds(a.child.id()), cpu_seconds(b.child.id())];
    let per_1000 = |i: usize| (cpu1[i] - cpu0[i]) * 1000.0 / n as f64;
    let cpu_plain = [per_1000(0), per_1000(1)];
    let lat_a = [pct(&mut a.lat, 0.5), pct(&mut a.lat, 0.99)];
    let lat_b = [pct(&mut b.lat, 0.5), pct(&mut b.lat, 0.99)];

    // gzip, as Prometheus scrapes.
    let ng = n / 2;
    let (mut za, mut zb) = (0, 0);
    let g0 = [cpu_seconds(a.child.id()), cpu_seconds(b.child.id())];
    for _ in 0..ng {
        za = scrape(&mut a, true);
        zb = scrape(&mut b, true);
    }
    let g1 = [cpu_seconds(a.child.id()), cpu_seconds(b.child.id())];
    let cpu_gzip = [
        (g1[0] - g0[0]) * 1000.0 / ng as f64,
        (g1[1] - g0[1]) * 1000.0 / ng as f64,
    ];
    let rss_end = [rss_bytes(a.child.id()), rss_bytes(b.child.id())];

    let mib = |b: f64| b / (1024.0 * 1024.0);
    println!(
        "onprem agent vs node_exporter: {} collectors, {n} interleaved scrapes (+{ng} gzip)",
        COLLECTORS.len()
    );
    println!();
    println!("| figure | onprem | node_exporter | ratio |");
    println!("|---|---|---|---|");
    let row = |name: &str, x: f64, y: f64, unit: &str| {
        println!("| {name} | {x:.2} {unit} | {y:.2} {unit} | {:.2} |", x / y);
    };
    row(
        "resident memory at start",
        mib(rss_start[0]),
        mib(rss_start[1]),
        "MiB",
    );
    row(
        "resident memory after 200 scrapes",
        mib(rss_200[0]),
        mib(rss_200[1]),
        "MiB",
    );
    row(
        "resident memory at end",
        mib(rss_end[0]),
        mib(rss_end[1]),
        "MiB",
    );
    row("CPU per 1,000 scrapes", cpu_plain[0], cpu_plain[1], "s");
    row("CPU per 1,000 scrapes, gzip", cpu_gzip[0], cpu_gzip[1], "s");
    row(
        "scrape latency p50",
        lat_a[0] * 1000.0,
        lat_b[0] * 1000.0,
        "ms",
    );
    row(
        "scrape latency p99",
        lat_a[1] * 1000.0,
        lat_b[1] * 1000.0,
        "ms",
    );
    row(
        "output size",
        sa.2 as f64 / 1024.0,
        sb.2 as f64 / 1024.0,
        "KiB",
    );
    row(
        "output size, gzip",
        za as f64 / 1024.0,
        zb as f64 / 1024.0,
        "KiB",
    );
    println!(
        "| families / samples | {} / {} | {} / {} | |",
        sa.0, sa.1, sb.0, sb.1
    );
    let bin = std::fs::metadata(env!("CARGO_BIN_EXE_onprem"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!();
    println!(
        "onprem binary ({}): {:.2} MiB",
        std::env::consts::ARCH,
        mib(bin as f64)
    );
}
