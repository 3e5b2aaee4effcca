//! Validation: every problem of a parsed bundle, each with its field path
//! (`spec.fans.zones[1].sensors[0].name: no temperature sensor "cpu" in
//! the hardware`), and the hardware profile merged.
//!
//! References are checked against the parts the hardware spec gives
//! ([`onprem_hal::inventory::Device::parts`]), without opening a device:
//! a bundle validates the same on a laptop as on the node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use onprem_hal::inventory::{self, Device, Spec as HwSpec};
use sha2::{Digest, Sha256};

use super::bounds::{self, *};
use super::duration::Dur;
use super::schema::*;
use super::selector::Selector;
use crate::validate::{FieldError, FieldErrors};

/// A valid bundle with its hardware resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The bundle as written.
    pub bundle: Bundle,
    /// Its hardware: the profile with the bundle's changes.
    pub hardware: HwSpec,
    /// SHA-256 of the bundle's content (hex), independent of formatting.
    pub digest: String,
}

impl Resolved {
    /// The bundle's version (0 when it has none).
    pub fn version(&self) -> u64 {
        self.bundle.metadata.version.unwrap_or(0)
    }

    /// The bundle's name.
    pub fn name(&self) -> &str {
        &self.bundle.metadata.name
    }
}

/// The digest of a bundle's content.
pub fn digest(bundle: &Bundle) -> String {
    let bytes = serde_json::to_vec(bundle).unwrap_or_default();
    hex(&Sha256::digest(&bytes))
}

/// Lower-case hex of `bytes` (digests, key ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a parsed bundle; `dir` is where profile paths are relative to.
pub fn validate(bundle: &Bundle, dir: Option<&Path>) -> Result<Resolved, FieldErrors> {
    validate_in(bundle, dir, &|_| None)
}

/// Resolves a profile name before the built-in profiles and files are
/// looked at (the control plane's stored Profile records): `None` when
/// it does not know the name.
pub type ProfileLookup<'a> = &'a dyn Fn(&str) -> Option<Result<HwSpec, String>>;

/// [`validate`], with profiles looked up in `profiles` first.
pub fn validate_in(
    bundle: &Bundle,
    dir: Option<&Path>,
    profiles: ProfileLookup<'_>,
) -> Result<Resolved, FieldErrors> {
    let mut v = V::default();
    if bundle.api_version != API_VERSION {
        v.err(
            "apiVersion",
            format!("{:?} is not {API_VERSION:?}", bundle.api_version),
        );
    }
    if bundle.kind != KIND {
        v.err("kind", format!("{:?} is not {KIND:?}", bundle.kind));
    }
    metadata(&mut v, &bundle.metadata);
    // NaN and infinities anywhere (the hardware's after the merge, below).
    if let Ok(doc) = serde_yaml_ng::to_value(bundle) {
        bounds::non_finite(
            "",
            &doc,
            &|p| p == "spec.hardware",
            crate::validate::MOST_PROBLEMS,
            &mut v.errors,
        );
    }
    let hardware = hardware(&mut v, &bundle.spec.hardware, dir, profiles);
    let parts = Parts::new(&hardware);
    let s = &bundle.spec;
    fans(&mut v, &s.fans, &parts);
    power(&mut v, &s.power, &parts);
    signals(&mut v, &s.signals, &parts, &hardware);
    checks(&mut v, &s.checks);
    telemetry(&mut v, &s.telemetry);
    redfish(&mut v, &s.redfish);
    let mut ports = BTreeSet::new();
    let n = s.tunnel.allowed_ports.len();
    let ok = v.list("spec.tunnel.allowedPorts", n, MAX_TUNNEL_PORTS);
    for (i, p) in s.tunnel.allowed_ports.iter().enumerate().filter(|_| ok) {
        let at = format!("spec.tunnel.allowedPorts[{i}]");
        if *p == 0 {
            v.err(&at, "port 0 is not a port");
        } else if !ports.insert(*p) {
            v.err(&at, format!("{p} is listed twice"));
        }
    }
    if v.errors.is_empty() {
        Ok(Resolved {
            digest: digest(bundle),
            bundle: bundle.clone(),
            hardware,
        })
    } else {
        Err(FieldErrors(v.errors))
    }
}

