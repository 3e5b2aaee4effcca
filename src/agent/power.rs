//! The power loop: the only place that acts on the host's power.
//!
//! One [`PowerLoop`] per agent, a [`Reconciler`] on the bundle's
//! `spec.power` section, level-triggered: every tick reads what it needs
//! and compares it with what the bundle wants.
//!
//! - **UPS** (`ups`): reads the battery. On mains loss an event; a
//!   protective shutdown is *decided* when the charge is at or below
//!   `shutdownAtPercent`, or when the estimated runtime is at or below
//!   `shutdownAtRuntime`, and *runs* once the node has been on battery for
//!   `grace`. Mains back before it runs cancels it (with an event). The
//!   shutdown is asked of the host once per outage, only if
//!   `host.allowShutdown`.
//!   The runtime estimate is the charge left divided by the rate it falls,
//!   measured between the moments the reading *changed* (so a battery that
//!   reports whole percent is timed at its steps, not between two random
//!   ticks), over the last [`RUNTIME_WINDOW`]; it needs two changes at
//!   least [`RUNTIME_MIN_SPAN`] apart.
//! - **Critical temperature**: the hottest of the named sensors (a GPU's
//!   own temperature counts) above `celsius` for `for` runs the action
//!   (`shutdown`, `reboot`, or `none`: a critical event only), once per
//!   episode; at or below the threshold the timer resets.
//! - **Switches** and their restore policy, after phosphor-state-manager:
//!   *a restart of the agent never changes a switch*. The loop keeps
//!   [`STATE_FILE`] in the state directory (written atomically: temporary
//!   file, fsync, rename, fsync of the directory; only when its content
//!   changes) with the boot id and each switch's last observed state. On
//!   the first tick: the same boot id means the agent restarted, so
//!   switches are only observed; another boot id means the node itself
//!   lost power or rebooted, so each switch's policy applies (`always-on`,
//!   `always-off`, `last-state` from the record; `last-state` without one
//!   leaves the switch alone). No record, no state directory or no boot id:
//!   the loop cannot tell, so it writes nothing (the safe side). A restore
//!   that could not be written yet (switch unreadable) is retried each
//!   tick, and the old boot id stays in the record until it is done, so an
//!   agent restart in between still finishes it.
//! - **GPU power caps**: each named GPU (`gpu/0`, or `gpu` for every GPU
//!   of that NVML device) is read every tick; a limit more than
//!   [`GPU_TOLERANCE_WATTS`] away from the cap (clamped to the GPU's range,
//!   with a warning) is set again, so a cap lost to a driver reset comes
//!   back on the next tick. A GPU whose reported limit stays elsewhere right
//!   after a set (another limiter enforces less) is not set again until
//!   that reading changes.
//! - **Requests**: power-button presses (`host.buttons`) and requests from
//!   elsewhere (Redfish `ComputerSystem.Reset`) become host actions when
//!   `host.allowReboot` / `host.allowShutdown` allow them, else an event
//!   saying they were refused.
//!
//! Every host action goes through [`crate::agent::host::Host::act`] here,
//! and nowhere else.
//!
//! In simulation the host only records its actions, but a power-off done
//! turns the simulated node off, as it would a real one: it draws nothing
//! (its battery keeps its charge), the loop reports `PoweredOff`
//! (`onprem_power_powered_off`), and the UPS's auto power-on turns it on
//! again when mains returns (`PoweredOn`). A battery that runs flat turns
//! it off too.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use onprem_hal::devices::ButtonRequest;
use onprem_hal::inventory::Handle;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use crate::agent::host::{RequestKind, SwitchAction};
use crate::agent::reconcile::{Action, Ctx, LoopError, Reconciler};
use crate::bundle::schema::{
    CriticalTemperature, GpuCap, HostAction, HostActions, Power, RestorePolicy, Ups,
};
use crate::exporter::MetricWriter;
use crate::hw::poller::Hub;

/// The file in the state directory that records the boot id and the
/// switches' states.
pub const STATE_FILE: &str = "power-state.json";
/// A GPU limit this close to the cap counts as applied, W.
pub const GPU_TOLERANCE_WATTS: f64 = 0.5;
/// How far back the battery runtime estimate looks.
pub const RUNTIME_WINDOW: Duration = Duration::from_secs(600);
/// The shortest time between two charge changes the estimate uses.
pub const RUNTIME_MIN_SPAN: Duration = Duration::from_secs(10);
/// How long a failed host action waits before it is tried again.
pub const HOST_RETRY: Duration = Duration::from_secs(30);
/// How long a power cycle of a switch leaves it off.
pub const SWITCH_CYCLE_OFF: Duration = Duration::from_secs(5);
/// Host actions listed in [`PowerLoop::details`].
const TAKEN_KEPT: usize = 20;

const NAME: &str = "power";

/// Condition reasons, most important first.
const REASONS: &[&str] = &[
    "PoweredOff",
    "BatteryUnreadable",
    "OnBattery",
    "CriticalTemperature",
    "HostActionFailed",
    "SensorUnreadable",
    "SwitchUnreadable",
    "GpuCapFailed",
    "GpuMissing",
    "StateNotSaved",
    "NoHardware",
];

/// The power loop's state between ticks.
#[derive(Default)]
pub struct PowerLoop {
    started: bool,
    last_tick: Option<Instant>,
    ups: UpsState,
    heat: HeatState,
    switches: SwitchState,
    gpus: BTreeMap<String, GpuState>,
    host: HostLog,
    /// In simulation: the simulated node is off (after its shutdown, or
    /// its battery ran flat) until mains powers it on again.
    powered_off: bool,
}

