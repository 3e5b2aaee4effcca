//! The fans loop against the simulated world: the real drivers on the
//! emulated chips, loops closed through the physical model, time advanced
//! by the test (the world and the loop's clock move together).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use onprem::agent::fans::{Cause, FansLoop, write_safe};
use onprem::agent::host::Recorded;
use onprem::agent::reconcile::{Ctx, Health, Reconciler, Stop};
use onprem::bundle::schema::Fans;
use onprem::hw::poller::Hub;
use onprem_hal::inventory::{Handle, Hardware};
use onprem_hal::sim::world::World;
use tokio::time::Instant;

struct Node {
    hub: Hub,
    world: World,
    ctx: Ctx,
    fans: FansLoop,
    want: Fans,
    now: Instant,
    last: Option<Health>,
    _dir: tempfile::TempDir,
}

impl Node {
    fn from_text(text: &str, dir: Option<&Path>) -> Node {
        let b = onprem::bundle::parse(text).unwrap();
        let r = onprem::bundle::validate(&b, dir).unwrap_or_else(|e| panic!("{e}"));
        let tmp = tempfile::tempdir().unwrap();
        let world = World::new(&r.hardware, tmp.path()).unwrap();
        let hub = Hub::new(r.hardware.clone(), Hardware::Sim(world.clone()));
        hub.set_stepping(false);
        let ctx = Ctx::new(Some(hub.clone()), Arc::new(Recorded::default()));
        Node {
            hub,
            world,
            ctx,
            fans: FansLoop::new(),
            want: r.bundle.spec.fans.clone(),
            now: Instant::now(),
            last: None,
            _dir: tmp,
        }
    }

    fn example(name: &str) -> Node {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/examples");
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        Node::from_text(&text, Some(&dir))
    }

    /// One period: the world moves on, then the loop ticks.
    fn tick(&mut self) {
        let p = self.want.period.get();
        self.world.step(p);
        self.tick_frozen(p);
    }

    /// The loop ticks after `p` while the world stands still (sensor
    /// values frozen).
    fn tick_frozen(&mut self, p: Duration) {
        self.now += p;
        let a = self
            .fans
            .reconcile(&self.want, &self.ctx, self.now)
            .unwrap();
        self.last = Some(a.health);
    }

    fn cpu(&self) -> f64 {
        self.world.with_model(|m| m.state().cpu_celsius)
    }

    fn fan_duty(&self, fan: &str) -> f64 {
        self.hub
            .with(fan, |h| match h {
                Handle::Fan(f) => f.duty().unwrap(),
                _ => panic!("not a fan"),
            })
            .unwrap()
            .unwrap()
    }

    fn reason(&self) -> String {
        match &self.last {
            Some(Health::Degraded { reason, message }) => format!("{reason}: {message}"),
            Some(Health::Ready) => "Ready".into(),
            None => "none".into(),
        }
    }
}

/// A load step from 10 % to 100 %: the curve keeps the SoC under the
/// curve's top point (75 °C); without the fan it would settle near 83 °C.
#[test]
fn can_keep_a_pi5_under_the_curves_top_point_through_a_load_step() {
    let mut n = Node::example("pi5-fan-curve.yaml");
    n.world.with_model(|m| m.set_load(0.1));
    for _ in 0..600 {
        n.tick();
    }
    let idle_duty = n.fans.zone_duty("cpu").unwrap();
    n.world.with_model(|m| m.set_load(1.0));
    let mut hottest: f64 = 0.0;
    for _ in 0..1800 {
        n.tick();
        hottest = hottest.max(n.cpu());
    }
    let busy_duty = n.fans.zone_duty("cpu").unwrap();
    println!("idle duty {idle_duty:.0} %, busy duty {busy_duty:.0} %, hottest {hottest:.1} °C");
    assert!(hottest < 75.0, "{hottest:.1} °C");
    assert!(busy_duty > idle_duty, "{idle_duty} → {busy_duty}");
    assert!(matches!(n.last, Some(Health::Ready)), "{}", n.reason());
    // The fan itself carries the zone's duty.
    assert!((n.fan_duty("fan") - busy_duty).abs() < 1.0);
}

/// The PID zone of the GPU server settles within ±2 °C of its setpoint
/// after a load step, and says how long that took.
#[test]
fn can_settle_a_pid_zone_after_a_load_step() {
    let mut n = Node::example("gpu-server-pid.yaml");
    let setpoint = 60.0;
    n.world.with_model(|m| {
        m.set_load(0.1);
        m.set_gpu_load(0.1);
    });
    for _ in 0..600 {
        n.tick();
    }
    n.world.with_model(|m| m.set_load(1.0));
    let mut last_outside = 0;
    let secs = 2400;
    for t in 1..=secs {
        n.tick();
        if (n.cpu() - setpoint).abs() > 2.0 {
            last_outside = t;
        }
    }
    println!(
        "PID zone settled within ±2 °C of {setpoint} °C {last_outside} s after the load step; final {:.2} °C at {:.0} %",
        n.cpu(),
        n.fans.zone_duty("chassis").unwrap()
    );
    assert!(
        last_outside < 1500,
        "not settled: last outside at {last_outside} s"
    );
    assert!((n.cpu() - setpoint).abs() <= 2.0, "{:.1}", n.cpu());
}

