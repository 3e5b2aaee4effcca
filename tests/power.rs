//! The power loop in the simulated world: UPS protective shutdown, switch
//! restore policies across agent restarts and node power losses, the Argon
//! power button, GPU power caps through the fake NVML library, and the
//! critical temperature.
//!
//! Ticks are driven by hand (`reconcile` with a synthetic clock while the
//! world is stepped by the same amount), so every test is deterministic
//! and sleeps nowhere; one test goes through the runner on a paused tokio
//! clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use onprem::agent::host::{Recorded, Request, RequestKind};
use onprem::agent::power::{PowerLoop, STATE_FILE};
use onprem::agent::reconcile::{self, Action, Ctx, Health, Reconciler, Stop};
use onprem::bundle::schema::Power;
use onprem::exporter::MetricWriter;
use onprem::hw::SimWorld;
use onprem::hw::poller::Hub;
use onprem_hal::inventory::{Handle, Hardware, Spec};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A simulated node with the power loop's context.
struct Node {
    hub: Hub,
    world: SimWorld,
    ctx: Ctx,
    now: Instant,
}

impl Node {
    fn new(spec: Spec) -> Node {
        let world = SimWorld::new(&spec).unwrap();
        let hub = Hub::new(spec, Hardware::Sim(world.world.clone()));
        // The test moves the world, never the wall clock.
        hub.set_stepping(false);
        let mut ctx = Ctx::new(Some(hub.clone()), Arc::new(Recorded::default()));
        ctx.boot_id = "boot-1".into();
        Node {
            hub,
            world,
            ctx,
            now: Instant::now(),
        }
    }

    /// Moves the world and the clock on by `dt`, then ticks.
    fn tick(&mut self, l: &mut PowerLoop, want: &Power, dt: Duration) -> Action {
        self.hub.step_world(dt);
        self.now += dt;
        l.reconcile(want, &self.ctx, self.now).unwrap()
    }

    /// Moves only the loop's clock on by `dt`, then ticks.
    fn tick_still(&mut self, l: &mut PowerLoop, want: &Power, dt: Duration) -> Action {
        self.now += dt;
        l.reconcile(want, &self.ctx, self.now).unwrap()
    }

    fn taken(&self) -> Vec<(RequestKind, String)> {
        self.ctx
            .host
            .taken()
            .into_iter()
            .map(|t| (t.kind, t.why))
            .collect()
    }

    fn reasons(&self) -> Vec<String> {
        self.ctx
            .events
            .since(0)
            .into_iter()
            .map(|e| e.reason)
            .collect()
    }

    fn switch(&self, name: &str) -> Option<bool> {
        self.hub
            .with(name, |h| match h {
                Handle::Switch(s) => s.is_on().unwrap(),
                _ => panic!("{name} is not a switch"),
            })
            .unwrap()
            .unwrap()
    }

    fn set_switch(&self, name: &str, on: bool) {
        self.hub
            .with(name, |h| match h {
                Handle::Switch(s) => s.set_on(on).unwrap(),
                _ => panic!("{name} is not a switch"),
            })
            .unwrap()
            .unwrap();
    }

    fn nvml_limit_mw(&self, gpu: u32) -> Option<u32> {
        self.world
            .world
            .with_nvml("gpu", |f| f.power_limit_set_mw(gpu).unwrap())
            .unwrap()
    }
}

