//! Bundle revisions and their rollout.
//!
//! Applying a Bundle record that changed makes a new **revision**: the
//! node bundle with its profile merged (hardware inline, so the agent
//! needs nothing else), `metadata.version` set to the next version
//! (monotonic over every bundle), validated as the agent will validate
//! it, and signed with the control plane's Ed25519 key.
//!
//! The **rollout** of a revision moves devices' desired version to it:
//! `AllAtOnce`, or `Staged` — a canary batch (count or percentage), then
//! batches; each batch must converge (every device reports the new
//! version) within `progressDeadline`. A device that refuses the bundle
//! or rolls it back, or a deadline that passes, **halts** the rollout:
//! later batches keep their previous bundle until a new revision is
//! applied. Devices are taken in name order, so the canaries are
//! predictable.
//!
//! A device selected by several bundles gets the one whose name sorts
//! first (and an event says so).

use std::collections::BTreeMap;

use super::core::{ApiResult, Core, audit, event, now};
use super::records::{self, Strategy};
use super::store::{Device, Kind, Object, Revision, Rollout, Write};
use crate::validate::FieldError;

/// The bundle (and its version) a device should run, from the stored
/// bundles' selectors and their rollouts. A device that joins (enrols, or
/// is relabelled into a selector) while a staged rollout is under way or
/// halted does not skip the staging: it keeps what it was given (nothing,
/// if new) and gets the version when the rollout completes.
pub fn bundle_for(core: &Core, d: &Device) -> ApiResult<Option<(String, u64)>> {
    let bundles = core.store().objects(Kind::Bundle)?;
    let rollouts = core.rollouts();
    let Some(b) = selecting(&bundles, d) else {
        return Ok(None);
    };
    let Some(r) = rollouts.iter().find(|r| r.bundle == b.name) else {
        return Ok(None);
    };
    if released(r, &d.id) {
        return Ok(Some((b.name.clone(), r.version)));
    }
    Ok((!d.desired_bundle.is_empty()).then(|| (d.desired_bundle.clone(), d.desired_version)))
}

/// Whether rollout `r` has released its version to device `id`.
fn released(r: &Rollout, id: &str) -> bool {
    r.phase == "Complete"
        || (r.strategy == "AllAtOnce" && r.phase != "Halted")
        || r.batches
            .iter()
            .take(r.batch + 1)
            .any(|b| b.iter().any(|x| x == id))
}

/// The bundle record that selects `d` (the first by name).
pub fn selecting<'a>(bundles: &'a [Object], d: &Device) -> Option<&'a Object> {
    bundles.iter().find(|b| {
        records::targeting(&b.spec)
            .selector
            .is_some_and(|s| s.matches(&d.labels))
    })
}

/// Makes the signed revision `version` of a Bundle record; `profiles`
/// resolves profile names (stored or applied with it) before the
/// built-in ones.
pub fn make_revision(
    rec_name: &str,
    labels: &BTreeMap<String, String>,
    spec: &serde_json::Value,
    version: u64,
    profiles: &dyn Fn(&str) -> Option<Result<onprem_hal::inventory::Spec, String>>,
    core: &Core,
) -> Result<Revision, Vec<FieldError>> {
    let mut b = records::node_bundle(rec_name, labels, spec).map_err(|e| vec![e])?;
    let resolved = crate::bundle::validate::validate_in(&b, None, profiles).map_err(|e| e.0)?;
    // Hardware inline: the agent needs no profile of its own. Everything
    // the resolved profile says goes with it (board, description,
    // provisional), so that the agent builds the same hardware as from
    // the file.
    let hw = &resolved.hardware;
    b.spec.hardware = crate::bundle::schema::Hardware {
        profile: None,
        board: hw.board.clone(),
        description: hw.description.clone(),
        provisional: hw.provisional,
        devices: hw.devices.clone(),
        remove: Vec::new(),
        sim: Some(hw.sim.clone()),
    };
    b.metadata.version = Some(version);
    let text = serde_yaml_ng::to_string(&b)
        .map_err(|e| vec![FieldError::new("spec", format!("cannot serialise: {e}"))])?;
    // What the agent will do with it.
    let check = crate::bundle::parse(&text)
        .map_err(|e| e.field_errors())
        .and_then(|p| crate::bundle::validate(&p, None).map_err(|e| e.0))?;
    let sig = format!("{}\n", core.pki.signing.sign(text.as_bytes()));
    Ok(Revision {
        version,
        bundle: rec_name.to_owned(),
        digest: check.digest,
        text,
        sig,
        created: now(),
    })
}

