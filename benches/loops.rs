//! Cost of the reconcile loops and of bundles, on simulated nodes:
//!
//! 1. one fans reconcile tick (read every zone sensor through the real
//!    driver, run the controllers, write the duty, re-assert
//!    `pwm_enable`, read the tach) on four example nodes: sysfs hwmon
//!    (Pi 5 fan), I²C (Argon ONE, EMC2301) and NVML (GPU server);
//! 2. bundle parse + validate for every example, the crash-safe store
//!    write (fsync), `Loops::apply` (start or restart the loops a change
//!    touches and wait for their first ticks), and the whole path in the
//!    agent process, from SIGHUP to the new version on `/metrics`;
//! 3. resident memory and CPU of the release agent running a simulated
//!    node with all four loops (ADS1115 at 860 samples/s) and the default
//!    exporter, beside the agent without a bundle and Debian's
//!    node_exporter with its default collectors, in one run.
//!
//! Run: `cargo bench --bench loops` (ONPREM_BENCH_TICKS, default 5000;
//! ONPREM_BENCH_SECONDS for part 3, default 60). Part 3 needs
//! `prometheus-node-exporter` (scripts/test.sh installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use onprem::agent::fans::FansLoop;
use onprem::agent::host::Recorded;
use onprem::agent::loops::{self, Loops};
use onprem::agent::reconcile::{Ctx, Reconciler};
use onprem::bundle::store::{Meta, Store};
use onprem::httpc::Client;
use onprem::hw::poller::Hub;
use onprem_hal::inventory::Hardware;
use onprem_hal::sim::world::World;
use tokio_util::sync::CancellationToken;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/examples")
}

fn example(name: &str) -> String {
    std::fs::read_to_string(examples_dir().join(format!("{name}.yaml"))).unwrap()
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

// ---------------------------------------------------------------- part 1

/// Where the simulated sysfs tree goes: tmpfs, as the kernel's sysfs
/// lives in memory (on ext4 every driver write to a "sysfs" file pays for
/// ext4's flush on truncate, about 0.5 ms here, which real sysfs does not).
fn tmpfs() -> Option<&'static Path> {
    let p = Path::new("/dev/shm");
    p.is_dir().then_some(p)
}

