//! Standalone mode end to end, in process: an agent on a simulated Pi 5
//! runs a local bundle, picks up a changed file and restarts only the
//! loops it changes, keeps running when a new file is refused, rolls back
//! a bundle that fails to apply, starts from the last-known-good bundle
//! when the file is bad, and leaves the fans at the fail-safe duty when it
//! stops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use onprem::agent::{self, Flags};
use onprem::hw::poller::Hub;
use onprem_hal::inventory::Handle;
use tokio_util::sync::CancellationToken;

fn bundle(version: u64, zone_fans: &str, points: &str) -> String {
    format!(
        r#"apiVersion: onprem/v1
kind: Bundle
metadata: {{ name: standalone, version: {version} }}
spec:
  hardware:
    profile: pi5-fan
    devices:
      - {{ driver: emc230x, name: aux, bus: 10, address: 0x2f, fan: 1 }}
  fans:
    period: 200ms
    zones:
      - name: cpu
        fans: {zone_fans}
        sensors: [{{ name: cpu }}]
        controllers: [{{ type: curve, points: {points} }}]
"#
    )
}

async fn start(
    dir: &Path,
) -> (
    SocketAddr,
    Option<Hub>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let flags = Flags {
        listen_address: Some("127.0.0.1:0".into()),
        hardware: Some("sim".into()),
        bundle: Some(dir.join("bundle.yaml")),
        state_dir: Some(dir.join("state")),
        ..Default::default()
    };
    let mut file = agent::config::File::default();
    file.bundle.watch_interval = 0.1;
    file.collectors.disable_defaults = true;
    file.collectors.enable = vec!["devices".into(), "loops".into()];
    let config = flags.apply(&mut file, None).unwrap();
    let a = agent::Agent::bind_config(None, config).await.unwrap();
    let addr = a.local_addr();
    let hub = a.hub();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        a.run(s).await.unwrap();
    });
    (addr, hub, stop, task)
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut c = onprem::httpc::Client::new(addr);
        c.get(&path, &[]).unwrap().text()
    })
    .await
    .unwrap()
}