/// Redfish `ChassisType` values a bundle may give the node's chassis.
pub const CHASSIS_TYPES: &[&str] = &[
    "Blade",
    "Card",
    "Cartridge",
    "Component",
    "Drawer",
    "Enclosure",
    "Expansion",
    "IPBasedDrive",
    "Module",
    "Other",
    "RackMount",
    "Sidecar",
    "Sled",
    "StandAlone",
    "StorageEnclosure",
    "Zone",
];

fn redfish(v: &mut V, r: &crate::bundle::schema::Redfish) {
    if r.listen.parse::<std::net::SocketAddr>().is_err() {
        v.err(
            "spec.redfish.listen",
            format!("{:?} is not an address:port", r.listen),
        );
    }
    if let Some(t) = &r.tls {
        for (f, p) in [("certFile", &t.cert_file), ("keyFile", &t.key_file)] {
            if !p.is_absolute() {
                v.err(
                    &format!("spec.redfish.tls.{f}"),
                    format!("{} is not an absolute path on the node", p.display()),
                );
            }
        }
    }
    let (lo, hi) = crate::redfish::auth::SESSION_TIMEOUT_RANGE;
    let t = r.session_timeout.0.as_secs();
    if t < lo || t > hi || r.session_timeout.0.subsec_nanos() != 0 {
        v.err(
            "spec.redfish.sessionTimeout",
            format!(
                "{} is outside {lo} s to {hi} s (whole seconds)",
                r.session_timeout
            ),
        );
    }
    if r.lockout_threshold > 0 && r.lockout_duration.0.as_secs() == 0 {
        v.err(
            "spec.redfish.lockoutDuration",
            "must be at least 1 s when lockoutThreshold is set",
        );
    }
    if !CHASSIS_TYPES.contains(&r.chassis_type.as_str()) {
        v.err(
            "spec.redfish.chassisType",
            format!(
                "{:?} is not a Redfish ChassisType ({})",
                r.chassis_type,
                CHASSIS_TYPES.join(", ")
            ),
        );
    }
    let mut names = BTreeSet::new();
    let ok = v.list(
        "spec.redfish.accounts",
        r.accounts.len(),
        MAX_REDFISH_ACCOUNTS,
    );
    for (i, a) in r.accounts.iter().enumerate().filter(|_| ok) {
        let at = format!("spec.redfish.accounts[{i}]");
        let ok_name = !a.user_name.is_empty()
            && a.user_name.len() <= 64
            && a.user_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok_name {
            v.err(
                &format!("{at}.userName"),
                format!(
                    "{:?} is not a user name (1 to 64 of A-Z a-z 0-9 . _ -)",
                    a.user_name
                ),
            );
        } else if !names.insert(a.user_name.clone()) {
            v.err(
                &format!("{at}.userName"),
                format!("{:?} is listed twice", a.user_name),
            );
        }
        if crate::redfish::auth::Role::parse(&a.role).is_none() {
            v.err(
                &format!("{at}.role"),
                format!("{:?} is not Administrator, Operator or ReadOnly", a.role),
            );
        }
        if let Err(e) = crate::redfish::auth::check_hash(&a.password_hash) {
            v.err(&format!("{at}.passwordHash"), e);
        }
    }
}

#[derive(Default)]
struct V {
    errors: Vec<FieldError>,
}

impl V {
    fn err(&mut self, path: &str, msg: impl Into<String>) {
        self.errors.push(FieldError::new(path, msg));
    }

    /// A list of at most `max` entries; `false` (and an error) when it is
    /// longer, and its entries are better not checked one by one.
    fn list(&mut self, path: &str, len: usize, max: usize) -> bool {
        bounds::list(&mut self.errors, path, len, max)
    }