fn fans_tick(name: &str, ticks: usize, base: Option<&Path>) -> (f64, f64, f64) {
    let b = onprem::bundle::parse(&example(name)).unwrap();
    let r = onprem::bundle::validate(&b, Some(&examples_dir())).unwrap();
    let tmp = match base {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let world = World::new(&r.hardware, tmp.path()).unwrap();
    let hub = Hub::new(r.hardware.clone(), Hardware::Sim(world.clone()));
    hub.set_stepping(false);
    let ctx = Ctx::new(Some(hub.clone()), Arc::new(Recorded::default()));
    let want = r.bundle.spec.fans.clone();
    let mut fans = FansLoop::new();
    let period = want.period.get();
    let mut now = tokio::time::Instant::now();
    let mut times = Vec::with_capacity(ticks);
    for k in 0..ticks + 100 {
        // The physics moves on outside the measured tick.
        world.step(period);
        now += period;
        let t = Instant::now();
        let a = fans.reconcile(&want, &ctx, now).unwrap();
        let el = t.elapsed().as_secs_f64() * 1e6;
        if k == 0 {
            assert_eq!(
                a.health,
                onprem::agent::reconcile::Health::Ready,
                "{name}: {a:?}"
            );
        }
        if k >= 100 {
            times.push(el);
        }
    }
    let m = mean(&times);
    (m, pct(&mut times, 0.5), pct(&mut times, 0.99))
}

// ---------------------------------------------------------------- part 2

fn validate_time(name: &str, n: usize) -> f64 {
    let text = example(name);
    let dir = examples_dir();
    let t = Instant::now();
    for _ in 0..n {
        let b = onprem::bundle::parse(&text).unwrap();
        let r = onprem::bundle::validate(&b, Some(&dir)).unwrap();
        std::hint::black_box(r);
    }
    t.elapsed().as_secs_f64() / n as f64 * 1e6
}

/// The example with another version and a changed first curve or PID
/// setpoint (a fans change).
fn variant(text: &str, version: u64) -> String {
    let v = text.replacen("version: 1", &format!("version: {version}"), 1);
    let bump = if version % 2 == 0 { "56" } else { "55" };
    v.replacen("setpoint: 55", &format!("setpoint: {bump}"), 1)
}

fn apply_times(n: usize) -> (f64, f64, f64, f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let text = example("cm4-adc-signals");
        let dir = examples_dir();
        let resolve = |t: &str| {
            let b = onprem::bundle::parse(t).unwrap();
            onprem::bundle::validate(&b, Some(&dir)).unwrap()
        };
        let first = resolve(&text);
        let tmp = tempfile::tempdir().unwrap();
        let world = World::new(&first.hardware, tmp.path()).unwrap();
        let hub = Hub::new(first.hardware.clone(), Hardware::Sim(world));
        let shared = loops::Shared {
            host: Arc::new(Recorded::default()),
            events: Default::default(),
            requests: Default::default(),
            registry: Default::default(),
            state_dir: Some(tmp.path().to_path_buf()),
            metrics: Some(Arc::new(Vec::new)),
            boot_id: Some("bench".into()),
        };
        let stop = CancellationToken::new();
        let mut l = Loops::new(shared, Some(hub), stop.clone());
        let t = Instant::now();
        let d = l.apply(&first).await.unwrap();
        let start_all = t.elapsed().as_secs_f64() * 1e3;
        assert!(d.sections.len() >= 4, "{:?}", d.sections);
        let mut changes = Vec::new();
        for k in 0..n {
            let next = resolve(&variant(&text, 2 + k as u64));
            let t = Instant::now();
            let d = l.apply(&next).await.unwrap();
            changes.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(
                d.sections.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                vec!["fans"]
            );
        }
        l.stop_all(onprem::agent::reconcile::Stop::Shutdown).await;
        let m = mean(&changes);
        (
            start_all,
            m,
            pct(&mut changes, 0.5),
            pct(&mut changes, 0.99),
        )
    })
}

fn store_write_times(n: usize) -> (f64, f64) {
    let text = example("cm4-adc-signals");
    let b = onprem::bundle::parse(&text).unwrap();
    let r = onprem::bundle::validate(&b, Some(&examples_dir())).unwrap();
    // On the disk the state directory would be on, not a tmpfs.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut store = Store::open(tmp.path()).unwrap();
    let meta = Meta::new(&r, "bench");
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        store.write(&text, None, &meta).unwrap();
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let m = mean(&v);
    (m, pct(&mut v, 0.5))
}

