//! The fans loop: zones in the style of OpenBMC's phosphor-pid-control.
//!
//! Each zone owns its fans and reads one or more temperature sensors.
//! Every tick, per zone:
//!
//! 1. **read** each sensor and judge it: *missing* (the device is absent,
//!    did not open, or answers with a fatal error), *stale* (no successful
//!    reading within its `timeout`; until then the last value is held),
//!    *stuck* (the value has not changed at all for `stuckAfter`),
//!    *implausible* (outside `range`, or changing faster than `maxRate`);
//! 2. **control**: each controller (`curve` with hysteresis, `stepwise`
//!    with positive and negative hysteresis, `pid` with integral and
//!    output limits and slew) turns the hottest of its healthy sensors
//!    into a demand; the zone takes the **maximum**;
//! 3. **fail safe**: any unhealthy sensor puts the zone in fail-safe; the
//!    level is the highest of the levels of the causes present
//!    (`failsafe.<cause>`, else `spec.fans.failsafePercent`), and acts as a
//!    floor. The reason is in the condition, the log (an event on each
//!    change) and `/metrics`; the zone recovers by itself when its
//!    sensors do;
//! 4. **write**: minimum duty (unless the zone may stop), a kick-start
//!    from standstill, and the duty written to every fan every tick (level
//!    triggered: a duty or a `pwm_enable` changed behind the agent's back
//!    is put right within one period); a fan whose tachometer reads under
//!    [`STOPPED_RPM`] while driven for `stallAfter` is a fault.
//!
//! Before any bundle is loaded and when the agent stops, every fan gets
//! the fail-safe duty ([`write_safe`]).

use std::collections::BTreeSet;
use std::time::Duration;

use onprem_hal::ErrorKind;
use onprem_hal::inventory::Handle;
use serde_json::json;
use tokio::time::Instant;

use super::reconcile::{Action, Ctx, LoopError, Reconciler, Stop};
use crate::bundle::schema::{Controller, Fans, Zone};
use crate::exporter::MetricWriter;
use crate::hw::poller::Hub;

/// Why a sensor is not healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    /// Absent, did not open, or a fatal error.
    Missing,
    /// No new reading within the timeout.
    Stale,
    /// Unchanged for too long.
    Stuck,
    /// Out of range or changing too fast.
    Implausible,
}

impl Cause {
    /// Lower-case name (metric label, log).
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Missing => "missing",
            Cause::Stale => "stale",
            Cause::Stuck => "stuck",
            Cause::Implausible => "implausible",
        }
    }

    const ALL: [Cause; 4] = [
        Cause::Missing,
        Cause::Stale,
        Cause::Stuck,
        Cause::Implausible,
    ];
}

/// One sensor of a zone.
#[derive(Debug, Clone, Default)]
struct Sensor {
    name: String,
    /// The last accepted value.
    value: Option<f64>,
    /// When the last accepted value was read.
    read_at: Option<Instant>,
    /// When the value last changed.
    changed_at: Option<Instant>,
    /// When the sensor was first seen (staleness counts from here before
    /// any reading).
    since: Option<Instant>,
    cause: Option<Cause>,
    detail: String,
}

/// State of one controller.
#[derive(Debug, Clone, Default)]
struct Ctl {
    /// The effective (hysteresis-held) input of curves and steps.
    held: Option<f64>,
    /// PID: integral term, %.
    integral: f64,
    /// PID: last error and when.
    last: Option<(Instant, f64)>,
    /// PID: last output.
    out: Option<f64>,
    /// The last demand.
    demand: Option<f64>,
}

#[derive(Debug, Clone, Default)]
struct FanState {
    name: String,
    written: Option<f64>,
    kick_until: Option<Instant>,
    zero_since: Option<Instant>,
    stalled: bool,
    rpm: Option<f64>,
    kicks: u64,
    /// A kick was given and the fan has not been seen turning since: no
    /// second kick (a seized fan is a stall, not a reason to kick forever).
    kick_spent: bool,
    write_error: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct ZoneState {
    name: String,
    sensors: Vec<Sensor>,
    ctls: Vec<Ctl>,
    fans: Vec<FanState>,
    demand: Option<f64>,
    duty: f64,
    causes: BTreeSet<Cause>,
    failsafe_entries: u64,
}

/// The fans loop.
#[derive(Debug, Default)]
pub struct FansLoop {
    zones: Vec<ZoneState>,
}

impl FansLoop {
    /// A loop with no state yet: the first tick builds it from the bundle.
    pub fn new() -> FansLoop {
        FansLoop::default()
    }

