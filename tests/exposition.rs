//! The agent's output read by independent parsers: the Python Prometheus
//! client's text and OpenMetrics parsers (every family and sample, with
//! its value), and `promtool check metrics` (no parse error, and no lint
//! finding that node_exporter's own output for the same collectors does
//! not also have).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use common::{Agent, fixture_flags, fixtures, require};

fn pipe(program: &str, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn python_parse(format: &str, text: &str) -> serde_json::Value {
    require("python3", "python3");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/parse_metrics.py");
    let (code, out, err) = pipe("python3", &[script, format], text);
    assert!(
        !err.contains("No module named 'prometheus_client'"),
        "the Python Prometheus client is missing: pip install prometheus-client (scripts/test.sh does)"
    );
    assert_eq!(
        code, 0,
        "the Python {format} parser rejected our output:\n{err}"
    );
    serde_json::from_str(&out).unwrap()
}

/// A sample: name, sorted labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Every sample line of a 0.0.4 text.
fn our_samples(text: &str) -> Vec<Sample> {
    let fams = common::expo::read(text);
    let mut out = Vec::new();
    for fam in fams.values() {
        for (series, value) in &fam.samples {
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series.as_str(), ""),
            };
            let mut pairs: Vec<(String, String)> = Vec::new();
            let mut rest = labels;
            while let Some((k, v)) = rest.split_once("=\"") {
                // Find the closing quote, skipping escaped ones.
                let mut end = 0;
                let bytes = v.as_bytes();
                while end < bytes.len()
                    && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\'))
                {
                    end += 1;
                }
                let val = v[..end]
                    .replace("\\\"", "\"")
                    .replace("\\n", "\n")
                    .replace("\\\\", "\\");
                pairs.push((k.trim_start_matches(',').to_owned(), val));
                rest = &v[(end + 1).min(v.len())..];
            }
            pairs.sort();
            let v = match value.as_str() {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap(),
            };
            out.push((name.to_owned(), pairs, v));
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

fn their_samples(v: &serde_json::Value) -> Vec<Sample> {
    let mut out: Vec<_> = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels: Vec<(String, String)> = s[1]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            (
                s[0].as_str().unwrap().to_owned(),
                labels,
                s[2].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

#[test]
fn python_parsers_read_every_sample() {
    let agent = Agent::start(&fixture_flags(&fixtures()));
    let text = agent.scrape();
    let ours = our_samples(&text);
    let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();

    let parsed = python_parse("text", &text);
    assert_eq!(parsed["families"].as_u64().unwrap() as usize, families);
    let theirs = their_samples(&parsed);
    assert_eq!(theirs.len(), ours.len());
    for (t, o) in theirs.iter().zip(&ours) {
        assert_eq!((&t.0, &t.1), (&o.0, &o.1));
        // Time moves between the two reads only if the parsers disagree.
        assert!(
            t.2 == o.2 || (t.2.is_nan() && o.2.is_nan()),
            "{}: {} vs {}",
            o.0,
            t.2,
            o.2
        );
    }

    let om = agent
        .client()
        .get(
            "/metrics",
            &[("Accept", "application/openmetrics-text; version=1.0.0")],
        )
        .unwrap()
        .text();
    let parsed = python_parse("openmetrics", &om);
    assert_eq!(parsed["families"].as_u64().unwrap() as usize, families);
    assert_eq!(parsed["samples"].as_array().unwrap().len(), ours.len());
}

fn findings(output: &str) -> BTreeSet<String> {
    output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn promtool_finds_nothing_node_exporter_does_not_also_have() {
    let promtool = require("promtool", "Debian's prometheus package");
    let ne = require(
        "prometheus-node-exporter",
        "Debian's prometheus-node-exporter",
    );
    let root = fixtures();
    let flags = fixture_flags(&root);
    let agent = Agent::start(&flags);
    let ours = agent.scrape();
    let (code, out, err) = pipe(promtool.to_str().unwrap(), &["check", "metrics"], &ours);
    assert_ne!(code, 1, "promtool could not parse our output:\n{out}{err}");
    let our_findings = findings(&format!("{out}{err}"));

    // node_exporter on the same tree with every collector it shares with us.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(ne)
        .args(
            flags
                .iter()
                .filter(|f| !f.starts_with("--collector.textfile")),
        )
        .arg(format!(
            "--collector.textfile.directory={}",
            root.join("textfile").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .args([
            "--collector.netdev.device-exclude=",
            "--no-collector.netdev.netlink",
            "--no-collector.systemd",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let theirs = loop {
        if let Ok(r) = common::Client::new(addr).get("/metrics", &[]) {
            break r.text();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node_exporter did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    let (_, out, err) = pipe(promtool.to_str().unwrap(), &["check", "metrics"], &theirs);
    let their_findings = findings(&format!("{out}{err}"));
    assert!(
        !their_findings.is_empty(),
        "node_exporter's own names trip promtool's lints; none seen means the run failed"
    );
    let extra: Vec<&String> = our_findings.difference(&their_findings).collect();
    assert!(
        extra.is_empty(),
        "promtool findings node_exporter does not have:\n{extra:#?}"
    );
}
