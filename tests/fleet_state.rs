//! What the control plane says about a device is true: a device is
//! converged only when it runs its desired version, applied, with every
//! loop ready; a rolled-back or refused bundle, a loop in fail-safe, a
//! loop not ready and a lost bundle each show in the device's state, its
//! rollout and the fleet `/metrics`. Rollouts follow devices that are
//! offline, come back, or join later.
//!
//! The devices are fake agents over the real protocol (mutual TLS, the
//! session stream), so that each state is reached on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::fake_agent::{FakeAgent, applies, rolls_back_with_nothing_to_roll_back_to, status};
use common::fleet::{admin, bundle_record, control_plane, enrol_token, until};
use onprem::controlplane::Handle;
use onprem::proto::v1 as pb;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(30);

const READY: &[(&str, &str, &str)] = &[
    ("fans", "True", "Reconciled"),
    ("power", "True", "Reconciled"),
];
const FAILSAFE: &[(&str, &str, &str)] = &[
    ("fans", "False", "Failsafe"),
    ("power", "True", "Reconciled"),
];

fn apply(cp: &Handle, name: &str, selector: &str, extra: &str) -> u64 {
    let doc = pb::Document {
        source: format!("{name}.yaml"),
        text: bundle_record(name, selector, extra),
    };
    let r = cp.core.apply(&admin(cp), &[doc], false).unwrap();
    assert!(r.applied, "{:?}", r.results);
    cp.core
        .rollouts()
        .into_iter()
        .find(|r| r.bundle == name)
        .unwrap()
        .version
}