fn want(yaml: &str) -> Power {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn reason(a: &Action) -> &str {
    match &a.health {
        Health::Ready => "Ready",
        Health::Degraded { reason, .. } => reason,
    }
}

fn metric(l: &PowerLoop, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    let mut out = MetricWriter::new();
    l.report(&mut out);
    let fams = out.finish();
    let f = fams.iter().find(|f| f.name == name)?;
    f.metrics.iter().find_map(|m| {
        let ok = label.is_none_or(|(k, v)| m.labels.iter().any(|(a, b)| a == k && b == v));
        match (&m.value, ok) {
            (onprem::exporter::metrics::Value::Single(v), true) => Some(*v),
            _ => None,
        }
    })
}

/// The pi-sixfab-ups profile with a tiny battery and one outage, so that
/// a discharge takes seconds.
fn small_ups(outage: [f64; 2]) -> Spec {
    let mut spec = onprem::hw::load_profile("pi-sixfab-ups").unwrap();
    spec.sim.battery_wh = 0.05;
    spec.sim.mains_outages = vec![outage];
    spec
}

#[test]
fn shuts_down_once_when_the_charge_reaches_the_threshold() {
    let mut node = Node::new(small_ups([5.0, 300.0]));
    let w = want("ups: { battery: ups, shutdownAtPercent: 20, grace: 5s }");
    let mut l = PowerLoop::new();
    let first = node.tick(&mut l, &w, secs(1));
    assert_eq!(first, Action::ready());
    let mut shut_at = None;
    for i in 0..120 {
        let a = node.tick(&mut l, &w, secs(1));
        let d = l.details();
        let charge = d["ups"]["chargePercent"].as_f64().unwrap();
        if node.taken().is_empty() {
            assert!(
                charge > 20.0 || d["ups"]["onBatterySeconds"].as_f64().unwrap() < 5.0,
                "tick {i}: no shutdown at {charge} %: {d}"
            );
        } else if shut_at.is_none() {
            assert!(charge <= 20.0, "shut down early at {charge} %");
            // The simulated node is off once its shutdown is done.
            assert_eq!(reason(&a), "PoweredOff");
            shut_at = Some(i);
        }
    }
    assert!(shut_at.is_some(), "never shut down: {}", l.details());
    let taken = node.taken();
    assert_eq!(taken.len(), 1, "exactly once: {taken:?}");
    assert_eq!(taken[0].0, RequestKind::Shutdown);
    assert!(taken[0].1.starts_with("ups: on battery at"), "{taken:?}");
    let reasons = node.reasons();
    for r in ["MainsLost", "ShutdownDecided", "HostAction"] {
        assert!(reasons.iter().any(|x| x == r), "{r} missing: {reasons:?}");
    }
    assert_eq!(
        metric(&l, "onprem_power_on_battery", Some(("battery", "ups"))),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &l,
            "onprem_power_host_actions_total",
            Some(("action", "shutdown"))
        ),
        Some(1.0)
    );
    assert_eq!(metric(&l, "onprem_power_shutdown_pending", None), Some(0.0));
    assert_eq!(l.details()["ups"]["shutdownDone"], true);
}

#[test]
fn shuts_down_on_the_runtime_estimate_before_the_percent_threshold() {
    let mut node = Node::new(small_ups([2.0, 300.0]));
    let w = want("ups: { battery: ups, shutdownAtPercent: 5, shutdownAtRuntime: 15s }");
    let mut l = PowerLoop::new();
    for _ in 0..60 {
        node.tick(&mut l, &w, secs(1));
        if !node.taken().is_empty() {
            break;
        }
    }
    let d = l.details();
    let taken = node.taken();
    assert_eq!(taken.len(), 1, "{d}");
    assert!(taken[0].1.contains("left"), "{taken:?}");
    let charge = d["ups"]["chargePercent"].as_f64().unwrap();
    assert!(charge > 5.0, "the runtime, not the percent, decided: {d}");
    let runtime = d["ups"]["runtimeSeconds"].as_f64().unwrap();
    assert!(runtime <= 15.0, "{d}");
}

#[test]
fn cancels_a_decided_shutdown_when_mains_returns_within_the_grace() {
    // Mains out from 5 s to 45 s: the charge crosses 20 % after about
    // 35 s on battery, but the grace is a minute.
    let mut node = Node::new(small_ups([5.0, 45.0]));
    let w = want("ups: { battery: ups, shutdownAtPercent: 20, grace: 60s }");
    let mut l = PowerLoop::new();
    let mut was_pending = false;
    for _ in 0..120 {
        node.tick(&mut l, &w, secs(1));
        if metric(&l, "onprem_power_shutdown_pending", None) == Some(1.0) {
            was_pending = true;
            assert!(!l.details()["ups"]["pendingShutdown"].is_null());
        }
    }
    assert!(was_pending, "the shutdown was never decided");
    assert!(node.taken().is_empty(), "{:?}", node.taken());
    let reasons = node.reasons();
    for r in [
        "MainsLost",
        "ShutdownDecided",
        "MainsRestored",
        "ShutdownCancelled",
    ] {
        assert!(reasons.iter().any(|x| x == r), "{r} missing: {reasons:?}");
    }
    let d = l.details();
    assert_eq!(d["ups"]["onBattery"], false);
    assert!(d["ups"]["pendingShutdown"].is_null(), "{d}");
    assert_eq!(metric(&l, "onprem_power_shutdown_pending", None), Some(0.0));
}

