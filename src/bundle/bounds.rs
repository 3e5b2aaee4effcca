//! Bounds on a bundle's values: what validation refuses because it would
//! hurt the node, however well-formed (a name that is a path, a buffer as
//! large as the disk, a hundred thousand rules, a number that is not one).
//!
//! Each bound is a named constant, listed in `docs/bundles.md` ("Limits").
//! The simulated hardware's bounds live beside its spec
//! ([`onprem_hal::inventory::spec`]: `SIM_*`), since profiles are checked
//! by the hardware layer alone too.

use crate::validate::FieldError;

/// The longest name: metadata and record names, zones, signals, rules (a
/// DNS label's length).
pub const NAME_MAX: usize = 63;

/// What a name may be, for messages.
pub const NAME_RULE: &str =
    "1–63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";

/// Whether `name` is a name: 1–[`NAME_MAX`] ASCII letters, digits, `-`,
/// `_` and `.`, starting and ending with a letter or digit. So never `.`
/// or `..`, never a hidden file's name, never a path separator: a name
/// is safe as a file name, a metric label and a URL segment. The bundle's
/// `metadata.name`, every control-plane record and enrolled device, and
/// the names inside a bundle (zones, signals, rules) follow it.
pub fn name_ok(name: &str) -> bool {
    let b = name.as_bytes();
    let edge = |c: Option<&u8>| c.is_some_and(u8::is_ascii_alphanumeric);
    !b.is_empty()
        && b.len() <= NAME_MAX
        && edge(b.first())
        && edge(b.last())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Most check rules (`spec.checks.rules`): each is evaluated against every
/// series of `/metrics` every period, and its alerts are series of their
/// own.
pub const MAX_CHECK_RULES: usize = 1000;
/// Most series one check rule evaluates per period (the first ones its
/// selector matches; the loop says `TooManySeries` when there are more).
pub const MAX_SERIES_PER_CHECK: usize = 1000;
/// Most signals (`spec.signals.sources`): each runs its own acquisition
/// thread.
pub const MAX_SIGNALS: usize = 64;
/// Most fan zones (`spec.fans.zones`).
pub const MAX_FAN_ZONES: usize = 32;
/// Most fans, sensors or controllers in one zone, and sensors a
/// controller names.
pub const MAX_ZONE_MEMBERS: usize = 32;
/// Most devices in `spec.hardware.devices` and names in
/// `spec.hardware.remove`.
pub const MAX_DEVICES: usize = 256;
/// Most entries of each list of the `power` section (switches, GPU caps,
/// critical-temperature sensors).
pub const MAX_POWER_ITEMS: usize = 64;
/// Most labels of the bundle, and of one check rule.
pub const MAX_LABELS: usize = 64;
/// Most patterns in each of `spec.telemetry.include` and `exclude` (each
/// is a regular expression tried against every metric name).
pub const MAX_TELEMETRY_PATTERNS: usize = 64;
/// Most Redfish accounts.
pub const MAX_REDFISH_ACCOUNTS: usize = 32;
/// Most tunnel ports.
pub const MAX_TUNNEL_PORTS: usize = 64;
/// Longest check-rule selector or summary, characters.
pub const MAX_RULE_TEXT: usize = 1024;

/// Smallest `spec.telemetry.bufferBytes`: 64 KiB.
pub const MIN_TELEMETRY_BUFFER_BYTES: u64 = 64 * 1024;
/// Largest `spec.telemetry.bufferBytes`: 1 GiB (the buffer lives in the
/// state directory, on an SD card as often as not).
pub const MAX_TELEMETRY_BUFFER_BYTES: u64 = 1024 * 1024 * 1024;

/// Checks the length of a list: `Err` (and the error) when it has more
/// than `max` entries, so that the caller skips checking each of them.
pub fn list(errors: &mut Vec<FieldError>, path: &str, len: usize, max: usize) -> bool {
    if len > max {
        errors.push(FieldError::new(
            path,
            format!("{len} entries is more than the maximum of {max}"),
        ));
        false
    } else {
        true
    }
}

/// Every number in `v` that is NaN or infinite, as errors at its path
/// under `prefix` (`spec.checks.rules[3].threshold: NaN is not a
/// number`): one pass over the whole document, so no `f64` field of any
/// section is missed. Keys for which `skip` holds (full paths) are not
/// walked. At most `most` errors.
pub fn non_finite(
    prefix: &str,
    v: &serde_yaml_ng::Value,
    skip: &dyn Fn(&str) -> bool,
    most: usize,
    errors: &mut Vec<FieldError>,
) {
    use serde_yaml_ng::Value;
    if errors.len() >= most || skip(prefix) {
        return;
    }
    match v {
        Value::Number(n) => {
            if let Some(x) = n.as_f64().filter(|x| !x.is_finite()) {
                let what = if x.is_nan() {
                    "NaN is not a number".to_owned()
                } else {
                    format!("{x} is not a finite number")
                };
                errors.push(FieldError::new(
                    prefix,
                    format!("{what} (every number in a bundle must be finite)"),
                ));
            }
        }
        Value::Sequence(s) => {
            for (i, x) in s.iter().enumerate() {
                non_finite(&format!("{prefix}[{i}]"), x, skip, most, errors);
            }
        }
        Value::Mapping(m) => {
            for (k, x) in m {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                };
                let path = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                non_finite(&path, x, skip, most, errors);
            }
        }
        Value::Tagged(t) => non_finite(prefix, &t.value, skip, most, errors),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_labels_never_paths() {
        for ok in ["a", "pi5-fan", "cm4.adc_signals", "A1", &"x".repeat(63)] {
            assert!(name_ok(ok), "{ok:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "trailing.",
            "-x",
            "x_",
            "a/b",
            "a\\b",
            "my bundle",
            "ü",
            &"x".repeat(64),
        ] {
            assert!(!name_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn finds_every_non_finite_number_with_its_path() {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            "a: {b: [1, .nan, 2.5]}\nc: -.inf\nd: {e: .inf}\nf: 18446744073709551615\n",
        )
        .unwrap();
        let mut errs = Vec::new();
        non_finite("", &v, &|p| p == "d", 100, &mut errs);
        let got: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "a.b[1]: NaN is not a number (every number in a bundle must be finite)",
                "c: -inf is not a finite number (every number in a bundle must be finite)",
            ]
        );
        let mut errs = Vec::new();
        non_finite("", &v, &|_| false, 1, &mut errs);
        assert_eq!(errs.len(), 1);
    }
}