const FAILSAFE: &str = r#"
apiVersion: onprem/v1
kind: Bundle
metadata: { name: failsafe }
spec:
  hardware:
    profile: pi5-fan
    devices:
      - { driver: lm75, name: board, bus: 1, resolutionBits: 11 }
  fans:
    period: 1s
    zones:
      - name: cpu
        fans: [fan]
        sensors:
          - { name: cpu }
          - { name: board, timeout: 1s, stuckAfter: 30s, range: [0, 100], maxRate: 5 }
        controllers:
          - { type: curve, points: [[40, 20], [80, 60]] }
        failsafe: { missing: 100, stale: 90, stuck: 80, implausible: 70 }
"#;

fn lm75(n: &Node, celsius: f64) {
    n.world
        .i2c(1)
        .with_chip(0x48, |c: &mut onprem_hal::sim::chips::lm75::Lm75| {
            c.set_temperature(celsius)
        })
        .unwrap();
}

/// Runs ticks until the zone is in fail-safe for `cause` at `level`;
/// returns how many periods it took.
fn until_failsafe(n: &mut Node, cause: Cause, level: f64, frozen: bool) -> usize {
    for i in 1..=10 {
        if frozen {
            n.tick_frozen(Duration::from_secs(1));
        } else {
            n.tick();
        }
        if n.fans.zone_causes("cpu").contains(&cause) {
            assert_eq!(n.fans.zone_duty("cpu"), Some(level), "{cause:?}");
            let want = if cause == Cause::Missing {
                "SensorMissing"
            } else {
                "Failsafe"
            };
            assert!(n.reason().starts_with(want), "{}", n.reason());
            assert!(n.reason().contains(cause.as_str()), "{}", n.reason());
            return i;
        }
    }
    panic!("no fail-safe for {cause:?}: {}", n.reason());
}

fn until_recovered(n: &mut Node) {
    for _ in 0..5 {
        n.tick();
        if n.fans.zone_causes("cpu").is_empty() {
            assert!(n.fans.zone_duty("cpu").unwrap() < 70.0);
            assert_eq!(n.reason(), "Ready");
            return;
        }
    }
    panic!("did not recover: {}", n.reason());
}

fn failsafe_node() -> Node {
    let mut n = Node::from_text(FAILSAFE, None);
    for _ in 0..5 {
        n.tick();
    }
    assert!(n.fans.zone_causes("cpu").is_empty(), "{}", n.reason());
    assert!(n.fans.zone_duty("cpu").unwrap() < 60.0);
    n
}

#[test]
fn can_fail_safe_on_a_stale_sensor_and_recover() {
    let mut n = failsafe_node();
    n.world.i2c(1).inject(0x48, onprem_hal::sim::Fault::Nack);
    let periods = until_failsafe(&mut n, Cause::Stale, 90.0, false);
    assert!(periods <= 2, "{periods} periods");
    n.world.i2c(1).clear(0x48);
    until_recovered(&mut n);
}

#[test]
fn can_fail_safe_on_a_missing_sensor_and_recover() {
    let mut n = failsafe_node();
    // The thermal zone's file disappears (the driver unbound).
    let zone = find_zone(&n.world.sysfs(), "cpu-thermal");
    std::fs::remove_file(zone.join("temp")).unwrap();
    let periods = until_failsafe(&mut n, Cause::Missing, 100.0, true);
    assert!(periods <= 2, "{periods} periods");
    // Moving the world on writes the file again.
    until_recovered(&mut n);
}

#[test]
fn can_fail_safe_on_a_stuck_sensor_and_recover() {
    let mut n = failsafe_node();
    // The world stands still: every value stays exactly as it is.
    let t = n.world.with_model(|m| m.state().board_celsius);
    lm75(&n, t + 1.0);
    let mut periods = 0;
    while !n.fans.zone_causes("cpu").contains(&Cause::Stuck) {
        n.tick_frozen(Duration::from_secs(1));
        periods += 1;
        assert!(periods <= 40, "never stuck: {}", n.reason());
    }
    // stuckAfter is 30 s: within two periods after that.
    assert!(periods <= 30 + 2, "{periods}");
    assert_eq!(n.fans.zone_duty("cpu"), Some(80.0));
    until_recovered(&mut n);
}

#[test]
fn can_fail_safe_on_implausible_readings_and_recover() {
    let mut n = failsafe_node();
    lm75(&n, 120.0);
    let periods = until_failsafe(&mut n, Cause::Implausible, 70.0, true);
    assert_eq!(periods, 1);
    assert!(n.reason().contains("outside 0–100"), "{}", n.reason());
    // A jump faster than maxRate (5 °C/s) within the range.
    let mut n = failsafe_node();
    let t = n.world.with_model(|m| m.state().board_celsius);
    lm75(&n, t + 30.0);
    until_failsafe(&mut n, Cause::Implausible, 70.0, true);
    assert!(n.reason().contains("°C/s"), "{}", n.reason());
    until_recovered(&mut n);
}

