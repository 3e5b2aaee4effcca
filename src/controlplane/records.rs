//! The records `onprem apply` takes: YAML or JSON documents, several per
//! file (`---`), each with `apiVersion: onprem/v1`, a `kind:` that picks
//! its type, `metadata` (name, labels) and a `spec`.
//!
//! | kind | spec |
//! |---|---|
//! | `Facility` | `description`, `address` |
//! | `Chassis` | `facility`, `model`, `description`, `rack`, `position` |
//! | `Profile` | a hardware profile, as in `bundles/profiles/` |
//! | `Bundle` | a node bundle's spec, plus `selector` (which devices) and `rollout` |
//! | `Device` | `facility`, `chassis` (devices are created by enrolment) |
//!
//! Parsing here checks each record alone, every problem with its path;
//! references between records (a chassis's facility, a bundle's
//! profile) are checked by the control plane against what is stored and
//! what the same apply brings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use super::labels::{Selector, validate_labels};
use super::store::Kind;
use crate::bundle::Dur;
use crate::validate::FieldError;

/// The API version of every record.
pub const API_VERSION: &str = "onprem/v1";

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    /// A declarative kind, stored as is.
    Object(Kind),
    /// A device's labels, facility and chassis.
    Device,
}

impl RecordKind {
    /// Parses a `kind:` value.
    pub fn parse(s: &str) -> Option<RecordKind> {
        Some(match s {
            "Facility" => RecordKind::Object(Kind::Facility),
            "Chassis" => RecordKind::Object(Kind::Chassis),
            "Profile" => RecordKind::Object(Kind::Profile),
            "Bundle" => RecordKind::Object(Kind::Bundle),
            "Device" => RecordKind::Device,
            _ => return None,
        })
    }

    /// The `kind:` value.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Object(k) => k.as_str(),
            RecordKind::Device => "Device",
        }
    }
}

/// One parsed record.
#[derive(Debug, Clone)]
pub struct Record {
    /// Where it came from.
    pub source: String,
    /// Its index in that source's documents, from 0.
    pub index: usize,
    /// Its kind.
    pub kind: RecordKind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec`, as JSON.
    pub spec: serde_json::Value,
    /// `metadata.generation`, when given: apply only if the stored record
    /// is at this generation (it was read at it and nobody changed it
    /// since), otherwise a conflict.
    pub generation: Option<u64>,
}

/// A record that was refused, with every problem.
#[derive(Debug, Clone)]
pub struct Refused {
    /// Where it came from.
    pub source: String,
    /// Its index.
    pub index: usize,
    /// Its kind, as written.
    pub kind: String,
    /// Its name, as written.
    pub name: String,
    /// The problems.
    pub errors: Vec<FieldError>,
}

impl Record {
    /// This record refused, for `errors`.
    pub fn refused(&self, errors: Vec<FieldError>) -> Refused {
        Refused {
            source: self.source.clone(),
            index: self.index,
            kind: self.kind.as_str().into(),
            name: self.name.clone(),
            errors,
        }
    }
}

/// `Facility.spec`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FacilitySpec {
    /// For people.
    #[serde(default)]
    pub description: String,
    /// Street address or site code.
    #[serde(default)]
    pub address: String,
}

/// `Chassis.spec`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChassisSpec {
    /// The Facility it is in.
    #[serde(default)]
    pub facility: String,
    /// Model.
    #[serde(default)]
    pub model: String,
    /// For people.
    #[serde(default)]
    pub description: String,
    /// Rack name.
    #[serde(default)]
    pub rack: String,
    /// Position in the rack (unit).
    #[serde(default)]
    pub position: Option<u32>,
}

/// `Device.spec`: what a user may set on an enrolled device.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceSpec {
    /// The Facility it is in.
    #[serde(default)]
    pub facility: String,
    /// The Chassis it is in.
    #[serde(default)]
    pub chassis: String,
}

/// How a bundle revision reaches its devices.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub enum Strategy {
    /// Every selected device at once.
    AllAtOnce,
    /// A canary batch first, then batches; a batch that does not converge
    /// within the deadline halts the rollout.
    Staged,
}

/// A count or a percentage (`3`, `"25%"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Amount {
    /// A number of devices.
    Count(u32),
    /// A percentage of the selected devices, rounded up.
    Percent(String),
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u32),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Amount::Count(n)),
            Raw::S(s) => {
                let p = s
                    .strip_suffix('%')
                    .and_then(|p| p.trim().parse::<f64>().ok())
                    .filter(|p| *p > 0.0 && *p <= 100.0);
                match p {
                    Some(_) => Ok(Amount::Percent(s)),
                    None => Err(serde::de::Error::custom(format!(
                        "{s:?}: a count or a percentage between 0 and 100, like \"25%\""
                    ))),
                }
            }
        }
    }
}

