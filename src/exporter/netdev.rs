//! `netdev`: per-interface traffic counters from `/proc/net/dev`, plus
//! `receive_nohandler` from sysfs where the kernel has it.

use serde::Deserialize;

use super::{CollectError, Collector, DeviceFilter, MetricWriter, Paths, paths};
use crate::validate::FieldError;

/// Options of the netdev collector.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Only interfaces matching this pattern
    /// (`--collector.netdev.device-include`).
    pub device_include: Option<String>,
    /// Skip interfaces matching this pattern
    /// (`--collector.netdev.device-exclude`).
    pub device_exclude: Option<String>,
}

/// Reads `/proc/net/dev`.
pub struct Netdev {
    paths: Paths,
    filter: DeviceFilter,
}

impl Netdev {
    /// A collector; `None` (with errors recorded) for bad patterns.
    pub fn new(paths: Paths, s: &Settings, errors: &mut Vec<FieldError>) -> Option<Self> {
        let filter = DeviceFilter::new(
            "collectors.netdev.device",
            s.device_include.as_deref(),
            s.device_exclude.as_deref(),
            errors,
        )?;
        Some(Netdev { paths, filter })
    }
}

const RECEIVE: [&str; 8] = [
    "bytes",
    "packets",
    "errs",
    "drop",
    "fifo",
    "frame",
    "compressed",
    "multicast",
];
const TRANSMIT: [&str; 8] = [
    "bytes",
    "packets",
    "errs",
    "drop",
    "fifo",
    "colls",
    "carrier",
    "compressed",
];

/// Parses `/proc/net/dev` into (interface, 16 counters).
pub fn parse_net_dev(text: &str) -> Result<Vec<(String, [u64; 16])>, String> {
    let mut out = Vec::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("invalid line: {line:?}"));
        };
        let mut v = [0u64; 16];
        let mut n = 0;
        for (i, f) in rest.split_whitespace().enumerate() {
            if i >= 16 {
                return Err(format!("too many fields: {line:?}"));
            }
            v[i] = f
                .parse()
                .map_err(|_| format!("invalid field in line: {line:?}"))?;
            n = i + 1;
        }
        if n != 16 {
            return Err(format!("expected 16 fields: {line:?}"));
        }
        out.push((name.trim().to_owned(), v));
    }
    Ok(out)
}

impl Collector for Netdev {
    fn name(&self) -> &'static str {
        "netdev"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let path = self.paths.proc("net/dev");
        let devs =
            parse_net_dev(&paths::read(&path)?).map_err(|m| CollectError::parse(&path, m))?;
        let mut name = String::new();
        let mut help = String::new();
        for (dev, v) in devs {
            if self.filter.ignored(&dev) {
                continue;
            }
            let labels = [("device", dev.as_str())];
            for (dir, fields, off) in [("receive", &RECEIVE, 0), ("transmit", &TRANSMIT, 8)] {
                for (i, f) in fields.iter().enumerate() {
                    name.clear();
                    name.push_str("node_network_");
                    name.push_str(dir);
                    name.push('_');
                    name.push_str(f);
                    name.push_str("_total");
                    help.clear();
                    help.push_str("Network device statistic ");
                    help.push_str(dir);
                    help.push('_');
                    help.push_str(f);
                    help.push('.');
                    out.counter(&name, &help, &labels, v[off + i] as f64);
                }
            }
            let nohandler = self
                .paths
                .sys(&format!("class/net/{dev}/statistics/rx_nohandler"));
            if let Some(n) = paths::attr_i64(&nohandler) {
                out.counter(
                    "node_network_receive_nohandler_total",
                    "Network device statistic receive_nohandler.",
                    &labels,
                    n as f64,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n    lo: 1 2 0 0 0 0 0 0 1 2 0 0 0 0 0 0\n  eth0: 9812341234 7 0 12 0 0 0 4 5 6 0 0 0 0 0 0\n";

    #[test]
    fn can_parse_proc_net_dev() {
        let d = parse_net_dev(DEV).unwrap_or_default();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].0, "eth0");
        assert_eq!(d[1].1[0], 9812341234);
        assert_eq!(d[1].1[3], 12);
    }

    #[test]
    fn returns_error_when_a_field_is_missing() {
        assert!(parse_net_dev("h\nh\n eth0: 1 2 3\n").is_err());
    }
}