    /// `x` is NaN or infinite: an error, unless the pass over the whole
    /// bundle already gave one at `path` (or inside it, `path[1]`).
    fn not_a_number(&mut self, path: &str, x: f64) {
        let said = self.errors.iter().any(|e| {
            e.path
                .strip_prefix(path)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('['))
        });
        if !said {
            self.err(path, format!("{x} is not a number"));
        }
    }

    /// A finite number within `lo..=hi`.
    fn range(&mut self, path: &str, x: f64, lo: f64, hi: f64) -> bool {
        if !x.is_finite() {
            self.not_a_number(path, x);
            false
        } else if x < lo || x > hi {
            self.err(
                path,
                format!("{} is not within {lo}–{hi}", onprem_hal::inventory::num(x)),
            );
            false
        } else {
            true
        }
    }

    fn percent(&mut self, path: &str, x: f64) -> bool {
        self.range(path, x, 0.0, 100.0)
    }

    fn finite(&mut self, path: &str, x: f64) -> bool {
        if x.is_finite() {
            true
        } else {
            self.not_a_number(path, x);
            false
        }
    }

    fn positive(&mut self, path: &str, d: Dur) {
        if d.get().is_zero() {
            self.err(path, "must be longer than 0");
        }
    }

    fn name(&mut self, path: &str, name: &str, seen: &mut BTreeSet<String>, what: &str) {
        if !bounds::name_ok(name) {
            let shown: String = name.chars().take(NAME_MAX + 1).collect();
            self.err(path, format!("{shown:?} must be {NAME_RULE}"));
        } else if !seen.insert(name.to_owned()) {
            self.err(path, format!("{what} {name:?} is defined twice"));
        }
    }
}

fn metadata(v: &mut V, m: &Metadata) {
    v.name("metadata.name", &m.name, &mut BTreeSet::new(), "name");
    if !v.list("metadata.labels", m.labels.len(), MAX_LABELS) {
        return;
    }
    for (k, val) in &m.labels {
        let key_ok = !k.is_empty()
            && k.len() <= 253
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        if !key_ok {
            v.err(
                &format!("metadata.labels.{k}"),
                "label keys are letters, digits, '-', '_', '.' and '/'",
            );
        }
        if val.len() > 63
            || !val
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            v.err(
                &format!("metadata.labels.{k}"),
                format!("{val:?}: label values are up to 63 letters, digits, '-', '_' or '.'"),
            );
        }
    }
}

/// Loads a profile by built-in name or path (relative to `dir`).
fn profile(name: &str, dir: Option<&Path>) -> Result<HwSpec, String> {
    if crate::hw::profiles::get(name).is_none()
        && (name.contains('/') || name.ends_with(".yaml") || name.ends_with(".yml"))
    {
        let p = Path::new(name);
        let full = match dir {
            Some(d) if p.is_relative() => d.join(p),
            _ => p.to_owned(),
        };
        let text = crate::limits::read_regular_text(&full, crate::limits::MAX_BUNDLE_BYTES)
            .map_err(|e| format!("reading {}: {e}", full.display()))?;
        return crate::hw::load_spec(&text, &full.display().to_string())
            .map_err(|e| format!("{e:#}"));
    }
    crate::hw::load_profile(name).map_err(|e| format!("{e:#}"))
}