impl Amount {
    /// How many of `total` devices (at least 1 when total > 0).
    pub fn of(&self, total: usize) -> usize {
        let n = match self {
            Amount::Count(n) => *n as usize,
            Amount::Percent(s) => {
                let p = s
                    .trim_end_matches('%')
                    .trim()
                    .parse::<f64>()
                    .unwrap_or(100.0);
                (total as f64 * p / 100.0).ceil() as usize
            }
        };
        n.clamp(usize::from(total > 0), total)
    }
}

/// Default time a rollout batch may take to converge.
pub const DEFAULT_PROGRESS_DEADLINE: Dur = Dur::secs(120);

const fn default_deadline() -> Dur {
    DEFAULT_PROGRESS_DEADLINE
}

/// `Bundle.spec.rollout`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rollout {
    /// `AllAtOnce` (default) or `Staged`.
    #[serde(default = "default_strategy")]
    pub strategy: Strategy,
    /// Staged: the first batch (default 1 device).
    #[serde(default)]
    pub canary: Option<Amount>,
    /// Staged: each later batch (default 25 %).
    #[serde(default)]
    pub batch_size: Option<Amount>,
    /// Time a batch may take to converge before the rollout halts.
    #[serde(default = "default_deadline")]
    pub progress_deadline: Dur,
}

fn default_strategy() -> Strategy {
    Strategy::AllAtOnce
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            strategy: Strategy::AllAtOnce,
            canary: None,
            batch_size: None,
            progress_deadline: DEFAULT_PROGRESS_DEADLINE,
        }
    }
}

/// The control-plane parts of `Bundle.spec`, taken out before the rest is
/// read as a node bundle.
#[derive(Debug, Clone, Default)]
pub struct BundleTargeting {
    /// Which devices; `selector: all` selects every device (a missing or
    /// empty selector is refused, so that a forgotten one
    /// cannot select the whole fleet).
    pub selector: Option<Selector>,
    /// How.
    pub rollout: Rollout,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError::new(path, message)
}

/// Whether `name` is a record name: the bundle's rule
/// ([`crate::bundle::bounds::name_ok`]: 1–63 letters, digits, `-`, `_`,
/// `.`, starting and ending with a letter or digit), so that a record's
/// name is always a valid `metadata.name` of the bundle it becomes.
pub fn name_ok(name: &str) -> bool {
    crate::bundle::bounds::name_ok(name)
}

/// Reads a typed value at `path` from a YAML value, with the failing
/// field's full path (the first problem; [`typed_all`] has them all).
pub fn typed<T: serde::de::DeserializeOwned>(path: &str, v: Value) -> Result<T, FieldError> {
    typed_all(path, v).map_err(|es| {
        es.into_iter()
            .next()
            .unwrap_or_else(|| err(path, "cannot be read"))
    })
}

/// Reads a typed value at `path` from a YAML value: every unknown field
/// and wrong type at once, each with its full path.
pub fn typed_all<T: serde::de::DeserializeOwned>(
    path: &str,
    v: Value,
) -> Result<T, Vec<FieldError>> {
    crate::validate::from_value(path, v).map_err(|p| p.errors)
}

/// Splits a bundle record's spec into its targeting and the node
/// bundle's spec.
pub fn split_bundle(spec: &Value) -> (Value, Result<BundleTargeting, Vec<FieldError>>) {
    let mut node = spec.clone();
    let mut errors = Vec::new();
    let mut t = BundleTargeting::default();
    if let Value::Mapping(m) = &mut node {
        if let Some(sel) = m.remove("selector") {
            match &sel {
                Value::String(s) if s == "all" => t.selector = Some(Selector::default()),
                _ => match typed_all::<Selector>("spec.selector", sel) {
                    Ok(s) if s.is_empty() => errors.push(err(
                        "spec.selector",
                        "an empty selector: write `selector: all` to select every device",
                    )),
                    Ok(s) => t.selector = Some(s),
                    Err(es) => errors.extend(es),
                },
            }
        } else {
            errors.push(err(
                "spec.selector",
                "missing: a Bundle selects its devices with `matchLabels`, `matchExpressions` or `selector: all`",
            ));
        }
        if let Some(r) = m.remove("rollout") {
            match typed_all::<Rollout>("spec.rollout", r) {
                Ok(r) => t.rollout = r,
                Err(es) => errors.extend(es),
            }
        }
    }
    (
        node,
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(errors)
        },
    )
}

