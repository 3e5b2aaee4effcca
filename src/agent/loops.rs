//! The loops of one node and the bundle they run: start, restart only
//! what a new bundle changes, roll back a bundle that fails to apply.
//!
//! [`Loops::apply`] takes a validated bundle and:
//!
//! 1. when its hardware differs from the running one (or at first): stops
//!    every loop (fans left at their fail-safe duty), opens the new
//!    devices, writes the fail-safe duty to every fan **before** any loop
//!    runs, and swaps the `devices` collector;
//! 2. restarts the loops whose section changed ([`crate::bundle::diff`]),
//!    leaving the others running untouched;
//! 3. waits for each restarted loop's first tick: a loop that reports a
//!    device that does not answer ([`APPLY_FAILURES`]) fails the apply,
//!    and the previous bundle is put back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::fans::{FansLoop, all_fans, write_safe};
use super::host::{Host, Requests};
use super::reconcile::{self, Ctx, Events, Reconciler, Registry, Stop};
use crate::bundle::Resolved;
use crate::bundle::diff::{Diff, Section};
use crate::exporter::Family;
use crate::hw::poller::Hub;

/// Loop conditions that mean a bundle did not apply: a device it names
/// does not answer.
pub const APPLY_FAILURES: &[&str] = &[
    "DeviceError",
    "FanWriteFailed",
    "SensorMissing",
    "BatteryUnreadable",
    "NoHardware",
];

/// How long [`Loops::apply`] waits for restarted loops' first ticks.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

struct Running {
    stop: CancellationToken,
    why: Arc<Mutex<Stop>>,
    task: JoinHandle<()>,
}

/// What every context shares across hardware changes.
#[derive(Clone)]
pub struct Shared {
    /// Host actions.
    pub host: Arc<dyn Host>,
    /// Events.
    pub events: Events,
    /// Requests to the power loop.
    pub requests: Requests,
    /// Loop reports.
    pub registry: Registry,
    /// State directory for loops.
    pub state_dir: Option<std::path::PathBuf>,
    /// The node's own metrics (checks).
    pub metrics: Option<Arc<dyn Fn() -> Vec<Family> + Send + Sync>>,
    /// Boot id override (simulated nodes); the real one when `None`.
    pub boot_id: Option<String>,
}

/// The running loops of one node.
pub struct Loops {
    shared: Shared,
    ctx: Arc<Ctx>,
    running: BTreeMap<&'static str, Running>,
    current: Option<Resolved>,
    parent: CancellationToken,
    signals: Option<super::signals::Handover>,
    alerts: Arc<std::sync::Mutex<Option<super::checks::Alerts>>>,
}

impl Loops {
    /// No loops yet, on `hub`.
    pub fn new(shared: Shared, hub: Option<Hub>, parent: CancellationToken) -> Loops {
        let ctx = Arc::new(make_ctx(&shared, hub));
        Loops {
            shared,
            ctx,
            running: BTreeMap::new(),
            current: None,
            parent,
            signals: None,
            alerts: Default::default(),
        }
    }

    fn alerts_slot(&self) -> std::sync::MutexGuard<'_, Option<super::checks::Alerts>> {
        self.alerts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The checks loop's alerts, shared: they follow the loop across
    /// restarts (for the status the agent reports to its control plane).
    pub fn alerts(&self) -> Arc<std::sync::Mutex<Option<super::checks::Alerts>>> {
        Arc::clone(&self.alerts)
    }

    /// The bundle running now.
    pub fn current(&self) -> Option<&Resolved> {
        self.current.as_ref()
    }

    /// The context loops run with.
    pub fn ctx(&self) -> Arc<Ctx> {
        Arc::clone(&self.ctx)
    }