/// Splits the ordered `targets` into batches.
pub fn batches(targets: Vec<String>, r: &records::Rollout) -> Vec<Vec<String>> {
    if targets.is_empty() {
        return Vec::new();
    }
    match r.strategy {
        Strategy::AllAtOnce => vec![targets],
        Strategy::Staged => {
            let n = targets.len();
            let canary = r.canary.as_ref().map_or(1, |a| a.of(n));
            let size = r
                .batch_size
                .as_ref()
                .map_or_else(|| records::Amount::Percent("25%".into()).of(n), |a| a.of(n))
                .max(1);
            let mut out = vec![targets[..canary].to_vec()];
            for chunk in targets[canary..].chunks(size) {
                out.push(chunk.to_vec());
            }
            out
        }
    }
}

/// The writes that start the rollout of `rev` for bundle `b` over the
/// devices it selects; updates `devices` (the in-memory copies) and
/// returns the rollout.
pub fn start(
    b: &Object,
    rev: &Revision,
    devices: &mut std::collections::HashMap<String, Device>,
    writes: &mut Vec<Write>,
    all_bundles: &[Object],
) -> Rollout {
    let t = records::targeting(&b.spec);
    let mut targets: Vec<(&String, &String)> = devices
        .values()
        .filter(|d| selecting(all_bundles, d).is_some_and(|s| s.name == b.name))
        .map(|d| (&d.name, &d.id))
        .collect();
    targets.sort();
    let ids: Vec<String> = targets.into_iter().map(|(_, id)| id.clone()).collect();
    let batches = batches(ids, &t.rollout);
    let mut r = Rollout {
        bundle: b.name.clone(),
        version: rev.version,
        strategy: match t.rollout.strategy {
            Strategy::AllAtOnce => "AllAtOnce".into(),
            Strategy::Staged => "Staged".into(),
        },
        batches,
        batch: 0,
        phase: "Progressing".into(),
        message: String::new(),
        batch_started: now(),
        progress_deadline: t.rollout.progress_deadline.get().as_secs(),
        started: now(),
        updated: now(),
    };
    if r.batches.is_empty() {
        r.phase = "Complete".into();
        r.message = "no device selected".into();
    } else {
        set_desired(&r, 0, devices, writes);
    }
    writes.push(Write::PutRollout(r.clone()));
    r
}

fn set_desired(
    r: &Rollout,
    batch: usize,
    devices: &mut std::collections::HashMap<String, Device>,
    writes: &mut Vec<Write>,
) {
    for id in r.batches.get(batch).into_iter().flatten() {
        if let Some(d) = devices.get_mut(id) {
            d.desired_bundle = r.bundle.clone();
            d.desired_version = r.version;
            (d.tainted, d.taint_reason) = super::health::taint(d);
            writes.push(Write::PutDevice(d.clone()));
        }
    }
}

/// How the devices a rollout waits on stand.
#[derive(Debug, Default)]
struct Tally {
    /// Converged.
    ok: usize,
    /// Refused, rolled back, or on a local override: they will not get
    /// there without a new revision (`name Outcome: message`).
    failed: Vec<String>,
    /// Running the version with a loop not ready (`name: loops …`).
    degraded: Vec<String>,
    /// Still on their way (`name: why`).
    waiting: Vec<String>,
}