/// Parses every document of `text` (from `source`). Documents that are
/// empty are skipped.
pub fn parse_documents(source: &str, text: &str) -> (Vec<Record>, Vec<Refused>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    // Bounded before the YAML parser sees it: at most MAX_APPLY_BYTES,
    // nested at most MAX_DEPTH deep (crate::limits).
    if let Err(e) = crate::limits::check_text(text, crate::limits::MAX_APPLY_BYTES) {
        bad.push(Refused {
            source: source.to_owned(),
            index: 0,
            kind: String::new(),
            name: String::new(),
            errors: vec![err("", e.to_string())],
        });
        return (ok, bad);
    }
    for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = match Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                bad.push(Refused {
                    source: source.to_owned(),
                    index,
                    kind: String::new(),
                    name: String::new(),
                    errors: vec![err("", format!("not YAML: {e}"))],
                });
                // The rest of the stream cannot be trusted either.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        match parse_record(source, index, value) {
            Ok(r) => ok.push(r),
            Err(r) => bad.push(r),
        }
    }
    (ok, bad)
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Checks one document alone.
pub fn parse_record(source: &str, index: usize, value: Value) -> Result<Record, Refused> {
    let mut errors = Vec::new();
    let kind_s = str_at(&value, "kind").unwrap_or_default().to_owned();
    let name = value
        .get("metadata")
        .and_then(|m| str_at(m, "name"))
        .unwrap_or_default()
        .to_owned();
    let refuse = |errors: Vec<FieldError>| Refused {
        source: source.to_owned(),
        index,
        kind: kind_s.clone(),
        name: name.clone(),
        errors,
    };
    let Value::Mapping(map) = &value else {
        return Err(refuse(vec![err("", "a record is a mapping")]));
    };
    for k in map.keys() {
        match k.as_str() {
            // `status` is the control plane's (as `get -o yaml` prints
            // it): apply reads past it.
            Some("apiVersion" | "kind" | "metadata" | "spec" | "status") => {}
            other => errors.push(err(
                other.unwrap_or("?"),
                "unknown field: a record has apiVersion, kind, metadata, spec (and status, which apply ignores)",
            )),
        }
    }
    match str_at(&value, "apiVersion") {
        Some(API_VERSION) => {}
        Some(v) => errors.push(err(
            "apiVersion",
            format!("{v:?}: expected {API_VERSION:?}"),
        )),
        None => errors.push(err(
            "apiVersion",
            format!("missing: expected {API_VERSION:?}"),
        )),
    }
    let kind = RecordKind::parse(&kind_s);
    if kind.is_none() {
        errors.push(err(
            "kind",
            if kind_s.is_empty() {
                "missing: one of Facility, Chassis, Profile, Bundle, Device".to_owned()
            } else {
                format!("{kind_s:?}: not one of Facility, Chassis, Profile, Bundle, Device")
            },
        ));
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Meta {
        name: String,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        #[serde(default)]
        #[allow(dead_code)]
        version: Option<u64>,
        // Written by the control plane (`get -o yaml` prints them);
        // apply reads past them, but for `generation`, a precondition.
        #[serde(default)]
        #[allow(dead_code)]
        id: Option<String>,
        #[serde(default)]
        generation: Option<u64>,
        #[serde(default)]
        #[allow(dead_code)]
        created: Option<i64>,
        #[serde(default)]
        #[allow(dead_code)]
        updated: Option<i64>,
    }
    let meta = match value.get("metadata") {
        Some(m) => match typed_all::<Meta>("metadata", m.clone()) {
            Ok(m) => Some(m),
            Err(es) => {
                errors.extend(es);
                None
            }
        },
        None => {
            errors.push(err("metadata", "missing: metadata.name is required"));
            None
        }
    };
    let labels = meta.as_ref().map(|m| m.labels.clone()).unwrap_or_default();
    if let Some(m) = &meta {
        if !name_ok(&m.name) {
            errors.push(err(
                "metadata.name",
                format!("{:?} must be {}", m.name, crate::bundle::bounds::NAME_RULE),
            ));
        }
        for (k, problem) in validate_labels(&m.labels) {
            errors.push(err(format!("metadata.labels.{k}"), problem));
        }
    }
    let spec = value.get("spec").cloned().unwrap_or(Value::Null);
    if let Some(kind) = kind {
        check_spec(kind, &spec, &mut errors);
    }
    errors.extend(not_json(&spec, "spec"));
    if !errors.is_empty() {
        return Err(refuse(errors));
    }
    let Some(kind) = kind else {
        return Err(refuse(vec![err("kind", "unknown")]));
    };
    let spec_json = serde_json::to_value(&spec)
        .map_err(|e| refuse(vec![err("spec", format!("not representable as JSON: {e}"))]))?;
    Ok(Record {
        source: source.to_owned(),
        index,
        kind,
        name,
        labels,
        spec: spec_json,
        generation: meta.and_then(|m| m.generation),
    })
}

/// The first node of `v` that the spec's JSON (as the control plane
/// stores it) would not hold as it is: a YAML tag (`!x`), which JSON
/// would turn into a mapping, or a number that is not finite, which it
/// would turn into null. Either would make a record that is accepted but
/// whose stored spec reads back as something else, or not at all.
fn not_json(v: &Value, path: &str) -> Option<FieldError> {
    match v {
        Value::Tagged(t) => Some(err(
            path,
            format!("YAML tag {}: tags are not supported", t.tag),
        )),
        Value::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => {
            Some(err(path, format!("{n} is not a finite number")))
        }
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| not_json(x, &format!("{path}[{i}]"))),
        Value::Mapping(m) => m.iter().find_map(|(k, x)| {
            not_json(k, path).or_else(|| {
                let key = k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned);
                not_json(x, &format!("{path}.{key}"))
            })
        }),
        _ => None,
    }
}

