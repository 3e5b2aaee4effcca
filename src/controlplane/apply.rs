//! `apply`, `delete`, `get` and `describe`: the fleet API's record
//! operations, on [`Core`].
//!
//! An apply is all or nothing: every record of every document is parsed
//! and checked (references included: a chassis's facility, a device's
//! chassis, a bundle's profile, the bundle as the agent will validate it)
//! before anything is written; then the records, their audit entries,
//! new bundle revisions and their rollouts are committed in one
//! transaction. `--dry-run` stops before the commit.

use std::collections::{BTreeMap, HashMap};

use super::auth::{Principal, Role};
use super::core::{ApiError, ApiResult, Core, audit, now};
use super::records::{self, Record, RecordKind, Refused};
use super::rollout;
use super::store::{Kind, Object, Write};
use crate::limits;
use crate::proto::v1 as pb;
use crate::validate::FieldError;

/// The YAML a record is shown as (and diffed as).
pub fn record_yaml(
    kind: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    spec: &serde_json::Value,
) -> String {
    let doc = serde_json::json!({
        "apiVersion": records::API_VERSION,
        "kind": kind,
        "metadata": { "name": name, "labels": labels },
        "spec": spec,
    });
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}

/// A unified diff of two texts, line by line (`-` old, `+` new), with
/// three lines of context; empty when they are equal.
pub fn unified_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a == b {
        return String::new();
    }
    // Longest common subsequence, by table (records are small).
    let (n, m) = (a.len(), b.len());
    let mut l = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if a[i] == b[j] {
                l[i + 1][j + 1] + 1
            } else {
                l[i + 1][j].max(l[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || l[i + 1][j] >= l[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let near: Vec<bool> = (0..ops.len())
        .map(|k| {
            let lo = k.saturating_sub(3);
            let hi = (k + 3).min(ops.len() - 1);
            ops[lo..=hi].iter().any(|(c, _)| *c != ' ')
        })
        .collect();
    let mut out = String::new();
    let mut gap = false;
    for (k, (c, line)) in ops.iter().enumerate() {
        if near[k] {
            if gap {
                out.push_str("@@\n");
                gap = false;
            }
            out.push(*c);
            out.push_str(line);
            out.push('\n');
        } else {
            gap = true;
        }
    }
    out
}

fn result(r: &Record, outcome: &str, diff: String) -> pb::ApplyResult {
    pb::ApplyResult {
        source: r.source.clone(),
        index: r.index as u32,
        kind: r.kind.as_str().into(),
        name: r.name.clone(),
        outcome: outcome.into(),
        diff,
        errors: Vec::new(),
    }
}

fn refused(r: &Refused) -> pb::ApplyResult {
    pb::ApplyResult {
        source: r.source.clone(),
        index: r.index as u32,
        kind: r.kind.clone(),
        name: r.name.clone(),
        outcome: "invalid".into(),
        diff: String::new(),
        errors: r
            .errors
            .iter()
            .map(|e| pb::FieldError {
                path: e.path.clone(),
                message: e.message.clone(),
            })
            .collect(),
    }
}

/// What a device becomes once a Device record is applied.
struct DeviceAfter {
    labels: std::collections::BTreeMap<String, String>,
    /// The label keys records own now.
    owned: Vec<String>,
    facility: String,
    chassis: String,
}

/// A device's labels, facility and chassis once a Device record with
/// `labels` and `spec` is applied, as a kubectl user expects: the labels
/// the record sets are the record's (its values win, and records own
/// them from then on); a label records own that this one leaves out
/// goes; the others (from the enrolment token, the agent's facts) stay,
/// also when the record repeats them unchanged (as `get -o yaml` and
/// `edit` do). `facility` and `chassis` change when the record names
/// them (`""` clears one).
fn device_after(
    d: &super::store::Device,
    labels: &std::collections::BTreeMap<String, String>,
    spec: &serde_json::Value,
) -> DeviceAfter {
    let mut out = d.labels.clone();
    for k in &d.applied_labels {
        if !labels.contains_key(k) {
            out.remove(k);
        }
    }
    let owned = labels
        .iter()
        .filter(|(k, v)| d.applied_labels.contains(k) || d.labels.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    out.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    let field = |name: &str, current: &str| {
        spec.get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or(current)
            .to_owned()
    };
    DeviceAfter {
        labels: out,
        owned,
        facility: field("facility", &d.facility),
        chassis: field("chassis", &d.chassis),
    }
}

impl Core {
    /// Applies documents (all or nothing).
    pub fn apply(
        &self,
        who: &Principal,
        docs: &[pb::Document],
        dry_run: bool,
    ) -> ApiResult<pb::ApplyResponse> {
        who.require(Role::Operator, "apply")
            .map_err(ApiError::Forbidden)?;
        // Bounded whatever the client checked (crate::limits): every
        // document together, each text's nesting (records::
        // parse_documents), each record.
        let total: usize = docs.iter().map(|d| d.text.len()).sum();
        if total > limits::MAX_APPLY_BYTES.value {
            return Err(ApiError::Invalid(format!(
                "the documents: {}",
                limits::too_large(total, false, limits::MAX_APPLY_BYTES)
            )));
        }
        // Parsed before this apply's turn: a slow document holds up no
        // other apply.
        let mut recs = Vec::new();
        let mut bad = Vec::new();
        for d in docs {
            let (ok, no) = records::parse_documents(&d.source, &d.text);
            for r in ok {
                let size = serde_json::to_vec(&r.spec).map_or(0, |v| v.len());
                if size > limits::MAX_RECORD_BYTES.value {
                    bad.push(r.refused(vec![FieldError::new(
                        "spec",
                        limits::too_large(size, false, limits::MAX_RECORD_BYTES).to_string(),
                    )]));
                } else {
                    recs.push(r);
                }
            }
            bad.extend(no);
        }
        // One apply at a time, from reading the stored records to
        // committing (a panic elsewhere leaves nothing half-done here).
        let _turn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // The same record twice in one apply is ambiguous.
        let mut seen: HashMap<(RecordKind, String), (String, usize)> = HashMap::new();
        let mut keep = Vec::new();
        for r in recs {
            if let Some((src, idx)) = seen.get(&(r.kind, r.name.clone())) {
                bad.push(r.refused(vec![FieldError::new(
                    "metadata.name",
                    format!(
                        "{} {:?} is also record {idx} of {src}",
                        r.kind.as_str(),
                        r.name
                    ),
                )]));
            } else {
                seen.insert((r.kind, r.name.clone()), (r.source.clone(), r.index));
                keep.push(r);
            }
        }
        let recs = keep;

        let stored: HashMap<Kind, Vec<Object>> = Kind::ALL
            .iter()
            .map(|k| Ok((*k, self.store.objects(*k)?)))
            .collect::<ApiResult<_>>()?;
        let incoming: std::collections::HashSet<(RecordKind, String)> =
            recs.iter().map(|r| (r.kind, r.name.clone())).collect();
        let exists = |kind: Kind, name: &str| {
            stored[&kind].iter().any(|o| o.name == name)
                || incoming.contains(&(RecordKind::Object(kind), name.to_owned()))
        };
        let incoming_profiles: HashMap<String, serde_json::Value> = recs
            .iter()
            .filter(|r| r.kind == RecordKind::Object(Kind::Profile))
            .map(|r| (r.name.clone(), r.spec.clone()))
            .collect();
        let stored_profiles: HashMap<String, serde_json::Value> = stored[&Kind::Profile]
            .iter()
            .map(|o| (o.name.clone(), o.spec.clone()))
            .collect();
        let profiles = move |name: &str| {
            let spec = incoming_profiles
                .get(name)
                .or_else(|| stored_profiles.get(name))?;
            Some(
                serde_json::from_value::<onprem_hal::inventory::Spec>(spec.clone())
                    .map_err(|e| format!("stored profile {name:?}: {e}")),
            )
        };

        // Cross-record checks and revisions.
        let mut next_version = self.store.last_version()?;
        let mut plans: Vec<(Record, Option<super::store::Revision>)> = Vec::new();
        for r in recs {
            let mut errors = Vec::new();
            let mut rev = None;
            // Names of other records a spec field refers to must exist.
            let mut refs = |fields: &[(&str, Kind)]| {
                for (field, kind) in fields {
                    let v = r.spec.get(*field).and_then(|v| v.as_str()).unwrap_or("");
                    if !v.is_empty() && !exists(*kind, v) {
                        errors.push(FieldError::new(
                            format!("spec.{field}"),
                            format!("no {} {v:?}", kind.as_str()),
                        ));
                    }
                }
            };
            match r.kind {
                RecordKind::Object(Kind::Chassis) => refs(&[("facility", Kind::Facility)]),
                RecordKind::Device => {
                    refs(&[("facility", Kind::Facility), ("chassis", Kind::Chassis)]);
                    if self.device(&r.name).is_none() {
                        errors.push(FieldError::new(
                            "metadata.name",
                            format!("no device {:?}: devices are created by enrolment", r.name),
                        ));
                    }
                }
                RecordKind::Object(Kind::Bundle) => {
                    let old = stored[&Kind::Bundle].iter().find(|o| o.name == r.name);
                    let same = old.is_some_and(|o| o.spec == r.spec && o.labels == r.labels);
                    // A new revision only when the record changed (a
                    // changed profile it names takes a re-apply of the
                    // bundle).
                    if !same {
                        match rollout::make_revision(
                            &r.name,
                            &r.labels,
                            &r.spec,
                            next_version + 1,
                            &profiles,
                            self,
                        ) {
                            Ok(rv) => {
                                next_version += 1;
                                rev = Some(rv);
                            }
                            Err(es) => errors.extend(es),
                        }
                    }
                }
                _ => {}
            }
            if errors.is_empty() {
                plans.push((r, rev));
            } else {
                bad.push(r.refused(errors));
            }
        }

        // Records read at a generation (`get -o yaml`, `onprem edit`)
        // apply only over that generation.
        for (r, _) in &plans {
            let Some(want) = r.generation else { continue };
            let now_at = match r.kind {
                RecordKind::Object(kind) => stored[&kind]
                    .iter()
                    .find(|o| o.name == r.name)
                    .map(|o| o.generation),
                RecordKind::Device => self.device(&r.name).map(|v| v.device.generation),
            };
            match now_at {
                Some(g) if g == want => {}
                Some(g) => {
                    return Err(ApiError::Conflict(format!(
                        "{}/{} changed since it was read (metadata.generation {want}, now {g}): read it again",
                        r.kind.as_str(),
                        r.name
                    )));
                }
                None => {
                    return Err(ApiError::Conflict(format!(
                        "{}/{} was deleted since it was read (metadata.generation {want})",
                        r.kind.as_str(),
                        r.name
                    )));
                }
            }
        }

        // Outcomes.
        let mut results = Vec::new();
        let mut writes = Vec::new();
        let mut new_objects: Vec<Object> = Vec::new();
        let mut changed_devices = Vec::new();
        let mut revisions = Vec::new();
        for (r, rev) in &plans {
            match r.kind {
                RecordKind::Object(kind) => {
                    let old = stored[&kind].iter().find(|o| o.name == r.name);
                    let new_yaml = record_yaml(kind.as_str(), &r.name, &r.labels, &r.spec);
                    let (outcome, diff) = match old {
                        None => ("created", unified_diff("", &new_yaml)),
                        Some(o) if o.spec == r.spec && o.labels == r.labels => {
                            ("unchanged", String::new())
                        }
                        Some(o) => (
                            "configured",
                            unified_diff(
                                &record_yaml(kind.as_str(), &o.name, &o.labels, &o.spec),
                                &new_yaml,
                            ),
                        ),
                    };
                    results.push(result(r, outcome, diff));
                    if outcome != "unchanged" {
                        let obj = Object {
                            id: old.map_or_else(super::id::new, |o| o.id.clone()),
                            kind,
                            name: r.name.clone(),
                            labels: r.labels.clone(),
                            spec: r.spec.clone(),
                            generation: old.map_or(1, |o| o.generation + 1),
                            created: old.map_or_else(now, |o| o.created),
                            updated: now(),
                        };
                        writes.push(Write::PutObject(obj.clone()));
                        writes.push(audit(
                            who,
                            "apply",
                            &format!("{}/{}", kind.as_str(), r.name),
                            outcome,
                        ));
                        new_objects.push(obj);
                    }
                    if let Some(rv) = rev {
                        writes.push(Write::PutRevision(rv.clone()));
                        revisions.push(rv.clone());
                    }
                }
                RecordKind::Device => {
                    let Some(v) = self.device(&r.name) else {
                        continue;
                    };
                    let mut d = v.device;
                    let DeviceAfter {
                        labels,
                        owned,
                        facility,
                        chassis,
                    } = device_after(&d, &r.labels, &r.spec);
                    let old_yaml = record_yaml(
                        "Device",
                        &d.name,
                        &d.labels,
                        &serde_json::json!({"facility": d.facility, "chassis": d.chassis}),
                    );
                    let new_yaml = record_yaml(
                        "Device",
                        &d.name,
                        &labels,
                        &serde_json::json!({"facility": facility, "chassis": chassis}),
                    );
                    let same = d.labels == labels && d.facility == facility && d.chassis == chassis;
                    results.push(result(
                        r,
                        if same { "unchanged" } else { "configured" },
                        unified_diff(&old_yaml, &new_yaml),
                    ));
                    if !same {
                        d.labels = labels;
                        d.applied_labels = owned;
                        d.generation += 1;
                        d.facility = facility;
                        d.chassis = chassis;
                        writes.push(Write::PutDevice(d.clone()));
                        writes.push(audit(
                            who,
                            "apply",
                            &format!("Device/{}", d.name),
                            "configured",
                        ));
                        changed_devices.push(d);
                    }
                }
            }
        }
        let mut results_all = results;
        results_all.extend(bad.iter().map(refused));
        results_all.sort_by(|a, b| (a.source.as_str(), a.index).cmp(&(b.source.as_str(), b.index)));
        if !bad.is_empty() || dry_run {
            return Ok(pb::ApplyResponse {
                results: results_all,
                applied: false,
            });
        }
        if writes.is_empty() {
            return Ok(pb::ApplyResponse {
                results: results_all,
                applied: true,
            });
        }

        // Rollouts of the new revisions, over the devices as they will be.
        let mut all_bundles = stored[&Kind::Bundle].clone();
        for o in new_objects.iter().filter(|o| o.kind == Kind::Bundle) {
            all_bundles.retain(|b| b.name != o.name);
            all_bundles.push(o.clone());
        }
        all_bundles.sort_by(|a, b| a.name.cmp(&b.name));
        let mut rollouts = Vec::new();
        let devices_after = self.with_devices(|ds| {
            let mut copy = ds.clone();
            for d in &changed_devices {
                copy.insert(d.id.clone(), d.clone());
            }
            for rv in &revisions {
                if let Some(b) = all_bundles.iter().find(|b| b.name == rv.bundle) {
                    rollouts.push(rollout::start(b, rv, &mut copy, &mut writes, &all_bundles));
                }
            }
            copy
        });
        self.store.commit(writes)?;
        // In memory: the devices of the rollouts' first batches and those
        // whose labels changed.
        let touched: std::collections::HashSet<String> = rollouts
            .iter()
            .flat_map(|r| r.batches.first().into_iter().flatten().cloned())
            .chain(changed_devices.iter().map(|d| d.id.clone()))
            .collect();
        self.put_devices(
            touched
                .iter()
                .filter_map(|id| devices_after.get(id).cloned())
                .collect(),
        );
        for r in &rollouts {
            tracing::info!(bundle = %r.bundle, version = r.version, strategy = %r.strategy,
                devices = r.batches.iter().map(Vec::len).sum::<usize>(), "rollout started");
        }
        self.after_apply(rollouts, Vec::new());
        // Devices whose labels changed follow the bundle that selects
        // them now.
        let mut more = Vec::new();
        for d in &changed_devices {
            if let Some(v) = self.device(&d.id) {
                let mut d = v.device;
                self.retarget(&mut d, &mut more)?;
                let id = d.id.clone();
                self.put_devices(vec![d]);
                self.deliver(&id);
            }
        }
        self.store.commit(more)?;
        Ok(pb::ApplyResponse {
            results: results_all,
            applied: true,
        })
    }

    /// Deletes a record (devices: forgets them; their certificate stops
    /// working).
    pub fn delete(&self, who: &Principal, kind: &str, name: &str) -> ApiResult<bool> {
        let k = parse_kind(kind)?;
        let _turn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        match k {
            Listed::Object(kind) => {
                who.require(Role::Operator, "delete")
                    .map_err(ApiError::Forbidden)?;
                let Some(_) = self
                    .store
                    .objects(kind)?
                    .into_iter()
                    .find(|o| o.name == name)
                else {
                    return Ok(false);
                };
                let mut writes = vec![Write::DeleteObject(kind, name.to_owned())];
                if kind == Kind::Bundle {
                    self.bundle_deleted(name, &mut writes, who);
                } else {
                    writes.push(audit(
                        who,
                        "delete",
                        &format!("{}/{name}", kind.as_str()),
                        "",
                    ));
                }
                self.store.commit(writes)?;
                if kind == Kind::Bundle {
                    self.after_apply(Vec::new(), vec![name.to_owned()]);
                    self.after_bundle_deleted(name)?;
                }
                Ok(true)
            }
            Listed::Devices => {
                who.require(Role::Admin, "deleting devices")
                    .map_err(ApiError::Forbidden)?;
                let Some(v) = self.device(name) else {
                    return Ok(false);
                };
                self.store.commit(vec![
                    Write::DeleteDevice(v.device.id.clone()),
                    audit(
                        who,
                        "delete",
                        &format!("Device/{}", v.device.name),
                        "certificate no longer accepted",
                    ),
                ])?;
                self.forget_device(&v.device.id);
                Ok(true)
            }
            Listed::Tokens => self.revoke_token(who, name),
            other => Err(ApiError::Invalid(format!(
                "kind: {other:?} cannot be deleted"
            ))),
        }
    }

    /// Lists records as JSON (`kind` as `onprem get` takes it).
    pub fn get(&self, who: &Principal, req: &pb::GetRequest) -> ApiResult<serde_json::Value> {
        let sel = if req.selector.trim().is_empty() {
            None
        } else {
            Some(
                super::labels::Selector::parse(&req.selector)
                    .map_err(|e| ApiError::Invalid(format!("selector: {e}")))?,
            )
        };
        let matches =
            |labels: &BTreeMap<String, String>| sel.as_ref().is_none_or(|s| s.matches(labels));
        let by_name = |n: &str, id: &str| req.name.is_empty() || req.name == n || req.name == id;
        let device_filter = if req.device.is_empty() {
            None
        } else {
            Some(
                self.device(&req.device)
                    .map(|d| d.device.id)
                    .ok_or_else(|| ApiError::NotFound(format!("no device {:?}", req.device)))?,
            )
        };
        let v = match parse_kind(&req.kind)? {
            Listed::Object(kind) => {
                let rollouts = self.rollouts();
                let items: Vec<serde_json::Value> = self
                    .store
                    .objects(kind)?
                    .into_iter()
                    .filter(|o| matches(&o.labels) && by_name(&o.name, &o.id))
                    .map(|o| {
                        let mut j = serde_json::to_value(&o).unwrap_or_default();
                        if kind == Kind::Bundle {
                            if let Some(r) = rollouts.iter().find(|r| r.bundle == o.name) {
                                j["rollout"] = serde_json::to_value(r).unwrap_or_default();
                            }
                        }
                        j
                    })
                    .collect();
                serde_json::Value::Array(items)
            }
            Listed::Devices => serde_json::to_value(
                self.devices()
                    .into_iter()
                    .filter(|d| matches(&d.device.labels) && by_name(&d.device.name, &d.device.id))
                    .collect::<Vec<_>>(),
            )
            .map_err(|e| ApiError::Internal(e.to_string()))?,
            Listed::Tokens => {
                who.require(Role::Admin, "listing tokens")
                    .map_err(ApiError::Forbidden)?;
                serde_json::to_value(
                    self.tokens()
                        .into_iter()
                        .filter(|t| by_name(&t.id, &t.id))
                        .collect::<Vec<_>>(),
                )
                .map_err(|e| ApiError::Internal(e.to_string()))?
            }
            Listed::Users => {
                who.require(Role::Admin, "listing users")
                    .map_err(ApiError::Forbidden)?;
                let users: Vec<_> = self
                    .store
                    .users()?
                    .into_iter()
                    .filter(|u| by_name(&u.name, &u.name))
                    .collect();
                serde_json::to_value(users).map_err(|e| ApiError::Internal(e.to_string()))?
            }
            Listed::Audit => {
                who.require(Role::Admin, "reading the audit log")
                    .map_err(ApiError::Forbidden)?;
                let entries: Vec<_> = self
                    .store
                    .audit(1000)?
                    .into_iter()
                    .filter(|e| by_name(&e.seq.to_string(), ""))
                    .collect();
                serde_json::to_value(entries).map_err(|e| ApiError::Internal(e.to_string()))?
            }
            Listed::Events => {
                let events: Vec<_> = self
                    .store
                    .events(device_filter.as_deref(), 500)?
                    .into_iter()
                    .filter(|e| by_name(&e.seq.to_string(), ""))
                    .collect();
                serde_json::to_value(events).map_err(|e| ApiError::Internal(e.to_string()))?
            }
            Listed::Alerts => serde_json::to_value(
                self.store
                    .alerts()?
                    .into_iter()
                    .filter(|a| device_filter.as_ref().is_none_or(|d| &a.device == d))
                    .filter(|a| by_name(&a.id, &a.id) || by_name(&a.rule, &a.id))
                    .collect::<Vec<_>>(),
            )
            .map_err(|e| ApiError::Internal(e.to_string()))?,
            Listed::Rollouts => serde_json::to_value(
                self.rollouts()
                    .into_iter()
                    .filter(|r| by_name(&r.bundle, &r.bundle))
                    .collect::<Vec<_>>(),
            )
            .map_err(|e| ApiError::Internal(e.to_string()))?,
        };
        if !req.name.is_empty() && v.as_array().is_some_and(Vec::is_empty) {
            return Err(ApiError::NotFound(format!(
                "no {} {:?}",
                req.kind, req.name
            )));
        }
        Ok(v)
    }

    /// One device with its conditions, bundle, latest telemetry, alerts
    /// and events.
    pub fn describe(&self, kind: &str, name: &str) -> ApiResult<serde_json::Value> {
        match parse_kind(kind)? {
            Listed::Devices => {
                let v = self
                    .device(name)
                    .ok_or_else(|| ApiError::NotFound(format!("no device {name:?}")))?;
                let id = v.device.id.clone();
                let latest = self.latest_of(&id).map(|l| {
                    serde_json::json!({
                        "seq": l.seq,
                        "timestampMs": l.ts_ms,
                        "series": l.series.iter().map(|s| serde_json::json!({
                            "name": s.name,
                            "labels": s.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect::<BTreeMap<_, _>>(),
                            "value": s.value,
                        })).collect::<Vec<_>>(),
                    })
                });
                let events = self.store.events(Some(&id), 20)?;
                let alerts: Vec<_> = self
                    .store
                    .alerts()?
                    .into_iter()
                    .filter(|a| a.device == id)
                    .collect();
                let mut j =
                    serde_json::to_value(&v).map_err(|e| ApiError::Internal(e.to_string()))?;
                j["telemetry"] = latest.unwrap_or(serde_json::Value::Null);
                j["telemetryAcked"] = self.store.telemetry_cursor(&id)?.into();
                j["events"] = serde_json::to_value(events).unwrap_or_default();
                j["alerts"] = serde_json::to_value(alerts).unwrap_or_default();
                Ok(j)
            }
            Listed::Object(k) => {
                let o = self
                    .store
                    .objects(k)?
                    .into_iter()
                    .find(|o| o.name == name || o.id == name)
                    .ok_or_else(|| ApiError::NotFound(format!("no {} {name:?}", k.as_str())))?;
                let mut j =
                    serde_json::to_value(&o).map_err(|e| ApiError::Internal(e.to_string()))?;
                if k == Kind::Bundle {
                    if let Some(r) = self.rollouts().into_iter().find(|r| r.bundle == o.name) {
                        j["rollout"] = serde_json::to_value(&r).unwrap_or_default();
                        if let Ok(Some(rev)) = self.revision(r.version) {
                            j["revision"] = serde_json::json!({"version": rev.version, "digest": rev.digest, "created": rev.created});
                        }
                    }
                    let devs: Vec<_> = self
                        .devices()
                        .into_iter()
                        .filter(|d| d.device.desired_bundle == o.name)
                        .map(|d| serde_json::json!({"name": d.device.name, "desired": d.device.desired_version, "current": d.device.current.version, "online": d.online, "tainted": d.device.tainted}))
                        .collect();
                    j["devices"] = devs.into();
                }
                Ok(j)
            }
            other => Err(ApiError::Invalid(format!(
                "kind: cannot describe {other:?}"
            ))),
        }
    }
}

/// What `get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// Facility, Chassis, Profile, Bundle.
    Object(Kind),
    /// Devices.
    Devices,
    /// Tokens.
    Tokens,
    /// Users.
    Users,
    /// The audit log.
    Audit,
    /// Events.
    Events,
    /// Alerts.
    Alerts,
    /// Rollouts.
    Rollouts,
}

/// Parses a kind as `onprem get` takes it: plural, singular or short.
pub fn parse_kind(s: &str) -> ApiResult<Listed> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "devices" | "device" | "dev" => Listed::Devices,
        "bundles" | "bundle" => Listed::Object(Kind::Bundle),
        "profiles" | "profile" => Listed::Object(Kind::Profile),
        "facilities" | "facility" => Listed::Object(Kind::Facility),
        "chassis" => Listed::Object(Kind::Chassis),
        "tokens" | "token" => Listed::Tokens,
        "users" | "user" => Listed::Users,
        "audit" => Listed::Audit,
        "events" | "event" | "ev" => Listed::Events,
        "alerts" | "alert" => Listed::Alerts,
        "rollouts" | "rollout" => Listed::Rollouts,
        other => {
            return Err(ApiError::Invalid(format!(
                "kind: {other:?} is not one of devices, bundles, profiles, facilities, chassis, alerts, tokens, events, users, audit, rollouts"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_changed_lines_with_context() {
        let d = unified_diff("a\nb\nc\nd\n", "a\nb\nC\nd\n");
        assert_eq!(d, " a\n b\n-c\n+C\n d\n");
        assert_eq!(unified_diff("x\n", "x\n"), "");
    }
}
