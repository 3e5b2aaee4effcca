//! What a device's state comes to: one word and its reasons, computed from
//! what the device record holds (desired bundle, what the agent runs, the
//! last delivery's result, the agent's conditions).
//!
//! `converged` is true only when the device runs its desired version,
//! that version applied (no refusal, no rollback, no "nothing to roll back
//! to"), and every loop the agent reports is ready. Everything else says
//! why not, so that `get devices`, `describe`, rollouts, the fleet
//! `/metrics` and the demo all tell the same story:
//!
//! | state | meaning |
//! |---|---|
//! | `Converged` | runs the desired version, every loop ready |
//! | `Progressing` | on its way: the desired version not yet delivered or applied, or loops still starting |
//! | `Degraded` | runs the desired version, but a loop is not ready (fail-safe, a device missing) |
//! | `Failed` | the desired version was refused or rolled back (tainted) |
//! | `Override` | runs a local bundle file instead of the control plane's (tainted) |
//! | `NoBundle` | no bundle selects it (it may still run one it was given before) |
//!
//! To add a state: a variant of [`State`], its rule in [`assess`] (the
//! order of the rules is the precedence), its row above.

use serde::Serialize;

use super::store::Device;

/// One word for a device's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    /// Runs the desired version, every loop ready.
    Converged,
    /// On its way to the desired version.
    Progressing,
    /// Runs the desired version with a loop not ready.
    Degraded,
    /// The desired version was refused or rolled back.
    Failed,
    /// Runs a local bundle file.
    Override,
    /// No bundle selects it.
    NoBundle,
}

impl State {
    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Converged => "Converged",
            State::Progressing => "Progressing",
            State::Degraded => "Degraded",
            State::Failed => "Failed",
            State::Override => "Override",
            State::NoBundle => "NoBundle",
        }
    }

    /// Every state, in the order the fleet `/metrics` lists them.
    pub const ALL: [State; 6] = [
        State::Converged,
        State::Progressing,
        State::Degraded,
        State::Failed,
        State::Override,
        State::NoBundle,
    ];
}

/// A loop that is not ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotReady {
    /// The loop (`fans`, `power`, …).
    pub name: String,
    /// `False` (not ready) or `Unknown` (starting).
    pub status: String,
    /// The agent's reason (`Failsafe`, `SensorMissing`, `Starting`).
    pub reason: String,
    /// The agent's words.
    pub message: String,
}

/// What a device's state comes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    /// The word.
    pub state: State,
    /// Why, for people (empty when converged).
    #[serde(rename = "stateMessage")]
    pub message: String,
    /// Runs the desired version, applied, every loop ready (the device
    /// view carries it as `converged`).
    #[serde(skip)]
    pub converged: bool,
    /// Loops the agent reports.
    pub loops: usize,
    /// Those ready.
    pub loops_ready: usize,
    /// Those not ready.
    pub not_ready: Vec<NotReady>,
}

/// Whether the last delivery's result refused or rolled back `version`.
pub fn failed_result(d: &Device, version: u64) -> bool {
    version != 0
        && d.last_result.version == version
        && matches!(d.last_result.outcome.as_str(), "Rejected" | "RolledBack")
}

/// Whether the desired version failed on the device and still does: its
/// result refused or rolled it back, and the agent does not report it
/// applied since (a `Bundle` condition `True` for that version).
pub fn desired_failed(d: &Device) -> bool {
    failed_result(d, d.desired_version)
        && !d.conditions.iter().any(|c| {
            c.kind == "Bundle" && c.status == "True" && c.observed_version == d.desired_version
        })
}