    /// Names of the loops running.
    pub fn names(&self) -> Vec<&'static str> {
        self.running.keys().copied().collect()
    }

    /// Uses `hub` from now on (after the hardware changed): every loop
    /// stops (fans at fail-safe), the fail-safe duty goes to every fan of
    /// the new hardware, and the next [`apply`](Self::apply) starts them
    /// all again.
    pub async fn replace_hub(&mut self, hub: Option<Hub>, failsafe_percent: f64) {
        self.stop_all(Stop::Shutdown).await;
        if let Some(h) = &hub {
            let n = write_safe(h, failsafe_percent, all_fans(h));
            tracing::info!(
                fans = n,
                percent = failsafe_percent,
                "fail-safe duty written before the bundle's loops start"
            );
        }
        self.ctx = Arc::new(make_ctx(&self.shared, hub));
        self.current = None;
    }

    /// Starts or restarts the loops `next` changes; waits for their first
    /// ticks and returns the diff, or why the bundle did not apply (the
    /// caller rolls back).
    pub async fn apply(&mut self, next: &Resolved) -> Result<Diff, String> {
        let diff = Diff::between(self.current.as_ref().map(|r| &r.bundle), &next.bundle);
        let version = next.version();
        let spec = &next.bundle.spec;
        let mut restarted = Vec::new();
        let everything = self.current.is_none();
        for section in [
            Section::Fans,
            Section::Power,
            Section::Signals,
            Section::Checks,
        ] {
            let name = section.as_str();
            let wanted = match section {
                Section::Fans => !spec.fans.zones.is_empty(),
                Section::Power => self.ctx.hub.is_some(),
                Section::Signals => !spec.signals.sources.is_empty(),
                Section::Checks => !spec.checks.rules.is_empty(),
                _ => false,
            };
            let changed = everything || diff.restarts(section);
            let is_running = self.running.contains_key(name);
            if is_running && !wanted {
                self.stop(name, Stop::Shutdown).await;
            } else if is_running && changed {
                self.stop(name, Stop::Restart).await;
            }
            if !wanted {
                match section {
                    Section::Signals => self.signals = None,
                    Section::Checks => *self.alerts_slot() = None,
                    _ => {}
                }
            }
            if wanted && (changed || !is_running) {
                let r = self.start(section, next, version);
                self.running.insert(name, r);
                restarted.push(name);
            } else if !wanted {
                self.shared.registry.remove(name);
            }
        }
        self.current = Some(next.clone());
        // Each restarted loop's first tick says whether its devices answer.
        let deadline = tokio::time::Instant::now() + APPLY_TIMEOUT;
        let mut failures = Vec::new();
        for name in &restarted {
            loop {
                let changed = self.shared.registry.changed();
                tokio::pin!(changed);
                changed.as_mut().enable();
                let rep = self.shared.registry.get(name);
                let done = rep.as_ref().is_some_and(|r| {
                    r.condition.status != "Unknown" && r.condition.observed_version == version
                });
                if done || tokio::time::Instant::now() >= deadline {
                    if let Some(r) = rep.filter(|r| r.condition.status == "False") {
                        if APPLY_FAILURES.contains(&r.condition.reason.as_str()) {
                            failures.push(format!(
                                "{name}: {}: {}",
                                r.condition.reason, r.condition.message
                            ));
                        }
                    }
                    break;
                }
                // Woken by the loop's tick; the sleep is only a backstop.
                tokio::select! {
                    _ = changed => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
        if failures.is_empty() {
            Ok(diff)
        } else {
            Err(failures.join("; "))
        }
    }

    fn start(&mut self, section: Section, next: &Resolved, version: u64) -> Running {
        let stop = self.parent.child_token();
        let why = Arc::new(Mutex::new(Stop::Shutdown));
        let ctx = Arc::clone(&self.ctx);
        let spec = &next.bundle.spec;
        let (s, w) = (stop.clone(), Arc::clone(&why));
        let task = match section {
            Section::Fans => spawn(FansLoop::new(), spec.fans.clone(), version, ctx, s, w),
            Section::Power => spawn(
                super::power::PowerLoop::new(),
                spec.power.clone(),
                version,
                ctx,
                s,
                w,
            ),
            Section::Signals => {
                // Acquisitions carry over a restart; only changed sources
                // restart their threads.
                let l = match self.signals.take() {
                    Some(h) => super::signals::SignalsLoop::with_handover(h),
                    None => super::signals::SignalsLoop::new(),
                };
                self.signals = Some(l.handover());
                spawn(l, spec.signals.clone(), version, ctx, s, w)
            }
            _ => {
                // Alerts of unchanged rules carry over a restart.
                let taken = self.alerts_slot().take();
                let l = match taken {
                    Some(a) => super::checks::ChecksLoop::with_alerts(a),
                    None => super::checks::ChecksLoop::new(),
                };
                *self.alerts_slot() = Some(l.alerts());
                spawn(l, spec.checks.clone(), version, ctx, s, w)
            }
        };
        Running { stop, why, task }
    }

    async fn stop(&mut self, name: &str, why: Stop) {
        if let Some(r) = self.running.remove(name) {
            *r.why.lock().unwrap_or_else(|e| e.into_inner()) = why;
            r.stop.cancel();
            if let Err(e) = r.task.await {
                tracing::error!(loop_ = name, error = %e, "loop task failed while stopping");
            }
        }
    }

    /// Stops every loop; with [`Stop::Shutdown`] the fans are left at
    /// their fail-safe duty.
    pub async fn stop_all(&mut self, why: Stop) {
        let names: Vec<&'static str> = self.running.keys().copied().collect();
        for n in names {
            self.stop(n, why).await;
        }
        if why == Stop::Shutdown {
            self.signals = None;
            *self.alerts_slot() = None;
        }
    }
}

/// The loops' own runtime, once [`run_on_own_thread`] made it.
static OWN_RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();

/// Most blocking threads of the loops' own runtime: one tick of each of
/// the four loops at once, with room for their stop paths.
pub const LOOP_BLOCKING_THREADS: usize = 8;

/// Runs every loop started from now on on a runtime of its own: one
/// worker thread (`onprem-loops`) for their timers and its own blocking
/// pool for their ticks, so that nothing the rest of the process does
/// (a flood of connections, TLS handshakes, password hashing, scrapes
/// holding the shared blocking pool) can hold a tick back. The agent
/// calls it at start; without it (the demo, library users, tests on a
/// paused clock) loops run on the caller's runtime.
pub fn run_on_own_thread() -> std::io::Result<()> {
    if OWN_RUNTIME.get().is_some() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(LOOP_BLOCKING_THREADS)
        .thread_name("onprem-loops")
        .enable_all()
        .build()?;
    // Another caller may have won the race: its runtime is the one.
    let _ = OWN_RUNTIME.set(rt);
    Ok(())
}

fn spawn<R: Reconciler>(
    r: R,
    want: R::Desired,
    version: u64,
    ctx: Arc<Ctx>,
    stop: CancellationToken,
    why: Arc<Mutex<Stop>>,
) -> JoinHandle<()> {
    let task = reconcile::run(r, Arc::new(want), version, ctx, stop, why);
    match OWN_RUNTIME.get() {
        Some(rt) => rt.spawn(task),
        None => tokio::spawn(task),
    }
}

fn make_ctx(shared: &Shared, hub: Option<Hub>) -> Ctx {
    let mut ctx = Ctx::new(hub, Arc::clone(&shared.host));
    ctx.events = shared.events.clone();
    ctx.requests = shared.requests.clone();
    ctx.registry = shared.registry.clone();
    ctx.state_dir = shared.state_dir.clone();
    ctx.metrics = shared.metrics.clone();
    if let Some(b) = &shared.boot_id {
        ctx.boot_id = b.clone();
    }
    ctx
}
