//! The local commands as a shell uses them: output piped into `head`
//! that stops reading, and the help text people read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::Agent;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_onprem"))
}

fn repo(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .display()
        .to_string()
}

/// The write end of a pipe whose read end is already closed: the first
/// write into it fails with EPIPE, whatever the pipe's buffer would hold.
/// (The read end is the stdin of a process that has exited.)
fn closed_pipe() -> Stdio {
    let mut reader = bin()
        .arg("--version")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let write_end = reader.stdin.take().unwrap();
    assert!(reader.wait().unwrap().success());
    Stdio::from(write_end)
}

/// Runs `onprem ARGS` with its standard output a closed pipe; returns the
/// exit code and standard error.
fn into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let out = bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn no_command_panics_when_its_reader_stops_reading() {
    let example = repo("bundles/examples/pi5-fan-curve.yaml");
    let state = tempfile::tempdir().unwrap();
    let agent = Agent::start(&[
        "--hardware=sim".into(),
        format!("--bundle={example}"),
        format!("--state-dir={}", state.path().display()),
        "--collector.disable-defaults".into(),
    ]);
    let address = agent.addr.to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["explain", "--schema"],
        vec!["explain", "spec.fans.zones"],
        vec!["validate", &example],
        vec!["hw", "profiles"],
        vec!["hw", "probe", "--profile", "pi5-fan", "--hardware", "sim"],
        vec![
            "i2cdetect",
            "--hardware",
            "sim",
            "--profile",
            "pi-sixfab-ups",
            "1",
        ],
        vec!["status", "--address", &address, "-o", "json"],
        vec!["status", "--address", &address],
        vec!["--help"],
        vec!["agent", "--help"],
    ];
    let mut failures = Vec::new();
    for args in &commands {
        let (code, stderr) = into_closed_pipe(args);
        // 141: 128 + SIGPIPE, as a shell reports a program killed there.
        if code != Some(141) && code != Some(0) {
            failures.push(format!("{args:?}: exit {code:?}; stderr:\n{stderr}"));
        } else if !stderr.trim().is_empty() {
            failures.push(format!("{args:?}: said on stderr:\n{stderr}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn stdout_of(args: &[&str]) -> String {
    let out = bin().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The option help paragraphs of a `--help` page: `--flag <V>` and the
/// text below it, joined.
fn option_helps(help: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        if t.starts_with("--") || (t.starts_with('-') && t.len() > 1 && line.starts_with("  ")) {
            out.push((t.to_owned(), String::new()));
        } else if let Some((_, text)) = out.last_mut() {
            if !t.is_empty() {
                text.push(' ');
                text.push_str(t);
            }
        }
    }
    out
}

#[test]
fn agent_help_says_what_the_agent_does_today() {
    let help = stdout_of(&["agent", "--help"]);
    let unit = std::fs::read_to_string(repo("systemd/onprem-agent.service")).unwrap();
    for (what, text) in [("agent --help", &help), ("the agent's unit file", &unit)] {
        for stale in ["later", "as they land"] {
            assert!(!text.contains(stale), "{what} says {stale:?}:\n{text}");
        }
    }
    for word in [
        "reconcile loops",
        "Redfish",
        "dial-home",
        "--no-collector.<name>",
    ] {
        assert!(help.contains(word), "agent --help lacks {word:?}:\n{help}");
    }
    // Every collector can be turned off, and the help says how.
    for (name, _, _) in onprem::exporter::COLLECTORS {
        let flag = format!("--no-collector.{name} ");
        assert!(help.contains(&flag), "agent --help lacks {flag:?}");
    }
    // No option's help stops mid-sentence.
    let helps = option_helps(&help);
    assert!(helps.len() > 20, "{helps:?}");
    for (flag, text) in &helps {
        let last = text
            .trim_end_matches(['.', ')'])
            .rsplit(' ')
            .next()
            .unwrap_or_default();
        assert!(
            ![
                "is", "the", "a", "an", "and", "or", "then", "of", "to", "with"
            ]
            .contains(&last),
            "{flag}: its help is cut off: {text:?}"
        );
    }
}

#[test]
fn the_readme_counts_and_names_every_collector() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let names: Vec<&str> = onprem::exporter::COLLECTORS
        .iter()
        .map(|(n, _, _)| *n)
        .collect();
    let line = readme
        .lines()
        .find(|l| l.starts_with("| `onprem agent` |"))
        .expect("the README's `onprem agent` row");
    let (count, rest) = line
        .trim_start_matches("| `onprem agent` |")
        .trim_start()
        .split_once(" collectors: `")
        .expect("N collectors: `…`");
    let listed: Vec<&str> = rest.split('`').next().unwrap().split(' ').collect();
    assert_eq!(count, names.len().to_string(), "{line}");
    assert_eq!(listed, names, "{line}");
    let defaults = onprem::exporter::COLLECTORS
        .iter()
        .filter(|(_, on, _)| *on)
        .count();
    let row = format!("`--no-collector.<name>` | all {defaults} on |");
    assert!(
        readme.contains(&row),
        "the README's config table lacks {row:?}"
    );
}