#[test]
fn rides_through_a_short_outage_without_deciding_anything() {
    let mut node = Node::new(small_ups([5.0, 10.0]));
    let w = want("ups: { battery: ups, shutdownAtPercent: 20 }");
    let mut l = PowerLoop::new();
    let mut on_battery = false;
    for _ in 0..20 {
        let a = node.tick(&mut l, &w, secs(1));
        on_battery |= reason(&a) == "OnBattery";
    }
    assert!(on_battery);
    assert!(node.taken().is_empty());
    let reasons = node.reasons();
    assert!(reasons.iter().any(|x| x == "MainsRestored"), "{reasons:?}");
    assert!(
        !reasons.iter().any(|x| x == "ShutdownCancelled"),
        "{reasons:?}"
    );
}

#[test]
fn reports_a_shutdown_it_may_not_take() {
    let mut node = Node::new(small_ups([2.0, 300.0]));
    let w = want("ups: { battery: ups, shutdownAtPercent: 50 }\nhost: { allowShutdown: false }");
    let mut l = PowerLoop::new();
    for _ in 0..40 {
        node.tick(&mut l, &w, secs(1));
    }
    assert!(node.taken().is_empty());
    let events = node.ctx.events.since(0);
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.reason == "HostActionNotAllowed")
        .collect();
    assert_eq!(refused.len(), 1, "said once: {events:?}");
    assert!(refused[0].message.contains("allowShutdown"), "{refused:?}");
    assert_eq!(l.details()["ups"]["shutdownRefused"], true);
}

#[test]
fn degrades_when_the_battery_is_unreadable() {
    let mut node = Node::new(small_ups([1000.0, 2000.0]));
    node.world.world.i2c(1).detach(0x41);
    let w = want("ups: { battery: ups }");
    let mut l = PowerLoop::new();
    let a = node.tick(&mut l, &w, secs(1));
    assert_eq!(reason(&a), "BatteryUnreadable", "{a:?}");
}

/// Four relays: `a` and `d` close when their line is low (so they are on
/// when a freshly booted node leaves the lines low), `b` and `c` when it
/// is high.
const RELAYS: &str = "devices:
  - { driver: gpio-relay, name: a, pin: 17, activeLow: true }
  - { driver: gpio-relay, name: b, pin: 27 }
  - { driver: gpio-relay, name: c, pin: 22 }
  - { driver: gpio-relay, name: d, pin: 23, activeLow: true }
";

const POLICIES: &str = "switches:
  - { name: a, restore: always-off }
  - { name: b, restore: always-on }
  - { name: c, restore: last-state }
  - { name: d, restore: last-state }
";

fn relays() -> Spec {
    onprem::hw::load_spec(RELAYS, "relays").unwrap()
}

fn writes(node: &Node) -> Vec<u64> {
    [17, 27, 22, 23]
        .iter()
        .map(|p| node.world.world.gpio_output(*p).writes())
        .collect()
}

#[test]
fn never_changes_a_switch_when_only_the_agent_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::new(relays());
    node.ctx.state_dir = Some(dir.path().to_path_buf());
    // Every switch against its policy.
    node.set_switch("a", true);
    node.set_switch("b", false);
    node.set_switch("c", true);
    node.set_switch("d", false);
    let w = want(POLICIES);
    // The agent's first run on this boot: no record yet, nothing written.
    let mut first = PowerLoop::new();
    let before = writes(&node);
    assert_eq!(node.tick(&mut first, &w, secs(1)), Action::ready());
    assert_eq!(writes(&node), before);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(STATE_FILE)).unwrap()).unwrap();
    assert_eq!(saved["bootId"], "boot-1");
    assert_eq!(saved["switches"]["a"], true);
    assert_eq!(saved["switches"]["b"], false);
    // Restarts of the agent (same boot id, a new loop): switches observed,
    // never written, whatever their policies say.
    for _ in 0..3 {
        let mut again = PowerLoop::new();
        for _ in 0..3 {
            assert_eq!(node.tick(&mut again, &w, secs(1)), Action::ready());
        }
        assert_eq!(again.details()["start"], "agentRestart");
    }
    assert_eq!(writes(&node), before, "a switch was written");
    assert_eq!(node.switch("a"), Some(true));
    assert_eq!(node.switch("b"), Some(false));
    assert_eq!(node.switch("c"), Some(true));
    assert_eq!(node.switch("d"), Some(false));
    assert!(!node.reasons().iter().any(|r| r == "SwitchRestored"));
}