/// Waits (up to 20 s) until `/metrics` has a line containing every one of
/// `parts`.
async fn until(addr: SocketAddr, parts: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = get(addr, "/metrics").await;
        if m.lines().any(|l| parts.iter().all(|p| l.contains(p))) {
            return m;
        }
        if tokio::time::Instant::now() > deadline {
            let related: Vec<&str> = m
                .lines()
                .filter(|l| l.starts_with("onprem_bundle") || l.starts_with("onprem_loop"))
                .collect();
            panic!("no line with {parts:?} in:\n{}", related.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn duty(hub: &Hub, fan: &str) -> f64 {
    hub.with(fan, |h| match h {
        Handle::Fan(f) => f.duty().unwrap(),
        _ => panic!(),
    })
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_run_a_local_bundle_through_changes_refusals_and_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.yaml");
    std::fs::write(&path, bundle(1, "[fan]", "[[40, 20], [80, 60]]")).unwrap();
    let (addr, hub, stop, task) = start(dir.path()).await;
    let hub = hub.unwrap();
    until(addr, &["onprem_bundle_info", "version=\"1\""]).await;
    until(
        addr,
        &["onprem_loop_condition", "loop=\"fans\"", "status=\"True\""],
    )
    .await;
    until(
        addr,
        &["onprem_loop_observed_bundle_version{loop=\"power\"} 1"],
    )
    .await;

    // A change to the fans section restarts the fans loop only.
    std::fs::write(&path, bundle(2, "[fan]", "[[40, 30], [80, 70]]")).unwrap();
    until(
        addr,
        &["onprem_loop_observed_bundle_version{loop=\"fans\"} 2"],
    )
    .await;
    let m = until(addr, &["onprem_bundle_info", "version=\"2\""]).await;
    assert!(
        m.contains("onprem_loop_observed_bundle_version{loop=\"power\"} 1"),
        "power restarted for a fans change"
    );

    // An invalid file is refused; the running bundle stays.
    std::fs::write(&path, bundle(3, "[fan]", "[[40, 30], [30, 70]]")).unwrap();
    until(
        addr,
        &["onprem_bundle_updates_total{result=\"rejected\"} 1"],
    )
    .await;
    let status = get(addr, "/-/status").await;
    assert!(status.contains("not monotonic"), "{status}");
    let m = get(addr, "/metrics").await;
    assert!(m.contains("onprem_loop_observed_bundle_version{loop=\"fans\"} 2"));

    // A valid bundle whose new fan does not answer is rolled back.
    let world = hub.world().unwrap();
    world.i2c(10).inject(0x2f, onprem_hal::sim::Fault::Nack);
    std::fs::write(&path, bundle(4, "[fan, aux]", "[[40, 30], [80, 70]]")).unwrap();
    until(
        addr,
        &["onprem_bundle_updates_total{result=\"rolled_back\"} 1"],
    )
    .await;
    let m = until(addr, &["onprem_bundle_info", "version=\"2\""]).await;
    assert!(m.contains("reason=\"RolledBack\""), "{m}");
    let status = get(addr, "/-/status").await;
    assert!(status.contains("aux"), "{status}");
    // The store keeps what runs: version 2.
    let stored = std::fs::read_to_string(dir.path().join("state/bundles/current.yaml")).unwrap();
    assert!(stored.contains("version: 2"), "{stored}");

    // Stop: every fan is left at the fail-safe duty, also those no zone
    // drives (the I²C fan's emulator outlives the simulated sysfs).
    world.i2c(10).clear(0x2f);
    hub.with("aux", |h| match h {
        Handle::Fan(f) => f.set_duty(30.0).unwrap(),
        _ => panic!(),
    })
    .unwrap()
    .unwrap();
    assert!(duty(&hub, "fan") < 100.0);
    assert!(duty(&hub, "aux") < 50.0);
    stop.cancel();
    task.await.unwrap();
    assert_eq!(duty(&hub, "aux").round(), 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_start_from_the_last_known_good_bundle_when_the_file_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.yaml");
    std::fs::write(&path, bundle(7, "[fan]", "[[40, 20], [80, 60]]")).unwrap();
    let (addr, _, stop, task) = start(dir.path()).await;
    until(addr, &["onprem_bundle_info", "version=\"7\""]).await;
    stop.cancel();
    task.await.unwrap();

    std::fs::write(&path, "apiVersion: onprem/v1\nkind: Bundle\nmetadata: { name: x }\nspec: { fans: { periodd: 1s } }\n").unwrap();
    let (addr, _, stop, task) = start(dir.path()).await;
    let m = until(addr, &["onprem_bundle_info", "version=\"7\""]).await;
    assert!(
        m.contains("onprem_bundle_updates_total{result=\"rejected\"} 1"),
        "{m}"
    );
    until(
        addr,
        &["onprem_loop_condition", "loop=\"fans\"", "status=\"True\""],
    )
    .await;
    // Refused once, not again by each look at the unchanged file.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = get(addr, "/metrics").await;
    assert!(
        m.contains("onprem_bundle_updates_total{result=\"rejected\"} 1"),
        "{m}"
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_seen_half_written_is_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.yaml");
    std::fs::write(&path, bundle(1, "[fan]", "[[40, 20], [80, 60]]")).unwrap();
    let (addr, _, stop, task) = start(dir.path()).await;
    until(addr, &["onprem_bundle_info", "version=\"1\""]).await;
    // A slow writer: the first half of version 2 (not a bundle yet),
    // then the rest, 20 ms later; 20 times, against a watch that looks
    // every 100 ms.
    for round in 0..20u64 {
        let next = bundle(2 + round, "[fan]", "[[40, 30], [80, 70]]");
        let (head, _) = next.split_at(next.len() / 2);
        std::fs::write(&path, head).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        std::fs::write(&path, &next).unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let m = until(addr, &["onprem_bundle_info", "version=\"21\""]).await;
    assert!(
        m.contains("onprem_bundle_updates_total{result=\"rejected\"} 0"),
        "a half-written file was refused"
    );
    stop.cancel();
    task.await.unwrap();
}