fn hardware(v: &mut V, h: &Hardware, dir: Option<&Path>, profiles: ProfileLookup<'_>) -> HwSpec {
    let mut spec = HwSpec {
        board: None,
        description: None,
        provisional: false,
        sim: Default::default(),
        devices: Vec::new(),
    };
    // Where each merged device came from, for error paths.
    let mut origin: Vec<String> = Vec::new();
    let fits = v.list("spec.hardware.devices", h.devices.len(), MAX_DEVICES)
        & v.list("spec.hardware.remove", h.remove.len(), MAX_DEVICES);
    if !fits {
        return spec;
    }
    if let Some(name) = &h.profile {
        match profiles(name).unwrap_or_else(|| profile(name, dir)) {
            Ok(p) => {
                origin = (0..p.devices.len())
                    .map(|i| format!("spec.hardware.profile({name}).devices[{i}]"))
                    .collect();
                spec = p;
            }
            Err(e) => v.err("spec.hardware.profile", e),
        }
    } else if !h.remove.is_empty() {
        v.err("spec.hardware.remove", "there is no profile to remove from");
    }
    for (i, r) in h.remove.iter().enumerate() {
        match spec.devices.iter().position(|d| d.name() == r) {
            Some(at) => {
                spec.devices.remove(at);
                origin.remove(at);
            }
            None if h.profile.is_some() => v.err(
                &format!("spec.hardware.remove[{i}]"),
                format!("the profile has no device {r:?}"),
            ),
            None => {}
        }
    }
    for (i, d) in h.devices.iter().enumerate() {
        let at = format!("spec.hardware.devices[{i}]");
        match spec.devices.iter().position(|x| x.name() == d.name()) {
            Some(j) => {
                spec.devices[j] = d.clone();
                origin[j] = at;
            }
            None => {
                spec.devices.push(d.clone());
                origin.push(at);
            }
        }
    }
    if let Some(sim) = &h.sim {
        spec.sim = sim.clone();
    }
    if let Some(b) = &h.board {
        spec.board = Some(b.clone());
    }
    if let Some(d) = &h.description {
        spec.description = Some(d.clone());
    }
    spec.provisional |= h.provisional;
    let mut found: Vec<FieldError> = inventory::validate(&spec)
        .into_iter()
        .map(|e| FieldError::new(e.path, e.message))
        .collect();
    // NaN and infinities in the merged hardware; such a number's own
    // error replaces what the hardware layer said at the same path.
    if let Ok(doc) = serde_yaml_ng::to_value(&spec) {
        let mut odd = Vec::new();
        bounds::non_finite(
            "",
            &doc,
            &|_| false,
            crate::validate::MOST_PROBLEMS,
            &mut odd,
        );
        found.retain(|e| !odd.iter().any(|o| o.path == e.path));
        found.extend(odd);
    }
    for e in found {
        // Map `devices[N].x` back to where device N came from.
        let path = match e.path.strip_prefix("devices[").and_then(|r| {
            let (n, rest) = r.split_once(']')?;
            Some((n.parse::<usize>().ok()?, rest))
        }) {
            Some((n, rest)) if n < origin.len() => format!("{}{rest}", origin[n]),
            _ => format!("spec.hardware.{}", e.path),
        };
        v.err(&path, e.message);
    }
    spec
}

/// The parts the hardware gives, by name, with their kind.
struct Parts {
    exact: BTreeMap<String, &'static str>,
    /// `<device>/*` parts: device name → kind.
    wild: BTreeMap<String, &'static str>,
}

impl Parts {
    fn new(spec: &HwSpec) -> Parts {
        let mut exact = BTreeMap::new();
        let mut wild = BTreeMap::new();
        for d in &spec.devices {
            for (name, kind) in Device::parts(d) {
                match name.strip_suffix("/*") {
                    Some(dev) => {
                        wild.insert(dev.to_owned(), kind);
                    }
                    None => {
                        exact.insert(name, kind);
                    }
                }
            }
        }
        Parts { exact, wild }
    }

    fn kind(&self, name: &str) -> Option<&'static str> {
        if let Some(k) = self.exact.get(name) {
            return Some(k);
        }
        let (dev, part) = name.split_once('/')?;
        if part.is_empty() {
            return None;
        }
        self.wild.get(dev).copied()
    }

    /// Checks that `name` is a part of one of `kinds`.
    fn check(&self, v: &mut V, path: &str, name: &str, kinds: &[&str], what: &str) -> bool {
        match self.kind(name) {
            Some(k) if kinds.contains(&k) => true,
            Some(k) => {
                v.err(path, format!("{name:?} is a {k}, not a {what}"));
                false
            }
            None => {
                let known: Vec<&str> = self
                    .exact
                    .iter()
                    .filter(|(_, k)| kinds.contains(k))
                    .map(|(n, _)| n.as_str())
                    .chain(
                        self.wild
                            .iter()
                            .filter(|(_, k)| kinds.contains(k))
                            .map(|(n, _)| n.as_str()),
                    )
                    .collect();
                let hint = if known.is_empty() {
                    format!("the hardware has no {what}")
                } else {
                    format!("the hardware has {}", known.join(", "))
                };
                v.err(path, format!("unknown {what} {name:?} ({hint})"));
                false
            }
        }
    }
}

