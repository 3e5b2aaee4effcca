//! The agent under each flood, beside the same agent left idle, in one
//! run: the fans loop's period in fact (`onprem_loop_interval_seconds`:
//! the mean and the bucket that holds the longest interval) and resident
//! memory (peak and at the end), as ratios to the idle agent.
//!
//! For each flood of `tests/common/flood.rs` (idle connections, slow
//! headers, bad Redfish logins, a 50 MB bundle, a bundle nested 100,000
//! levels deep) and for all of them at once, two fresh release agents run
//! the same simulated node (fans every 500 ms, Redfish, open-files limit
//! 1,024); one is flooded for the window, the other is not. Bundle floods
//! also give the time from the drop to the refusal on `/metrics`.
//!
//! Run: `cargo bench --bench overload` (ONPREM_BENCH_SECONDS: the window
//! per flood, default 15).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::flood::{self, Flood, Scale};

struct Row {
    name: String,
    flooded: Figures,
    idle: Figures,
    refused_after: Option<f64>,
}

#[derive(Default, Clone)]
struct Figures {
    mean: f64,
    max_bound: f64,
    ticks: f64,
    rss_peak: f64,
    rss_end: f64,
    scrape_ok: bool,
    /// Scrape latencies during the window, seconds (failed: the timeout).
    scrapes: Vec<f64>,
}

fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn rejected(text: &str) -> f64 {
    common::value(text, "onprem_bundle_updates_total{result=\"rejected\"}").unwrap_or(0.0)
}

fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    flood::scrape(addr, Duration::from_secs(10)).ok()
}

fn run(name: &str, floods: &[Flood], window: Duration) -> Row {
    let (dir_f, dir_i) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (agent_f, node_f) = flood::launch(dir_f.path(), flood::NOFILE);
    let (agent_i, node_i) = flood::launch(dir_i.path(), flood::NOFILE);
    // Both ticking before the window opens.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (before_f, before_i) = loop {
        let (f, i) = (scrape(agent_f.addr), scrape(agent_i.addr));
        if let (Some(f), Some(i)) = (f, i) {
            if flood::fans_intervals(&f).count >= 3.0 && flood::fans_intervals(&i).count >= 3.0 {
                break (f, i);
            }
        }
        assert!(Instant::now() < deadline, "agents not ticking");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (watch_f, watch_i) = (
        flood::Watch::start(node_f.pid),
        flood::Watch::start(node_i.pid),
    );
    let started = Instant::now();
    let running = flood::start(&node_f, floods, Scale::default());
    let mut refused_after = None;
    let bundle_flood = floods
        .iter()
        .any(|f| matches!(f, Flood::HugeBundle | Flood::NestedBundle));
    let was = rejected(&before_f);
    // Scrapes of both agents through the window, one after the other,
    // as Prometheus would (10 s timeout); the flooded agent's also tell
    // when a dropped bundle was refused.
    let (mut lat_f, mut lat_i) = (Vec::new(), Vec::new());
    let timed = |addr| {
        let t0 = Instant::now();
        let r = flood::scrape(addr, Duration::from_secs(10)).ok();
        (t0.elapsed().as_secs_f64(), r)
    };
    while started.elapsed() < window {
        let (l, r) = timed(agent_f.addr);
        lat_f.push(l);
        if let Some(t) = r {
            if bundle_flood && refused_after.is_none() && rejected(&t) > was {
                refused_after = Some(started.elapsed().as_secs_f64());
            }
        }
        lat_i.push(timed(agent_i.addr).0);
        std::thread::sleep(Duration::from_millis(200));
    }
    let end_f = scrape(agent_f.addr);
    let end_i = scrape(agent_i.addr);
    running.stop();
    let (seen_f, seen_i) = (watch_f.stop(), watch_i.stop());
    let figures = |before: &str, end: Option<String>, seen: flood::Seen, scrapes: Vec<f64>| {
        let (iv, ok) = match &end {
            Some(t) => (
                flood::fans_intervals(t).since(&flood::fans_intervals(before)),
                true,
            ),
            None => (flood::Intervals::default(), false),
        };
        Figures {
            mean: iv.mean(),
            max_bound: iv.max_bound(),
            ticks: iv.count,
            rss_peak: seen.rss_peak,
            rss_end: seen.rss_end,
            scrape_ok: ok,
            scrapes,
        }
    };
    let row = Row {
        name: name.to_owned(),
        flooded: figures(&before_f, end_f, seen_f, lat_f),
        idle: figures(&before_i, end_i, seen_i, lat_i),
        refused_after,
    };
    drop((agent_f, agent_i));
    row
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs = std::env::var("ONPREM_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15u64);
    let window = Duration::from_secs(secs);
    let mut rows = Vec::new();
    for f in Flood::ALL {
        eprintln!("flood: {}", f.name());
        rows.push(run(f.name(), &[f], window));
    }
    eprintln!("flood: all at once");
    rows.push(run("all at once", &Flood::ALL, window));

    println!(
        "\nfans loop period {} s, {secs} s per flood, open-files limit {}; each flooded agent beside an idle one started with it\n",
        flood::FANS_PERIOD,
        flood::NOFILE
    );
    println!(
        "| flood | fans mean interval (flooded / idle / ratio) | longest interval ≤ (flooded / idle) | ticks (flooded / idle) | RSS peak MiB (flooded / idle / ratio) | RSS at end MiB (flooded / idle) | scrape latency p50 / max, s (flooded / idle) | scrape at end | bundle refused after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let (f, i) = (&r.flooded, &r.idle);
        let latency = format!(
            "{:.3} / {:.3} ({:.3} / {:.3})",
            pct(&f.scrapes, 0.5),
            pct(&f.scrapes, 1.0),
            pct(&i.scrapes, 0.5),
            pct(&i.scrapes, 1.0)
        );
        println!(
            "| {} | {:.3} / {:.3} / **{:.2}** | {} / {} s | {} / {} | {:.1} / {:.1} / **{:.2}** | {:.1} / {:.1} | {} | {} | {} |",
            r.name,
            f.mean,
            i.mean,
            f.mean / i.mean,
            f.max_bound,
            i.max_bound,
            f.ticks,
            i.ticks,
            f.rss_peak,
            i.rss_peak,
            f.rss_peak / i.rss_peak,
            f.rss_end,
            i.rss_end,
            latency,
            if f.scrape_ok { "ok" } else { "FAILED" },
            r.refused_after
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.2} s")),
        );
    }
}
