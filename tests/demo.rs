//! `onprem demo` starts an agent over this machine, prints its URL and a
//! live summary, and stops cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn demo_prints_url_and_live_summary_then_stops() {
    let out = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args(["demo", "--duration", "1.5", "--every", "0.4"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("metrics:"))
        .expect("URL line")
        .trim()
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"),
        "{url}"
    );
    let summaries: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" families, "))
        .collect();
    assert!(
        summaries.len() >= 2,
        "expected a live summary, got:\n{stdout}"
    );
    for s in &summaries {
        let families: usize = s
            .split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(families > 50, "{s}");
        assert!(s.contains("samples") && s.contains("scrape"), "{s}");
        // The simulated Sixfab node: six devices, all read.
        assert!(s.contains("devices 6/6 up"), "{s}");
        assert!(s.contains("ups/temperature"), "{s}");
    }
    assert!(stdout.contains("onprem demo: stopped"));
}