    fn sync(&mut self, want: &Fans) {
        let same = self.zones.len() == want.zones.len()
            && self.zones.iter().zip(&want.zones).all(|(s, z)| {
                s.name == z.name
                    && s.sensors.len() == z.sensors.len()
                    && s.ctls.len() == z.controllers.len()
                    && s.fans.len() == z.fans.len()
            });
        if same {
            return;
        }
        self.zones = want
            .zones
            .iter()
            .map(|z| ZoneState {
                name: z.name.clone(),
                sensors: z
                    .sensors
                    .iter()
                    .map(|s| Sensor {
                        name: s.name.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ctls: vec![Ctl::default(); z.controllers.len()],
                fans: z
                    .fans
                    .iter()
                    .map(|f| FanState {
                        name: f.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
    }

    /// The zone's duty after the last tick (for tests and status).
    pub fn zone_duty(&self, zone: &str) -> Option<f64> {
        self.zones.iter().find(|z| z.name == zone).map(|z| z.duty)
    }

    /// The zone's fail-safe causes after the last tick.
    pub fn zone_causes(&self, zone: &str) -> Vec<Cause> {
        self.zones
            .iter()
            .find(|z| z.name == zone)
            .map(|z| z.causes.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether a fan is reported stalled.
    pub fn fan_stalled(&self, fan: &str) -> bool {
        self.zones
            .iter()
            .flat_map(|z| &z.fans)
            .any(|f| f.name == fan && f.stalled)
    }
}

impl Reconciler for FansLoop {
    const NAME: &'static str = "fans";
    type Desired = Fans;

    fn period(want: &Fans) -> Duration {
        want.period.get()
    }

    fn reconcile(&mut self, want: &Fans, ctx: &Ctx, now: Instant) -> Result<Action, LoopError> {
        let hub = ctx.hub()?;
        self.sync(want);
        let mut problems = Vec::new();
        let mut reason = None;
        for (z, spec) in self.zones.iter_mut().zip(&want.zones) {
            let before = z.causes.clone();
            tick_zone(z, spec, want, hub, now);
            if z.causes != before {
                if z.causes.is_empty() {
                    ctx.events.push(
                        "fans",
                        "info",
                        "FailsafeCleared",
                        format!("zone {}: sensors healthy again; fail-safe cleared", z.name),
                    );
                } else {
                    if before.is_empty() {
                        z.failsafe_entries += 1;
                    }
                    ctx.events.push(
                        "fans",
                        "warning",
                        "Failsafe",
                        format!(
                            "zone {}: fail-safe at {:.0} % ({})",
                            z.name,
                            z.duty,
                            sensor_problems(z).join("; ")
                        ),
                    );
                }
            }
            if !z.causes.is_empty() {
                // A sensor that is not there at all is the bundle naming a
                // device that does not answer: say so, it fails an apply.
                if z.causes.contains(&Cause::Missing) {
                    reason = Some("SensorMissing");
                } else {
                    reason.get_or_insert("Failsafe");
                }
                problems.push(format!(
                    "zone {} fail-safe at {:.0} %: {}",
                    z.name,
                    z.duty,
                    sensor_problems(z).join("; ")
                ));
            }
            for f in &mut z.fans {
                if let Some(e) = &f.write_error {
                    reason = Some("FanWriteFailed");
                    problems.push(format!("fan {}: {e}", f.name));
                }
                let stalled = f
                    .zero_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= spec.stall_after.get());
                if stalled != f.stalled {
                    f.stalled = stalled;
                    if stalled {
                        ctx.events.push(
                            "fans",
                            "critical",
                            "FanStalled",
                            format!(
                                "fan {}: 0 RPM while driven at {:.0} % for {}",
                                f.name,
                                f.written.unwrap_or(0.0),
                                spec.stall_after
                            ),
                        );
                    } else {
                        ctx.events.push(
                            "fans",
                            "info",
                            "FanTurning",
                            format!("fan {}: turning again", f.name),
                        );
                    }
                }
                if f.stalled {
                    reason.get_or_insert("FanStalled");
                    problems.push(format!("fan {} stalled", f.name));
                }
            }
        }
        Ok(match reason {
            None => Action::ready(),
            Some(r) => Action::degraded(r, problems.join("; ")),
        })
    }

    fn on_error(&mut self, _err: &LoopError, want: &Fans, ctx: &Ctx) -> Action {
        if let Some(hub) = &ctx.hub {
            write_safe(hub, want.failsafe_percent, zone_fans(want));
        }
        Action::degraded("Failsafe", "fans loop failed; fail-safe duty written")
            .requeue(want.period.get())
    }

    fn on_stop(&mut self, want: &Fans, ctx: &Ctx, why: Stop) {
        if why == Stop::Shutdown {
            if let Some(hub) = &ctx.hub {
                let n = write_safe(hub, want.failsafe_percent, all_fans(hub));
                tracing::info!(
                    fans = n,
                    percent = want.failsafe_percent,
                    "fans left at fail-safe duty"
                );
            }
        }
    }

    fn report(&self, out: &mut MetricWriter) {
        for z in &self.zones {
            let l = [("zone", z.name.as_str())];
            out.gauge(
                "onprem_fan_zone_duty_percent",
                "Duty a fan zone wrote to its fans, percent.",
                &l,
                z.duty,
            );
            if let Some(d) = z.demand {
                out.gauge(
                    "onprem_fan_zone_demand_percent",
                    "Highest demand of a fan zone's controllers, percent.",
                    &l,
                    d,
                );
            }
            out.gauge(
                "onprem_fan_zone_failsafe",
                "Whether a fan zone is in fail-safe (1) or controlled (0).",
                &l,
                if z.causes.is_empty() { 0.0 } else { 1.0 },
            );
            for c in Cause::ALL {
                out.gauge(
                    "onprem_fan_zone_failsafe_cause",
                    "Whether a cause of fail-safe is present in a fan zone (missing, stale, stuck, implausible).",
                    &[("zone", z.name.as_str()), ("cause", c.as_str())],
                    if z.causes.contains(&c) { 1.0 } else { 0.0 },
                );
            }
            out.counter(
                "onprem_fan_zone_failsafe_entries_total",
                "Times a fan zone entered fail-safe.",
                &l,
                z.failsafe_entries as f64,
            );
            for s in &z.sensors {
                let state = s.cause.map_or("ok", Cause::as_str);
                out.gauge(
                    "onprem_fan_zone_sensor_state",
                    "State of a fan zone's sensor: 1 for its current state (ok, missing, stale, stuck, implausible).",
                    &[("zone", z.name.as_str()), ("sensor", s.name.as_str()), ("state", state)],
                    1.0,
                );
                if let Some(v) = s.value {
                    out.gauge(
                        "onprem_fan_zone_sensor_celsius",
                        "Last accepted reading of a fan zone's sensor, degrees Celsius.",
                        &[("zone", z.name.as_str()), ("sensor", s.name.as_str())],
                        v,
                    );
                }
            }
            for (i, c) in z.ctls.iter().enumerate() {
                if let Some(d) = c.demand {
                    let idx = i.to_string();
                    out.gauge(
                        "onprem_fan_controller_demand_percent",
                        "Demand of one controller of a fan zone, percent.",
                        &[("zone", z.name.as_str()), ("controller", idx.as_str())],
                        d,
                    );
                }
            }
            for f in &z.fans {
                let l = [("zone", z.name.as_str()), ("fan", f.name.as_str())];
                out.gauge(
                    "onprem_fan_stalled",
                    "Whether a driven fan's tachometer has read 0 RPM for longer than the zone allows.",
                    &l,
                    if f.stalled { 1.0 } else { 0.0 },
                );
                out.counter(
                    "onprem_fan_kick_starts_total",
                    "Kick-starts given to a fan from standstill.",
                    &l,
                    f.kicks as f64,
                );
            }
        }
    }

    fn details(&self) -> serde_json::Value {
        json!(
            self.zones
                .iter()
                .map(|z| json!({
                    "zone": z.name,
                    "dutyPercent": round1(z.duty),
                    "demandPercent": z.demand.map(round1),
                    "failsafe": z.causes.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                    "sensors": z.sensors.iter().map(|s| json!({
                        "name": s.name,
                        "celsius": s.value.map(round1),
                        "state": s.cause.map_or("ok", Cause::as_str),
                        "detail": s.detail,
                    })).collect::<Vec<_>>(),
                    "fans": z.fans.iter().map(|f| json!({
                        "name": f.name,
                        "dutyPercent": f.written.map(round1),
                        "rpm": f.rpm,
                        "stalled": f.stalled,
                    })).collect::<Vec<_>>(),
                }))
                .collect::<Vec<_>>()
        )
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn sensor_problems(z: &ZoneState) -> Vec<String> {
    z.sensors
        .iter()
        .filter_map(|s| {
            s.cause
                .map(|c| format!("sensor {} {} ({})", s.name, c.as_str(), s.detail))
        })
        .collect()
}

/// The fans of every zone of `want`.
fn zone_fans(want: &Fans) -> Vec<String> {
    want.zones
        .iter()
        .flat_map(|z| z.fans.iter().cloned())
        .collect()
}

/// Every fan entry of the hub.
pub fn all_fans(hub: &Hub) -> Vec<String> {
    hub.names()
        .into_iter()
        .filter(|n| {
            hub.with(n, |h| matches!(h, Handle::Fan(_)))
                .is_some_and(|r| r.unwrap_or(false))
        })
        .collect()
}

/// Writes `percent` to each fan in `fans`; returns how many took it.
/// Used before a bundle loads, on stop and when the loop fails.
pub fn write_safe(hub: &Hub, percent: f64, fans: Vec<String>) -> usize {
    let mut n = 0;
    for f in fans {
        let r = hub.with(&f, |h| match h {
            Handle::Fan(fan) => fan.set_duty(percent),
            _ => Ok(()),
        });
        match r {
            Some(Ok(Ok(()))) => n += 1,
            Some(Ok(Err(e))) | Some(Err(e)) => {
                tracing::warn!(fan = %f, error = %e, "cannot write the fail-safe duty")
            }
            None => {}
        }
    }
    n
}

/// Reads one temperature: a sensor, or a GPU's core.
fn read_temperature(hub: &Hub, name: &str) -> Result<f64, (Cause, String)> {
    let r = hub.with(name, |h| match h {
        Handle::Temperature(t) => t.temperature_celsius(),
        Handle::Gpu(g) => g.sample().and_then(|s| {
            s.temperature_celsius.ok_or(onprem_hal::Error::Unsupported {
                chip: "gpu",
                what: "temperature".into(),
            })
        }),
        other => Err(onprem_hal::Error::Invalid {
            chip: "fans",
            detail: format!("{name} is a {}, not a temperature", other.kind()),
        }),
    });
    match r {
        None => Err((Cause::Missing, "not in the inventory".into())),
        Some(Err(e)) => Err((Cause::Missing, format!("did not open: {e}"))),
        Some(Ok(Ok(v))) => Ok(v),
        Some(Ok(Err(e))) => match e.kind() {
            ErrorKind::Transient => Err((Cause::Stale, e.to_string())),
            _ => Err((Cause::Missing, e.to_string())),
        },
    }
}

fn judge(s: &mut Sensor, spec: &crate::bundle::schema::ZoneSensor, hub: &Hub, now: Instant) {
    let since = *s.since.get_or_insert(now);
    match read_temperature(hub, &s.name) {
        Ok(v) => {
            let [lo, hi] = spec.range;
            let rate = match (s.value, s.read_at) {
                (Some(prev), Some(at)) => {
                    let dt = now.saturating_duration_since(at).as_secs_f64();
                    (dt > 0.0).then(|| (v - prev).abs() / dt)
                }
                _ => None,
            };
            if !v.is_finite() || v < lo || v > hi {
                s.cause = Some(Cause::Implausible);
                s.detail = format!("{v:.1} °C outside {lo}–{hi} °C");
                return;
            }
            if let Some(r) = rate.filter(|r| *r > spec.max_rate) {
                s.cause = Some(Cause::Implausible);
                s.detail = format!("changing at {r:.1} °C/s, above {} °C/s", spec.max_rate);
                // The spike is not accepted; the rate is judged against
                // the last good value next time.
                return;
            }
            if s.value != Some(v) || s.changed_at.is_none() {
                s.changed_at = Some(now);
            }
            s.value = Some(v);
            s.read_at = Some(now);
            match (spec.stuck_after, s.changed_at) {
                (Some(limit), Some(at)) if now.saturating_duration_since(at) >= limit.get() => {
                    s.cause = Some(Cause::Stuck);
                    s.detail = format!(
                        "{v:.1} °C unchanged for {}",
                        crate::bundle::Dur(now.saturating_duration_since(at))
                    );
                }
                _ => {
                    s.cause = None;
                    s.detail.clear();
                }
            }
        }
        Err((Cause::Stale, e)) => {
            // Hold the last value until the timeout.
            let last = s.read_at.unwrap_or(since);
            let age = now.saturating_duration_since(last);
            if age >= spec.timeout.get() {
                s.cause = Some(Cause::Stale);
                s.detail = format!("no reading for {} ({e})", crate::bundle::Dur(age));
            } else if s.cause == Some(Cause::Missing) {
                s.detail = e;
            }
        }
        Err((cause, e)) => {
            s.cause = Some(cause);
            s.detail = e;
        }
    }
}

/// The healthy value of the hottest of `names` (all zone sensors when
/// empty).
fn input(z: &ZoneState, names: &[String]) -> Option<f64> {
    z.sensors
        .iter()
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .filter(|s| s.cause.is_none())
        .filter_map(|s| s.value)
        .reduce(f64::max)
}

/// Linear interpolation on `[x, y]` points, clamped at both ends.
pub fn interpolate(points: &[[f64; 2]], x: f64) -> f64 {
    let Some(first) = points.first() else {
        return 0.0;
    };
    if x <= first[0] {
        return first[1];
    }
    for w in points.windows(2) {
        let ([x0, y0], [x1, y1]) = (w[0], w[1]);
        if x <= x1 {
            return if x1 > x0 {
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            } else {
                y1
            };
        }
    }
    points.last().map_or(0.0, |p| p[1])
}

/// The duty of the highest step at or below `x` (0 below the first).
pub fn step(steps: &[[f64; 2]], x: f64) -> f64 {
    steps
        .iter()
        .take_while(|s| s[0] <= x)
        .last()
        .map_or(0.0, |s| s[1])
}

fn control(c: &Controller, st: &mut Ctl, t: Option<f64>, now: Instant) -> Option<f64> {
    let Some(t) = t else {
        st.demand = None;
        return None;
    };
    let d = match c {
        Controller::Curve(c) => {
            // Backlash: the held input follows a rise at once and a fall
            // only once it exceeds the hysteresis.
            let held = st.held.map_or(t, |h| h.clamp(t, t + c.hysteresis));
            st.held = Some(held);
            interpolate(&c.points, held)
        }
        Controller::Stepwise(c) => {
            let held = st.held.map_or(t, |h| {
                h.clamp(t - c.positive_hysteresis, t + c.negative_hysteresis)
            });
            st.held = Some(held);
            step(&c.steps, held)
        }
        Controller::Pid(p) => {
            let e = t - p.setpoint;
            let dt = st.last.map_or(0.0, |(at, _)| {
                now.saturating_duration_since(at).as_secs_f64()
            });
            let deriv = match st.last {
                Some((_, pe)) if dt > 0.0 => (e - pe) / dt,
                _ => 0.0,
            };
            let [ilo, ihi] = p.integral_limits;
            st.integral = (st.integral + p.ki * e * dt).clamp(ilo, ihi);
            let [olo, ohi] = p.output_limits;
            let mut out = (p.feed_forward + p.kp * e + st.integral + p.kd * deriv).clamp(olo, ohi);
            if let Some(prev) = st.out {
                if let Some(up) = p.slew_up {
                    out = out.min(prev + up * dt);
                }
                if let Some(down) = p.slew_down {
                    out = out.max(prev - down * dt);
                }
            }
            st.last = Some((now, e));
            st.out = Some(out);
            out
        }
    };
    st.demand = Some(d);
    Some(d)
}

fn tick_zone(z: &mut ZoneState, spec: &Zone, fans: &Fans, hub: &Hub, now: Instant) {
    for (s, sspec) in z.sensors.iter_mut().zip(&spec.sensors) {
        judge(s, sspec, hub, now);
    }
    let mut demand: Option<f64> = None;
    for i in 0..spec.controllers.len() {
        let c = &spec.controllers[i];
        let names = match c {
            Controller::Curve(c) => &c.sensors,
            Controller::Stepwise(c) => &c.sensors,
            Controller::Pid(c) => &c.sensors,
        };
        let t = input(z, names);
        if let Some(d) = control(c, &mut z.ctls[i], t, now) {
            demand = Some(demand.map_or(d, |m: f64| m.max(d)));
        }
    }
    z.demand = demand;
    z.causes = z.sensors.iter().filter_map(|s| s.cause).collect();
    let level = z
        .causes
        .iter()
        .map(|c| {
            let l = match c {
                Cause::Missing => spec.failsafe.missing,
                Cause::Stale => spec.failsafe.stale,
                Cause::Stuck => spec.failsafe.stuck,
                Cause::Implausible => spec.failsafe.implausible,
            };
            l.unwrap_or(fans.failsafe_percent)
        })
        .reduce(f64::max);
    let mut duty = match (demand, level) {
        (Some(d), Some(l)) => d.max(l),
        (Some(d), None) => d,
        (None, Some(l)) => l,
        // No controller had an input and no cause: cannot happen with at
        // least one sensor; be safe anyway.
        (None, None) => fans.failsafe_percent,
    };
    if duty > 0.0 || !spec.allow_stop {
        duty = duty.max(spec.min_percent);
    }
    duty = duty.clamp(0.0, 100.0);
    z.duty = duty;
    for f in &mut z.fans {
        write_fan(f, spec, hub, duty, now);
    }
}

/// Tachometer readings below this count as a fan standing still (real
/// fans turn at several hundred RPM at their lowest duty).
pub const STOPPED_RPM: f64 = 100.0;

fn stopped(rpm: f64) -> bool {
    rpm < STOPPED_RPM
}

fn write_fan(f: &mut FanState, spec: &Zone, hub: &Hub, duty: f64, now: Instant) {
    // Kick-start from standstill: the fan was stopped (written 0, or its
    // tachometer reads 0) and is now asked to turn slower than the kick.
    let mut out = duty;
    if let Some(k) = &spec.kick_start {
        let standing = f.written.is_none_or(|w| w <= 0.0) || f.rpm.is_some_and(stopped);
        if duty > 0.0 && duty < k.percent && standing && f.kick_until.is_none() && !f.kick_spent {
            f.kick_until = Some(now + k.duration.get());
            f.kicks += 1;
            f.kick_spent = true;
        }
        match f.kick_until {
            Some(until) if now < until && duty > 0.0 => out = out.max(k.percent),
            Some(_) => f.kick_until = None,
            None => {}
        }
    }
    let r = hub.with(&f.name, |h| match h {
        Handle::Fan(fan) => {
            let w = fan.set_duty(out);
            // A write-only fan has no tachometer to read.
            let rpm = fan.rpm().ok().flatten();
            (w, rpm)
        }
        other => (
            Err(onprem_hal::Error::Invalid {
                chip: "fans",
                detail: format!("{} is a {}, not a fan", f.name, other.kind()),
            }),
            None,
        ),
    });
    match r {
        Some(Ok((Ok(()), rpm))) => {
            f.written = Some(out);
            f.write_error = None;
            f.rpm = rpm;
            if out <= 0.0 || rpm.is_some_and(|r| !stopped(r)) {
                f.kick_spent = false;
            }
            let driven = out > 0.0 && f.kick_until.is_none();
            if driven && rpm.is_some_and(stopped) {
                f.zero_since.get_or_insert(now);
            } else {
                f.zero_since = None;
            }
        }
        Some(Ok((Err(e), _))) | Some(Err(e)) => {
            f.write_error = Some(e.to_string());
        }
        None => f.write_error = Some("not in the inventory".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_interpolate_and_clamp_a_curve() {
        let p = [[40.0, 20.0], [60.0, 60.0], [80.0, 100.0]];
        assert_eq!(interpolate(&p, 30.0), 20.0);
        assert_eq!(interpolate(&p, 50.0), 40.0);
        assert_eq!(interpolate(&p, 70.0), 80.0);
        assert_eq!(interpolate(&p, 90.0), 100.0);
        assert_eq!(step(&p, 39.0), 0.0);
        assert_eq!(step(&p, 65.0), 60.0);
    }

    #[test]
    fn can_hold_a_curve_through_its_hysteresis() {
        let c = Controller::Curve(crate::bundle::schema::Curve {
            sensors: vec![],
            points: vec![[40.0, 0.0], [60.0, 100.0]],
            hysteresis: 3.0,
        });
        let mut st = Ctl::default();
        let now = Instant::now();
        assert_eq!(control(&c, &mut st, Some(50.0), now), Some(50.0));
        // Falling by less than the hysteresis holds the duty.
        assert_eq!(control(&c, &mut st, Some(48.0), now), Some(50.0));
        // Falling further lets it down, 3 °C behind.
        assert_eq!(control(&c, &mut st, Some(45.0), now), Some(40.0));
        // A rise acts at once.
        assert_eq!(control(&c, &mut st, Some(46.0), now), Some(40.0));
        assert_eq!(control(&c, &mut st, Some(52.0), now), Some(60.0));
    }

    #[test]
    fn can_step_with_positive_and_negative_hysteresis() {
        let c = Controller::Stepwise(crate::bundle::schema::Stepwise {
            sensors: vec![],
            steps: vec![[50.0, 30.0], [60.0, 70.0]],
            positive_hysteresis: 2.0,
            negative_hysteresis: 4.0,
        });
        let mut st = Ctl::default();
        let now = Instant::now();
        assert_eq!(control(&c, &mut st, Some(55.0), now), Some(30.0));
        assert_eq!(
            control(&c, &mut st, Some(61.0), now),
            Some(30.0),
            "not 2 °C past the edge"
        );
        assert_eq!(control(&c, &mut st, Some(62.5), now), Some(70.0));
        assert_eq!(
            control(&c, &mut st, Some(57.0), now),
            Some(70.0),
            "not 4 °C below"
        );
        assert_eq!(control(&c, &mut st, Some(55.0), now), Some(30.0));
    }

    #[test]
    fn can_limit_pid_integral_output_and_slew() {
        let c = Controller::Pid(crate::bundle::schema::Pid {
            sensors: vec![],
            setpoint: 60.0,
            kp: 5.0,
            ki: 1.0,
            kd: 0.0,
            feed_forward: 0.0,
            integral_limits: [0.0, 20.0],
            output_limits: [10.0, 90.0],
            slew_up: Some(10.0),
            slew_down: None,
        });
        let mut st = Ctl::default();
        let t0 = Instant::now();
        // 20 °C over: P alone asks 100, clamped to 90.
        assert_eq!(control(&c, &mut st, Some(80.0), t0), Some(90.0));
        // Far below: clamped to the lower output limit at once (no down slew).
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(control(&c, &mut st, Some(40.0), t1), Some(10.0));
        // Up again: at most +10 %/s.
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(control(&c, &mut st, Some(80.0), t2), Some(20.0));
        // The integral stays within its limits however long the error lasts.
        let mut t = t2;
        for _ in 0..100 {
            t += Duration::from_secs(1);
            control(&c, &mut st, Some(80.0), t);
        }
        assert!(st.integral <= 20.0 && st.integral >= 0.0, "{}", st.integral);
    }
}
