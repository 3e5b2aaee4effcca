//! The example bundles run as whole simulated nodes in a child agent
//! (`onprem agent --hardware sim --bundle FILE`), and the agent process
//! reloads on SIGHUP and leaves its fans at the fail-safe duty on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Agent, samples, value};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no example bundles in {}", dir.display());
    v
}

fn sim_agent(bundle: &Path, state: &Path, extra: &[&str]) -> Agent {
    let mut args: Vec<String> = vec![
        "--hardware=sim".into(),
        format!("--bundle={}", bundle.display()),
        format!("--state-dir={}", state.display()),
        "--collector.disable-defaults".into(),
        "--collector.devices".into(),
        "--collector.loops".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Agent::start(&args)
}

/// Scrapes until `ok` holds for the text, or panics with the last scrape.
fn until(agent: &Agent, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = agent.scrape();
        if ok(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within 60 s; last scrape:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The check rules' names in a bundle file (`- name:` under `rules:`).
fn rule_names(text: &str) -> Vec<String> {
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
    v["spec"]["checks"]["rules"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_example_bundle_runs_a_whole_simulated_node() {
    let files = examples();
    assert!(files.len() >= 9, "one example per profile: {files:?}");
    let dirs: Vec<tempfile::TempDir> = files.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    // All nodes at once: each is its own process.
    let agents: Vec<Agent> = files
        .iter()
        .zip(&dirs)
        .map(|(f, d)| sim_agent(f, d.path(), &[]))
        .collect();
    for ((file, agent), dir) in files.iter().zip(&agents).zip(&dirs) {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        let rules = rule_names(&text);
        let m = until(
            agent,
            &format!("{name}: applied, loops ready, every check selecting series"),
            |m| {
                let applied = m.contains("onprem_bundle_condition{reason=\"Applied\",status=\"True\",type=\"Applied\"} 1");
                let conds = samples(m, "onprem_loop_condition");
                let ready =
                    !conds.is_empty() && conds.iter().all(|l| l.contains("status=\"True\""));
                let evaluated = rules.is_empty()
                    || value(m, "onprem_check_evaluations_total").is_some_and(|v| v >= 1.0);
                applied && ready && evaluated
            },
        );
        assert!(
            m.contains(&format!("name=\"{name}\"")),
            "{name}: onprem_bundle_info names another bundle"
        );
        // Every device of the node's hardware answers in the simulation.
        let up = samples(&m, "onprem_device_up");
        assert!(!up.is_empty(), "{name}: no devices");
        for l in &up {
            assert!(l.ends_with(" 1"), "{name}: {l}");
        }
        // Each zone is controlled (not in fail-safe) with its sensors fresh.
        for l in samples(&m, "onprem_fan_zone_failsafe") {
            assert!(l.ends_with(" 0"), "{name}: {l}");
        }
        // The store holds what runs.
        let stored = std::fs::read_to_string(dir.path().join("bundles/current.yaml")).unwrap();
        assert_eq!(stored, text, "{name}: the store's current bundle");
    }
}

#[test]
fn the_agent_process_reloads_on_sighup_and_leaves_fans_safe_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/examples/pi5-fan-curve.yaml");
    let text = std::fs::read_to_string(src).unwrap();
    let bundle = dir.path().join("node.yaml");
    std::fs::write(&bundle, &text).unwrap();
    // The file watch looks once an hour: only SIGHUP can pick up a change.
    let config = dir.path().join("agent.yaml");
    std::fs::write(&config, "bundle:\n  watch_interval: 3600\n").unwrap();
    let state = dir.path().join("state");
    let agent = sim_agent(
        &bundle,
        &state,
        &[&format!("--config={}", config.display())],
    );
    until(&agent, "version 1 applied", |m| {
        m.contains("name=\"pi5-fan-curve\",version=\"1\"")
            && samples(m, "onprem_loop_condition")
                .iter()
                .all(|l| l.contains("status=\"True\""))
    });

    // A new version with another fail-safe duty, picked up on SIGHUP only.
    let v2 = text
        .replace("version: 1", "version: 2")
        .replace("period: 1s", "period: 1s\n    failsafePercent: 85");
    assert_ne!(v2, text);
    std::fs::write(&bundle, &v2).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let m = agent.scrape();
    assert!(m.contains("version=\"1\""), "picked up without SIGHUP");
    agent.signal("HUP");
    let m = until(&agent, "version 2 after SIGHUP", |m| {
        m.contains("name=\"pi5-fan-curve\",version=\"2\"")
    });
    assert_eq!(
        value(&m, "onprem_bundle_updates_total{result=\"applied\"}"),
        Some(2.0)
    );
    // Only the fans section changed: the checks loop kept running.
    assert_eq!(
        value(&m, "onprem_loop_observed_bundle_version{loop=\"checks\"}"),
        Some(1.0)
    );

    // SIGTERM: loops stop, every fan gets the new fail-safe duty, exit 0.
    agent.signal("TERM");
    let line = agent.wait_log("fans left at the fail-safe duty");
    assert!(line.contains("fans=1"), "{line}");
    assert!(line.contains("percent=85"), "{line}");
    let mut agent = agent;
    let status = agent.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status}");
    let stored = std::fs::read_to_string(state.join("bundles/current.yaml")).unwrap();
    assert_eq!(stored, v2);
}

#[test]
fn the_binary_carries_every_example_bundle() {
    let files = examples();
    let built: Vec<(&str, &str)> = onprem::bundle::examples::EXAMPLES.to_vec();
    assert_eq!(
        built.len(),
        files.len(),
        "src/bundle/examples.rs must list every file of bundles/examples/"
    );
    for f in files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        assert_eq!(
            onprem::bundle::examples::get(&name),
            Some(text.as_str()),
            "{name}"
        );
    }
}