/// Temperatures the fans loop can read: sensors and GPU cores.
const TEMPERATURE_KINDS: &[&str] = &["temperature", "gpu"];

fn fans(v: &mut V, f: &Fans, parts: &Parts) {
    if f.period.get() < std::time::Duration::from_millis(10) {
        v.err("spec.fans.period", "must be at least 10ms");
    }
    v.percent("spec.fans.failsafePercent", f.failsafe_percent);
    let mut names = BTreeSet::new();
    let mut owner: BTreeMap<&str, usize> = BTreeMap::new();
    if !v.list("spec.fans.zones", f.zones.len(), MAX_FAN_ZONES) {
        return;
    }
    for (zi, z) in f.zones.iter().enumerate() {
        let at = |s: &str| format!("spec.fans.zones[{zi}].{s}");
        v.name(&at("name"), &z.name, &mut names, "zone");
        let fits = v.list(&at("fans"), z.fans.len(), MAX_ZONE_MEMBERS)
            & v.list(&at("sensors"), z.sensors.len(), MAX_ZONE_MEMBERS)
            & v.list(&at("controllers"), z.controllers.len(), MAX_ZONE_MEMBERS);
        if !fits {
            continue;
        }
        if z.fans.is_empty() {
            v.err(&at("fans"), "a zone needs at least one fan");
        }
        for (i, fan) in z.fans.iter().enumerate() {
            let p = at(&format!("fans[{i}]"));
            if parts.check(v, &p, fan, &["fan"], "fan") {
                match owner.insert(fan, zi) {
                    Some(other) if other == zi => {
                        v.err(&p, format!("fan {fan:?} is listed twice"));
                    }
                    Some(other) => v.err(
                        &p,
                        format!("fan {fan:?} already belongs to spec.fans.zones[{other}]"),
                    ),
                    None => {}
                }
            }
        }
        if z.sensors.is_empty() {
            v.err(&at("sensors"), "a zone needs at least one sensor");
        }
        let mut sensor_names = BTreeSet::new();
        for (i, s) in z.sensors.iter().enumerate() {
            let p = |f: &str| at(&format!("sensors[{i}].{f}"));
            if parts.check(
                v,
                &p("name"),
                &s.name,
                TEMPERATURE_KINDS,
                "temperature sensor",
            ) && !sensor_names.insert(s.name.as_str())
            {
                v.err(&p("name"), format!("{:?} is listed twice", s.name));
            }
            v.positive(&p("timeout"), s.timeout);
            if let Some(d) = s.stuck_after {
                v.positive(&p("stuckAfter"), d);
            }
            let [lo, hi] = s.range;
            if v.finite(&p("range"), lo) && v.finite(&p("range"), hi) && lo >= hi {
                v.err(
                    &p("range"),
                    format!("[{lo}, {hi}]: the low end must be below the high end"),
                );
            }
            if v.finite(&p("maxRate"), s.max_rate) && s.max_rate <= 0.0 {
                v.err(&p("maxRate"), "must be above 0");
            }
        }
        if z.controllers.is_empty() {
            v.err(&at("controllers"), "a zone needs at least one controller");
        }
        for (ci, c) in z.controllers.iter().enumerate() {
            let p = |f: &str| at(&format!("controllers[{ci}].{f}"));
            let sensors = match c {
                Controller::Curve(c) => &c.sensors,
                Controller::Stepwise(c) => &c.sensors,
                Controller::Pid(c) => &c.sensors,
            };
            if !v.list(&p("sensors"), sensors.len(), MAX_ZONE_MEMBERS) {
                continue;
            }
            for (i, s) in sensors.iter().enumerate() {
                if !z.sensors.iter().any(|z| &z.name == s) {
                    v.err(
                        &p(&format!("sensors[{i}]")),
                        format!("{s:?} is not one of the zone's sensors"),
                    );
                }
            }
            match c {
                Controller::Curve(c) => {
                    table(v, &p("points"), &c.points, 1, 32);
                    if v.finite(&p("hysteresis"), c.hysteresis) {
                        v.range(&p("hysteresis"), c.hysteresis, 0.0, 30.0);
                    }
                }
                Controller::Stepwise(c) => {
                    table(v, &p("steps"), &c.steps, 1, 20);
                    v.range(&p("positiveHysteresis"), c.positive_hysteresis, 0.0, 30.0);
                    v.range(&p("negativeHysteresis"), c.negative_hysteresis, 0.0, 30.0);
                }
                Controller::Pid(c) => {
                    v.range(&p("setpoint"), c.setpoint, -40.0, 150.0);
                    for (f, x) in [
                        ("kp", c.kp),
                        ("ki", c.ki),
                        ("kd", c.kd),
                        ("feedForward", c.feed_forward),
                    ] {
                        v.finite(&p(f), x);
                    }
                    for (f, [lo, hi]) in [
                        ("outputLimits", c.output_limits),
                        ("integralLimits", c.integral_limits),
                    ] {
                        let ok = if f == "outputLimits" {
                            v.percent(&p(f), lo) & v.percent(&p(f), hi)
                        } else {
                            v.range(&p(f), lo, -100.0, 100.0) & v.range(&p(f), hi, -100.0, 100.0)
                        };
                        if ok && lo > hi {
                            v.err(
                                &p(f),
                                format!("[{lo}, {hi}]: the low end is above the high end"),
                            );
                        }
                    }
                    for (f, x) in [("slewUp", c.slew_up), ("slewDown", c.slew_down)] {
                        if let Some(x) = x {
                            if v.finite(&p(f), x) && x <= 0.0 {
                                v.err(&p(f), "must be above 0 (leave it out for no limit)");
                            }
                        }
                    }
                }
            }
        }
        for (f, x) in [
            ("missing", z.failsafe.missing),
            ("stale", z.failsafe.stale),
            ("stuck", z.failsafe.stuck),
            ("implausible", z.failsafe.implausible),
        ] {
            if let Some(x) = x {
                v.percent(&at(&format!("failsafe.{f}")), x);
            }
        }
        v.percent(&at("minPercent"), z.min_percent);
        if let Some(k) = &z.kick_start {
            v.percent(&at("kickStart.percent"), k.percent);
            if k.duration.get().is_zero() || k.duration.get() > std::time::Duration::from_secs(60) {
                v.err(
                    &at("kickStart.duration"),
                    "must be longer than 0 and at most 1m",
                );
            }
        }
        v.positive(&at("stallAfter"), z.stall_after);
    }
}