fn check_spec(kind: RecordKind, spec: &Value, errors: &mut Vec<FieldError>) {
    let spec_or_empty = if spec.is_null() {
        Value::Mapping(Default::default())
    } else {
        spec.clone()
    };
    match kind {
        RecordKind::Object(Kind::Facility) => {
            if let Err(es) = typed_all::<FacilitySpec>("spec", spec_or_empty) {
                errors.extend(es);
            }
        }
        RecordKind::Object(Kind::Chassis) => {
            if let Err(es) = typed_all::<ChassisSpec>("spec", spec_or_empty) {
                errors.extend(es);
            }
        }
        RecordKind::Device => {
            if let Err(es) = typed_all::<DeviceSpec>("spec", spec_or_empty) {
                errors.extend(es);
            }
        }
        RecordKind::Object(Kind::Profile) => {
            match typed_all::<onprem_hal::inventory::Spec>("spec", spec.clone()) {
                Ok(p) => {
                    for e in onprem_hal::inventory::validate(&p) {
                        errors.push(err(format!("spec.{}", e.path), e.message));
                    }
                }
                Err(es) => errors.extend(es),
            }
        }
        RecordKind::Object(Kind::Bundle) => {
            if spec.is_null() {
                errors.push(err("spec", "missing: a bundle needs a spec"));
                return;
            }
            let (node, targeting) = split_bundle(spec);
            if let Err(es) = targeting {
                errors.extend(es);
            }
            // The node bundle's own parse: unknown fields and types, with
            // paths. Its validation (with profiles) is the control plane's.
            if let Err(es) = typed_all::<crate::bundle::schema::Spec>("spec", node) {
                errors.extend(es);
            }
        }
    }
}

/// The node bundle document of a Bundle record: `apiVersion`, `kind`,
/// `metadata` (name, labels) and the spec without selector and rollout.
pub fn node_bundle(
    rec_name: &str,
    labels: &BTreeMap<String, String>,
    spec: &serde_json::Value,
) -> Result<crate::bundle::Bundle, FieldError> {
    let spec_yaml: Value =
        serde_json::from_value(spec.clone()).map_err(|e| err("spec", e.to_string()))?;
    let (node, _) = split_bundle(&spec_yaml);
    let mut doc = serde_yaml_ng::Mapping::new();
    doc.insert("apiVersion".into(), API_VERSION.into());
    doc.insert("kind".into(), "Bundle".into());
    let mut meta = serde_yaml_ng::Mapping::new();
    meta.insert("name".into(), rec_name.into());
    if !labels.is_empty() {
        meta.insert(
            "labels".into(),
            serde_yaml_ng::to_value(labels).map_err(|e| err("metadata.labels", e.to_string()))?,
        );
    }
    doc.insert("metadata".into(), Value::Mapping(meta));
    doc.insert("spec".into(), node);
    typed("", Value::Mapping(doc))
}