impl Tally {
    /// Everything not converged, for a message.
    fn pending(&self) -> String {
        self.failed
            .iter()
            .chain(&self.degraded)
            .chain(&self.waiting)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// How the devices `ids` stand against rollout `r`.
fn tally<'a>(
    r: &Rollout,
    ids: impl IntoIterator<Item = &'a String>,
    devices: &std::collections::HashMap<String, Device>,
    online: &dyn Fn(&str) -> bool,
) -> Tally {
    use super::health::State;
    let mut t = Tally::default();
    for id in ids {
        let Some(d) = devices.get(id) else {
            continue; // deleted: nothing to wait for
        };
        if d.desired_bundle != r.bundle {
            continue; // another bundle selects it now, or none
        }
        let a = super::health::assess(d, online(id));
        if d.desired_version != r.version {
            t.waiting.push(format!("{}: {}", d.name, a.message));
            continue;
        }
        match a.state {
            State::Converged => t.ok += 1,
            State::Failed if super::health::failed_result(d, r.version) => t.failed.push(format!(
                "{} {}: {}",
                d.name, d.last_result.outcome, d.last_result.message
            )),
            State::Failed | State::Override => {
                t.failed
                    .push(format!("{} {:?}: {}", d.name, a.state, a.message));
            }
            State::Degraded => t.degraded.push(format!("{}: {}", d.name, a.message)),
            State::Progressing | State::NoBundle => {
                t.waiting.push(format!("{}: {}", d.name, a.message));
            }
        }
    }
    t
}

/// What a rollout's next step is.
#[derive(Debug, PartialEq)]
enum Step {
    /// Nothing to do yet (the message says what it waits for).
    Wait(String),
    /// The batch (staged) or every device (all at once) converged.
    Converged,
    /// Staged: halt with this message.
    Halt(String),
    /// All at once: every device answered, or the deadline passed, and
    /// some did not converge (named in the message); the others run the
    /// version, and the pending ones still get it when they come back.
    Degraded(String),
}

/// The next step of rollout `r`.
fn step(
    r: &Rollout,
    devices: &std::collections::HashMap<String, Device>,
    online: &dyn Fn(&str) -> bool,
    now: i64,
) -> Step {
    let ids: Vec<&String> = if r.strategy == "AllAtOnce" {
        r.batches.iter().flatten().collect()
    } else {
        r.batches.get(r.batch).into_iter().flatten().collect()
    };
    let t = tally(r, ids.iter().copied(), devices, online);
    let total = t.ok + t.failed.len() + t.degraded.len() + t.waiting.len();
    let late = now - r.batch_started > r.progress_deadline as i64;
    if t.ok == total {
        return Step::Converged;
    }
    if r.strategy == "AllAtOnce" {
        // It ends once every device answered (or the deadline passed).
        if t.waiting.is_empty() || late {
            return Step::Degraded(format!(
                "{} of {total} device(s) run version {}; {}{}",
                t.ok,
                r.version,
                if late && !t.waiting.is_empty() {
                    format!("not converged within {}s: ", r.progress_deadline)
                } else {
                    String::new()
                },
                t.pending()
            ));
        }
    } else {
        if !t.failed.is_empty() {
            return Step::Halt(t.failed.join("; "));
        }
        if late {
            return Step::Halt(format!(
                "not converged within {}s: {}",
                r.progress_deadline,
                t.pending()
            ));
        }
    }
    Step::Wait(format!(
        "{} of {total} converged; pending: {}",
        t.ok,
        t.pending()
    ))
}

/// Whether the rollout engine still follows `r`: progressing, or all at
/// once (which takes in devices that join it, and completes a degraded
/// rollout once its devices converge).
pub(crate) fn followed(r: &Rollout) -> bool {
    r.phase == "Progressing" || (r.strategy == "AllAtOnce" && r.phase != "Halted")
}

/// Whether a message of device `id` may have moved rollout `r` on: the
/// device's result failed the rollout's version, or every device of the
/// batch runs it. Stops at the first device still on its way, so that a
/// message costs little while the batch converges; deadlines are the
/// housekeeping's (every second, [`Core::progress_rollouts`]).
fn may_progress(
    r: &Rollout,
    devices: &std::collections::HashMap<String, Device>,
    id: &str,
) -> bool {
    if devices
        .get(id)
        .is_some_and(|d| super::health::failed_result(d, r.version))
    {
        return true;
    }
    let batch: Vec<&String> = if r.strategy == "AllAtOnce" {
        r.batches.iter().flatten().collect()
    } else {
        r.batches.get(r.batch).into_iter().flatten().collect()
    };
    batch
        .into_iter()
        .all(|i| devices.get(i).is_none_or(super::health::converged))
}

impl Core {
    /// After a message of device `id` that changed it: moves the rollouts
    /// on when one may have moved ([`may_progress`]); a full check of a
    /// batch costs one pass over its devices, too much for every message
    /// of a large fleet.
    pub(crate) fn progress_after(&self, id: &str) {
        let maybe = self.with_rollouts(|rs, ds| {
            rs.values()
                .filter(|r| followed(r))
                .any(|r| may_progress(r, ds, id))
        });
        if maybe {
            self.progress_rollouts();
        }
    }

