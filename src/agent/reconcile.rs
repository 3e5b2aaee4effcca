//! One [`Reconciler`] trait and one runner for every loop of the agent
//! (fans, power, signals, checks), shaped after kube-runtime's controller:
//! each tick reads the observed state, compares it with the bundle's
//! desired state, acts, and returns an [`Action`]; errors go through the
//! reconciler's [`Reconciler::on_error`] (fans: fail-safe duty).
//!
//! The runner owns timing and bookkeeping, so no loop does its own:
//!
//! - **period**: ticks every `period` (or what the action asks); a tick
//!   that overruns its period is followed at once by the next, never run
//!   twice at the same time (no overlap: one task per loop, ticks in
//!   sequence), and counted as an overrun;
//! - **backoff** after errors: capped exponential (800 ms → 30 s, ×2) with
//!   jitter, reset after 120 s without errors (kube's `DefaultBackoff`);
//! - **condition**: type `Ready`, status, CamelCase reason, message, last
//!   transition and the bundle version it observed, in the shared
//!   [`Registry`] that `/metrics`, `onprem status` and the control plane
//!   read;
//! - **metrics**: runs, errors, overruns, last duration, condition, plus
//!   what the loop reports itself ([`Reconciler::report`]).
//!
//! Ticks run on tokio's blocking pool (device I/O blocks) and time is
//! read only through `tokio::time`, so tests drive loops on a paused clock.
//!
//! To add a loop: a file in `agent/` with a type implementing
//! [`Reconciler`], started by the supervisor with its bundle section.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::exporter::{Family, MetricWriter};
use crate::hw::poller::Hub;

/// What the runner does after a tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Run again after this long (`None`: the loop's period).
    pub requeue_after: Option<Duration>,
    /// How the loop stands after this tick.
    pub health: Health,
}

impl Action {
    /// Healthy; next tick after the period.
    pub fn ready() -> Action {
        Action {
            requeue_after: None,
            health: Health::Ready,
        }
    }

    /// Running, but not as the bundle wants (fail-safe, a missing device).
    pub fn degraded(reason: &str, message: impl Into<String>) -> Action {
        Action {
            requeue_after: None,
            health: Health::Degraded {
                reason: reason.to_owned(),
                message: message.into(),
            },
        }
    }

    /// The same, next tick after `d`.
    pub fn requeue(mut self, d: Duration) -> Action {
        self.requeue_after = Some(d);
        self
    }
}

/// How a loop stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// As the bundle wants.
    Ready,
    /// Working around a problem.
    Degraded {
        /// CamelCase reason (`Failsafe`, `SensorStale`).
        reason: String,
        /// For people.
        message: String,
    },
}

/// Why a tick failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoopError {
    /// A device failed.
    #[error("{device}: {source}")]
    Device {
        /// The device's name.
        device: String,
        /// What the driver said.
        #[source]
        source: onprem_hal::Error,
    },
    /// Something else (a file in the state directory, a host action).
    #[error("{reason}: {message}")]
    Other {
        /// CamelCase reason.
        reason: String,
        /// For people.
        message: String,
    },
}

impl LoopError {
    /// The condition reason for this error.
    pub fn reason(&self) -> &str {
        match self {
            LoopError::Device { .. } => "DeviceError",
            LoopError::Other { reason, .. } => reason,
        }
    }

