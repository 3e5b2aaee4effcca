//! The whole `/metrics` of an agent run on the fixture tree, compared with
//! `tests/golden/metrics.txt` (and the OpenMetrics rendering with
//! `metrics.openmetrics.txt`), after masking what varies between runs and
//! machines (time, uname, filesystem sizes, durations, process figures).
//!
//! Regenerate after an intended change with
//! `UPDATE_GOLDEN=1 cargo test --test golden`, and review the diff like code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{Agent, fixture_flags, fixtures};

/// Families whose values vary between runs or machines.
const VARYING_VALUES: &[&str] = &[
    "node_scrape_collector_duration_seconds",
    "node_time_seconds",
    "node_time_zone_offset_seconds",
    "node_filesystem_avail_bytes",
    "node_filesystem_free_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_files",
    "node_filesystem_files_free",
    "node_textfile_mtime_seconds",
];
/// Families whose label values vary between machines.
const VARYING_LABELS: &[&str] = &[
    "node_uname_info",
    "node_time_zone_offset_seconds",
    "onprem_build_info",
];

fn name_of(line: &str) -> &str {
    line.split(['{', ' ']).next().unwrap_or("")
}

fn mask_labels(line: &str) -> String {
    // name{a="x",b="y"} v -> name{a="*",b="*"} v
    let Some(open) = line.find('{') else {
        return line.to_owned();
    };
    let Some(close) = line.rfind('}') else {
        return line.to_owned();
    };
    let labels: Vec<String> = line[open + 1..close]
        .split("\",")
        .map(|kv| format!("{}=\"*", kv.split('=').next().unwrap_or("")))
        .collect();
    format!(
        "{}{{{}\"}}{}",
        &line[..open],
        labels.join("\","),
        &line[close + 1..]
    )
}

fn normalize(text: &str, root: &Path) -> String {
    let root = root.display().to_string();
    let mut out = String::new();
    for line in text.lines() {
        let line = line.replace(&root, "<fixtures>");
        if line.starts_with('#') {
            out.push_str(&line);
            out.push('\n');
            continue;
        }
        let name = name_of(&line);
        let base = name.trim_end_matches("_total");
        if name.starts_with("process_") {
            continue; // present-or-absent depends on the kernel; checked below
        }
        let mut l = if VARYING_LABELS.iter().any(|n| *n == name || *n == base) {
            mask_labels(&line)
        } else {
            line.clone()
        };
        if VARYING_VALUES.iter().any(|n| *n == name || *n == base) || name.starts_with("process_") {
            if let Some(i) = l.rfind(' ') {
                l.truncate(i);
                l.push_str(" <varies>");
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn check(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    if want != got {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(20)
            .map(|(i, (a, b))| format!("line {}:\n  want: {a}\n  got:  {b}", i + 1))
            .collect();
        panic!(
            "{name} differs from the golden file ({} vs {} lines); first differences:\n{}\nIf intended: UPDATE_GOLDEN=1 cargo test --test golden",
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn metrics_match_golden_file() {
    let root = fixtures();
    let agent = Agent::start(&fixture_flags(&root));
    let text = agent.scrape();
    for fam in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
    ] {
        assert_eq!(common::samples(&text, fam).len(), 1, "{fam} missing");
    }
    // Every collector succeeded on the fixture tree.
    for l in common::samples(&text, "node_scrape_collector_success") {
        assert!(l.ends_with(" 1"), "collector failed on fixtures: {l}");
    }
    check("metrics.txt", &normalize(&text, &root));
}

#[test]
fn openmetrics_matches_golden_file() {
    let root = fixtures();
    let agent = Agent::start(&fixture_flags(&root));
    let r = agent
        .client()
        .get(
            "/metrics",
            &[(
                "Accept",
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            )],
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = r.text();
    assert!(text.ends_with("# EOF\n"));
    check("metrics.openmetrics.txt", &normalize(&text, &root));
}
