//! `hwmon`: every sensor of every hardware monitor chip in
//! `/sys/class/hwmon` (temperatures, fan speeds, PWM duty, voltages,
//! currents, power, energy), named exactly as node_exporter names them.
//!
//! The `chip` label is derived from the stable device path
//! (`platform_cpu_thermal`, `i2c_1_002f`), falling back to the chip's
//! `name` file, never from the unstable `hwmonN` number unless nothing
//! else is known.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use serde::Deserialize;

use super::{CollectError, Collector, DeviceFilter, MetricWriter, Paths, paths, sys};
use crate::validate::FieldError;

static FILENAME: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
    regex::Regex::new(r"^(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?$").ok()
});

const SENSOR_TYPES: [&str; 13] = [
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
];

/// Options of the hwmon collector.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Only chips whose `chip` label matches (`--collector.hwmon.chip-include`).
    pub chip_include: Option<String>,
    /// Skip chips whose `chip` label matches (`--collector.hwmon.chip-exclude`).
    pub chip_exclude: Option<String>,
}

/// Reads `/sys/class/hwmon`.
pub struct Hwmon {
    paths: Paths,
    filter: DeviceFilter,
}

impl Hwmon {
    /// A collector; `None` (with errors recorded) for bad patterns.
    pub fn new(paths: Paths, s: &Settings, errors: &mut Vec<FieldError>) -> Option<Self> {
        let filter = DeviceFilter::new(
            "collectors.hwmon.chip",
            s.chip_include.as_deref(),
            s.chip_exclude.as_deref(),
            errors,
        )?;
        Some(Hwmon { paths, filter })
    }
}

/// Lower-cases and replaces everything but `[a-z0-9:_]` with `_`, then
/// trims `_` (node_exporter's `cleanMetricName`).
pub fn clean_name(s: &str) -> String {
    let lower = s.to_lowercase();
    let replaced: String = lower
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    replaced.trim_matches('_').to_owned()
}

/// Splits a sensor file name into (type, number, property):
/// `temp1_input` → (`temp`, 1, `input`).
pub fn explode(filename: &str) -> Option<(String, u32, String)> {
    let caps = FILENAME.as_ref()?.captures(filename)?;
    let ty = caps.name("type").map_or("", |m| m.as_str()).to_owned();
    let id = caps.name("id").map_or("", |m| m.as_str());
    let num = if id.is_empty() { 0 } else { id.parse().ok()? };
    let prop = caps.name("property").map_or("", |m| m.as_str()).to_owned();
    Some((ty, num, prop))
}

/// The `chip` label of an hwmon directory.
pub fn chip_name(dir: &Path) -> Option<String> {
    if let Ok(dev) = std::fs::canonicalize(dir.join("device")) {
        let dev_name = dev
            .file_name()
            .map(|s| clean_name(&s.to_string_lossy()))
            .unwrap_or_default();
        let dev_type = dev
            .parent()
            .and_then(|p| p.file_name())
            .map(|s| clean_name(&s.to_string_lossy()))
            .unwrap_or_default();
        if !dev_type.is_empty() && !dev_name.is_empty() {
            return Some(format!("{dev_type}_{dev_name}"));
        }
        if !dev_name.is_empty() {
            return Some(dev_name);
        }
    }
    if let Ok(raw) = paths::read_file(&dir.join("name")) {
        let n = clean_name(&raw);
        if !n.is_empty() {
            return Some(n);
        }
    }
    let real = std::fs::canonicalize(dir).ok()?;
    let n = clean_name(&real.file_name()?.to_string_lossy());
    (!n.is_empty()).then_some(n)
}

type SensorData = BTreeMap<String, BTreeMap<String, String>>;

fn collect_sensor_data(dir: &Path, data: &mut SensorData) -> Result<(), CollectError> {
    let files = paths::list_dir(dir)?.unwrap_or_default();
    let Ok(d) = sys::Dir::open(dir) else {
        return Ok(());
    };
    for f in files {
        let Some((ty, num, prop)) = explode(&f) else {
            continue;
        };
        if !SENSOR_TYPES.contains(&ty.as_str()) {
            continue;
        }
        let Ok(raw) = d.read_attr(&f) else {
            continue;
        };
        let value = raw.trim_matches('\n').to_owned();
        data.entry(format!("{ty}{num}"))
            .or_default()
            .insert(prop, value);
    }
    Ok(())
}

