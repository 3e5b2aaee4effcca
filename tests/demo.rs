//! `onprem demo` runs a control plane and several simulated nodes that
//! enrol and converge on the example bundles, prints their URLs, the CLI
//! commands that work against it (run here from another process) and a
//! live summary per node, and stops cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use onprem::httpc::Client;

const NODES: [&str; 4] = [
    "pi5-fan-curve",
    "gpu-server-pid",
    "pi-ups-shutdown",
    "cm4-adc-signals",
];

/// The number after `key ` in a summary line (`line-pressure 5.03`).
fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = line.split(&format!("{key} ")).nth(1)?;
    rest.split([' ', '%', '°']).next()?.parse().ok()
}

#[test]
fn demo_runs_simulated_nodes_with_the_example_bundles_then_stops() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args([
            "demo",
            "--duration",
            "9",
            "--every",
            "1",
            "--load-step",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            println!("[demo] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    // The header: one URL per node, the first with this machine's metrics.
    while !lines.iter().any(|l: &String| l.starts_with("Press Ctrl-C")) {
        lines.push(
            rx.recv_timeout(Duration::from_secs(60))
                .expect("demo header"),
        );
    }
    let urls: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            let url = w.next()?;
            url.starts_with("http://127.0.0.1:")
                .then(|| (name.to_owned(), url.to_owned()))
        })
        .collect();
    let names: Vec<&str> = urls.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, NODES, "{lines:#?}");
    // Each node is a whole agent: scrape the first while the demo runs.
    let addr = urls[0]
        .1
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap();
    let r = Client::new(addr).get("/metrics", &[]).unwrap();
    assert_eq!(r.status, 200);
    let m = r.text();
    assert!(m.contains("node_cpu_seconds_total{"), "no host metrics");
    assert!(m.contains("name=\"pi5-fan-curve\",version=\""), "{m}");
    // The printed CLI commands work from another process.
    let config = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("export ONPREM_CONFIG="))
        .expect("the ONPREM_CONFIG line")
        .to_owned();
    let login: Vec<String> = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("onprem login "))
        .expect("the login line")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_onprem"))
            .args(args)
            .env("ONPREM_CONFIG", &config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "onprem {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let mut args = vec!["login"];
    args.extend(login.iter().map(String::as_str));
    assert!(cli(&args).starts_with("logged in to https://127.0.0.1:"));
    let devices: Vec<serde_json::Value> =
        serde_json::from_str(&cli(&["get", "devices", "-o", "json"])).unwrap();
    let mut seen: Vec<&str> = devices
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    seen.sort_unstable();
    let mut want = NODES.to_vec();
    want.sort_unstable();
    assert_eq!(seen, want);
    for d in &devices {
        assert_eq!(d["online"], true, "{d}");
        assert_eq!(d["converged"], true, "{d}");
        assert_eq!(d["tainted"], false, "{d}");
        assert_eq!(d["current"]["name"], d["name"], "{d}");
    }
    let table = cli(&["get", "devices", "-l", "example=cm4-adc-signals"]);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains("cm4-adc-signals"), "{table}");

    // Every node serves Redfish; the printed redfishtool line works as is.
    let redfish = lines
        .iter()
        .filter(|l| l.trim().starts_with("https://127.0.0.1:") && l.ends_with("(Redfish)"))
        .count();
    assert_eq!(redfish, NODES.len(), "{lines:#?}");
    let rt_line = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("redfishtool "))
        .expect("a redfishtool line");
    let args: Vec<&str> = rt_line
        .split("   (")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let rt = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/redfish-venv/bin/redfishtool");
    assert!(
        rt.is_file(),
        "{} is missing: run `bash scripts/test.sh`",
        rt.display()
    );
    let out = Command::new(rt).args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "redfishtool {args:?}: {text}");
    let system: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(system["@odata.id"], "/redfish/v1/Systems/1", "{text}");
    assert_eq!(system["Model"], "simulated node", "{text}");

    for l in rx.iter() {
        lines.push(l);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "demo exit {status}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("load step: every node to 100 %"))
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("onprem demo: stopped")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("control plane: 4/4 online, 4 converged, 0 tainted")),
        "{lines:#?}"
    );
    for name in NODES {
        let rows: Vec<&String> = lines
            .iter()
            .filter(|l| l.trim_start().starts_with(&format!("{name} ")))
            .filter(|l| l.contains(" | loops "))
            .collect();
        assert!(rows.len() >= 5, "{name}: a live summary: {lines:#?}");
        // Loops ready on every line: the bundle applied and ran.
        for r in &rows {
            let version = r.split_whitespace().nth(1).unwrap_or_default();
            assert!(
                version
                    .strip_prefix('v')
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|v| v > 0),
                "{r}"
            );
            assert!(!r.contains("not ready"), "{r}");
            assert!(!r.contains("FAILSAFE"), "{r}");
            let cpu = number_after(r, "cpu").unwrap_or_else(|| panic!("no cpu: {r}"));
            assert!((20.0..90.0).contains(&cpu), "{r}");
        }
        let last = rows.last().unwrap();
        match name {
            "pi5-fan-curve" => assert!(last.contains("loops checks,fans,power"), "{last}"),
            "gpu-server-pid" => {
                assert!(last.contains("gpu/0 ") && last.contains("gpu/1 "), "{last}");
                let duty = number_after(last, "zone chassis").unwrap();
                assert!((15.0..=100.0).contains(&duty), "{last}");
            }
            "pi-ups-shutdown" => {
                assert!(last.contains("ups 100% on mains"), "{last}");
                assert!(last.contains("loops checks,power"), "{last}");
            }
            "cm4-adc-signals" => {
                // 1.44 V ± 0.3 V on the ADC, scaled to bar: 5 ± 1.6.
                let p = number_after(last, "line-pressure").unwrap();
                assert!((3.0..7.0).contains(&p), "{last}");
                // 150 pulses/s at 450 per litre: the volume grows.
                let first = number_after(rows[1], "flow-volume").unwrap();
                let v = number_after(last, "flow-volume").unwrap();
                assert!(v > first, "flow volume {first} → {v}");
                assert!(last.contains("signals"), "{last}");
            }
            _ => unreachable!(),
        }
    }
}
