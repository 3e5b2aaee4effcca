//! The fleet CLI as a script uses it: the real `onprem` binary, run as a
//! child process against a control plane and an enrolled simulated node
//! on loopback. Output formats (table, wide, json, yaml, name), label
//! selectors, apply/diff/delete outcomes and every documented exit code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cli::{expect, onprem_env, onprem_stdin};
use common::fleet::{bundle_record, start_agent, until};
use onprem::controlplane;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The `pi5-fan-curve` example as a Bundle record for `board=pi5`.
fn bundle(period: &str) -> String {
    bundle_record("fans", "{matchLabels: {board: pi5}}", "").replacen(
        "period: 1s",
        &format!("period: {period}"),
        1,
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_the_fleet_with_reliable_output_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let mut o = controlplane::Options::for_tests(dir.path().join("cp"));
    o.heartbeat_seconds = 1;
    let cp = controlplane::start(o, stop.clone()).await.unwrap();
    let url = cp.url();
    let admin = cp.admin_token.clone().unwrap();
    let config = dir.path().join("admin.yaml");

    // Not logged in: 4, with what to do.
    let r = expect(&config, &["get", "devices"], 4).await;
    assert!(r.stderr.contains("onprem login"), "{r:?}");
    // A CA that is not the pinned one: 3, nothing saved.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let r = expect(
        &config,
        &["login", &url, "--token", &admin, "--ca-fingerprint", &wrong],
        3,
    )
    .await;
    assert!(r.stderr.contains("fingerprint"), "{r:?}");
    assert!(!config.exists());
    // A token the control plane does not know: 4.
    let r = expect(
        &config,
        &[
            "login",
            &url,
            "--token",
            "onp_aaaaaaaaaaaaaaaaaaaa_bbbb",
            "--ca-fingerprint",
            &cp.ca_fingerprint,
        ],
        4,
    )
    .await;
    assert!(!r.stderr.is_empty());
    // The admin logs in; the login is private to its user.
    let r = expect(
        &config,
        &[
            "login",
            &url,
            "--token",
            &admin,
            "--ca-fingerprint",
            &cp.ca_fingerprint,
        ],
        0,
    )
    .await;
    assert!(r.stdout.contains("as admin (admin)"), "{r:?}");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A bad flag: clap's usage error, 2.
    expect(&config, &["get", "devices", "-o", "xml"], 2).await;

    // An enrolment token: the token alone on stdout, the agent's command
    // line on stderr.
    let r = expect(
        &config,
        &[
            "token",
            "create",
            "--enrol",
            "--label",
            "board=pi5",
            "--ttl",
            "10m",
        ],
        0,
    )
    .await;
    let enrol = r.stdout.trim().to_owned();
    assert!(enrol.starts_with("onpe_") && !enrol.contains(' '), "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "--enrol-token-file - --ca-fingerprint {} <<<'{enrol}'",
            cp.ca_fingerprint
        )),
        "{r:?}"
    );
    start_agent(&cp, dir.path(), "pi-a", &enrol, &stop).await;
    until("pi-a online", Duration::from_secs(60), || {
        cp.core.devices().iter().any(|d| d.online).then_some(())
    })
    .await;

    // apply -f DIR: every record, in file order, with its outcome.
    let fleet = dir.path().join("fleet");
    std::fs::create_dir(&fleet).unwrap();
    write(
        &fleet,
        "10-facility.yaml",
        "apiVersion: onprem/v1\nkind: Facility\nmetadata: {name: lab}\nspec: {description: bench lab}\n",
    );
    write(&fleet, "20-bundle.yaml", &bundle("1s"));
    write(&fleet, "README.txt", "not a record");
    let fleet_arg = fleet.to_str().unwrap();
    let r = expect(&config, &["apply", "-f", fleet_arg], 0).await;
    assert_eq!(r.stdout, "facility/lab created\nbundle/fans created\n");
    until("pi-a converged", Duration::from_secs(60), || {
        cp.core
            .devices()
            .iter()
            .any(|d| d.converged && d.device.current.version > 0)
            .then_some(())
    })
    .await;
    let r = expect(&config, &["apply", "-f", fleet_arg], 0).await;
    assert_eq!(r.stdout, "facility/lab unchanged\nbundle/fans unchanged\n");
    // diff: nothing to change, 0.
    let r = expect(&config, &["diff", "-f", fleet_arg], 0).await;
    assert_eq!(r.stdout, "");

    // A change: diff shows it and exits 1; a dry run stores nothing.
    let changed = write(dir.path(), "changed.yaml", &bundle("2s"));
    let changed = changed.to_str().unwrap();
    let r = expect(&config, &["diff", "-f", changed], 1).await;
    assert!(
        r.stdout.contains("-    period: 1s") && r.stdout.contains("+    period: 2s"),
        "{r:?}"
    );
    let r = expect(&config, &["apply", "-f", changed, "--dry-run"], 0).await;
    assert_eq!(r.stdout, "bundle/fans configured (dry run)\n");
    expect(&config, &["diff", "-f", changed], 1).await;

    // Invalid: 7, every error with file, record and path; nothing stored.
    let bad = write(dir.path(), "bad.yaml", &bundle("5x"));
    let r = expect(&config, &["apply", "-f", bad.to_str().unwrap()], 7).await;
    assert!(
        r.stderr.contains(&format!(
            "{}[0] Bundle/fans: spec.fans.period:",
            bad.display()
        )),
        "{r:?}"
    );
    assert!(r.stderr.contains("nothing was stored"), "{r:?}");
    expect(&config, &["diff", "-f", fleet_arg], 0).await;
    // A file that is not there: 2.
    expect(&config, &["apply", "-f", "/nonexistent/x.yaml"], 2).await;

    // get devices: the seed's columns, then online and bundle.
    let r = expect(&config, &["get", "devices"], 0).await;
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{r:?}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "ID",
            "NAME",
            "MANUFACTURER",
            "MODEL",
            "UUID",
            "LASTIPADDR",
            "TAINTED",
            "ONLINE",
            "BUNDLE",
            "STATE",
            "LOOPS"
        ]
    );
    // Each cell starts under its header.
    let cell = |h: &str| {
        let at = lines[0].find(h).unwrap();
        lines[1][at..]
            .split("   ")
            .next()
            .unwrap()
            .trim()
            .to_owned()
    };
    let d = &cp.core.devices()[0];
    assert_eq!(cell("ID"), d.device.id);
    assert_eq!(cell("NAME"), "pi-a");
    assert_eq!(cell("MODEL"), d.device.facts.model);
    assert_eq!(cell("UUID"), d.device.facts.uuid);
    assert_eq!(cell("TAINTED"), "false");
    assert_eq!(cell("ONLINE"), "true");
    let version = cp.core.rollouts()[0].version;
    assert_eq!(cell("BUNDLE"), format!("fans@{version}"));
    assert_eq!(cell("STATE"), "Converged");
    assert_eq!(
        cell("LOOPS"),
        format!("{}/{}", d.health.loops, d.health.loops)
    );
    let r = expect(
        &config,
        &["get", "devices", "-o", "wide", "--no-headers"],
        0,
    )
    .await;
    assert!(
        r.stdout.contains("board=pi5") && !r.stdout.contains("NAME"),
        "{r:?}"
    );
    // json and yaml carry the same record.
    let j: Vec<Value> = serde_json::from_str(
        &expect(&config, &["get", "devices", "-o", "json"], 0)
            .await
            .stdout,
    )
    .unwrap();
    let y: Vec<Value> = serde_yaml_ng::from_str(
        &expect(&config, &["get", "devices", "-o", "yaml"], 0)
            .await
            .stdout,
    )
    .unwrap();
    assert_eq!(j.len(), 1);
    assert_eq!(j[0]["id"], y[0]["id"]);
    assert_eq!(j[0]["labels"]["board"], "pi5");
    assert_eq!(j[0]["converged"], true);
    let r = expect(&config, &["get", "devices", "-o", "name"], 0).await;
    assert_eq!(r.stdout, "device/pi-a\n");
    // Label selectors.
    let r = expect(
        &config,
        &["get", "devices", "-l", "board=pi5", "-o", "name"],
        0,
    )
    .await;
    assert_eq!(r.stdout, "device/pi-a\n");
    let r = expect(
        &config,
        &["get", "devices", "-l", "board!=pi5", "-o", "name"],
        0,
    )
    .await;
    assert_eq!(r.stdout, "");
    let r = expect(&config, &["get", "devices", "-l", "board in (pi5"], 7).await;
    assert!(r.stderr.contains("selector"), "{r:?}");
    // One by name; one that is not there: 6.
    expect(&config, &["get", "device", "pi-a", "-o", "name"], 0).await;
    expect(&config, &["get", "device", "nope"], 6).await;
    expect(&config, &["get", "widgets"], 7).await;
    let r = expect(&config, &["get", "bundles"], 0).await;
    assert!(
        r.stdout.lines().nth(1).unwrap().starts_with("fans "),
        "{r:?}"
    );
    assert!(r.stdout.contains("Complete"), "{r:?}");

    // get KIND NAME -o yaml|json is the record: applied back, nothing
    // changes.
    for (kind, name) in [("device", "pi-a"), ("bundle", "fans")] {
        for format in ["yaml", "json"] {
            let r = expect(&config, &["get", kind, name, "-o", format], 0).await;
            let file = dir.path().join(format!("{kind}.{format}"));
            std::fs::write(&file, &r.stdout).unwrap();
            let r = expect(&config, &["apply", "-f", file.to_str().unwrap()], 0).await;
            assert_eq!(r.stdout, format!("{kind}/{name} unchanged\n"), "{r:?}");
        }
    }
    let r = onprem_stdin(
        &config,
        &["apply", "-f", "-"],
        &expect(&config, &["get", "device", "pi-a", "-o", "yaml"], 0)
            .await
            .stdout,
    )
    .await;
    assert_eq!(r.stdout, "device/pi-a unchanged\n", "{r:?}");

    // A Device record's labels are its own; those of enrolment and facts
    // stay, and diff shows exactly what apply does.
    let arch = cp.core.device("pi-a").unwrap().device.labels["arch"].clone();
    let tier = dir.path().join("tier.yaml");
    std::fs::write(
        &tier,
        "apiVersion: onprem/v1\nkind: Device\nmetadata: {name: pi-a, labels: {tier: edge}}\n",
    )
    .unwrap();
    let r = expect(&config, &["diff", "-f", tier.to_str().unwrap()], 1).await;
    assert!(r.stdout.contains("+    tier: edge"), "{r:?}");
    assert!(!r.stdout.contains("-    board: pi5"), "{r:?}");
    let r = expect(&config, &["apply", "-f", tier.to_str().unwrap()], 0).await;
    assert_eq!(r.stdout, "device/pi-a configured\n", "{r:?}");
    let labels = cp.core.device("pi-a").unwrap().device.labels;
    assert_eq!(labels["tier"], "edge");
    assert_eq!(labels["board"], "pi5", "the enrolment label was dropped");
    assert_eq!(labels["arch"], arch);
    // The bundle still selects it.
    assert_eq!(
        cp.core.device("pi-a").unwrap().device.desired_version,
        version
    );
    // A label the file named and no longer names goes; the others stay.
    std::fs::write(
        &tier,
        "apiVersion: onprem/v1\nkind: Device\nmetadata: {name: pi-a, labels: {}}\n",
    )
    .unwrap();
    let r = expect(&config, &["diff", "-f", tier.to_str().unwrap()], 1).await;
    assert!(r.stdout.contains("-    tier: edge"), "{r:?}");
    expect(&config, &["apply", "-f", tier.to_str().unwrap()], 0).await;
    let labels = cp.core.device("pi-a").unwrap().device.labels;
    assert!(!labels.contains_key("tier"), "{labels:?}");
    assert_eq!(labels["board"], "pi5");

    // edit: the record in $EDITOR, applied on save.
    let editor = |name: &str, script: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\nset -e\n{script}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let add_rack = editor(
        "add-rack",
        "sed -i 's/^  labels:$/  labels:\\n    rack: r12/' \"$1\"",
    );
    let r = onprem_env(
        &config,
        &["edit", "device", "pi-a"],
        &[("EDITOR", add_rack.as_str())],
    )
    .await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "device/pi-a configured\n"),
        "{r:?}"
    );
    let labels = cp.core.device("pi-a").unwrap().device.labels;
    assert_eq!(labels["rack"], "r12");
    assert_eq!(labels["board"], "pi5");
    // Saved unchanged: nothing applied.
    let r = onprem_env(&config, &["edit", "device", "pi-a"], &[("EDITOR", "true")]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("unchanged"), "{r:?}");
    // Changed by someone else while in the editor: a conflict (9),
    // nothing stored, the edit kept.
    let other = dir.path().join("other.yaml");
    std::fs::write(
        &other,
        "apiVersion: onprem/v1\nkind: Device\nmetadata: {name: pi-a, labels: {rack: r13}}\n",
    )
    .unwrap();
    let racing = editor(
        "racing",
        &format!(
            "{} apply -f {} >/dev/null\nsed -i 's/rack: r12/rack: r14/' \"$1\"",
            env!("CARGO_BIN_EXE_onprem"),
            other.display()
        ),
    );
    let r = onprem_env(
        &config,
        &["edit", "device", "pi-a"],
        &[("EDITOR", racing.as_str())],
    )
    .await;
    assert_eq!(r.code, 9, "{r:?}");
    assert!(r.stderr.contains("changed since it was read"), "{r:?}");
    let kept = r
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("onprem: your edit is kept in "))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(std::fs::read_to_string(kept).unwrap().contains("rack: r14"));
    assert_eq!(cp.core.device("pi-a").unwrap().device.labels["rack"], "r13");
    // An invalid edit is refused (7) with its path.
    let bad = editor(
        "bad",
        "sed -i \"s/^  facility: .*$/  facility: nowhere/\" \"$1\"",
    );
    let r = onprem_env(
        &config,
        &["edit", "device", "pi-a"],
        &[("EDITOR", bad.as_str())],
    )
    .await;
    assert_eq!(r.code, 7, "{r:?}");
    assert!(
        r.stderr.contains("spec.facility: no Facility \"nowhere\""),
        "{r:?}"
    );
    // Not an editable kind: 2.
    expect(&config, &["edit", "users", "admin"], 2).await;

    // describe device: facts, bundle, conditions, telemetry, events.
    let r = expect(&config, &["describe", "device", "pi-a"], 0).await;
    for want in [
        "Name:           pi-a",
        "Hardware:",
        &format!("Desired:      fans version {version}"),
        &format!("Current:      fans version {version}"),
        "Conditions:",
        "Loop/fans",
        "Telemetry:",
        "Events:",
    ] {
        assert!(r.stdout.contains(want), "{want:?} in {}", r.stdout);
    }
    let d: Value = serde_json::from_str(
        &expect(&config, &["describe", "device", "pi-a", "-o", "json"], 0)
            .await
            .stdout,
    )
    .unwrap();
    assert_eq!(d["name"], "pi-a");
    expect(&config, &["describe", "device", "nope"], 6).await;

    // watch: the device now, as JSON lines, until stopped.
    let mut child = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args(["watch", "devices", "-o", "json"])
        .env("ONPREM_CONFIG", &config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let w: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(w["name"], "pi-a", "{first}");

    // A viewer reads but may not apply (5) or make tokens (5).
    let r = expect(
        &config,
        &["token", "create", "--role", "viewer", "--user", "vera"],
        0,
    )
    .await;
    let viewer_token = r.stdout.trim().to_owned();
    let viewer = dir.path().join("viewer.yaml");
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &cp.ca_pem).unwrap();
    let r = expect(
        &viewer,
        &[
            "login",
            &url,
            "--token",
            &viewer_token,
            "--ca-file",
            ca_file.to_str().unwrap(),
        ],
        0,
    )
    .await;
    assert!(r.stdout.contains("as vera (viewer)"), "{r:?}");
    expect(&viewer, &["get", "devices", "-o", "name"], 0).await;
    let r = expect(&viewer, &["apply", "-f", changed], 5).await;
    assert!(r.stderr.contains("operator"), "{r:?}");
    expect(&viewer, &["token", "create", "--enrol"], 5).await;
    expect(&viewer, &["get", "tokens"], 5).await;
    let r = expect(&config, &["get", "tokens", "-o", "json"], 0).await;
    let tokens: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    assert!(tokens.iter().any(|t| t["user"] == "vera"));
    assert!(!r.stdout.contains(&viewer_token), "a secret listed");
    // Revoked: the viewer's token no longer works (4).
    let vid = tokens.iter().find(|t| t["user"] == "vera").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = expect(&config, &["token", "revoke", &vid], 0).await;
    assert_eq!(r.stdout, format!("token/{vid} deleted\n"));
    expect(&viewer, &["get", "devices"], 4).await;

    // ack and delete: unknown ones are 6; --ignore-not-found is 0.
    expect(&config, &["ack", "no-such-alert"], 6).await;
    expect(&config, &["delete", "bundle", "nope"], 6).await;
    expect(
        &config,
        &["delete", "bundle", "nope", "--ignore-not-found"],
        0,
    )
    .await;
    let r = expect(&config, &["delete", "facility", "lab"], 0).await;
    assert_eq!(r.stdout, "facility/lab deleted\n");

    // The control plane gone: 3.
    stop.cancel();
    cp.stop().await;
    let r = expect(&config, &["get", "devices"], 3).await;
    assert!(r.stderr.contains("cannot reach"), "{r:?}");
}