    /// An error with a reason.
    pub fn other(reason: &str, message: impl Into<String>) -> LoopError {
        LoopError::Other {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Why a loop stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The agent is stopping: leave the hardware safe.
    Shutdown,
    /// The loop restarts with a new bundle section: hand over.
    Restart,
}

/// One loop of the agent.
pub trait Reconciler: Send + 'static {
    /// The loop's name: log field, metric label, status key.
    const NAME: &'static str;
    /// This loop's slice of the bundle.
    type Desired: Send + Sync + 'static;

    /// The loop's period under `want`.
    fn period(want: &Self::Desired) -> Duration;

    /// One tick at `now`: observe, compare, act.
    fn reconcile(
        &mut self,
        want: &Self::Desired,
        ctx: &Ctx,
        now: Instant,
    ) -> Result<Action, LoopError>;

    /// After a failed tick: make things safe; the runner backs off (no
    /// longer than the returned action's `requeue_after`, if given).
    fn on_error(&mut self, err: &LoopError, want: &Self::Desired, ctx: &Ctx) -> Action;

    /// When the loop stops.
    fn on_stop(&mut self, _want: &Self::Desired, _ctx: &Ctx, _why: Stop) {}

    /// The loop's own metrics, written after each tick.
    fn report(&self, _out: &mut MetricWriter) {}

    /// The loop's state for `onprem status` (zones, alerts, …).
    fn details(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// What every loop can reach: devices, the host, events, the state
/// directory. Handed to each tick; never global.
pub struct Ctx {
    /// The node's devices (none without a hardware section).
    pub hub: Option<Hub>,
    /// Host power actions.
    pub host: Arc<dyn crate::agent::host::Host>,
    /// Events kept for `onprem status` and upload.
    pub events: Events,
    /// Where loops keep state across restarts (switch states).
    pub state_dir: Option<PathBuf>,
    /// Requests to the power loop (button presses, Redfish resets).
    pub requests: crate::agent::host::Requests,
    /// The node's own metrics, for checks.
    pub metrics: Option<Arc<dyn Fn() -> Vec<Family> + Send + Sync>>,
    /// The shared loop registry.
    pub registry: Registry,
    /// This boot's id (`/proc/sys/kernel/random/boot_id`; a simulated
    /// node's own): tells an agent restart from a node power loss.
    pub boot_id: String,
}

impl Ctx {
    /// A context over `hub` with `host`, no state directory, no metrics
    /// source, and fresh events, requests and registry.
    pub fn new(hub: Option<Hub>, host: Arc<dyn crate::agent::host::Host>) -> Ctx {
        Ctx {
            hub,
            host,
            events: Events::default(),
            state_dir: None,
            requests: Default::default(),
            metrics: None,
            registry: Registry::default(),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
        }
    }

    /// The hub, or an error saying the bundle has no hardware.
    pub fn hub(&self) -> Result<&Hub, LoopError> {
        self.hub
            .as_ref()
            .ok_or_else(|| LoopError::other("NoHardware", "the agent has no hardware section"))
    }
}

/// A condition, Kubernetes-style.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Always `Ready` for loops.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: String,
    /// For people.
    pub message: String,
    /// When `status` last changed, Unix seconds.
    pub last_transition_time: f64,
    /// The bundle version the loop last acted on.
    pub observed_version: u64,
}

/// One loop's entry in the registry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopReport {
    /// The loop.
    pub name: &'static str,
    /// Its condition.
    pub condition: Condition,
    /// Ticks run.
    pub runs: u64,
    /// Ticks that failed.
    pub errors: u64,
    /// Ticks that took longer than the period.
    pub overruns: u64,
    /// The last tick's duration, seconds.
    pub last_duration_seconds: f64,
    /// The period, seconds.
    pub period_seconds: f64,
    /// Time between the starts of consecutive ticks.
    #[serde(skip)]
    pub intervals: Intervals,
    /// What the loop says of itself.
    pub details: serde_json::Value,
    /// The loop's own metric families.
    #[serde(skip)]
    pub families: Vec<Family>,
}

/// Upper bounds (seconds) of `onprem_loop_interval_seconds`' buckets.
pub const INTERVAL_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// A histogram of the time between the starts of a loop's consecutive
/// ticks: the period it keeps in fact. A tick that starts late (the
/// runtime or the blocking pool busy, a device slow to answer) shows as
/// an interval above the period; backoff after errors shows too.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Intervals {
    /// Cumulative counts, one per [`INTERVAL_BUCKETS`] bound.
    pub buckets: [u64; INTERVAL_BUCKETS.len()],
    /// Sum of the intervals, seconds.
    pub sum: f64,
    /// Intervals observed.
    pub count: u64,
    /// The longest interval observed, seconds.
    pub max: f64,
}