impl PowerLoop {
    /// A loop that has not ticked yet.
    pub fn new() -> PowerLoop {
        PowerLoop::default()
    }
}

/// What the UPS part knows.
#[derive(Default)]
struct UpsState {
    battery: Option<String>,
    percent: Option<f64>,
    on_mains: Option<bool>,
    lost_at: Option<Instant>,
    /// The last reading on battery and when it started.
    last: Option<(Instant, f64)>,
    /// When the reading changed, and to what.
    changes: VecDeque<(Instant, f64)>,
    runtime: Option<Duration>,
    /// Why a protective shutdown was decided (not yet run).
    pending: Option<String>,
    attempt: Attempt,
    error: Option<String>,
}

/// What the critical-temperature part knows.
#[derive(Default)]
struct HeatState {
    threshold: Option<f64>,
    hottest: Option<(String, f64)>,
    since: Option<Instant>,
    fired: bool,
    attempt: Attempt,
}

/// How the loop started, for the switches.
#[derive(Debug, Clone, PartialEq)]
enum Start {
    /// Same boot id: only observe.
    AgentRestart,
    /// Another boot id: policies applied.
    PowerLoss,
    /// Cannot tell (why): only observe.
    Unknown(String),
}

/// The record kept in [`STATE_FILE`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    boot_id: String,
    #[serde(default)]
    switches: BTreeMap<String, bool>,
}

/// What the switches part knows.
#[derive(Default)]
struct SwitchState {
    start: Option<Start>,
    /// The record as loaded at start, then as last saved (it keeps the
    /// old boot id while a restore is pending).
    record: Option<Record>,
    policies: BTreeMap<String, RestorePolicy>,
    observed: BTreeMap<String, Option<bool>>,
    commanded: BTreeMap<String, bool>,
    pending_restore: BTreeMap<String, bool>,
    /// Asked for by a request (Redfish `Chassis.Reset`): state and who.
    requested: BTreeMap<String, (bool, String)>,
    /// Power cycles in progress: when to switch back on, and who asked.
    cycle_on: BTreeMap<String, (Instant, String)>,
    save_error: Option<String>,
}

/// What the loop knows of one GPU part.
#[derive(Default)]
struct GpuState {
    wanted: f64,
    target: Option<f64>,
    limit: Option<f64>,
    range: Option<(f64, f64)>,
    /// The target last set.
    applied: Option<f64>,
    /// The limit read on the first tick after that set.
    after_apply: Option<Option<f64>>,
    clamp_warned: Option<f64>,
    sets_total: u64,
    error: Option<String>,
}

/// Whether a decided host action was done, refused or failed.
#[derive(Default)]
struct Attempt {
    done: bool,
    refused: bool,
    failed_at: Option<Instant>,
}

/// Host actions this loop took or refused.
#[derive(Default)]
struct HostLog {
    done: BTreeMap<&'static str, u64>,
    refused: BTreeMap<&'static str, u64>,
    taken: VecDeque<serde_json::Value>,
    /// The simulated world, when the node is simulated: a power-off done
    /// there turns the simulated node off, as it would a real one.
    world: Option<onprem_hal::sim::world::World>,
}