/// `[x, y]` pairs: x strictly rising, y not falling and within 0–100.
fn table(v: &mut V, path: &str, points: &[[f64; 2]], min: usize, max: usize) {
    if points.len() < min || points.len() > max {
        v.err(
            path,
            format!("give {min}–{max} points, not {}", points.len()),
        );
    }
    for (i, [t, d]) in points.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let ok = v.range(&p, *t, -40.0, 150.0) & v.percent(&p, *d);
        if ok && i > 0 {
            let [pt, pd] = points[i - 1];
            if *t <= pt {
                v.err(
                    &p,
                    format!("temperatures must rise: {t} °C follows {pt} °C (the curve is not monotonic)"),
                );
            } else if *d < pd {
                v.err(
                    &p,
                    format!(
                        "duties must not fall: {d} % follows {pd} % (the curve is not monotonic)"
                    ),
                );
            }
        }
    }
}

fn power(v: &mut V, p: &Power, parts: &Parts) {
    v.positive("spec.power.period", p.period);
    let mut fits = v.list("spec.power.switches", p.switches.len(), MAX_POWER_ITEMS)
        & v.list("spec.power.gpus", p.gpus.len(), MAX_POWER_ITEMS);
    if let Some(c) = &p.critical_temperature {
        fits &= v.list(
            "spec.power.criticalTemperature.sensors",
            c.sensors.len(),
            MAX_POWER_ITEMS,
        );
    }
    if !fits {
        return;
    }
    if let Some(u) = &p.ups {
        parts.check(
            v,
            "spec.power.ups.battery",
            &u.battery,
            &["battery"],
            "battery",
        );
        v.percent("spec.power.ups.shutdownAtPercent", u.shutdown_at_percent);
        if let Some(r) = u.shutdown_at_runtime {
            v.positive("spec.power.ups.shutdownAtRuntime", r);
        }
    }
    if let Some(c) = &p.critical_temperature {
        if c.sensors.is_empty() {
            v.err(
                "spec.power.criticalTemperature.sensors",
                "name at least one sensor",
            );
        }
        for (i, s) in c.sensors.iter().enumerate() {
            parts.check(
                v,
                &format!("spec.power.criticalTemperature.sensors[{i}]"),
                s,
                TEMPERATURE_KINDS,
                "temperature sensor",
            );
        }
        v.range(
            "spec.power.criticalTemperature.celsius",
            c.celsius,
            0.0,
            150.0,
        );
    }
    let mut seen = BTreeSet::new();
    for (i, s) in p.switches.iter().enumerate() {
        let at = format!("spec.power.switches[{i}].name");
        if parts.check(v, &at, &s.name, &["switch"], "switch") && !seen.insert(&s.name) {
            v.err(&at, format!("{:?} is listed twice", s.name));
        }
    }
    let mut gpus = BTreeSet::new();
    for (i, g) in p.gpus.iter().enumerate() {
        let at = format!("spec.power.gpus[{i}]");
        // `gpu` (every GPU of an NVML device) or `gpu/0`.
        let whole = parts.wild.get(&g.name) == Some(&"gpu");
        if (whole || parts.check(v, &format!("{at}.name"), &g.name, &["gpu"], "GPU"))
            && !gpus.insert(&g.name)
        {
            v.err(
                &format!("{at}.name"),
                format!("{:?} is capped twice", g.name),
            );
        }
        if v.finite(&format!("{at}.powerLimitWatts"), g.power_limit_watts)
            && g.power_limit_watts <= 0.0
        {
            v.err(&format!("{at}.powerLimitWatts"), "must be above 0 W");
        }
    }
}