impl Intervals {
    /// Records one interval.
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (b, le) in self.buckets.iter_mut().zip(INTERVAL_BUCKETS) {
            if s <= le {
                *b += 1;
            }
        }
        self.sum += s;
        self.count += 1;
        self.max = self.max.max(s);
    }

    /// The histogram's value, as `/metrics` writes it.
    pub fn value(&self) -> crate::exporter::metrics::Value {
        let mut buckets: Vec<(f64, f64)> = INTERVAL_BUCKETS
            .iter()
            .zip(self.buckets)
            .map(|(le, n)| (*le, n as f64))
            .collect();
        buckets.push((f64::INFINITY, self.count as f64));
        crate::exporter::metrics::Value::Histogram {
            buckets,
            sum: self.sum,
            count: self.count as f64,
        }
    }
}

/// The loops' reports, shared with `/metrics` and status; clones share it.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<BTreeMap<&'static str, LoopReport>>>,
    changed: Arc<tokio::sync::Notify>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, LoopReport>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every loop's report.
    pub fn reports(&self) -> Vec<LoopReport> {
        self.lock().values().cloned().collect()
    }

    /// One loop's report.
    pub fn get(&self, name: &str) -> Option<LoopReport> {
        self.lock().get(name).cloned()
    }

    /// Resolves after the next tick of any loop is recorded (enable it
    /// before looking at the reports, so that none is missed).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    fn touch(&self) {
        self.changed.notify_waiters();
    }

    /// Removes a loop that no longer runs (its section left the bundle).
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Writes the runner's metrics and each loop's own.
    pub fn write_metrics(&self, out: &mut MetricWriter) {
        for r in self.lock().values() {
            let l = [("loop", r.name)];
            out.counter(
                "onprem_loop_runs_total",
                "Ticks of a reconcile loop.",
                &l,
                r.runs as f64,
            );
            out.counter(
                "onprem_loop_errors_total",
                "Ticks of a reconcile loop that failed.",
                &l,
                r.errors as f64,
            );
            out.counter(
                "onprem_loop_overruns_total",
                "Ticks of a reconcile loop that took longer than its period.",
                &l,
                r.overruns as f64,
            );
            out.push(
                "onprem_loop_interval_seconds",
                "Time between the starts of a reconcile loop's consecutive ticks (its period in fact: above the period when ticks start late).",
                crate::exporter::metrics::Kind::Histogram,
                &l,
                r.intervals.value(),
            );
            out.gauge(
                "onprem_loop_duration_seconds",
                "Duration of a reconcile loop's last tick.",
                &l,
                r.last_duration_seconds,
            );
            out.gauge(
                "onprem_loop_observed_bundle_version",
                "Version of the bundle a reconcile loop last acted on.",
                &l,
                r.condition.observed_version as f64,
            );
            out.gauge(
                "onprem_loop_condition",
                "A reconcile loop's condition: 1 for its current type, status and reason.",
                &[
                    ("loop", r.name),
                    ("type", r.condition.type_),
                    ("status", r.condition.status),
                    ("reason", &r.condition.reason),
                ],
                1.0,
            );
            for f in &r.families {
                for m in &f.metrics {
                    out.push_owned(&f.name, &f.help, f.kind, m.labels.clone(), m.value.clone());
                }
            }
        }
    }
}

/// One event: something a loop did or saw that people should know of.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Sequence number, rising from 1 (uploads resume after the last one
    /// acknowledged).
    pub seq: u64,
    /// Unix seconds.
    pub time: f64,
    /// The loop.
    pub source: &'static str,
    /// `info`, `warning` or `critical`.
    pub severity: &'static str,
    /// CamelCase reason.
    pub reason: String,
    /// For people.
    pub message: String,
    /// What the unauthenticated `/-/status` shows instead of `message`
    /// when the message says who or from where (a failed login's user
    /// name and client address); the Redfish log service and the control
    /// plane, which authenticate their readers, show `message`.
    #[serde(skip)]
    pub public: Option<String>,
}

impl Event {
    /// The event as the unauthenticated `/-/status` shows it.
    pub fn redacted(mut self) -> Event {
        if let Some(p) = self.public.take() {
            self.message = p;
        }
        self
    }
}

/// Most events kept in memory.
pub const EVENTS_KEPT: usize = 1000;