/// A problem of this tick: condition reason and message.
type Problems = Vec<(&'static str, String)>;

fn allowed(host: &HostActions, kind: RequestKind) -> bool {
    if kind.reboots() {
        host.allow_reboot
    } else {
        host.allow_shutdown
    }
}

fn allow_field(kind: RequestKind) -> &'static str {
    if kind.reboots() {
        "allowReboot"
    } else {
        "allowShutdown"
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn policy_name(p: RestorePolicy) -> &'static str {
    match p {
        RestorePolicy::AlwaysOn => "always-on",
        RestorePolicy::AlwaysOff => "always-off",
        RestorePolicy::LastState => "last-state",
    }
}

impl HostLog {
    /// Asks the host for `kind` unless the attempt is done, refused or
    /// waiting to retry. Returns an error message when the host failed.
    fn attempt(
        &mut self,
        ctx: &Ctx,
        host: &HostActions,
        kind: RequestKind,
        why: &str,
        now: Instant,
        a: &mut Attempt,
    ) -> Option<String> {
        if a.done {
            return None;
        }
        if !allowed(host, kind) {
            if !a.refused {
                a.refused = true;
                *self.refused.entry(kind.as_str()).or_default() += 1;
                ctx.events.push(
                    NAME,
                    "critical",
                    "HostActionNotAllowed",
                    format!(
                        "{} needed ({why}) but spec.power.host.{} is false",
                        kind.as_str(),
                        allow_field(kind)
                    ),
                );
            }
            return None;
        }
        if a.failed_at
            .is_some_and(|t| now.saturating_duration_since(t) < HOST_RETRY)
        {
            return None;
        }
        match self.act(ctx, kind, why) {
            Ok(()) => {
                a.done = true;
                a.failed_at = None;
                None
            }
            Err(e) => {
                a.failed_at = Some(now);
                Some(e)
            }
        }
    }

    /// Asks the host for `kind` now, recording the outcome.
    fn act(&mut self, ctx: &Ctx, kind: RequestKind, why: &str) -> Result<(), String> {
        match ctx.host.act(kind, why) {
            Ok(()) => {
                if !kind.reboots() {
                    if let Some(w) = &self.world {
                        w.with_model(|m| m.power_off());
                    }
                }
                *self.done.entry(kind.as_str()).or_default() += 1;
                if self.taken.len() == TAKEN_KEPT {
                    self.taken.pop_front();
                }
                self.taken.push_back(json!({
                    "action": kind.as_str(),
                    "why": why,
                    "time": crate::agent::reconcile::unix_now(),
                }));
                ctx.events.push(
                    NAME,
                    "critical",
                    "HostAction",
                    format!("{} of the host asked for: {why}", kind.as_str()),
                );
                Ok(())
            }
            Err(e) => {
                ctx.events.push(
                    NAME,
                    "critical",
                    "HostActionFailed",
                    format!("{} ({why}) failed: {e}", kind.as_str()),
                );
                Err(e)
            }
        }
    }

    /// A request from a button or a remote client: done if allowed,
    /// refused with an event otherwise.
    fn request(&mut self, ctx: &Ctx, host: &HostActions, kind: RequestKind, source: &str) {
        if allowed(host, kind) {
            let _ = self.act(ctx, kind, source);
        } else {
            *self.refused.entry(kind.as_str()).or_default() += 1;
            ctx.events.push(
                NAME,
                "warning",
                "RequestRefused",
                format!(
                    "{} requested by {source} refused: spec.power.host.{} is false",
                    kind.as_str(),
                    allow_field(kind)
                ),
            );
        }
    }
}

/// The entries `name` stands for: itself if the inventory has it, else
/// its parts (`gpu` → `gpu/0`, `gpu/1`, …).
fn expand(hub: &Hub, name: &str) -> Vec<String> {
    let names = hub.names();
    if names.iter().any(|n| n == name) {
        return vec![name.to_owned()];
    }
    let prefix = format!("{name}/");
    names
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Reads a temperature: a sensor's, or a GPU's own (`None`: the GPU does
/// not report one).
fn read_temperature(hub: &Hub, name: &str) -> Result<Option<f64>, String> {
    let r = hub.with(name, |h| match h {
        Handle::Temperature(t) => t.temperature_celsius().map(Some).map_err(|e| e.to_string()),
        Handle::Gpu(g) => g
            .sample()
            .map(|s| s.temperature_celsius)
            .map_err(|e| e.to_string()),
        other => Err(format!("a {}, not a temperature sensor", other.kind())),
    });
    match r {
        None => Err("no such device".to_owned()),
        Some(Err(e)) => Err(e.to_string()),
        Some(Ok(r)) => r,
    }
}

/// What one look at a GPU found and did.
struct GpuLook {
    range: Option<(f64, f64)>,
    target: f64,
    limit: Option<f64>,
    set: bool,
}

/// Reads a GPU's limit and sets `wanted` (clamped) when it is off by more
/// than the tolerance, unless `skip(target, limit)` says the reading is the
/// one seen right after the last set.
fn look_at_gpu(
    hub: &Hub,
    name: &str,
    wanted: f64,
    skip: impl FnOnce(f64, Option<f64>) -> bool,
) -> Result<GpuLook, String> {
    let r = hub.with(name, |h| -> Result<GpuLook, String> {
        let Handle::Gpu(g) = h else {
            return Err(format!("a {}, not a GPU", h.kind()));
        };
        let range = match g.power_limit_range_watts() {
            Ok((lo, hi)) if lo.is_finite() && hi.is_finite() => Some((lo, hi.max(lo))),
            Ok(_) => None,
            Err(e) if e.kind() == onprem_hal::ErrorKind::Unsupported => None,
            Err(e) => return Err(format!("reading the power limit range: {e}")),
        };
        let target = range.map_or(wanted, |(lo, hi)| wanted.clamp(lo, hi));
        let limit = g
            .sample()
            .map_err(|e| format!("reading the power limit: {e}"))?
            .power_limit_watts;
        let off = limit.is_none_or(|l| (l - target).abs() > GPU_TOLERANCE_WATTS);
        let set = off && !skip(target, limit);
        if set {
            g.set_power_limit_watts(target)
                .map_err(|e| format!("setting the power limit to {target} W: {e}"))?;
        }
        Ok(GpuLook {
            range,
            target,
            limit,
            set,
        })
    });
    match r {
        None => Err("no such device".to_owned()),
        Some(Err(e)) => Err(e.to_string()),
        Some(Ok(r)) => r,
    }
}

/// Loads the record; `Ok(None)` when there is none.
fn load_record(dir: &Path) -> Result<Option<Record>, String> {
    let path = dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Replaces the record atomically: temporary file, fsync, rename, fsync of
/// the directory. The file is mode 0600 and a directory it creates 0700,
/// whatever the umask.
fn save_record(dir: &Path, r: &Record) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
    let text = serde_json::to_vec_pretty(r).map_err(|e| e.to_string())?;
    let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(crate::statedir::DIR_MODE)
        .create(dir)
        .map_err(|e| io("creating", dir, e))?;
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(crate::statedir::FILE_MODE)
            .open(&tmp)
            .map_err(|e| io("creating", &tmp, e))?;
        // A temporary file left behind keeps its mode through open:
        // set it.
        f.set_permissions(std::fs::Permissions::from_mode(crate::statedir::FILE_MODE))
            .map_err(|e| io("setting the mode of", &tmp, e))?;
        f.write_all(&text).map_err(|e| io("writing", &tmp, e))?;
        f.sync_all().map_err(|e| io("syncing", &tmp, e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| io("renaming to", &path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("syncing", dir, e))
}

impl PowerLoop {
    /// The first tick's decision for the switches.
    fn start_switches(&mut self, want: &Power, ctx: &Ctx) {
        let sw = &mut self.switches;
        let start = if let Some(dir) = &ctx.state_dir {
            if ctx.boot_id.is_empty() {
                Start::Unknown("the boot id is unknown".into())
            } else {
                match load_record(dir) {
                    Ok(Some(r)) => {
                        let same = r.boot_id == ctx.boot_id;
                        sw.record = Some(r);
                        if same {
                            Start::AgentRestart
                        } else {
                            Start::PowerLoss
                        }
                    }
                    Ok(None) => Start::Unknown(format!("no {STATE_FILE} yet")),
                    Err(e) => {
                        ctx.events.push(
                            NAME,
                            "warning",
                            "StateUnreadable",
                            format!("ignoring the power state record: {e}"),
                        );
                        Start::Unknown(format!("{STATE_FILE} unreadable"))
                    }
                }
            }
        } else {
            Start::Unknown("no state directory".into())
        };
        match &start {
            Start::PowerLoss => {
                let rec = sw.record.clone().unwrap_or_default();
                for s in &want.switches {
                    let target = match s.restore {
                        RestorePolicy::AlwaysOn => Some(true),
                        RestorePolicy::AlwaysOff => Some(false),
                        RestorePolicy::LastState => rec.switches.get(&s.name).copied(),
                    };
                    if let Some(t) = target {
                        sw.pending_restore.insert(s.name.clone(), t);
                    }
                }
                if !want.switches.is_empty() {
                    ctx.events.push(
                        NAME,
                        "info",
                        "NodePowerRestored",
                        "the node booted since the agent last ran: applying the switches' restore policies".into(),
                    );
                }
            }
            Start::AgentRestart => {
                if !want.switches.is_empty() {
                    tracing::info!(
                        loop_ = NAME,
                        "agent restart (same boot): switches observed, not changed"
                    );
                }
            }
            Start::Unknown(why) => {
                if !want.switches.is_empty() {
                    ctx.events.push(
                        NAME,
                        "warning",
                        "SwitchesNotRestored",
                        format!(
                            "{why}: cannot tell a node power loss from an agent restart, so no switch is changed at start"
                        ),
                    );
                }
            }
        }
        sw.start = Some(start);
    }

    /// Restores what is pending, observes every switch, saves the record.
    fn tick_switches(&mut self, want: &Power, ctx: &Ctx, hub: Option<&Hub>, p: &mut Problems) {
        let sw = &mut self.switches;
        sw.policies = want
            .switches
            .iter()
            .map(|s| (s.name.clone(), s.restore))
            .collect();
        if let Some(hub) = hub {
            for s in &want.switches {
                let requested = sw.requested.get(&s.name).cloned();
                let pending = requested
                    .as_ref()
                    .map(|r| r.0)
                    .or_else(|| sw.pending_restore.get(&s.name).copied());
                let r = hub.with(&s.name, |h| -> Result<(Option<bool>, bool), String> {
                    let Handle::Switch(d) = h else {
                        return Err(format!("a {}, not a switch", h.kind()));
                    };
                    let now = d.is_on().map_err(|e| e.to_string())?;
                    match pending {
                        Some(t) if now != Some(t) => {
                            d.set_on(t)
                                .map_err(|e| format!("switching {}: {e}", on_off(t)))?;
                            Ok((d.is_on().map_err(|e| e.to_string())?, true))
                        }
                        _ => Ok((now, false)),
                    }
                });
                let r = match r {
                    None => Err("no such device".to_owned()),
                    Some(Err(e)) => Err(e.to_string()),
                    Some(Ok(r)) => r,
                };
                match r {
                    Ok((state, wrote)) => {
                        if let Some((t, who)) = requested {
                            sw.requested.remove(&s.name);
                            // A request overrides a pending restore.
                            sw.pending_restore.remove(&s.name);
                            sw.commanded.insert(s.name.clone(), t);
                            ctx.events.push(
                                NAME,
                                "info",
                                "SwitchSet",
                                format!(
                                    "{} switched {} (requested by {who}){}",
                                    s.name,
                                    on_off(t),
                                    if wrote { "" } else { "; it already was" }
                                ),
                            );
                        } else if let Some(t) = pending {
                            sw.pending_restore.remove(&s.name);
                            if wrote {
                                sw.commanded.insert(s.name.clone(), t);
                                ctx.events.push(
                                    NAME,
                                    "info",
                                    "SwitchRestored",
                                    format!(
                                        "{} switched {} after the node lost power (restore: {})",
                                        s.name,
                                        on_off(t),
                                        policy_name(s.restore)
                                    ),
                                );
                            }
                        }
                        let seen = state.or_else(|| sw.commanded.get(&s.name).copied());
                        sw.observed.insert(s.name.clone(), seen);
                    }
                    Err(e) => {
                        sw.observed.insert(s.name.clone(), None);
                        p.push(("SwitchUnreadable", format!("switch {}: {e}", s.name)));
                    }
                }
            }
        }
        // Record: never with an unknown boot id (a later start would take
        // an agent restart for a power loss).
        let Some(dir) = &ctx.state_dir else { return };
        if ctx.boot_id.is_empty() {
            return;
        }
        let mut next = sw.record.clone().unwrap_or_default();
        if sw.pending_restore.is_empty() {
            next.boot_id = ctx.boot_id.clone();
        }
        for (name, state) in &sw.observed {
            if let (Some(on), false) = (state, sw.pending_restore.contains_key(name)) {
                next.switches.insert(name.clone(), *on);
            }
        }
        if sw.record.as_ref() == Some(&next) && sw.save_error.is_none() {
            return;
        }
        match save_record(dir, &next) {
            Ok(()) => {
                sw.record = Some(next);
                sw.save_error = None;
            }
            Err(e) => {
                if sw.save_error.as_deref() != Some(e.as_str()) {
                    ctx.events.push(
                        NAME,
                        "warning",
                        "StateNotSaved",
                        format!("saving the switches' states: {e}"),
                    );
                }
                p.push(("StateNotSaved", e.clone()));
                sw.save_error = Some(e);
            }
        }
    }

    /// Button presses and requests from elsewhere.
    fn tick_requests(&mut self, want: &Power, ctx: &Ctx, now: Instant) {
        let sw = &mut self.switches;
        for r in ctx.requests.drain_switches() {
            if !want.switches.iter().any(|s| s.name == r.switch) {
                ctx.events.push(
                    NAME,
                    "warning",
                    "RequestRefused",
                    format!(
                        "{} of {} requested by {} refused: not a switch of spec.power.switches",
                        r.action.as_str(),
                        r.switch,
                        r.source
                    ),
                );
                continue;
            }
            match r.action {
                SwitchAction::On => {
                    sw.cycle_on.remove(&r.switch);
                    sw.requested.insert(r.switch, (true, r.source));
                }
                SwitchAction::Off => {
                    sw.cycle_on.remove(&r.switch);
                    sw.requested.insert(r.switch, (false, r.source));
                }
                SwitchAction::Cycle => {
                    sw.requested
                        .insert(r.switch.clone(), (false, r.source.clone()));
                    sw.cycle_on
                        .insert(r.switch, (now + SWITCH_CYCLE_OFF, r.source));
                }
            }
        }
        let due: Vec<String> = sw
            .cycle_on
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            if let Some((_, who)) = sw.cycle_on.remove(&name) {
                sw.requested
                    .insert(name, (true, format!("{who}, power cycle")));
            }
        }
        if let Some(hub) = &ctx.hub {
            for (button, req) in hub.take_requests() {
                let kind = match req {
                    ButtonRequest::Reboot => RequestKind::Reboot,
                    ButtonRequest::Shutdown => RequestKind::Shutdown,
                };
                let source = format!("button:{button}");
                if want.host.buttons {
                    self.host.request(ctx, &want.host, kind, &source);
                } else {
                    ctx.events.push(
                        NAME,
                        "info",
                        "ButtonIgnored",
                        format!(
                            "{} pressed on {button} ignored: spec.power.host.buttons is false",
                            kind.as_str()
                        ),
                    );
                }
            }
        }
        for r in ctx.requests.drain() {
            self.host.request(ctx, &want.host, r.kind, &r.source);
        }
    }

    /// The UPS: mains, charge, runtime, protective shutdown.
    fn tick_ups(
        &mut self,
        u: &Ups,
        host: &HostActions,
        ctx: &Ctx,
        hub: &Hub,
        now: Instant,
        p: &mut Problems,
    ) {
        let st = &mut self.ups;
        st.battery = Some(u.battery.clone());
        let read = hub.with(&u.battery, |h| -> Result<(f64, bool), String> {
            let Handle::Battery(b) = h else {
                return Err(format!("a {}, not a battery", h.kind()));
            };
            let charge = b.charge_percent().map_err(|e| e.to_string())?;
            if !charge.is_finite() {
                return Err(format!("the charge reads {charge} %"));
            }
            let mains = b.on_mains().map_err(|e| e.to_string())?;
            Ok((charge, mains))
        });
        let read = match read {
            None => Err("no such device".to_owned()),
            Some(Err(e)) => Err(e.to_string()),
            Some(Ok(r)) => r,
        };
        match read {
            Err(e) => {
                let msg = format!("battery {}: {e}", u.battery);
                st.error = Some(msg.clone());
                p.push(("BatteryUnreadable", msg));
                // A shutdown already decided still runs after the grace.
            }
            Ok((charge, mains)) => {
                st.error = None;
                st.percent = Some(charge);
                st.on_mains = Some(mains);
                if mains {
                    if let Some(at) = st.lost_at.take() {
                        ctx.events.push(
                            NAME,
                            "info",
                            "MainsRestored",
                            format!(
                                "mains back after {} on battery; battery at {charge:.0} %",
                                secs(now.saturating_duration_since(at))
                            ),
                        );
                        if let Some(why) = st.pending.take() {
                            if !st.attempt.done {
                                ctx.events.push(
                                    NAME,
                                    "warning",
                                    "ShutdownCancelled",
                                    format!(
                                        "protective shutdown ({why}) cancelled: mains returned before it ran"
                                    ),
                                );
                            }
                        }
                        st.last = None;
                        st.changes.clear();
                        st.runtime = None;
                        st.attempt = Attempt::default();
                    }
                } else {
                    if st.lost_at.is_none() {
                        st.lost_at = Some(now);
                        let runtime = u
                            .shutdown_at_runtime
                            .map(|r| format!(" or {} of runtime left", secs(r.get())))
                            .unwrap_or_default();
                        ctx.events.push(
                            NAME,
                            "warning",
                            "MainsLost",
                            format!(
                                "mains lost; on battery at {charge:.0} %; protective shutdown at {} %{runtime}{}",
                                u.shutdown_at_percent,
                                if u.grace.get().is_zero() {
                                    String::new()
                                } else {
                                    format!(", not before {} on battery", secs(u.grace.get()))
                                }
                            ),
                        );
                    }
                    // The runtime estimate, from the moments the charge
                    // reading changed.
                    match st.last {
                        Some((_, last)) if last == charge => {}
                        Some(_) => {
                            st.changes.push_back((now, charge));
                            st.last = Some((now, charge));
                        }
                        None => st.last = Some((now, charge)),
                    }
                    while st.changes.len() > 2
                        && st.changes.front().is_some_and(|(t, _)| {
                            now.saturating_duration_since(*t) > RUNTIME_WINDOW
                        })
                    {
                        st.changes.pop_front();
                    }
                    st.runtime = match (st.changes.front(), st.changes.back()) {
                        (Some(&(t0, c0)), Some(&(t1, c1))) => {
                            let span = t1.saturating_duration_since(t0);
                            let fell = c0 - c1;
                            if span >= RUNTIME_MIN_SPAN && fell > 0.0 {
                                let rate = fell / span.as_secs_f64();
                                Some(Duration::from_secs_f64((charge.max(0.0) / rate).min(1e9)))
                            } else {
                                None
                            }
                        }
                        _ => None,
                    };
                    if st.pending.is_none() && !st.attempt.done {
                        let why = if charge <= u.shutdown_at_percent {
                            Some(format!(
                                "on battery at {charge:.0} %, at or below {} %",
                                u.shutdown_at_percent
                            ))
                        } else {
                            match (st.runtime, u.shutdown_at_runtime) {
                                (Some(rt), Some(min)) if rt <= min.get() => Some(format!(
                                    "on battery with about {} left, at or below {}",
                                    secs(rt),
                                    secs(min.get())
                                )),
                                _ => None,
                            }
                        };
                        if let Some(why) = why {
                            let after = st.lost_at.map_or(Duration::ZERO, |t| {
                                u.grace
                                    .get()
                                    .saturating_sub(now.saturating_duration_since(t))
                            });
                            ctx.events.push(
                                NAME,
                                "critical",
                                "ShutdownDecided",
                                if after.is_zero() {
                                    format!("protective shutdown: {why}")
                                } else {
                                    format!(
                                        "protective shutdown in {} unless mains returns: {why}",
                                        secs(after)
                                    )
                                },
                            );
                            st.pending = Some(why);
                        }
                    }
                }
            }
        }
        if st.on_mains == Some(false) {
            let left = st
                .runtime
                .map(|r| format!(", about {} left", secs(r)))
                .unwrap_or_default();
            p.push((
                "OnBattery",
                format!(
                    "on battery at {:.0} %{left}",
                    st.percent.unwrap_or(f64::NAN)
                ),
            ));
        }
        // Run a decided shutdown once the grace has passed.
        if let (Some(why), Some(lost)) = (st.pending.clone(), st.lost_at) {
            if now.saturating_duration_since(lost) >= u.grace.get() {
                if let Some(e) = self.host.attempt(
                    ctx,
                    host,
                    RequestKind::Shutdown,
                    &format!("ups: {why}"),
                    now,
                    &mut st.attempt,
                ) {
                    p.push(("HostActionFailed", e));
                }
            }
        }
    }

    /// In simulation, whether the simulated node is on: off after a
    /// shutdown done (or a flat battery) it reports `PoweredOff`, its
    /// battery keeps its charge, and the UPS powers it on when mains
    /// returns.
    fn tick_powered(&mut self, ctx: &Ctx, p: &mut Problems) {
        let Some(on) = self
            .host
            .world
            .as_ref()
            .map(|w| w.with_model(|m| m.state().powered))
        else {
            return;
        };
        if !on && !self.powered_off {
            ctx.events.push(
                NAME,
                "critical",
                "PoweredOff",
                "the simulated node is off; it powers on when mains returns".into(),
            );
        } else if on && self.powered_off {
            ctx.events.push(
                NAME,
                "info",
                "PoweredOn",
                "mains returned: the UPS powered the simulated node on".into(),
            );
        }
        self.powered_off = !on;
        if !on {
            p.push((
                "PoweredOff",
                "the simulated node is off; it powers on when mains returns".into(),
            ));
        }
    }

    /// The critical temperature.
    fn tick_heat(
        &mut self,
        c: &CriticalTemperature,
        host: &HostActions,
        ctx: &Ctx,
        hub: &Hub,
        now: Instant,
        p: &mut Problems,
    ) {
        let st = &mut self.heat;
        st.threshold = Some(c.celsius);
        let mut hottest: Option<(String, f64)> = None;
        let mut errors = Vec::new();
        for s in &c.sensors {
            let parts = expand(hub, s);
            if parts.is_empty() {
                errors.push(format!("{s}: no such device"));
            }
            for part in parts {
                match read_temperature(hub, &part) {
                    Ok(Some(t)) if t.is_finite() => {
                        if hottest.as_ref().is_none_or(|(_, h)| t > *h) {
                            hottest = Some((part, t));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => errors.push(format!("{part}: {e}")),
                }
            }
        }
        if !errors.is_empty() {
            p.push(("SensorUnreadable", errors.join("; ")));
        }
        st.hottest = hottest.clone();
        // With nothing readable the timer is held as it is.
        let Some((sensor, t)) = hottest else { return };
        if t > c.celsius {
            let since = *st.since.get_or_insert(now);
            let hot_for = now.saturating_duration_since(since);
            if hot_for >= c.for_.get() {
                let why = format!(
                    "critical temperature: {sensor} at {t:.1} °C, above {} °C for {}",
                    c.celsius,
                    secs(hot_for)
                );
                if !st.fired {
                    st.fired = true;
                    ctx.events
                        .push(NAME, "critical", "CriticalTemperature", why.clone());
                }
                let kind = match c.action {
                    HostAction::Shutdown => Some(RequestKind::Shutdown),
                    HostAction::Reboot => Some(RequestKind::Reboot),
                    HostAction::None => None,
                };
                if let Some(kind) = kind {
                    if let Some(e) = self
                        .host
                        .attempt(ctx, host, kind, &why, now, &mut st.attempt)
                    {
                        p.push(("HostActionFailed", e));
                    }
                }
                p.push(("CriticalTemperature", why));
            }
        } else {
            if st.fired {
                ctx.events.push(
                    NAME,
                    "info",
                    "TemperatureNormal",
                    format!("{sensor} back at {t:.1} °C, at or below {} °C", c.celsius),
                );
            }
            st.since = None;
            st.fired = false;
            st.attempt = Attempt::default();
        }
    }

    /// GPU power caps.
    fn tick_gpus(&mut self, caps: &[GpuCap], ctx: &Ctx, hub: &Hub, p: &mut Problems) {
        let mut seen = Vec::new();
        for cap in caps {
            let parts = expand(hub, &cap.name);
            if parts.is_empty() {
                p.push(("GpuMissing", format!("no GPU {:?}", cap.name)));
            }
            for part in parts {
                seen.push(part.clone());
                let st = self.gpus.entry(part.clone()).or_default();
                st.wanted = cap.power_limit_watts;
                let (applied, after) = (st.applied, st.after_apply);
                let r = look_at_gpu(hub, &part, cap.power_limit_watts, |target, limit| {
                    // The reading stays where it was right after our last
                    // set of this target: another limiter, not a reset.
                    applied == Some(target) && after == Some(limit)
                });
                match r {
                    Ok(look) => {
                        st.range = look.range;
                        st.target = Some(look.target);
                        if st.error.take().is_some() {
                            ctx.events.push(
                                NAME,
                                "info",
                                "GpuCapRecovered",
                                format!("{part}: the power limit can be read and set again"),
                            );
                        }
                        if look.target != cap.power_limit_watts
                            && st.clamp_warned != Some(cap.power_limit_watts)
                        {
                            st.clamp_warned = Some(cap.power_limit_watts);
                            let (lo, hi) = look.range.unwrap_or((look.target, look.target));
                            ctx.events.push(
                                NAME,
                                "warning",
                                "GpuCapClamped",
                                format!(
                                    "{part}: a power limit of {} W is outside {lo}–{hi} W; capping at {} W",
                                    cap.power_limit_watts, look.target
                                ),
                            );
                        }
                        if look.set {
                            st.sets_total += 1;
                            st.applied = Some(look.target);
                            st.after_apply = None;
                            st.limit = Some(look.target);
                            ctx.events.push(
                                NAME,
                                "info",
                                "GpuCapApplied",
                                format!(
                                    "{part}: power limit set to {} W (was {})",
                                    look.target,
                                    look.limit
                                        .map_or_else(|| "unknown".to_owned(), |l| format!("{l} W"))
                                ),
                            );
                        } else {
                            st.limit = look.limit;
                            if st.applied.is_some() && st.after_apply.is_none() {
                                st.after_apply = Some(look.limit);
                            }
                        }
                    }
                    Err(e) => {
                        let msg = format!("{part}: {e}");
                        if st.error.as_deref() != Some(msg.as_str()) {
                            ctx.events
                                .push(NAME, "warning", "GpuCapFailed", msg.clone());
                        }
                        st.error = Some(msg.clone());
                        p.push(("GpuCapFailed", msg));
                    }
                }
            }
        }
        self.gpus.retain(|k, _| seen.contains(k));
    }
}

impl Reconciler for PowerLoop {
    const NAME: &'static str = NAME;
    type Desired = Power;

    fn period(want: &Power) -> Duration {
        want.period.get()
    }

    fn reconcile(&mut self, want: &Power, ctx: &Ctx, now: Instant) -> Result<Action, LoopError> {
        let mut p: Problems = Vec::new();
        self.last_tick = Some(now);
        if !self.started {
            self.started = true;
            self.start_switches(want, ctx);
        }
        self.host.world = ctx.hub.as_ref().and_then(Hub::world);
        self.tick_requests(want, ctx, now);
        let hub = ctx.hub.as_ref();
        match hub {
            Some(hub) => {
                if let Some(u) = &want.ups {
                    self.tick_ups(u, &want.host, ctx, hub, now, &mut p);
                }
                if let Some(c) = &want.critical_temperature {
                    self.tick_heat(c, &want.host, ctx, hub, now, &mut p);
                }
                self.tick_gpus(&want.gpus, ctx, hub, &mut p);
            }
            None => {
                if want.ups.is_some()
                    || want.critical_temperature.is_some()
                    || !want.switches.is_empty()
                    || !want.gpus.is_empty()
                {
                    p.push((
                        "NoHardware",
                        "the bundle has power settings for devices, but the agent has no hardware section".into(),
                    ));
                }
            }
        }
        self.tick_switches(want, ctx, hub, &mut p);
        self.tick_powered(ctx, &mut p);
        if p.is_empty() {
            return Ok(Action::ready());
        }
        let rank = |r: &str| {
            REASONS
                .iter()
                .position(|x| *x == r)
                .unwrap_or(REASONS.len())
        };
        let reason = p
            .iter()
            .map(|(r, _)| *r)
            .min_by_key(|r| rank(r))
            .unwrap_or("Degraded");
        let message = p
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        Ok(Action::degraded(reason, message))
    }

    fn on_error(&mut self, err: &LoopError, _want: &Power, _ctx: &Ctx) -> Action {
        Action::degraded(err.reason(), err.to_string())
    }

    fn report(&self, out: &mut MetricWriter) {
        if let Some(b) = &self.ups.battery {
            let l = [("battery", b.as_str())];
            if let Some(m) = self.ups.on_mains {
                out.gauge(
                    "onprem_power_on_battery",
                    "Whether the node runs on its battery (mains lost).",
                    &l,
                    if m { 0.0 } else { 1.0 },
                );
            }
            if let Some(r) = self.ups.runtime {
                out.gauge(
                    "onprem_power_battery_runtime_seconds",
                    "Estimated runtime left on battery, from the rate the charge falls.",
                    &l,
                    r.as_secs_f64(),
                );
            }
            out.gauge(
                "onprem_power_shutdown_pending",
                "Whether a protective shutdown is decided and not yet done.",
                &[],
                if self.ups.pending.is_some() && !self.ups.attempt.done {
                    1.0
                } else {
                    0.0
                },
            );
        }
        if self.host.world.is_some() {
            out.gauge(
                "onprem_power_powered_off",
                "Simulation: whether the simulated node is off (after its shutdown, or a flat battery) until mains returns.",
                &[],
                if self.powered_off { 1.0 } else { 0.0 },
            );
        }
        for action in ["reboot", "shutdown", "force-reboot", "force-shutdown"] {
            let l = [("action", action)];
            out.counter(
                "onprem_power_host_actions_total",
                "Host actions the power loop asked for.",
                &l,
                self.host.done.get(action).copied().unwrap_or(0) as f64,
            );
            out.counter(
                "onprem_power_host_actions_refused_total",
                "Host actions refused because the bundle does not allow them.",
                &l,
                self.host.refused.get(action).copied().unwrap_or(0) as f64,
            );
        }
        for (name, state) in &self.switches.observed {
            if let Some(on) = state {
                out.gauge(
                    "onprem_power_switch_on",
                    "Whether a power switch is on.",
                    &[("switch", name.as_str())],
                    if *on { 1.0 } else { 0.0 },
                );
            }
        }
        for (name, g) in &self.gpus {
            let l = [("gpu", name.as_str())];
            if let Some(t) = g.target {
                out.gauge(
                    "onprem_power_gpu_limit_target_watts",
                    "The power limit the bundle wants for a GPU, clamped to its range.",
                    &l,
                    t,
                );
            }
            out.counter(
                "onprem_power_gpu_limit_sets_total",
                "Times the power loop set a GPU's power limit.",
                &l,
                g.sets_total as f64,
            );
        }
        if let Some(th) = self.heat.threshold {
            if let Some((_, t)) = &self.heat.hottest {
                out.gauge(
                    "onprem_power_critical_temperature_celsius",
                    "The hottest of the critical-temperature sensors.",
                    &[],
                    *t,
                );
            }
            out.gauge(
                "onprem_power_critical_temperature_threshold_celsius",
                "The critical temperature.",
                &[],
                th,
            );
            out.gauge(
                "onprem_power_critical_temperature_exceeded",
                "Whether the critical temperature has been exceeded for its duration.",
                &[],
                if self.heat.fired { 1.0 } else { 0.0 },
            );
        }
    }

    fn details(&self) -> serde_json::Value {
        let since = |t: Option<Instant>| match (t, self.last_tick) {
            (Some(t), Some(now)) => Some(now.saturating_duration_since(t).as_secs_f64()),
            _ => None,
        };
        let ups = self.ups.battery.as_ref().map(|b| {
            json!({
                "battery": b,
                "onBattery": self.ups.on_mains.map(|m| !m),
                "chargePercent": self.ups.percent,
                "onBatterySeconds": since(self.ups.lost_at),
                "runtimeSeconds": self.ups.runtime.map(|r| r.as_secs_f64()),
                "pendingShutdown": if self.ups.attempt.done { None } else { self.ups.pending.clone() },
                "shutdownDone": self.ups.attempt.done,
                "shutdownRefused": self.ups.attempt.refused,
                "poweredOff": self.powered_off,
                "error": self.ups.error,
            })
        });
        let heat = self.heat.threshold.map(|th| {
            json!({
                "thresholdCelsius": th,
                "hottest": self.heat.hottest.as_ref().map(|(s, t)| json!({"sensor": s, "celsius": t})),
                "aboveSeconds": since(self.heat.since),
                "exceeded": self.heat.fired,
                "actionDone": self.heat.attempt.done,
            })
        });
        let sw = &self.switches;
        let switches: serde_json::Map<String, serde_json::Value> = sw
            .policies
            .iter()
            .map(|(name, policy)| {
                (
                    name.clone(),
                    json!({
                        "on": sw.observed.get(name).copied().flatten(),
                        "restore": policy_name(*policy),
                        "pendingRestore": sw.pending_restore.get(name),
                    }),
                )
            })
            .collect();
        let start = sw.start.as_ref().map(|s| match s {
            Start::AgentRestart => "agentRestart".to_owned(),
            Start::PowerLoss => "nodePowerLoss".to_owned(),
            Start::Unknown(why) => format!("unknown: {why}"),
        });
        let gpus: serde_json::Map<String, serde_json::Value> = self
            .gpus
            .iter()
            .map(|(name, g)| {
                (
                    name.clone(),
                    json!({
                        "wantedWatts": g.wanted,
                        "targetWatts": g.target,
                        "limitWatts": g.limit,
                        "rangeWatts": g.range.map(|(lo, hi)| [lo, hi]),
                        "sets": g.sets_total,
                        "error": g.error,
                    }),
                )
            })
            .collect();
        json!({
            "ups": ups,
            "criticalTemperature": heat,
            "start": start,
            "switches": switches,
            "stateSaveError": sw.save_error,
            "gpus": gpus,
            "hostActions": self.host.taken.iter().cloned().collect::<Vec<_>>(),
            "hostActionsRefused": self.host.refused,
        })
    }
}