fn metric(cp: &Handle, line_start: &str) -> String {
    let m = onprem::controlplane::rest::render_metrics(&cp.core);
    m.lines()
        .find(|l| l.starts_with(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in\n{m}"))
        .to_owned()
}

fn events(cp: &Handle, device: &str) -> Vec<onprem::controlplane::store::Event> {
    cp.core.flush().unwrap();
    let id = cp.core.device(device).unwrap().device.id;
    cp.core.store().events(Some(&id), 100).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_fail_safe_and_ready_each_show_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let t = || enrol_token(&cp, &[("board", "pi5")]);
    let _a = FakeAgent::start(&cp, &t(), "a-ready", applies(READY)).await;
    let _b = FakeAgent::start(
        &cp,
        &t(),
        "b-rolled-back",
        rolls_back_with_nothing_to_roll_back_to(),
    )
    .await;
    let _c = FakeAgent::start(&cp, &t(), "c-failsafe", applies(FAILSAFE)).await;
    until("three online", LIMIT, || {
        (cp.core.devices().iter().filter(|d| d.online).count() == 3).then_some(())
    })
    .await;
    let v = apply(&cp, "fans", "{matchLabels: {board: pi5}}", "");
    until("every device to answer", LIMIT, || {
        cp.core
            .devices()
            .iter()
            .all(|d| d.device.last_result.version == v && d.device.current.version == v)
            .then_some(())
    })
    .await;

    let a = cp.core.device("a-ready").unwrap();
    assert!(a.converged, "{a:?}");
    assert_eq!(a.health.state.as_str(), "Converged");
    assert!(!a.device.tainted);

    // Nothing to roll back to: it runs the desired version, which failed.
    let b = cp.core.device("b-rolled-back").unwrap();
    assert!(!b.converged, "{b:?}");
    assert!(b.device.tainted, "{b:?}");
    assert_eq!(b.health.state.as_str(), "Failed");
    assert!(
        b.device.taint_reason.contains("rolled back"),
        "{}",
        b.device.taint_reason
    );

    let c = cp.core.device("c-failsafe").unwrap();
    assert!(!c.converged, "{c:?}");
    assert!(!c.device.tainted, "it runs what it is meant to");
    assert_eq!(c.health.state.as_str(), "Degraded");
    assert_eq!((c.health.loops, c.health.loops_ready), (2, 1));
    assert_eq!(c.health.not_ready[0].name, "fans");
    assert!(
        c.health.message.contains("fans: Failsafe"),
        "{}",
        c.health.message
    );

    // The all-at-once rollout ends Degraded, naming both.
    let r = until("the rollout to end", LIMIT, || {
        cp.core
            .rollouts()
            .into_iter()
            .find(|r| r.phase != "Progressing")
    })
    .await;
    assert_eq!(r.phase, "Degraded", "{r:?}");
    assert!(r.message.contains("1 of 3"), "{}", r.message);
    assert!(
        r.message.contains("b-rolled-back RolledBack"),
        "{}",
        r.message
    );
    assert!(
        r.message
            .contains("c-failsafe: loops not ready: fans: Failsafe"),
        "{}",
        r.message
    );

    // The fleet /metrics says the same.
    assert!(metric(&cp, "onprem_cp_device_converged{device=\"a-ready\"").ends_with(" 1"));
    assert!(metric(&cp, "onprem_cp_device_converged{device=\"b-rolled-back\"").ends_with(" 0"));
    assert!(metric(&cp, "onprem_cp_device_tainted{device=\"b-rolled-back\"").ends_with(" 1"));
    assert!(
        metric(
            &cp,
            "onprem_cp_device_state{device=\"c-failsafe\",facility=\"\",state=\"Degraded\"}"
        )
        .ends_with(" 1")
    );
    assert!(metric(&cp, "onprem_cp_device_loops_ready{device=\"c-failsafe\"").ends_with(" 1"));
    assert_eq!(
        metric(&cp, "onprem_cp_devices_by_state{state=\"Converged\"}"),
        "onprem_cp_devices_by_state{state=\"Converged\"} 1"
    );

    // The REST view carries the state for the CLI's STATE and LOOPS columns.
    let v = serde_json::to_value(cp.core.device("c-failsafe").unwrap()).unwrap();
    assert_eq!(v["state"], "Degraded");
    assert_eq!(v["loopsReady"], 1);
    assert_eq!(v["notReady"][0]["reason"], "Failsafe");
    assert_eq!(v["converged"], false);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_that_recovers_makes_the_device_converged() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let t = enrol_token(&cp, &[("board", "pi5")]);
    let c = FakeAgent::start(&cp, &t, "c", applies(FAILSAFE)).await;
    let v = apply(&cp, "fans", "{matchLabels: {board: pi5}}", "");
    until("degraded", LIMIT, || {
        let d = cp.core.device("c")?;
        (d.device.current.version == v && d.health.state.as_str() == "Degraded").then_some(())
    })
    .await;
    // Its fans loop comes out of fail-safe.
    let d = c.deliveries().pop().unwrap();
    c.report(status(&d, ("True", "Applied"), READY)).await;
    until("converged", LIMIT, || {
        cp.core.device("c")?.converged.then_some(())
    })
    .await;
    let r = until("the rollout complete", LIMIT, || {
        cp.core
            .rollouts()
            .into_iter()
            .find(|r| r.phase == "Complete")
    })
    .await;
    assert!(
        r.message.contains("1 device(s) run version"),
        "{}",
        r.message
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_rollout_halts_on_a_canary_that_stays_in_fail_safe() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let t = || enrol_token(&cp, &[("board", "pi5")]);
    let _canary = FakeAgent::start(&cp, &t(), "a-canary", applies(FAILSAFE)).await;
    let second = FakeAgent::start(&cp, &t(), "b-second", applies(READY)).await;
    let v = apply(
        &cp,
        "staged",
        "{matchLabels: {board: pi5}}",
        "  rollout: {strategy: Staged, canary: 1, batchSize: 1, progressDeadline: 3s}\n",
    );
    // While it waits, the rollout says for what.
    until("the rollout to name the canary's loop", LIMIT, || {
        let r = cp.core.rollouts().pop()?;
        (r.phase == "Progressing"
            && r.message
                .contains("a-canary: loops not ready: fans: Failsafe"))
        .then_some(())
    })
    .await;
    let r = until("the rollout to halt", LIMIT, || {
        cp.core
            .rollouts()
            .into_iter()
            .find(|r| r.phase != "Progressing")
    })
    .await;
    assert_eq!(r.phase, "Halted", "{r:?}");
    assert!(
        r.message.contains("not converged within 3s"),
        "{}",
        r.message
    );
    assert!(
        r.message
            .contains("a-canary: loops not ready: fans: Failsafe"),
        "{}",
        r.message
    );
    assert!(
        second.deliveries().is_empty(),
        "the second batch got version {v}"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_whose_bundle_is_lost_says_so_with_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let t = || enrol_token(&cp, &[("board", "pi5")]);
    let _a = FakeAgent::start(&cp, &t(), "a", applies(READY)).await;
    let _b = FakeAgent::start(&cp, &t(), "b", applies(READY)).await;
    let v = apply(&cp, "fans", "{matchLabels: {board: pi5}}", "");
    until("both converged", LIMIT, || {
        cp.core
            .devices()
            .iter()
            .all(|d| d.converged && d.device.current.version == v)
            .then_some(())
    })
    .await;

    // Relabelled out of the selector.
    let doc = pb::Document {
        source: "a.yaml".into(),
        text: "apiVersion: onprem/v1\nkind: Device\nmetadata:\n  name: a\n  labels: {board: pi4}\n"
            .into(),
    };
    let r = cp.core.apply(&admin(&cp), &[doc], false).unwrap();
    assert!(r.applied, "{:?}", r.results);
    let a = cp.core.device("a").unwrap();
    assert_eq!(a.device.desired_version, 0);
    assert!(!a.converged, "{a:?}");
    assert_eq!(a.health.state.as_str(), "NoBundle");
    assert!(
        a.health
            .message
            .contains(&format!("it runs fans version {v}")),
        "{}",
        a.health.message
    );
    let ev = events(&cp, "a");
    assert!(
        ev.iter().any(|e| e.reason == "BundleUnselected"
            && e.message.contains("bundle fans no longer selects it")
            && e.message
                .contains(&format!("keeps running fans version {v}"))),
        "{ev:?}"
    );

    // The bundle deleted.
    assert!(cp.core.delete(&admin(&cp), "bundle", "fans").unwrap());
    let b = cp.core.device("b").unwrap();
    assert_eq!(b.device.desired_bundle, "");
    assert!(!b.converged, "{b:?}");
    assert_eq!(b.health.state.as_str(), "NoBundle");
    let ev = events(&cp, "b");
    assert!(
        ev.iter()
            .any(|e| e.reason == "BundleUnselected" && e.message.contains("bundle fans deleted")),
        "{ev:?}"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_at_once_rollout_waits_for_the_offline_and_takes_in_newcomers() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let t = || enrol_token(&cp, &[("board", "pi5")]);
    let _a = FakeAgent::start(&cp, &t(), "a", applies(READY)).await;
    // Enrolled, then offline.
    let mut b = FakeAgent::enrol(&cp, &t(), "b").await;
    let v = apply(
        &cp,
        "fans",
        "{matchLabels: {board: pi5}}",
        "  rollout: {strategy: AllAtOnce, progressDeadline: 2s}\n",
    );
    until("a converged", LIMIT, || {
        cp.core.device("a")?.converged.then_some(())
    })
    .await;
    let r = until("the rollout past its deadline", LIMIT, || {
        cp.core
            .rollouts()
            .into_iter()
            .find(|r| r.phase == "Degraded")
    })
    .await;
    assert!(r.message.contains("1 of 2"), "{}", r.message);
    assert!(
        r.message.contains("not converged within 2s"),
        "{}",
        r.message
    );
    assert!(
        r.message.contains("b: waiting for fans version"),
        "{}",
        r.message
    );
    assert!(r.message.contains("(offline)"), "{}", r.message);

    // b comes back: it gets the bundle, and the rollout completes.
    b.connect(applies(READY)).await;
    until("b converged", LIMIT, || {
        cp.core.device("b")?.converged.then_some(())
    })
    .await;
    assert_eq!(b.deliveries().len(), 1);
    assert_eq!(b.deliveries()[0].version, v);
    until("the rollout complete", LIMIT, || {
        cp.core
            .rollouts()
            .into_iter()
            .find(|r| r.phase == "Complete")
    })
    .await;

    // A device enrolled later with matching labels gets it too, and the
    // rollout counts it.
    let c = FakeAgent::start(&cp, &t(), "c", applies(READY)).await;
    until("c converged", LIMIT, || {
        cp.core.device("c")?.converged.then_some(())
    })
    .await;
    assert_eq!(c.deliveries()[0].version, v);
    let r = until("the rollout complete with c", LIMIT, || {
        cp.core
            .rollouts()
            .into_iter()
            .find(|r| r.phase == "Complete" && r.batches.iter().flatten().count() == 3)
    })
    .await;
    assert!(
        r.message.contains("3 device(s) run version"),
        "{}",
        r.message
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_applies_take_turns_and_every_counter_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let who = admin(&cp);
    // Twenty revisions of one bundle and ten other bundles, all at once,
    // each from its own thread (as the REST and gRPC handlers call it).
    let results: Vec<Result<bool, String>> = std::thread::scope(|s| {
        let mut hs = Vec::new();
        for i in 0..30 {
            let (cp, who) = (&cp, &who);
            hs.push(s.spawn(move || {
                let (name, deadline) = if i < 20 {
                    ("same".to_owned(), 10 + i)
                } else {
                    (format!("other-{i}"), 10)
                };
                let doc = pb::Document {
                    source: format!("{i}.yaml"),
                    text: bundle_record(
                        &name,
                        &format!("{{matchLabels: {{b: {name}}}}}"),
                        &format!("  rollout: {{progressDeadline: {deadline}s}}\n"),
                    ),
                };
                cp.core
                    .apply(who, &[doc], false)
                    .map(|r| r.applied)
                    .map_err(|e| e.to_string())
            }));
        }
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert_eq!(r, &Ok(true), "{results:?}");
    }
    let bundles = cp
        .core
        .objects(onprem::controlplane::store::Kind::Bundle)
        .unwrap();
    assert_eq!(bundles.len(), 11);
    let same = bundles.iter().find(|b| b.name == "same").unwrap();
    assert_eq!(same.generation, 20, "one creation and nineteen updates");
    // Every revision has its own version, one after the other.
    let mut versions: Vec<u64> = (1..=40)
        .filter_map(|v| cp.core.revision(v).unwrap().map(|r| r.version))
        .collect();
    versions.dedup();
    assert_eq!(versions, (1..=30).collect::<Vec<u64>>());
    stop.cancel();
}
