//! `netclass`: network interface properties from `/sys/class/net/<iface>`
//! (link state, carrier changes, MTU, speed, addresses).

use serde::Deserialize;

use super::{CollectError, Collector, MetricWriter, Paths, paths, sys};
use crate::validate::FieldError;

/// Options of the netclass collector.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Skip interfaces matching this pattern
    /// (`--collector.netclass.ignored-devices`).
    pub ignored_devices: String,
    /// Do not report a speed of -1 (unknown) as `node_network_speed_bytes`
    /// (`--collector.netclass.ignore-invalid-speed`).
    pub ignore_invalid_speed: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ignored_devices: "^$".to_owned(),
            ignore_invalid_speed: false,
        }
    }
}

/// Reads `/sys/class/net`.
pub struct Netclass {
    paths: Paths,
    ignored: regex::Regex,
    ignore_invalid_speed: bool,
}

impl Netclass {
    /// A collector; `None` (with an error recorded) for a bad pattern.
    pub fn new(paths: Paths, s: &Settings, errors: &mut Vec<FieldError>) -> Option<Self> {
        let ignored = crate::validate::regex(
            "collectors.netclass.ignored_devices",
            &s.ignored_devices,
            errors,
        )?;
        Some(Netclass {
            paths,
            ignored,
            ignore_invalid_speed: s.ignore_invalid_speed,
        })
    }
}

/// (sysfs attribute, metric suffix, counter?) for the numeric properties.
const PROPS: [(&str, &str, bool); 16] = [
    ("addr_assign_type", "address_assign_type", false),
    ("carrier", "carrier", false),
    ("carrier_changes", "carrier_changes_total", true),
    ("carrier_up_count", "carrier_up_changes_total", true),
    ("carrier_down_count", "carrier_down_changes_total", true),
    ("dev_id", "device_id", false),
    ("dormant", "dormant", false),
    ("flags", "flags", false),
    ("ifindex", "iface_id", false),
    ("iflink", "iface_link", false),
    ("link_mode", "iface_link_mode", false),
    ("mtu", "mtu_bytes", false),
    ("name_assign_type", "name_assign_type", false),
    ("netdev_group", "net_dev_group", false),
    ("tx_queue_len", "transmit_queue_length", false),
    ("type", "protocol_type", false),
];

impl Collector for Netclass {
    fn name(&self) -> &'static str {
        "netclass"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let base = self.paths.sys("class/net");
        let ifaces = paths::list_dir(&base)?.ok_or(CollectError::NoData)?;
        let mut name = String::new();
        let mut help = String::new();
        for iface in ifaces {
            if self.ignored.is_match(&iface) {
                continue;
            }
            // Not a directory (bonding_masters): not an interface.
            let Ok(dir) = sys::Dir::open(&base.join(&iface)) else {
                continue;
            };
            let a = |f: &str| dir.attr(f);
            let operstate = a("operstate").unwrap_or_default();
            let up = if operstate == "up" { 1.0 } else { 0.0 };
            out.gauge(
                "node_network_up",
                "Value is 1 if operstate is 'up', 0 otherwise.",
                &[("device", &iface)],
                up,
            );
            out.gauge(
                "node_network_info",
                "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
                &[
                    ("device", &iface),
                    ("address", &a("address").unwrap_or_default()),
                    ("broadcast", &a("broadcast").unwrap_or_default()),
                    ("duplex", &a("duplex").unwrap_or_default()),
                    ("operstate", &operstate),
                    ("ifalias", &a("ifalias").unwrap_or_default()),
                ],
                1.0,
            );
            for (file, suffix, counter) in PROPS {
                let Some(v) = a(file).and_then(|s| paths::parse_int(&s)) else {
                    continue;
                };
                name.clear();
                name.push_str("node_network_");
                name.push_str(suffix);
                help.clear();
                help.push_str("Network device property: ");
                help.push_str(suffix);
                if counter {
                    out.counter(&name, &help, &[("device", &iface)], v as f64);
                } else {
                    out.gauge(&name, &help, &[("device", &iface)], v as f64);
                }
            }
            if let Some(speed) = a("speed").and_then(|s| paths::parse_int(&s)) {
                if speed >= 0 || !self.ignore_invalid_speed {
                    // Mbit/s to bytes/s, integer arithmetic as node_exporter does.
                    let bytes = speed * 1000 * 1000 / 8;
                    out.gauge(
                        "node_network_speed_bytes",
                        "Network device property: speed_bytes",
                        &[("device", &iface)],
                        bytes as f64,
                    );
                }
            }
        }
        Ok(())
    }
}