/// Two causes at once: the highest level wins.
#[test]
fn can_take_the_highest_level_of_several_causes() {
    let mut n = failsafe_node();
    lm75(&n, 120.0);
    let zone = find_zone(&n.world.sysfs(), "cpu-thermal");
    std::fs::remove_file(zone.join("temp")).unwrap();
    n.tick_frozen(Duration::from_secs(1));
    let causes = n.fans.zone_causes("cpu");
    assert!(causes.contains(&Cause::Missing) && causes.contains(&Cause::Implausible));
    assert_eq!(n.fans.zone_duty("cpu"), Some(100.0));
}

fn find_zone(sysfs: &Path, kind: &str) -> std::path::PathBuf {
    for e in std::fs::read_dir(sysfs.join("class/thermal")).unwrap() {
        let p = e.unwrap().path();
        if std::fs::read_to_string(p.join("type")).is_ok_and(|t| t.trim() == kind) {
            return p;
        }
    }
    panic!("no thermal zone {kind}");
}

fn find_hwmon(sysfs: &Path, name: &str) -> std::path::PathBuf {
    for e in std::fs::read_dir(sysfs.join("class/hwmon")).unwrap() {
        let p = e.unwrap().path();
        if std::fs::read_to_string(p.join("name")).is_ok_and(|t| t.trim() == name) {
            return p;
        }
    }
    panic!("no hwmon {name}");
}

const KICK: &str = r#"
apiVersion: onprem/v1
kind: Bundle
metadata: { name: kick }
spec:
  hardware: { profile: pi5-fan }
  fans:
    zones:
      - name: cpu
        fans: [fan]
        sensors: [{ name: cpu }]
        controllers: [{ type: curve, points: [[0, 30], [100, 30]] }]
        allowStop: true
        kickStart: { percent: 100, duration: 2s }
        stallAfter: 3s
"#;

#[test]
fn can_kick_start_a_fan_from_standstill() {
    let mut n = Node::from_text(KICK, None);
    n.tick();
    assert_eq!(n.fan_duty("fan").round(), 100.0, "kick");
    n.tick();
    assert_eq!(n.fan_duty("fan").round(), 100.0, "still kicking");
    n.tick();
    assert!(
        (n.fan_duty("fan") - 30.0).abs() < 1.0,
        "{}",
        n.fan_duty("fan")
    );
    // Turning: no new kick.
    for _ in 0..5 {
        n.tick();
        assert!((n.fan_duty("fan") - 30.0).abs() < 1.0);
    }
}

#[test]
fn can_report_a_fan_that_stalls_while_driven() {
    let mut n = Node::from_text(KICK, None);
    for _ in 0..5 {
        n.tick();
    }
    assert!(!n.fans.fan_stalled("fan"));
    n.world.with_model(|m| m.seize_fan(true));
    let mut periods = 0;
    while !n.fans.fan_stalled("fan") {
        n.tick();
        periods += 1;
        assert!(
            periods < 15,
            "never reported: {} {}",
            n.reason(),
            n.fans.details()
        );
    }
    assert!(n.reason().starts_with("FanStalled"), "{}", n.reason());
    let events = n.ctx.events.since(0);
    assert!(
        events
            .iter()
            .any(|e| e.reason == "FanStalled" && e.severity == "critical")
    );
    n.world.with_model(|m| m.seize_fan(false));
    for _ in 0..6 {
        n.tick();
    }
    assert!(!n.fans.fan_stalled("fan"), "{}", n.reason());
}

/// The kernel (or another daemon) puts the fan back in automatic mode:
/// the next period takes it back.
#[test]
fn can_reassert_pwm_enable_reset_behind_its_back() {
    let mut n = Node::from_text(KICK, None);
    n.tick();
    let hw = find_hwmon(&n.world.sysfs(), "pwmfan");
    assert_eq!(
        std::fs::read_to_string(hw.join("pwm1_enable"))
            .unwrap()
            .trim(),
        "1"
    );
    std::fs::write(hw.join("pwm1_enable"), "2\n").unwrap();
    n.tick();
    assert_eq!(
        std::fs::read_to_string(hw.join("pwm1_enable"))
            .unwrap()
            .trim(),
        "1"
    );
}

#[test]
fn can_write_the_safe_duty_at_start_and_on_stop() {
    let mut n = Node::example("pi5-fan-curve.yaml");
    // Before a bundle: every fan at the fail-safe duty.
    let fans = onprem::agent::fans::all_fans(&n.hub);
    assert_eq!(fans, ["fan"]);
    assert_eq!(write_safe(&n.hub, 100.0, fans), 1);
    assert_eq!(n.fan_duty("fan").round(), 100.0);
    for _ in 0..30 {
        n.tick();
    }
    assert!(n.fan_duty("fan") < 100.0);
    // A restart for a new bundle leaves the duty alone; a stop does not.
    n.fans.on_stop(&n.want, &n.ctx, Stop::Restart);
    assert!(n.fan_duty("fan") < 100.0);
    n.fans.on_stop(&n.want, &n.ctx, Stop::Shutdown);
    assert_eq!(n.fan_duty("fan").round(), 100.0);
}
