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