struct Proc {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_agent(args: &[String]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .arg("agent")
        .arg("--web.listen-address=127.0.0.1:0")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("agent exited").unwrap();
        if line.contains("listening") {
            if let Some(rest) = line.split("address=").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
    };
    std::thread::spawn(move || for _ in lines {});
    wait_listening(addr);
    Proc { child, addr }
}

fn sighup_times(n: usize) -> (f64, f64, f64, f64) {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let text = example("cm4-adc-signals");
    let bundle = tmp.path().join("node.yaml");
    std::fs::write(&bundle, &text).unwrap();
    let config = tmp.path().join("agent.yaml");
    std::fs::write(&config, "bundle:\n  watch_interval: 3600\n").unwrap();
    let p = start_agent(&[
        format!("--config={}", config.display()),
        "--hardware=sim".into(),
        format!("--bundle={}", bundle.display()),
        format!("--state-dir={}", tmp.path().join("state").display()),
        "--collector.disable-defaults".into(),
        "--collector.loops".into(),
    ]);
    let mut c = Client::new(p.addr);
    let wait_version = |c: &mut Client, v: u64| {
        let needle = format!("name=\"cm4-adc-signals\",version=\"{v}\"");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = c.get("/metrics", &[]).unwrap().text();
            if m.contains(&needle) {
                return;
            }
            assert!(Instant::now() < deadline, "version {v} not applied");
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    wait_version(&mut c, 1);
    let pid = p.child.id().to_string();
    let kill = |sig: &str| {
        let ok = Command::new("kill").arg(sig).arg(&pid).status().unwrap();
        assert!(ok.success());
    };
    // What spawning kill(1) costs, to take out of the figure.
    let t = Instant::now();
    for _ in 0..n {
        kill("-0");
    }
    let spawn = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    let mut v = Vec::with_capacity(n);
    for k in 0..n as u64 {
        std::fs::write(&bundle, variant(&text, 2 + k)).unwrap();
        let t = Instant::now();
        kill("-HUP");
        wait_version(&mut c, 2 + k);
        v.push(t.elapsed().as_secs_f64() * 1e3 - spawn);
    }
    let m = mean(&v);
    (m, pct(&mut v, 0.5), pct(&mut v, 0.99), spawn)
}

// ---------------------------------------------------------------- part 3

fn status_kb(pid: u32, key: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

struct Resident {
    name: &'static str,
    pid: u32,
    client: Client,
    _proc: Proc,
    cpu0: f64,
    rss_end: f64,
    hwm: f64,
    anon: f64,
    file: f64,
}

impl Resident {
    fn new(name: &'static str, p: Proc) -> Resident {
        Resident {
            name,
            pid: p.child.id(),
            client: Client::new(p.addr),
            _proc: p,
            cpu0: 0.0,
            rss_end: 0.0,
            hwm: 0.0,
            anon: 0.0,
            file: 0.0,
        }
    }
}

fn memory(seconds: usize) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let textfile = fixtures.join("textfile");
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let base = vec![
        format!("--config={}", fixtures.join("agent-empty.yaml").display()),
        format!("--collector.textfile.directory={}", textfile.display()),
    ];
    let mut with_node = base.clone();
    with_node.extend([
        "--hardware=sim".to_owned(),
        format!(
            "--bundle={}",
            examples_dir().join("cm4-adc-signals.yaml").display()
        ),
        format!("--state-dir={}", tmp.path().display()),
    ]);
    let node = start_agent(&with_node);
    let plain = start_agent(&base);
    let ne_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ne = Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address={ne_addr}"))
        .arg(format!("--collector.textfile.directory={}", textfile.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-node-exporter not found: install Debian's prometheus-node-exporter (scripts/test.sh does)");
    wait_listening(ne_addr);
    let ne = Proc {
        child: ne,
        addr: ne_addr,
    };
    let mut all = vec![
        Resident::new("onprem agent, simulated CM4 node, 4 loops", node),
        Resident::new("onprem agent, exporter only", plain),
        Resident::new("node_exporter 1.5, default collectors", ne),
    ];
    // Settle, then measure: one scrape of each per second (a busy
    // Prometheus), the loops and the acquisition running all along.
    std::thread::sleep(Duration::from_secs(3));
    for r in &mut all {
        r.cpu0 = cpu_seconds(r.pid);
    }
    let start = Instant::now();
    for _ in 0..seconds {
        for r in &mut all {
            let resp = r.client.get("/metrics", &[]).unwrap();
            assert_eq!(resp.status, 200, "{}", r.name);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let wall = start.elapsed().as_secs_f64();
    println!("\n## 3. Resident memory and CPU ({seconds} s, one scrape of each per second)\n");
    println!(
        "| process | RSS at end | of which anonymous (heap, stacks) | of which file-backed (binary, libraries) | peak RSS (VmHWM) | CPU | RSS / node_exporter |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &mut all {
        r.rss_end = status_kb(r.pid, "VmRSS:") / 1024.0;
        r.hwm = status_kb(r.pid, "VmHWM:") / 1024.0;
        r.anon = status_kb(r.pid, "RssAnon:") / 1024.0;
        r.file = status_kb(r.pid, "RssFile:") / 1024.0;
    }
    let ne_rss = all[2].rss_end;
    for r in &all {
        let cpu = (cpu_seconds(r.pid) - r.cpu0) / wall * 100.0;
        println!(
            "| {} | {:.2} MiB | {:.2} MiB | {:.2} MiB | {:.2} MiB | {cpu:.1} % of a core | {:.2} |",
            r.name,
            r.rss_end,
            r.anon,
            r.file,
            r.hwm,
            r.rss_end / ne_rss
        );
    }
    let m = all[0].client.get("/metrics", &[]).unwrap().text();
    let late = m
        .lines()
        .find(|l| l.starts_with("onprem_signal_late_total{signal=\"line-pressure\"}"))
        .unwrap_or("-");
    let samples = m
        .lines()
        .find(|l| l.starts_with("onprem_signal_samples_total{signal=\"line-pressure\"}"))
        .unwrap_or("-");
    println!("\nsimulated node's acquisition: {samples}; {late}");
    let bin = std::fs::metadata(env!("CARGO_BIN_EXE_onprem"))
        .map(|m| m.len() as f64 / 1048576.0)
        .unwrap_or(0.0);
    println!("onprem binary: {bin:.2} MiB");
}

fn main() {
    let ticks = env_or("ONPREM_BENCH_TICKS", 5000);
    let seconds = env_or("ONPREM_BENCH_SECONDS", 60);

    println!("## 1. One fans reconcile tick ({ticks} ticks each, after 100 warm-up)\n");
    println!("| node (example bundle) | path | mean | p50 | p99 |");
    println!("|---|---|---|---|---|");
    let shm = tmpfs();
    let on = if shm.is_some() {
        "tmpfs"
    } else {
        "the temp dir"
    };
    for (name, path, base) in [
        (
            "pi5-fan-curve",
            format!("sysfs hwmon pwm + tach + thermal zone, on {on}"),
            shm,
        ),
        (
            "pi5-fan-curve",
            "the same, sim tree on the temp dir (ext4 here)".to_owned(),
            None,
        ),
        (
            "pi4-argon-stepwise",
            "I²C Argon ONE (no tach)".to_owned(),
            shm,
        ),
        ("cm4-adc-signals", "I²C EMC2301 (PID, tach)".to_owned(), shm),
        (
            "gpu-server-pid",
            "2 GPUs by the fake NVML library + hwmon fan, PID + curve".to_owned(),
            shm,
        ),
    ] {
        let (m, p50, p99) = fans_tick(name, ticks, base);
        println!("| {name} | {path} | {m:.1} µs | {p50:.1} µs | {p99:.1} µs |");
    }

    println!("\n## 2. Bundles\n");
    println!("| example | parse + validate |");
    println!("|---|---|");
    let mut names: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "yaml")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    for n in &names {
        println!("| {n} | {:.0} µs |", validate_time(n, 200));
    }
    let (sw, sw50) = store_write_times(50);
    println!(
        "\nstore write (files, directory and symlinks fsynced), 50 writes: mean {sw:.2} ms, p50 {sw50:.2} ms"
    );
    let (first, m, p50, p99) = apply_times(30);
    println!(
        "Loops::apply, cm4-adc-signals: all four loops from nothing {first:.1} ms; a fans change (fans loop restarted, first tick awaited), 30 changes: mean {m:.2} ms, p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    let (m, p50, p99, spawn) = sighup_times(30);
    println!(
        "agent process, SIGHUP → read, validate, store, apply → new version on /metrics, 30 reloads: mean {m:.1} ms, p50 {p50:.1} ms, p99 {p99:.1} ms (less {spawn:.1} ms for spawning kill(1); /metrics polled every 0.5 ms)"
    );

    memory(seconds);
}