#[test]
fn applies_the_restore_policies_after_a_node_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let w = want(POLICIES);
    {
        // Boot 1: c is on; d is not in the bundle yet, so never recorded.
        let mut node = Node::new(relays());
        node.ctx.state_dir = Some(dir.path().to_path_buf());
        node.set_switch("c", true);
        let w1 = want(
            "switches:\n  - { name: a, restore: always-off }\n  - { name: b, restore: always-on }\n  - { name: c, restore: last-state }\n",
        );
        let mut l = PowerLoop::new();
        node.tick(&mut l, &w1, secs(1));
        node.tick(&mut l, &w1, secs(1));
    }
    // The node loses power: a fresh world (every line low) and a new boot.
    let mut node = Node::new(relays());
    node.ctx.state_dir = Some(dir.path().to_path_buf());
    node.ctx.boot_id = "boot-2".into();
    assert_eq!(node.switch("a"), Some(true), "active-low: on at boot");
    assert_eq!(node.switch("b"), Some(false));
    assert_eq!(node.switch("c"), Some(false));
    assert_eq!(node.switch("d"), Some(true), "active-low: on at boot");
    let mut l = PowerLoop::new();
    assert_eq!(node.tick(&mut l, &w, secs(1)), Action::ready());
    assert_eq!(l.details()["start"], "nodePowerLoss");
    assert_eq!(node.switch("a"), Some(false), "always-off");
    assert_eq!(node.switch("b"), Some(true), "always-on");
    assert_eq!(node.switch("c"), Some(true), "last-state: on before");
    assert_eq!(
        node.switch("d"),
        Some(true),
        "last-state, no record: left alone"
    );
    assert_eq!(node.world.world.gpio_output(23).writes(), 0);
    let restored = node
        .reasons()
        .iter()
        .filter(|r| *r == "SwitchRestored")
        .count();
    assert_eq!(restored, 3);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(STATE_FILE)).unwrap()).unwrap();
    assert_eq!(saved["bootId"], "boot-2");
    assert_eq!(saved["switches"]["a"], false);
    assert_eq!(saved["switches"]["d"], true);
    // Later ticks and a restart of the agent on this boot change nothing.
    let before = writes(&node);
    node.tick(&mut l, &w, secs(1));
    let mut again = PowerLoop::new();
    node.tick(&mut again, &w, secs(1));
    assert_eq!(writes(&node), before);
    assert_eq!(
        metric(&again, "onprem_power_switch_on", Some(("switch", "a"))),
        Some(0.0)
    );
}

#[test]
fn never_writes_switches_at_start_without_a_state_directory() {
    let mut node = Node::new(relays());
    node.ctx.boot_id = "another-boot".into();
    let w = want(POLICIES);
    let before = writes(&node);
    let mut l = PowerLoop::new();
    for _ in 0..3 {
        node.tick(&mut l, &w, secs(1));
    }
    assert_eq!(writes(&node), before);
    let warned = node
        .reasons()
        .iter()
        .filter(|r| *r == "SwitchesNotRestored")
        .count();
    assert_eq!(warned, 1, "warned once");
    assert_eq!(l.details()["start"], "unknown: no state directory");
}

#[test]
fn turns_argon_button_pulses_into_host_requests_and_ignores_glitches() {
    let mut node = Node::new(onprem::hw::load_profile("pi4-argon-one-v2").unwrap());
    let line = node.world.world.gpio_line(4);
    let w = want("{}");
    let mut l = PowerLoop::new();
    // Double tap (25 ms), glitch, OLED screen pulse (65 ms), a too short
    // pulse (10 ms), long press (45 ms).
    line.pulse(Duration::from_millis(25));
    line.advance(secs(1));
    line.glitch();
    line.advance(secs(1));
    line.pulse(Duration::from_millis(65));
    line.advance(secs(1));
    line.pulse(Duration::from_millis(10));
    line.advance(secs(1));
    line.pulse(Duration::from_millis(45));
    node.hub.poll();
    node.tick_still(&mut l, &w, secs(1));
    assert_eq!(
        node.taken(),
        vec![
            (RequestKind::Reboot, "button:power-button".to_owned()),
            (RequestKind::Shutdown, "button:power-button".to_owned()),
        ]
    );
    // A Redfish reset comes in the same way.
    node.ctx.requests.push(Request {
        kind: RequestKind::Reboot,
        source: "redfish:admin".into(),
    });
    node.tick_still(&mut l, &w, secs(1));
    assert_eq!(node.taken().len(), 3);
    assert_eq!(node.taken()[2].1, "redfish:admin");
    assert_eq!(
        metric(
            &l,
            "onprem_power_host_actions_total",
            Some(("action", "reboot"))
        ),
        Some(2.0)
    );
}