impl Hwmon {
    fn update_chip(&self, dir: &Path, out: &mut MetricWriter) -> Result<(), CollectError> {
        let Some(chip) = chip_name(dir) else {
            return Err(CollectError::parse(
                dir,
                "could not derive a monitoring name",
            ));
        };
        if self.filter.ignored(&chip) {
            return Ok(());
        }
        let mut data = SensorData::new();
        collect_sensor_data(dir, &mut data)?;
        if dir.join("device").exists() {
            collect_sensor_data(&dir.join("device"), &mut data)?;
        }
        if let Ok(raw) = paths::read_file(&dir.join("name")) {
            let human = clean_name(&raw);
            if !human.is_empty() {
                out.gauge(
                    "node_hwmon_chip_names",
                    "Annotation metric for human-readable chip names",
                    &[("chip", &chip), ("chip_name", &human)],
                    1.0,
                );
            }
        }
        for (sensor, props) in &data {
            let Some((ty, _, _)) = explode(sensor) else {
                continue;
            };
            let labels = [("chip", chip.as_str()), ("sensor", sensor.as_str())];
            if let Some(label) = props.get("label") {
                out.gauge(
                    "node_hwmon_sensor_label",
                    "Label for given chip and sensor",
                    &[("chip", &chip), ("sensor", sensor), ("label", label)],
                    1.0,
                );
            }
            let plain = props.get("").map(String::as_str);
            match ty.as_str() {
                "beep_enable" => {
                    let v = if plain == Some("1") { 1.0 } else { 0.0 };
                    out.gauge(
                        "node_hwmon_beep_enabled",
                        "Hardware beep enabled",
                        &labels,
                        v,
                    );
                    continue;
                }
                "vrm" => {
                    if let Some(v) = plain.and_then(|s| s.parse::<f64>().ok()) {
                        out.gauge(
                            "node_hwmon_voltage_regulator_version",
                            "Hardware voltage regulator",
                            &labels,
                            v,
                        );
                    }
                    continue;
                }
                "update_interval" => {
                    if let Some(v) = plain.and_then(|s| s.parse::<f64>().ok()) {
                        out.gauge(
                            "node_hwmon_update_interval_seconds",
                            "Hardware monitor update interval",
                            &labels,
                            v * 0.001,
                        );
                    }
                    continue;
                }
                _ => {}
            }
            let prefix = format!("node_hwmon_{ty}");
            for (element, value) in props {
                if element == "label" {
                    continue;
                }
                let mut name = prefix.clone();
                if element == "input" {
                    if plain.is_some() {
                        name.push_str("_input");
                    }
                } else if !element.is_empty() {
                    name.push('_');
                    name.push_str(&clean_name(element));
                }
                let Ok(v) = value.trim().parse::<f64>() else {
                    continue;
                };
                if element == "fault" || element == "alarm" || element == "beep" {
                    out.gauge(
                        &name,
                        &format!("Hardware sensor {element} status ({ty})"),
                        &labels,
                        v,
                    );
                    continue;
                }
                let el = element.as_str();
                let (suffix, help, v): (&str, String, f64) = match ty.as_str() {
                    "in" | "cpu" => (
                        "_volts",
                        format!("Hardware monitor for voltage ({el})"),
                        v * 0.001,
                    ),
                    "temp" if el != "type" => {
                        let el = if el.is_empty() { "input" } else { el };
                        (
                            "_celsius",
                            format!("Hardware monitor for temperature ({el})"),
                            v * 0.001,
                        )
                    }
                    "curr" => (
                        "_amps",
                        format!("Hardware monitor for current ({el})"),
                        v * 0.001,
                    ),
                    "energy" => {
                        out.counter(
                            &format!("{name}_joule_total"),
                            &format!("Hardware monitor for joules used so far ({el})"),
                            &labels,
                            v / 1000000.0,
                        );
                        continue;
                    }
                    "power" if el == "accuracy" => (
                        "",
                        "Hardware monitor power meter accuracy, as a ratio".to_owned(),
                        v / 1000000.0,
                    ),
                    "power"
                        if matches!(
                            el,
                            "average_interval" | "average_interval_min" | "average_interval_max"
                        ) =>
                    {
                        (
                            "_seconds",
                            format!("Hardware monitor power usage update interval ({el})"),
                            v * 0.001,
                        )
                    }
                    "power" => (
                        "_watt",
                        format!("Hardware monitor for power usage in watts ({el})"),
                        v / 1000000.0,
                    ),
                    "humidity" => (
                        "",
                        format!("Hardware monitor for humidity ({el})"),
                        v * 0.001,
                    ),
                    "fan" if matches!(el, "input" | "min" | "max" | "target") => (
                        "_rpm",
                        format!("Hardware monitor for fan revolutions per minute ({el})"),
                        v,
                    ),
                    _ => ("", format!("Hardware monitor {ty} element {el}"), v),
                };
                name.push_str(suffix);
                out.gauge(&name, &help, &labels, v);
            }
        }
        Ok(())
    }
}

impl Collector for Hwmon {
    fn name(&self) -> &'static str {
        "hwmon"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let base = self.paths.sys("class/hwmon");
        let entries = paths::list_dir(&base)?.ok_or(CollectError::NoData)?;
        let mut last = Ok(());
        for e in entries {
            let dir = base.join(&e);
            if !dir.is_dir() {
                continue;
            }
            if let Err(err) = self.update_chip(&dir, out) {
                last = Err(err);
            }
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_explode_sensor_file_names() {
        assert_eq!(
            explode("temp1_input"),
            Some(("temp".into(), 1, "input".into()))
        );
        assert_eq!(
            explode("in0_lcrit_alarm"),
            Some(("in".into(), 0, "lcrit_alarm".into()))
        );
        assert_eq!(
            explode("beep_enable"),
            Some(("beep_enable".into(), 0, "".into()))
        );
        assert_eq!(explode("pwm1"), Some(("pwm".into(), 1, "".into())));
        assert_eq!(explode("foo1bar"), None);
    }

    #[test]
    fn can_clean_chip_names() {
        assert_eq!(clean_name("cpu_thermal\n"), "cpu_thermal");
        assert_eq!(clean_name("soc:firmware"), "soc:firmware");
        assert_eq!(clean_name("1-002F"), "1_002f");
    }
}