/// The loops' readiness as the agent last reported it.
fn loops(d: &Device) -> (usize, Vec<NotReady>) {
    let mut n = 0;
    let mut not = Vec::new();
    for c in &d.conditions {
        let Some(name) = c.kind.strip_prefix("Loop/") else {
            continue;
        };
        n += 1;
        if c.status != "True" {
            not.push(NotReady {
                name: name.to_owned(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
            });
        }
    }
    (n, not)
}

/// One line for loops not ready: `fans: Failsafe (zone cpu: …); power: Starting`.
pub fn describe_not_ready(not: &[NotReady]) -> String {
    not.iter()
        .map(|l| {
            if l.message.is_empty() {
                format!("{}: {}", l.name, l.reason)
            } else {
                format!("{}: {} ({})", l.name, l.reason, l.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether `d` is converged ([`assess`]'s `converged`), without building
/// any message: for checks over a whole fleet.
pub fn converged(d: &Device) -> bool {
    d.desired_version != 0
        && !d.current.source.starts_with("file:")
        && !desired_failed(d)
        && d.current.version == d.desired_version
        && d.conditions
            .iter()
            .all(|c| (c.kind != "Bundle" && !c.kind.starts_with("Loop/")) || c.status == "True")
}

/// The state of `d`; `online` says whether its session is up now.
pub fn assess(d: &Device, online: bool) -> Assessment {
    let (n, not_ready) = loops(d);
    let mut a = Assessment {
        state: State::Converged,
        message: String::new(),
        converged: false,
        loops: n,
        loops_ready: n - not_ready.len(),
        not_ready,
    };
    let offline = if online { "" } else { " (offline)" };
    let runs = if d.current.version == 0 && d.current.name.is_empty() {
        "it runs no bundle".to_owned()
    } else {
        format!(
            "it runs {} version {}",
            if d.current.name.is_empty() {
                "a bundle"
            } else {
                &d.current.name
            },
            d.current.version
        )
    };
    if d.current.source.starts_with("file:") {
        a.state = State::Override;
        a.message = format!("local override: runs {}", d.current.source);
    } else if d.desired_version == 0 {
        a.state = State::NoBundle;
        a.message = format!("no bundle selects it; {runs}");
    } else if desired_failed(d) {
        a.state = State::Failed;
        a.message = format!(
            "version {} {}: {}",
            d.desired_version,
            if d.last_result.outcome == "Rejected" {
                "refused"
            } else {
                "rolled back"
            },
            d.last_result.message
        );
    } else if d.current.version != d.desired_version {
        a.state = State::Progressing;
        a.message = format!(
            "waiting for {} version {}{offline}; {runs}",
            d.desired_bundle, d.desired_version
        );
    } else if let Some(b) = d
        .conditions
        .iter()
        .find(|c| c.kind == "Bundle" && c.status == "False")
    {
        // Runs the desired version, but the agent says it did not apply
        // (a result lost on the way, an agent restarted on it).
        a.state = State::Failed;
        a.message = format!("bundle {}: {}", b.reason, b.message);
    } else if a.not_ready.iter().any(|l| l.status == "False") {
        a.state = State::Degraded;
        a.message = format!(
            "loops not ready: {}{offline}",
            describe_not_ready(&a.not_ready)
        );
    } else if !a.not_ready.is_empty() {
        a.state = State::Progressing;
        a.message = format!(
            "loops starting: {}{offline}",
            describe_not_ready(&a.not_ready)
        );
    } else {
        a.converged = true;
    }
    a
}

/// Whether `d` is tainted, and why: it runs something other than what
/// is wanted and is not on its way there (a refused or rolled-back
/// desired version, a local override).
pub fn taint(d: &Device) -> (bool, String) {
    let a = assess(d, true);
    match a.state {
        State::Failed | State::Override => (true, a.message),
        _ => (false, String::new()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::controlplane::store::Condition;

    fn cond(kind: &str, status: &str, reason: &str, v: u64) -> Condition {
        Condition {
            kind: kind.into(),
            status: status.into(),
            reason: reason.into(),
            observed_version: v,
            ..Default::default()
        }
    }

    fn device(desired: u64, current: u64) -> Device {
        let mut d = Device {
            name: "pi".into(),
            desired_bundle: "fans".into(),
            desired_version: desired,
            ..Default::default()
        };
        d.current.name = "fans".into();
        d.current.version = current;
        d.current.source = "control-plane".into();
        d.conditions = vec![
            cond("Bundle", "True", "Applied", current),
            cond("Loop/fans", "True", "Reconciled", current),
            cond("Loop/power", "True", "Reconciled", current),
        ];
        d
    }

    /// `converged` agrees with `assess` on every case below.
    fn check(d: &Device) -> Assessment {
        let a = assess(d, true);
        assert_eq!(converged(d), a.converged, "{d:?}");
        a
    }

    #[test]
    fn converged_needs_the_version_applied_and_every_loop_ready() {
        let d = device(3, 3);
        let a = check(&d);
        assert!(a.converged, "{a:?}");
        assert_eq!((a.loops, a.loops_ready), (2, 2));
        assert_eq!(taint(&d), (false, String::new()));
    }

    #[test]
    fn a_loop_in_fail_safe_is_degraded_not_converged() {
        let mut d = device(3, 3);
        d.conditions[1] = cond("Loop/fans", "False", "Failsafe", 3);
        d.conditions[1].message = "zone cpu: sensor stale".into();
        let a = check(&d);
        assert!(!a.converged);
        assert_eq!(a.state, State::Degraded);
        assert!(
            a.message
                .contains("fans: Failsafe (zone cpu: sensor stale)"),
            "{}",
            a.message
        );
        assert_eq!(a.loops_ready, 1);
        // Not tainted: it runs what is wanted.
        assert!(!taint(&d).0);
    }

    #[test]
    fn a_loop_starting_is_progressing() {
        let mut d = device(3, 3);
        d.conditions[2] = cond("Loop/power", "Unknown", "Starting", 3);
        let a = assess(&d, false);
        assert_eq!(a.state, State::Progressing);
        assert!(!a.converged);
        assert!(a.message.contains("offline"), "{}", a.message);
    }

    #[test]
    fn nothing_to_roll_back_to_is_failed_and_tainted() {
        // The agent keeps running the failed version as it can.
        let mut d = device(3, 3);
        d.last_result.version = 3;
        d.last_result.outcome = "RolledBack".into();
        d.last_result.message = "fans: SensorMissing; nothing to roll back to".into();
        d.last_result.at = 100;
        d.conditions[0] = cond("Bundle", "False", "RolledBack", 3);
        let a = check(&d);
        assert_eq!(a.state, State::Failed, "{a:?}");
        assert!(!a.converged);
        let (t, why) = taint(&d);
        assert!(t);
        assert!(why.contains("rolled back"), "{why}");
    }

    #[test]
    fn a_rollback_to_the_previous_version_is_failed() {
        let mut d = device(4, 3);
        d.last_result.version = 4;
        d.last_result.outcome = "RolledBack".into();
        let a = check(&d);
        assert_eq!(a.state, State::Failed);
        assert!(taint(&d).0);
        // A refusal likewise.
        d.last_result.outcome = "Rejected".into();
        assert!(check(&d).message.contains("refused"));
    }

    #[test]
    fn a_bundle_condition_false_on_the_desired_version_is_failed() {
        let mut d = device(3, 3);
        d.conditions[0] = cond("Bundle", "False", "RolledBack", 3);
        assert_eq!(check(&d).state, State::Failed);
    }

    #[test]
    fn a_later_successful_apply_clears_a_stale_failure() {
        let mut d = device(3, 3);
        d.last_result.version = 3;
        d.last_result.outcome = "RolledBack".into();
        d.last_result.at = 100;
        assert!(check(&d).converged);
    }

    #[test]
    fn no_desired_bundle_is_never_converged() {
        let mut d = device(0, 3);
        d.desired_bundle.clear();
        let a = check(&d);
        assert_eq!(a.state, State::NoBundle);
        assert!(!a.converged);
        assert!(a.message.contains("runs fans version 3"), "{}", a.message);
        let fresh = Device::default();
        assert_eq!(
            check(&fresh).message,
            "no bundle selects it; it runs no bundle"
        );
    }

    #[test]
    fn a_local_override_is_tainted() {
        let mut d = device(3, 3);
        d.current.source = "file:/etc/onprem/bundle.yaml".into();
        assert_eq!(check(&d).state, State::Override);
        assert!(taint(&d).0);
    }

    #[test]
    fn on_its_way_is_progressing() {
        let d = device(4, 3);
        let a = assess(&d, false);
        assert_eq!(a.state, State::Progressing);
        assert!(
            a.message.contains("waiting for fans version 4 (offline)"),
            "{}",
            a.message
        );
    }
}