#[test]
fn refuses_button_requests_the_bundle_does_not_allow() {
    let mut node = Node::new(onprem::hw::load_profile("pi4-argon-one-v2").unwrap());
    let line = node.world.world.gpio_line(4);
    let w = want("host: { allowReboot: false }");
    let mut l = PowerLoop::new();
    line.pulse(Duration::from_millis(25));
    line.advance(secs(1));
    line.pulse(Duration::from_millis(45));
    node.hub.poll();
    node.tick_still(&mut l, &w, secs(1));
    assert_eq!(
        node.taken(),
        vec![(RequestKind::Shutdown, "button:power-button".to_owned())]
    );
    let refused: Vec<_> = node
        .ctx
        .events
        .since(0)
        .into_iter()
        .filter(|e| e.reason == "RequestRefused")
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].message.contains("allowReboot"), "{refused:?}");
    assert_eq!(
        metric(
            &l,
            "onprem_power_host_actions_refused_total",
            Some(("action", "reboot"))
        ),
        Some(1.0)
    );
    // Buttons off: presses are taken and ignored, never acted on later.
    let off = want("host: { buttons: false }");
    line.advance(secs(1));
    line.pulse(Duration::from_millis(45));
    node.hub.poll();
    node.tick_still(&mut l, &off, secs(1));
    node.tick_still(&mut l, &w, secs(1));
    assert_eq!(node.taken().len(), 1);
    assert!(node.reasons().iter().any(|r| r == "ButtonIgnored"));
}

#[test]
fn caps_gpu_power_and_reapplies_the_cap_after_a_driver_reset() {
    let mut node = Node::new(onprem::hw::load_profile("gpu-server").unwrap());
    let w = want("gpus: [{ name: gpu, powerLimitWatts: 300 }]");
    let mut l = PowerLoop::new();
    assert_eq!(node.tick(&mut l, &w, secs(1)), Action::ready());
    assert_eq!(node.nvml_limit_mw(0), Some(300_000));
    assert_eq!(node.nvml_limit_mw(1), Some(300_000));
    let applied = |n: &Node| n.reasons().iter().filter(|r| *r == "GpuCapApplied").count();
    assert_eq!(applied(&node), 2);
    // Level-triggered, but nothing to do while the cap holds.
    for _ in 0..3 {
        node.tick(&mut l, &w, secs(1));
    }
    assert_eq!(applied(&node), 2);
    let d = l.details();
    assert_eq!(d["gpus"]["gpu/0"]["limitWatts"], 300.0);
    assert_eq!(d["gpus"]["gpu/1"]["sets"], 1);
    // The driver reloads: limits back at the default, 700 W.
    node.world
        .world
        .with_nvml("gpu", |f| f.driver_reset().unwrap())
        .unwrap();
    assert_eq!(node.nvml_limit_mw(0), None);
    node.tick(&mut l, &w, secs(1));
    assert_eq!(node.nvml_limit_mw(0), Some(300_000));
    assert_eq!(node.nvml_limit_mw(1), Some(300_000));
    assert_eq!(applied(&node), 4);
    assert_eq!(l.details()["gpus"]["gpu/0"]["sets"], 2);
    assert_eq!(
        metric(
            &l,
            "onprem_power_gpu_limit_target_watts",
            Some(("gpu", "gpu/1"))
        ),
        Some(300.0)
    );
}

