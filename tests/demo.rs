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

/// The binary under test: `$ONPREM_DEMO_BIN` (CI points it at the
/// release build, as the README's `cargo run --release -- demo` runs
/// it), else the test build's.
fn bin() -> std::path::PathBuf {
    std::env::var_os("ONPREM_DEMO_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_onprem").into())
}

/// What each demo node's board calls itself.
fn board_model(node: &str) -> &'static str {
    match node {
        "pi5-fan-curve" => "Raspberry Pi 5 Model B Rev 1.0",
        "gpu-server-pid" => "GPU server (simulated)",
        "pi-ups-shutdown" => "Raspberry Pi 4 Model B Rev 1.5",
        "cm4-adc-signals" => "Raspberry Pi Compute Module 4 Rev 1.1",
        other => panic!("no board for {other}"),
    }
}

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
    let mut child = Command::new(bin())
        .args([
            "demo",
            "--duration",
            "300",
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
    // A failed assertion must not leave the demo running (it holds its
    // nodes' ports).
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
    let _guard = KillOnDrop(child.id());
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
            (url.starts_with("http://127.0.0.") && url.ends_with("/metrics"))
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
        let out = Command::new(bin())
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
    let mut addresses = Vec::new();
    for d in &devices {
        assert_eq!(d["online"], true, "{d}");
        // Converged: its bundle applied, every loop ready.
        assert_eq!(d["converged"], true, "{d}");
        assert_eq!(d["state"], "Converged", "{d}");
        assert_eq!(d["loopsReady"], d["loops"], "{d}");
        assert!(d["loops"].as_u64().unwrap() >= 2, "{d}");
        assert_eq!(d["tainted"], false, "{d}");
        assert_eq!(d["current"]["name"], d["name"], "{d}");
        // It says what its board is, where it is, at an address of its own.
        assert_eq!(
            d["facts"]["model"],
            board_model(d["name"].as_str().unwrap()),
            "{d}"
        );
        assert_eq!(d["facility"], "demo-lab", "{d}");
        assert!(!d["chassis"].as_str().unwrap().is_empty(), "{d}");
        addresses.push(d["lastIpAddr"].as_str().unwrap().to_owned());
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), NODES.len(), "{addresses:?}");
    let table = cli(&["get", "devices", "-l", "example=cm4-adc-signals"]);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains("cm4-adc-signals"), "{table}");

    // Every node serves Redfish; the printed redfishtool line works as is.
    let redfish: Vec<String> = lines
        .iter()
        .filter(|l| l.trim().starts_with("https://127.0.0.") && l.ends_with("(Redfish)"))
        .map(|l| l.trim().to_owned())
        .collect();
    assert_eq!(redfish.len(), NODES.len(), "{lines:#?}");
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
    assert_eq!(system["Model"], board_model(NODES[0]), "{text}");

    // Every node's Redfish through the control plane's tunnel, with sushy:
    // each tunnel reaches its own node (each answers with its own board).
    let password = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("export ONPREM_REDFISH_PASSWORD="))
        .expect("the ONPREM_REDFISH_PASSWORD line")
        .to_owned();
    assert!(
        lines
            .iter()
            .any(|l| l.trim().starts_with("onprem port-forward device/")),
        "{lines:#?}"
    );
    let python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/redfish-venv/bin/python");
    let sushy =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redfish/sushy_check.py");
    for (name, rf) in NODES.iter().zip(&redfish) {
        let port = rf
            .trim_end_matches("/redfish/v1 (Redfish)")
            .rsplit(':')
            .next()
            .unwrap()
            .to_owned();
        let mut pf = Command::new(bin())
            .args([
                "port-forward",
                &format!("device/{name}"),
                &format!(":{port}"),
            ])
            .env("ONPREM_CONFIG", &config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(pf.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let local = first
            .strip_prefix("Forwarding from ")
            .and_then(|r| r.split(" -> ").next())
            .unwrap_or_else(|| panic!("port-forward said {first:?}"))
            .to_owned();
        let out = Command::new(&python)
            .arg(&sushy)
            .args([&format!("https://{local}"), "admin", &password, "none"])
            .output()
            .unwrap();
        let _ = pf.kill();
        let _ = pf.wait();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "sushy through the tunnel to {name}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(seen["model"], board_model(name), "{name}: {text}");
        assert_eq!(seen["systems"][0], "/redfish/v1/Systems/1", "{text}");
    }

    // `onprem curl --device` and `onprem reset` reach the node named, and
    // no other.
    let with_pw = |args: &[&str]| {
        let out = Command::new(bin())
            .args(args)
            .env("ONPREM_CONFIG", &config)
            .env("ONPREM_REDFISH_PASSWORD", &password)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "onprem {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let port_of = |i: usize| {
        redfish[i]
            .trim_end_matches("/redfish/v1 (Redfish)")
            .rsplit(':')
            .next()
            .unwrap()
            .to_owned()
    };
    // The node's event log (Managers/1), where the power loop records
    // each reset it was asked for.
    let resets = |i: usize| {
        with_pw(&[
            "curl",
            "--device",
            NODES[i],
            "/redfish/v1/Managers/1/LogServices/Log/Entries",
            "-u",
            "admin",
            "--port",
            &port_of(i),
        ])
        .matches("force-reboot")
        .count()
    };
    let before: Vec<usize> = (0..NODES.len()).map(resets).collect();
    with_pw(&[
        "reset",
        &format!("device/{}", NODES[1]),
        "--type",
        "ForceRestart",
        "--redfish-port",
        &port_of(1),
    ]);
    for (i, n) in NODES.iter().enumerate() {
        let now = resets(i);
        if i == 1 {
            assert!(now > before[i], "{n}: the reset did not arrive");
        } else {
            assert_eq!(now, before[i], "{n} got another node's reset");
        }
    }

    // Eight summaries (the load steps at 3 s), then stopped as an
    // operator stops it: SIGTERM.
    while lines
        .iter()
        .filter(|l| l.contains("  control plane: "))
        .count()
        < 8
    {
        lines.push(
            rx.recv_timeout(Duration::from_secs(60))
                .expect("the live summary"),
        );
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
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
        // Loops ready on every line: the bundle applied and ran (the UPS
        // node's until its scenario's mains loss at 20 s, when its power
        // loop goes on battery).
        let ready = if name == "pi-ups-shutdown" {
            &rows[..rows.len().min(10)]
        } else {
            &rows[..]
        };
        for r in ready {
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
                // Before the scenario's mains loss (at 20 s).
                let early = rows[rows.len().min(10) - 1];
                assert!(early.contains("ups 100% on mains"), "{early}");
                assert!(early.contains("loops checks,power"), "{early}");
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