/// A bounded log of events; clones share it.
#[derive(Clone, Default)]
pub struct Events {
    inner: Arc<Mutex<(u64, VecDeque<Event>)>>,
}

impl Events {
    /// Records an event (and logs it).
    pub fn push(
        &self,
        source: &'static str,
        severity: &'static str,
        reason: &str,
        message: String,
    ) {
        self.push_redacted(source, severity, reason, message, None);
    }

    /// Records an event whose `message` says who or from where, with the
    /// `public` text `/-/status` shows instead ([`Event::public`]).
    pub fn push_redacted(
        &self,
        source: &'static str,
        severity: &'static str,
        reason: &str,
        message: String,
        public: Option<String>,
    ) {
        match severity {
            "critical" => tracing::error!(source, reason, "{message}"),
            "warning" => tracing::warn!(source, reason, "{message}"),
            _ => tracing::info!(source, reason, "{message}"),
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let seq = g.0;
        if g.1.len() == EVENTS_KEPT {
            g.1.pop_front();
        }
        g.1.push_back(Event {
            seq,
            time: unix_now(),
            source,
            severity,
            reason: reason.to_owned(),
            message,
            public,
        });
    }

    /// Events after sequence number `after`.
    pub fn since(&self, after: u64) -> Vec<Event> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.1.iter().filter(|e| e.seq > after).cloned().collect()
    }
}

/// Unix seconds now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Capped exponential backoff with jitter and reset after a quiet period.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// A quiet period this long resets the delay.
    pub reset_after: Duration,
    current: Option<Duration>,
    last_error: Option<Instant>,
    rng: u64,
}

impl Backoff {
    /// kube-runtime's default: 800 ms → 30 s, reset after 120 s.
    pub fn new(seed: u64) -> Backoff {
        Backoff {
            initial: Duration::from_millis(800),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(120),
            current: None,
            last_error: None,
            rng: seed | 1,
        }
    }