#[test]
fn clamps_a_gpu_cap_to_the_range_the_gpu_allows() {
    let mut node = Node::new(onprem::hw::load_profile("gpu-server").unwrap());
    // The fake H100 allows 200–700 W.
    let w = want(
        "gpus:\n  - { name: gpu/0, powerLimitWatts: 100 }\n  - { name: gpu/1, powerLimitWatts: 900 }\n",
    );
    let mut l = PowerLoop::new();
    for _ in 0..3 {
        assert_eq!(node.tick(&mut l, &w, secs(1)), Action::ready());
    }
    assert_eq!(node.nvml_limit_mw(0), Some(200_000));
    // 900 W clamps to 700 W, the limit already in force: nothing to set.
    assert_eq!(node.nvml_limit_mw(1), None);
    let d = l.details();
    assert_eq!(d["gpus"]["gpu/0"]["targetWatts"], 200.0);
    assert_eq!(d["gpus"]["gpu/1"]["targetWatts"], 700.0);
    let clamped: Vec<_> = node
        .ctx
        .events
        .since(0)
        .into_iter()
        .filter(|e| e.reason == "GpuCapClamped")
        .collect();
    assert_eq!(clamped.len(), 2, "warned once per GPU: {clamped:?}");
}

const HOT: &str = "devices:
  - { driver: lm75, name: board, bus: 1, address: 0x48 }
";

fn set_board(node: &Node, celsius: f64) {
    node.world
        .world
        .i2c(1)
        .with_chip(0x48, |c: &mut onprem_hal::sim::chips::lm75::Lm75| {
            c.set_temperature(celsius)
        })
        .unwrap();
}

#[test]
fn acts_on_a_critical_temperature_only_after_its_duration() {
    let mut node = Node::new(onprem::hw::load_spec(HOT, "hot").unwrap());
    let w =
        want("criticalTemperature: { sensors: [board], celsius: 80, for: 10s, action: reboot }");
    let mut l = PowerLoop::new();
    set_board(&node, 70.0);
    assert_eq!(node.tick_still(&mut l, &w, secs(1)), Action::ready());
    // Hot for 9 s, then a dip: the timer starts again.
    set_board(&node, 85.0);
    for _ in 0..10 {
        node.tick_still(&mut l, &w, secs(1));
    }
    assert!(node.taken().is_empty(), "acted before 10 s");
    set_board(&node, 79.0);
    node.tick_still(&mut l, &w, secs(1));
    set_board(&node, 85.0);
    for _ in 0..10 {
        node.tick_still(&mut l, &w, secs(1));
        assert!(node.taken().is_empty(), "acted before 10 s");
    }
    let a = node.tick_still(&mut l, &w, secs(1));
    assert_eq!(reason(&a), "CriticalTemperature");
    let taken = node.taken();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].0, RequestKind::Reboot);
    assert!(taken[0].1.contains("board at 85.0 °C"), "{taken:?}");
    // Still hot: once per episode.
    for _ in 0..5 {
        node.tick_still(&mut l, &w, secs(1));
    }
    assert_eq!(node.taken().len(), 1);
    assert_eq!(
        metric(&l, "onprem_power_critical_temperature_celsius", None),
        Some(85.0)
    );
    assert_eq!(
        metric(&l, "onprem_power_critical_temperature_exceeded", None),
        Some(1.0)
    );
    set_board(&node, 60.0);
    assert_eq!(node.tick_still(&mut l, &w, secs(1)), Action::ready());
    assert!(node.reasons().iter().any(|r| r == "TemperatureNormal"));
}

#[test]
fn only_alerts_on_a_critical_temperature_with_action_none() {
    let mut node = Node::new(onprem::hw::load_spec(HOT, "hot").unwrap());
    let w = want("criticalTemperature: { sensors: [board], celsius: 80, for: 2s, action: none }");
    let mut l = PowerLoop::new();
    set_board(&node, 90.0);
    for _ in 0..5 {
        node.tick_still(&mut l, &w, secs(1));
    }
    assert!(node.taken().is_empty());
    assert!(node.reasons().iter().any(|r| r == "CriticalTemperature"));
}

#[test]
fn counts_a_gpus_own_temperature_as_a_critical_sensor() {
    let mut node = Node::new(onprem::hw::load_profile("gpu-server").unwrap());
    let w = want("criticalTemperature: { sensors: [cpu, gpu/1], celsius: 90, for: 3s }");
    let mut l = PowerLoop::new();
    node.tick_still(&mut l, &w, secs(1));
    node.world
        .world
        .with_nvml("gpu", |f| f.set_temperature(1, 97).unwrap())
        .unwrap();
    for _ in 0..5 {
        node.tick_still(&mut l, &w, secs(1));
    }
    let taken = node.taken();
    assert_eq!(taken.len(), 1, "{}", l.details());
    assert_eq!(taken[0].0, RequestKind::Shutdown);
    assert_eq!(
        l.details()["criticalTemperature"]["hottest"]["sensor"],
        "gpu/1"
    );
}