fn signals(v: &mut V, s: &Signals, parts: &Parts, hw: &HwSpec) {
    let mut names = BTreeSet::new();
    if !v.list("spec.signals.sources", s.sources.len(), MAX_SIGNALS) {
        return;
    }
    for (i, sig) in s.sources.iter().enumerate() {
        let at = |f: &str| format!("spec.signals.sources[{i}].{f}");
        v.name(&at("name"), &sig.name, &mut names, "signal");
        let kind = if parts.check(
            v,
            &at("device"),
            &sig.device,
            &["signal", "rail"],
            "signal or rail",
        ) {
            parts.kind(&sig.device)
        } else {
            None
        };
        match (kind, sig.field.as_deref()) {
            (Some("rail"), None) => {
                v.err(&at("field"), "a rail has volts, amps and watts: say which")
            }
            (Some("rail"), Some(f)) if !["volts", "amps", "watts"].contains(&f) => {
                v.err(&at("field"), format!("{f:?} is not volts, amps or watts"))
            }
            (Some("signal"), Some(f)) => v.err(
                &at("field"),
                format!("{:?} has one value; leave out field ({f:?})", sig.device),
            ),
            _ => {}
        }
        // What the chip can do.
        let max_rate =
            hw.devices
                .iter()
                .find(|d| d.name() == sig.device)
                .map_or(100.0, |d| match d {
                    Device::Ads1x15(a) => ads_max_rate(a),
                    _ => 100.0,
                });
        if v.finite(&at("rateHz"), sig.rate_hz) && (sig.rate_hz <= 0.0 || sig.rate_hz > max_rate) {
            v.err(
                &at("rateHz"),
                format!(
                    "{} Hz is not within 0–{max_rate} Hz (what {:?} can sample)",
                    sig.rate_hz, sig.device
                ),
            );
        }
        if v.finite(&at("scale"), sig.scale) && sig.scale == 0.0 {
            v.err(&at("scale"), "a scale of 0 loses the signal");
        }
        v.finite(&at("offset"), sig.offset);
        let w = sig.window.get();
        if w.is_zero() || w > std::time::Duration::from_secs(3600) {
            v.err(&at("window"), "must be longer than 0 and at most 1h");
        } else if sig.rate_hz > 0.0 && w.as_secs_f64() * sig.rate_hz < 1.0 {
            v.err(&at("window"), "shorter than one sample period");
        }
    }
}