    /// Moves every progressing rollout on: next batch, complete, halted
    /// (staged) or degraded (all at once). An all-at-once rollout is
    /// followed after it ends too: devices that join it (enrolled or
    /// relabelled into its selector) are added to it, and a degraded one
    /// completes once every device converged (an offline device that
    /// came back). Returns the devices whose desired version changed.
    pub fn progress_rollouts(&self) -> Vec<String> {
        let mut changed = Vec::new();
        let mut writes = Vec::new();
        let mut evs = Vec::new();
        let t = now();
        for r0 in self.followed() {
            let mut r = r0.clone();
            let next = self.with_fleet(|ds, online| {
                if r.strategy == "AllAtOnce" {
                    let members: std::collections::HashSet<&String> =
                        r.batches.iter().flatten().collect();
                    let mut joined: Vec<(&String, &String)> = ds
                        .values()
                        .filter(|d| {
                            d.desired_bundle == r.bundle
                                && d.desired_version == r.version
                                && !members.contains(&d.id)
                        })
                        .map(|d| (&d.name, &d.id))
                        .collect();
                    if !joined.is_empty() {
                        joined.sort();
                        if r.batches.is_empty() {
                            r.batches.push(Vec::new());
                        }
                        r.batches[0].extend(joined.into_iter().map(|(_, id)| id.clone()));
                        r.batch_started = t;
                        r.phase = "Progressing".into();
                    } else if r.phase == "Complete" {
                        // Nothing new: a complete rollout stays so (its
                        // devices' own states say how they run now).
                        return None;
                    }
                }
                Some(step(&r, ds, online, t))
            });
            let Some(next) = next else {
                continue;
            };
            let was = r0.phase.as_str();
            match next {
                Step::Wait(why) => {
                    if r.strategy == "Staged" {
                        r.message = format!("batch {} of {}: {why}", r.batch + 1, r.batches.len());
                    } else {
                        r.message = why;
                    }
                }
                Step::Halt(why) => {
                    r.phase = "Halted".into();
                    r.message =
                        format!("batch {} of {} failed: {why}", r.batch + 1, r.batches.len());
                    evs.push(event(
                        "",
                        "Warning",
                        "RolloutHalted",
                        format!("bundle {} version {}: {}", r.bundle, r.version, r.message),
                    ));
                }
                Step::Degraded(why) => {
                    r.phase = "Degraded".into();
                    r.message = why;
                    if was != "Degraded" {
                        evs.push(event(
                            "",
                            "Warning",
                            "RolloutDegraded",
                            format!("bundle {} version {}: {}", r.bundle, r.version, r.message),
                        ));
                    }
                }
                Step::Converged => {
                    if r.strategy == "Staged" && r.batch + 1 < r.batches.len() {
                        r.batch += 1;
                        r.batch_started = t;
                        self.with_devices(|ds| set_desired(&r, r.batch, ds, &mut writes));
                        changed.extend(r.batches[r.batch].iter().cloned());
                        r.message = format!("batch {} of {}", r.batch + 1, r.batches.len());
                    } else {
                        r.phase = "Complete".into();
                        r.message = format!(
                            "{} device(s) run version {}",
                            r.batches.iter().map(Vec::len).sum::<usize>(),
                            r.version
                        );
                        if r.strategy == "Staged" {
                            // Devices that joined while it was under way.
                            changed.extend(self.release_latecomers(&r, &mut writes));
                        }
                        if was != "Complete" {
                            evs.push(event(
                                "",
                                "Normal",
                                "RolloutComplete",
                                format!("bundle {} version {}: {}", r.bundle, r.version, r.message),
                            ));
                        }
                    }
                }
            }
            if r == r0 {
                continue;
            }
            r.updated = t;
            writes.push(Write::PutRollout(r.clone()));
            self.set_rollout(r);
        }
        if writes.is_empty() {
            return changed;
        }
        writes.extend(evs.iter().cloned().map(Write::Event));
        if let Err(e) = self.store.commit(writes) {
            tracing::error!(error = %e, "cannot store rollout progress");
        }
        for e in evs {
            tracing::info!(reason = %e.reason, "{}", e.message);
            self.publish(super::core::Live::Event { event: e });
        }
        for id in &changed {
            self.deliver(id);
        }
        self.touch(changed.clone());
        changed
    }

