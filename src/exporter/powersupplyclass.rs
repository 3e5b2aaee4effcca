//! `powersupplyclass`: batteries, UPS HATs and mains adapters from
//! `/sys/class/power_supply` (charge, voltage, current, temperature, and an
//! info metric with status, technology and model).

use serde::Deserialize;

use super::{CollectError, Collector, MetricWriter, Paths, paths, sys};
use crate::validate::FieldError;

/// Options of the powersupplyclass collector.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Skip supplies whose name matches
    /// (`--collector.powersupply.ignored-supplies`).
    pub ignored_supplies: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ignored_supplies: "^$".to_owned(),
        }
    }
}

/// Reads `/sys/class/power_supply`.
pub struct Powersupplyclass {
    paths: Paths,
    ignored: regex::Regex,
}

impl Powersupplyclass {
    /// A collector; `None` (with an error recorded) for a bad pattern.
    pub fn new(paths: Paths, s: &Settings, errors: &mut Vec<FieldError>) -> Option<Self> {
        let ignored = crate::validate::regex(
            "collectors.powersupplyclass.ignored_supplies",
            &s.ignored_supplies,
            errors,
        )?;
        Some(Powersupplyclass { paths, ignored })
    }
}

/// (sysfs attribute, metric suffix, divisor).
const NUMERIC: [(&str, &str, f64); 44] = [
    ("authentic", "authentic", 1.0),
    ("calibrate", "calibrate", 1.0),
    ("capacity", "capacity", 1.0),
    ("capacity_alert_max", "capacity_alert_max", 1.0),
    ("capacity_alert_min", "capacity_alert_min", 1.0),
    ("cycle_count", "cyclecount", 1.0),
    ("online", "online", 1.0),
    ("present", "present", 1.0),
    ("time_to_empty_now", "time_to_empty_seconds", 1.0),
    ("time_to_full_now", "time_to_full_seconds", 1.0),
    ("current_boot", "current_boot", 1e6),
    ("current_max", "current_max", 1e6),
    ("current_now", "current_ampere", 1e6),
    ("energy_empty", "energy_empty", 1e6),
    ("energy_empty_design", "energy_empty_design", 1e6),
    ("energy_full", "energy_full", 1e6),
    ("energy_full_design", "energy_full_design", 1e6),
    ("energy_now", "energy_watthour", 1e6),
    ("voltage_boot", "voltage_boot", 1e6),
    ("voltage_max", "voltage_max", 1e6),
    ("voltage_max_design", "voltage_max_design", 1e6),
    ("voltage_min", "voltage_min", 1e6),
    ("voltage_min_design", "voltage_min_design", 1e6),
    ("voltage_now", "voltage_volt", 1e6),
    ("voltage_ocv", "voltage_ocv", 1e6),
    ("charge_control_limit", "charge_control_limit", 1e6),
    ("charge_control_limit_max", "charge_control_limit_max", 1e6),
    ("charge_counter", "charge_counter", 1e6),
    ("charge_empty", "charge_empty", 1e6),
    ("charge_empty_design", "charge_empty_design", 1e6),
    ("charge_full", "charge_full", 1e6),
    ("charge_full_design", "charge_full_design", 1e6),
    ("charge_now", "charge_ampere", 1e6),
    ("charge_term_current", "charge_term_current", 1e6),
    ("constant_charge_current", "constant_charge_current", 1e6),
    (
        "constant_charge_current_max",
        "constant_charge_current_max",
        1e6,
    ),
    ("constant_charge_voltage", "constant_charge_voltage", 1e6),
    (
        "constant_charge_voltage_max",
        "constant_charge_voltage_max",
        1e6,
    ),
    ("precharge_current", "precharge_current", 1e6),
    ("input_current_limit", "input_current_limit", 1e6),
    ("power_now", "power_watt", 1e6),
    ("temp", "temp_celsius", 10.0),
    ("temp_alert_max", "temp_alert_max_celsius", 10.0),
    ("temp_alert_min", "temp_alert_min_celsius", 10.0),
];

/// Temperatures of the supply's surroundings, in tenths of a degree.
const AMBIENT: [(&str, &str); 5] = [
    ("temp_ambient", "temp_ambient_celsius"),
    ("temp_ambient_alert_max", "temp_ambient_max_celsius"),
    ("temp_ambient_alert_min", "temp_ambient_min_celsius"),
    ("temp_max", "temp_max_celsius"),
    ("temp_min", "temp_min_celsius"),
];

const INFO: [&str; 11] = [
    "type",
    "capacity_level",
    "charge_type",
    "health",
    "manufacturer",
    "model_name",
    "serial_number",
    "status",
    "technology",
    "usb_type",
    "scope",
];

impl Collector for Powersupplyclass {
    fn name(&self) -> &'static str {
        "powersupplyclass"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let base = self.paths.sys("class/power_supply");
        let entries = paths::list_dir(&base)?.ok_or(CollectError::NoData)?;
        let mut name = String::new();
        let mut help = String::new();
        for ps in entries {
            if self.ignored.is_match(&ps) {
                continue;
            }
            let path = base.join(&ps);
            let Ok(dir) = sys::Dir::open(&path) else {
                continue;
            };
            // Read only the attributes this supply has: a battery has a
            // dozen of the fifty the class defines.
            let present = paths::list_dir(&path)?.unwrap_or_default();
            let has = |f: &str| present.binary_search_by(|p| p.as_str().cmp(f)).is_ok();
            let labels = [("power_supply", ps.as_str())];
            let numeric = NUMERIC
                .iter()
                .copied()
                .chain(AMBIENT.iter().map(|(f, m)| (*f, *m, 10.0)));
            for (file, suffix, div) in numeric {
                if !has(file) {
                    continue;
                }
                let Some(v) = dir.attr(file).and_then(|s| paths::parse_int(&s)) else {
                    continue;
                };
                name.clear();
                name.push_str("node_power_supply_");
                name.push_str(suffix);
                help.clear();
                help.push_str(suffix);
                help.push_str(" value of /sys/class/power_supply/<power_supply>.");
                let v = if div == 1.0 { v as f64 } else { v as f64 / div };
                out.gauge(&name, &help, &labels, v);
            }
            let values: Vec<(&str, String)> = INFO
                .iter()
                .filter(|k| has(k))
                .filter_map(|k| dir.attr(k).filter(|v| !v.is_empty()).map(|v| (*k, v)))
                .collect();
            let mut info: Vec<(&str, &str)> = vec![("power_supply", ps.as_str())];
            info.extend(values.iter().map(|(k, v)| (*k, v.as_str())));
            out.gauge(
                "node_power_supply_info",
                "info of /sys/class/power_supply/<power_supply>.",
                &info,
                1.0,
            );
        }
        Ok(())
    }
}