    /// The delay after an error at `now` (jittered: 50–150 % of the
    /// nominal delay, never above `max`).
    pub fn next(&mut self, now: Instant) -> Duration {
        if self
            .last_error
            .is_some_and(|t| now.saturating_duration_since(t) >= self.reset_after)
        {
            self.current = None;
        }
        self.last_error = Some(now);
        let nominal = match self.current {
            None => self.initial,
            Some(d) => (d * 2).min(self.max),
        };
        self.current = Some(nominal);
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let f = 0.5 + (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        nominal.mul_f64(f).min(self.max)
    }

    /// Resets after a quiet period, given a successful tick at `now`.
    pub fn success(&mut self, now: Instant) {
        if self
            .last_error
            .is_some_and(|t| now.saturating_duration_since(t) >= self.reset_after)
        {
            self.current = None;
            self.last_error = None;
        }
    }

    /// The nominal delay of the last error (none: not backing off).
    pub fn current(&self) -> Option<Duration> {
        self.current
    }
}

/// Runs `r` with `want` until `stop` is cancelled, then calls its
/// `on_stop` with the reason `why` holds at that moment.
pub async fn run<R: Reconciler>(
    mut r: R,
    want: Arc<R::Desired>,
    version: u64,
    ctx: Arc<Ctx>,
    stop: CancellationToken,
    why: Arc<Mutex<Stop>>,
) {
    let period = R::period(&want);
    let mut backoff = Backoff::new(seed(R::NAME));
    let mut report = LoopReport {
        name: R::NAME,
        condition: Condition {
            type_: "Ready",
            status: "Unknown",
            reason: "Starting".into(),
            message: String::new(),
            last_transition_time: unix_now(),
            observed_version: version,
        },
        runs: 0,
        errors: 0,
        overruns: 0,
        last_duration_seconds: 0.0,
        period_seconds: period.as_secs_f64(),
        intervals: Intervals::default(),
        details: serde_json::Value::Null,
        families: Vec::new(),
    };
    if let Some(old) = ctx.registry.get(R::NAME) {
        // A restart keeps the counters.
        report.runs = old.runs;
        report.errors = old.errors;
        report.overruns = old.overruns;
        report.intervals = old.intervals;
    }
    ctx.registry.lock().insert(R::NAME, report.clone());
    let mut last_start: Option<Instant> = None;
    loop {
        let start = Instant::now();
        let interval = last_start.map(|l| start.saturating_duration_since(l));
        last_start = Some(start);
        let (back, outcome) = {
            let want = Arc::clone(&want);
            let tick_ctx = Arc::clone(&ctx);
            let joined = tokio::task::spawn_blocking(move || {
                let ctx = tick_ctx;
                let res = r.reconcile(&want, &ctx, start);
                let action = match &res {
                    Ok(a) => Ok(a.clone()),
                    Err(e) => Err((e.clone(), r.on_error(e, &want, &ctx))),
                };
                let mut out = MetricWriter::new();
                r.report(&mut out);
                let details = r.details();
                (r, (action, out.finish(), details))
            })
            .await;
            match joined {
                Ok(x) => x,
                Err(e) => {
                    // A panic in a tick: the reconciler is gone and nothing
                    // more of this loop can run. Say so loudly.
                    ctx.events.push(
                        R::NAME,
                        "critical",
                        "LoopPanicked",
                        format!("the {} loop panicked and stopped: {e}", R::NAME),
                    );
                    if let Some(rep) = ctx.registry.lock().get_mut(R::NAME) {
                        rep.condition.status = "False";
                        rep.condition.reason = "LoopPanicked".into();
                        rep.condition.message = e.to_string();
                        rep.condition.last_transition_time = unix_now();
                    }
                    ctx.registry.touch();
                    stop.cancelled().await;
                    return;
                }
            }
        };
        r = back;
        let (action, families, details) = outcome;
        let took = start.elapsed();
        let failed = action.is_err();
        let (status, reason, message, next) = match action {
            Ok(a) => {
                backoff.success(start);
                let next = a.requeue_after.unwrap_or(period);
                match a.health {
                    Health::Ready => ("True", "Reconciled".to_owned(), String::new(), next),
                    Health::Degraded { reason, message } => ("False", reason, message, next),
                }
            }
            Err((e, a)) => {
                let mut next = backoff.next(start);
                if let Some(cap) = a.requeue_after {
                    next = next.min(cap);
                }
                tracing::warn!(loop_ = R::NAME, error = %e, retry_in = ?next, "reconcile failed");
                ("False", e.reason().to_owned(), e.to_string(), next)
            }
        };
        {
            let mut g = ctx.registry.lock();
            let rep = g.entry(R::NAME).or_insert_with(|| report.clone());
            rep.runs += 1;
            if failed {
                rep.errors += 1;
            }
            rep.last_duration_seconds = took.as_secs_f64();
            if took > period {
                rep.overruns += 1;
            }
            if let Some(i) = interval {
                rep.intervals.observe(i);
            }
            if rep.condition.status != status {
                rep.condition.last_transition_time = unix_now();
                ctx.events.push(
                    R::NAME,
                    if status == "True" { "info" } else { "warning" },
                    &reason,
                    if status == "True" {
                        format!("{} loop ready", R::NAME)
                    } else {
                        format!("{} loop not ready: {message}", R::NAME)
                    },
                );
            }
            rep.condition.status = status;
            rep.condition.reason = reason;
            rep.condition.message = message;
            rep.condition.observed_version = version;
            rep.families = families;
            rep.details = details;
        }
        ctx.registry.touch();
        let deadline = start + next;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    let why = *why.lock().unwrap_or_else(|e| e.into_inner());
    let done = tokio::task::spawn_blocking(move || r.on_stop(&want, &ctx, why)).await;
    if let Err(e) = done {
        tracing::error!(loop_ = R::NAME, error = %e, "stopping the loop panicked");
    }
}

fn seed(name: &str) -> u64 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    name.bytes().fold(t ^ 0x9E37_79B9_7F4A_7C15, |h, b| {
        h.rotate_left(5) ^ u64::from(b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_back_off_exponentially_with_jitter_cap_and_reset() {
        let mut b = Backoff::new(42);
        let t0 = Instant::now();
        let mut nominal = Duration::from_millis(800);
        for i in 0..10 {
            let d = b.next(t0 + Duration::from_secs(i));
            assert!(
                d >= nominal.mul_f64(0.5) && d <= nominal.mul_f64(1.5).min(b.max),
                "{i}: {d:?}"
            );
            assert_eq!(b.current(), Some(nominal));
            nominal = (nominal * 2).min(Duration::from_secs(30));
        }
        assert_eq!(b.current(), Some(Duration::from_secs(30)));
        // A quiet period resets it.
        b.success(t0 + Duration::from_secs(200));
        assert_eq!(b.current(), None);
        b.next(t0 + Duration::from_secs(201));
        assert_eq!(b.current(), Some(Duration::from_millis(800)));
    }

    /// Fails `failures` times, then succeeds; records when it ran.
    struct Flaky {
        failures: u32,
        at: Arc<Mutex<Vec<Instant>>>,
    }

    impl Reconciler for Flaky {
        const NAME: &'static str = "flaky";
        type Desired = ();

        fn period(_: &()) -> Duration {
            Duration::from_secs(10)
        }

        fn reconcile(&mut self, _: &(), _: &Ctx, now: Instant) -> Result<Action, LoopError> {
            self.at.lock().unwrap().push(now);
            if self.failures > 0 {
                self.failures -= 1;
                return Err(LoopError::other("Broken", "on purpose"));
            }
            Ok(Action::ready())
        }

        fn on_error(&mut self, _: &LoopError, _: &(), _: &Ctx) -> Action {
            Action::degraded("Broken", "")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn can_back_off_after_errors_then_tick_at_the_period() {
        let at = Arc::new(Mutex::new(Vec::new()));
        let ctx = Arc::new(Ctx::new(
            None,
            Arc::new(crate::agent::host::Recorded::default()),
        ));
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            Flaky {
                failures: 3,
                at: Arc::clone(&at),
            },
            Arc::new(()),
            7,
            Arc::clone(&ctx),
            stop.clone(),
            Arc::new(Mutex::new(Stop::Shutdown)),
        ));
        tokio::time::sleep(Duration::from_secs(60)).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("runner did not stop")
            .unwrap();
        let at = at.lock().unwrap().clone();
        let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
        // Three failures: backoff around 0.8, 1.6, 3.2 s (±50 %), then the
        // 10 s period, never two ticks at once.
        assert!(gaps.len() >= 6, "{gaps:?}");
        for (g, nominal) in gaps.iter().zip([0.8, 1.6, 3.2]) {
            assert!(*g >= nominal * 0.5 && *g <= nominal * 1.5, "{gaps:?}");
        }
        for g in &gaps[3..] {
            assert!((*g - 10.0).abs() < 0.01, "{gaps:?}");
        }
        let r = ctx.registry.get("flaky").unwrap();
        assert_eq!((r.errors, r.condition.status), (3, "True"));
        assert_eq!(r.runs as usize, at.len());
        assert_eq!(r.condition.observed_version, 7);
        let events = ctx.events.since(0);
        assert!(events.iter().any(|e| e.reason == "Broken"));
        // The interval histogram saw every gap between tick starts: three
        // backoffs under 8 s, the rest at the 10 s period (in 16 s).
        assert_eq!(r.intervals.count as usize, gaps.len());
        let le =
            |b: f64| r.intervals.buckets[INTERVAL_BUCKETS.iter().position(|x| *x == b).unwrap()];
        assert_eq!(le(8.0), 3, "{:?}", r.intervals);
        assert_eq!(le(16.0) as usize, gaps.len(), "{:?}", r.intervals);
        assert!((r.intervals.sum - gaps.iter().sum::<f64>()).abs() < 1e-6);
        assert!((r.intervals.max - 10.0).abs() < 0.01, "{:?}", r.intervals);
        let mut out = MetricWriter::new();
        ctx.registry.write_metrics(&mut out);
        let fams = out.finish();
        let h = fams
            .iter()
            .find(|f| f.name == "onprem_loop_interval_seconds")
            .unwrap();
        assert_eq!(h.kind, crate::exporter::metrics::Kind::Histogram);
        assert_eq!(h.metrics[0].value, r.intervals.value());
    }
}