#[tokio::test(start_paused = true)]
async fn the_runner_drives_the_loop_to_a_protective_shutdown() {
    let node = Node::new(small_ups([5.0, 300.0]));
    let Node {
        hub, world, ctx, ..
    } = node;
    let ctx = Arc::new(ctx);
    let w = want("ups: { battery: ups, shutdownAtPercent: 20 }");
    let stop = CancellationToken::new();
    let why = Arc::new(Mutex::new(Stop::Shutdown));
    // The world runs on tokio's clock, as in the agent.
    let stepper = {
        let hub = hub.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(secs(1)) => hub.step_world(secs(1)),
                }
            }
        })
    };
    let runner = tokio::spawn(reconcile::run(
        PowerLoop::new(),
        Arc::new(w),
        7,
        Arc::clone(&ctx),
        stop.clone(),
        why,
    ));
    tokio::time::timeout(secs(600), async {
        while ctx.host.taken().is_empty() {
            tokio::time::sleep(secs(1)).await;
        }
    })
    .await
    .expect("the power loop never shut the node down");
    // One more period so that the registry has the tick after it.
    tokio::time::sleep(secs(2)).await;
    let rep = ctx.registry.get("power").expect("the loop registered");
    // The simulated node is off after its shutdown, still on battery.
    assert_eq!(rep.condition.reason, "PoweredOff");
    assert_eq!(rep.details["ups"]["onBattery"], true);
    assert_eq!(rep.condition.observed_version, 7);
    assert_eq!(rep.details["ups"]["shutdownDone"], true);
    assert!(
        rep.families
            .iter()
            .any(|f| f.name == "onprem_power_on_battery")
    );
    stop.cancel();
    tokio::time::timeout(secs(60), runner)
        .await
        .expect("the runner did not stop")
        .unwrap();
    stepper.await.unwrap();
    assert_eq!(ctx.host.taken().len(), 1);
    drop(world);
}

#[test]
fn a_simulated_node_is_off_after_its_shutdown_until_mains_returns() {
    // Mains out from 5 s to 120 s: the shutdown runs at 20 % after about
    // half a minute on battery; before, the node kept running on a flat
    // battery.
    let mut node = Node::new(small_ups([5.0, 120.0]));
    let w = want("ups: { battery: ups, shutdownAtPercent: 20, grace: 5s }");
    let mut l = PowerLoop::new();
    let mut off_at: Option<(u64, f64)> = None;
    let mut on_again = None;
    for t in 1..=180 {
        let a = node.tick(&mut l, &w, secs(1));
        let d = l.details();
        let charge = d["ups"]["chargePercent"].as_f64().unwrap();
        let off = metric(&l, "onprem_power_powered_off", None);
        match (off_at, node.taken().is_empty()) {
            (None, true) => assert_eq!(off, Some(0.0), "t={t}: {d}"),
            (None, false) => {
                assert_eq!(reason(&a), "PoweredOff", "t={t}: {a:?}");
                assert_eq!(off, Some(1.0));
                assert_eq!(d["ups"]["poweredOff"], true, "{d}");
                off_at = Some((t, charge));
            }
            (Some((_, at_off)), _) if t < 120 => {
                // Off, it draws nothing: the charge stays where it was.
                assert_eq!(reason(&a), "PoweredOff", "t={t}: {a:?}");
                assert!(
                    (charge - at_off).abs() < 1.0,
                    "t={t}: {charge} % vs {at_off} %"
                );
                assert!(charge > 10.0, "t={t}: {charge} %");
            }
            (Some(_), _) if t >= 125 => {
                assert_ne!(reason(&a), "PoweredOff", "t={t}: on again: {a:?}");
                assert_eq!(off, Some(0.0), "t={t}");
                on_again.get_or_insert(t);
            }
            _ => {}
        }
    }
    let (t, _) = off_at.expect("never shut down");
    assert!(t < 120, "{t}");
    assert!(on_again.is_some());
    assert_eq!(node.taken().len(), 1, "{:?}", node.taken());
    let reasons = node.reasons();
    for r in [
        "ShutdownDecided",
        "PoweredOff",
        "MainsRestored",
        "PoweredOn",
    ] {
        assert!(reasons.iter().any(|x| x == r), "{r} missing: {reasons:?}");
    }
}