    /// Gives the version of a completed rollout to the devices its bundle
    /// selects that are not in its batches (they joined while it ran).
    fn release_latecomers(&self, r: &Rollout, writes: &mut Vec<Write>) -> Vec<String> {
        let bundles = match self.store.objects(Kind::Bundle) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the bundles");
                return Vec::new();
            }
        };
        self.with_devices(|ds| {
            let mut out = Vec::new();
            for d in ds.values_mut() {
                let selected = selecting(&bundles, d).is_some_and(|b| b.name == r.bundle);
                if selected && (d.desired_bundle != r.bundle || d.desired_version != r.version) {
                    d.desired_bundle = r.bundle.clone();
                    d.desired_version = r.version;
                    writes.push(Write::PutDevice(d.clone()));
                    out.push(d.id.clone());
                }
            }
            out
        })
    }

    /// Applies the rollout-relevant effects of committed bundle and
    /// device changes: used by apply.
    pub(crate) fn after_apply(&self, rollouts: Vec<Rollout>, removed: Vec<String>) {
        for b in removed {
            self.drop_rollout(&b);
        }
        let mut ids = Vec::new();
        for r in rollouts {
            if let Some(first) = r.batches.first() {
                ids.extend(first.iter().cloned());
            }
            self.set_rollout(r);
        }
        for id in &ids {
            self.deliver(id);
        }
        self.touch(ids);
        self.progress_rollouts();
    }

    /// Re-targets one device after its labels changed: it gets the
    /// version of the bundle that now selects it, once that bundle's
    /// rollout released it (see [`bundle_for`]).
    pub(crate) fn retarget(&self, d: &mut Device, writes: &mut Vec<Write>) -> ApiResult<()> {
        let lost = format!("bundle {} no longer selects it", d.desired_bundle);
        self.retarget_as(d, writes, &lost)
    }

    /// [`Self::retarget`], with `lost` saying why, when no bundle selects
    /// it now.
    fn retarget_as(&self, d: &mut Device, writes: &mut Vec<Write>, lost: &str) -> ApiResult<()> {
        match bundle_for(self, d)? {
            Some((b, v)) if d.desired_bundle != b || d.desired_version != v => {
                if d.desired_bundle != b {
                    writes.push(Write::Event(event(
                        &d.id,
                        "Normal",
                        "BundleSelected",
                        format!(
                            "bundle {b} selects it now{}; it gets version {v}",
                            if d.desired_bundle.is_empty() {
                                String::new()
                            } else {
                                format!(" instead of {}", d.desired_bundle)
                            }
                        ),
                    )));
                }
                d.desired_bundle = b;
                d.desired_version = v;
                (d.tainted, d.taint_reason) = super::health::taint(d);
                writes.push(Write::PutDevice(d.clone()));
            }
            Some(_) => {}
            None if !d.desired_bundle.is_empty() => {
                writes.push(Write::Event(unselected(d, lost)));
                d.desired_bundle.clear();
                d.desired_version = 0;
                (d.tainted, d.taint_reason) = super::health::taint(d);
                writes.push(Write::PutDevice(d.clone()));
            }
            None => {}
        }
        Ok(())
    }

    /// Deletes a bundle record: its rollout goes; devices keep running
    /// what they run ([`Self::after_bundle_deleted`] then re-targets
    /// them).
    pub(crate) fn bundle_deleted(
        &self,
        name: &str,
        writes: &mut Vec<Write>,
        who: &super::auth::Principal,
    ) {
        writes.push(Write::DeleteRollout(name.to_owned()));
        writes.push(audit(
            who,
            "delete",
            &format!("Bundle/{name}"),
            "rollout removed",
        ));
    }

    /// After a bundle record was deleted: the devices it was for get the
    /// bundle that selects them now, or none ([`Self::retarget`]).
    pub(crate) fn after_bundle_deleted(&self, name: &str) -> ApiResult<()> {
        let mut ds: Vec<Device> = self.with_devices(|ds| {
            ds.values()
                .filter(|d| d.desired_bundle == name)
                .cloned()
                .collect()
        });
        let mut writes = Vec::new();
        for d in &mut ds {
            self.retarget_as(d, &mut writes, &format!("bundle {name} deleted"))?;
        }
        self.store.commit(writes)?;
        let ids: Vec<String> = ds.iter().map(|d| d.id.clone()).collect();
        self.put_devices(ds);
        for id in &ids {
            self.deliver(id);
        }
        self.touch(ids);
        Ok(())
    }
}