/// The targeting of a stored Bundle record's spec.
pub fn targeting(spec: &serde_json::Value) -> BundleTargeting {
    serde_json::from_value::<Value>(spec.clone())
        .ok()
        .and_then(|v| split_bundle(&v).1.ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_records_per_file_every_error_with_its_path() {
        let text = "apiVersion: onprem/v1\nkind: Facility\nmetadata: {name: lab}\nspec: {address: Room 3}\n---\n\
apiVersion: onprem/v1\nkind: Gadget\nmetadata: {name: x}\n---\n\
apiVersion: onprem/v2\nkind: Chassis\nmetadata: {name: 'bad name'}\nspec: {facility: lab, colour: red}\n";
        let (ok, bad) = parse_documents("f.yaml", text);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].name, "lab");
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].index, 1);
        assert_eq!(bad[0].errors[0].path, "kind");
        let paths: Vec<&str> = bad[1].errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["apiVersion", "metadata.name", "spec.colour"],
            "{:?}",
            bad[1].errors
        );
        assert!(
            bad[1].errors[2].message.contains("colour"),
            "{:?}",
            bad[1].errors
        );
    }

    #[test]
    fn bundle_targeting_is_taken_out_of_the_node_spec() {
        let text = "apiVersion: onprem/v1\nkind: Bundle\nmetadata: {name: b}\nspec:\n  selector: {matchLabels: {board: pi5}}\n  rollout: {strategy: Staged, canary: 1, batchSize: '50%'}\n  fans: {zones: []}\n";
        let (ok, bad) = parse_documents("b.yaml", text);
        assert!(bad.is_empty(), "{:?}", bad.first().map(|b| &b.errors));
        let t = targeting(&ok[0].spec);
        assert_eq!(t.rollout.strategy, Strategy::Staged);
        assert_eq!(t.rollout.batch_size.as_ref().map(|a| a.of(10)), Some(5));
        assert_eq!(
            t.selector.map(|s| s.to_string()),
            Some("board=pi5".to_owned())
        );
        let b = node_bundle("b", &BTreeMap::new(), &ok[0].spec).unwrap();
        assert_eq!(b.metadata.name, "b");

        let bad_text = "apiVersion: onprem/v1\nkind: Bundle\nmetadata: {name: b}\nspec:\n  rollout: {strategy: Sometimes, canary: '120%'}\n  fans: {period: 5x}\n";
        let (_, bad) = parse_documents("b.yaml", bad_text);
        let paths: Vec<&str> = bad[0].errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "spec.selector",
                "spec.rollout.strategy",
                "spec.rollout.canary",
                "spec.fans.period"
            ],
            "{:?}",
            bad[0].errors
        );
        // A Bundle with no selector at all is refused, as an empty one is.
        let none = "apiVersion: onprem/v1\nkind: Bundle\nmetadata: {name: b}\nspec:\n  fans: {zones: []}\n";
        let (ok, bad) = parse_documents("b.yaml", none);
        assert!(ok.is_empty());
        assert_eq!(bad[0].errors[0].path, "spec.selector");
        assert!(
            bad[0].errors[0].message.contains("missing"),
            "{:?}",
            bad[0].errors
        );
    }

    #[test]
    fn every_type_error_and_unknown_field_of_a_record_at_once_each_path_once() {
        let text = "apiVersion: onprem/v1\nkind: Bundle\nmetadata: {name: b, labels: {tier: [edge]}}\nspec:\n  selector: all\n  rollout: {strategy: Staged, canary: [1]}\n  fans: {period: 5x, colour: red}\n  telemetry: {bufferBytes: lots}\n";
        let (_, bad) = parse_documents("b.yaml", text);
        let errors = &bad[0].errors;
        let mut paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "metadata.labels.tier",
                "spec.fans.colour",
                "spec.fans.period",
                "spec.rollout.canary",
                "spec.telemetry.bufferBytes",
            ],
            "{errors:?}"
        );
        for e in errors {
            assert!(!e.message.contains(&e.path), "path repeated: {e}");
        }
    }

    #[test]
    fn amounts() {
        assert_eq!(Amount::Count(3).of(2), 2);
        assert_eq!(Amount::Percent("10%".into()).of(25), 3);
        assert_eq!(Amount::Percent("1%".into()).of(5), 1);
        assert_eq!(Amount::Count(0).of(5), 1);
    }
}