/// The highest sample rate an ADS1x15 input allows at its configured data
/// rate (single-shot: one conversion per sample), Hz.
fn ads_max_rate(a: &onprem_hal::inventory::spec::Ads1x15) -> f64 {
    const ADS1115: [f64; 8] = [8.0, 16.0, 32.0, 64.0, 128.0, 250.0, 475.0, 860.0];
    const ADS1015: [f64; 8] = [128.0, 250.0, 490.0, 920.0, 1600.0, 2400.0, 3300.0, 3300.0];
    let table = if a.variant == "ads1015" {
        ADS1015
    } else {
        ADS1115
    };
    table[usize::from(a.rate.min(7))]
}

fn checks(v: &mut V, c: &Checks) {
    v.positive("spec.checks.period", c.period);
    let mut names = BTreeSet::new();
    if !v.list("spec.checks.rules", c.rules.len(), MAX_CHECK_RULES) {
        return;
    }
    for (i, r) in c.rules.iter().enumerate() {
        let at = |f: &str| format!("spec.checks.rules[{i}].{f}");
        v.name(&at("name"), &r.name, &mut names, "rule");
        for (f, text) in [("metric", &r.metric), ("summary", &r.summary)] {
            let n = text.chars().count();
            if n > MAX_RULE_TEXT {
                v.err(
                    &at(f),
                    format!("{n} characters is more than the maximum of {MAX_RULE_TEXT}"),
                );
            }
        }
        if r.metric.chars().count() > MAX_RULE_TEXT {
            // Not parsed: the length is the problem.
        } else if let Err(e) = Selector::parse(&r.metric) {
            v.err(&at("metric"), e);
        }
        if !["<", "<=", ">", ">=", "==", "!="].contains(&r.op.as_str()) {
            v.err(
                &at("op"),
                format!("{:?} is not one of <, <=, >, >=, ==, !=", r.op),
            );
        }
        v.finite(&at("threshold"), r.threshold);
        if !v.list(&at("labels"), r.labels.len(), MAX_LABELS) {
            continue;
        }
        for k in r.labels.keys() {
            if k.is_empty()
                || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || k.starts_with(|c: char| c.is_ascii_digit())
            {
                v.err(&at(&format!("labels.{k}")), "not a label name");
            } else if ["check", "severity"].contains(&k.as_str()) {
                v.err(
                    &at(&format!("labels.{k}")),
                    format!("{k} is set by the agent"),
                );
            }
        }
    }
}

fn telemetry(v: &mut V, t: &Telemetry) {
    if t.interval.get() < std::time::Duration::from_secs(1) {
        v.err("spec.telemetry.interval", "must be at least 1s");
    }
    let mut errs = Vec::new();
    for (f, list) in [("include", &t.include), ("exclude", &t.exclude)] {
        let at = format!("spec.telemetry.{f}");
        if !v.list(&at, list.len(), MAX_TELEMETRY_PATTERNS) {
            continue;
        }
        for (i, p) in list.iter().enumerate() {
            crate::validate::regex(&format!("spec.telemetry.{f}[{i}]"), p, &mut errs);
        }
    }
    v.errors.extend(errs);
    let (lo, hi) = (MIN_TELEMETRY_BUFFER_BYTES, MAX_TELEMETRY_BUFFER_BYTES);
    if t.buffer_bytes < lo {
        v.err(
            "spec.telemetry.bufferBytes",
            format!(
                "{} is below the minimum of {lo} (64 KiB; {lo}–{hi})",
                t.buffer_bytes
            ),
        );
    } else if t.buffer_bytes > hi {
        v.err(
            "spec.telemetry.bufferBytes",
            format!(
                "{} is above the maximum of {hi} (1 GiB; {lo}–{hi})",
                t.buffer_bytes
            ),
        );
    }
}