/// The event for a device that no bundle selects any more.
fn unselected(d: &Device, why: &str) -> super::store::Event {
    event(
        &d.id,
        "Warning",
        "BundleUnselected",
        format!(
            "{why}; no bundle selects it now: it keeps running {}",
            if d.current.version == 0 {
                "no bundle".to_owned()
            } else {
                format!("{} version {}", d.current.name, d.current.version)
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn device(id: &str, current: u64) -> Device {
        let mut d = Device {
            id: id.into(),
            name: id.into(),
            desired_bundle: "fans".into(),
            desired_version: 7,
            ..Default::default()
        };
        d.current.version = current;
        d
    }

    #[test]
    fn a_message_moves_a_rollout_on_only_when_it_may_have() {
        let r = Rollout {
            version: 7,
            batches: vec![vec!["a".into(), "b".into()], vec!["c".into()]],
            phase: "Progressing".into(),
            ..Default::default()
        };
        let mut ds: HashMap<String, Device> = ["a", "b", "c"]
            .iter()
            .map(|i| ((*i).to_owned(), device(i, 0)))
            .collect();
        assert!(!may_progress(&r, &ds, "a"));
        ds.get_mut("a").unwrap().current.version = 7;
        assert!(!may_progress(&r, &ds, "a"), "b is still on its way");
        // A refusal halts the rollout at once, whatever the others do.
        ds.get_mut("b").unwrap().last_result.version = 7;
        ds.get_mut("b").unwrap().last_result.outcome = "Rejected".into();
        assert!(may_progress(&r, &ds, "b"));
        ds.get_mut("b").unwrap().last_result.outcome = "Applied".into();
        ds.get_mut("b").unwrap().current.version = 7;
        assert!(may_progress(&r, &ds, "b"), "the first batch converged");
        // A deleted device is nothing to wait for.
        ds.remove("a");
        assert!(may_progress(&r, &ds, "b"));
    }
}
