//! `diskstats`: I/O counters per block device from `/proc/diskstats`
//! (reads, writes, discards, flushes, time spent), and `node_disk_info`
//! with the udev properties of the device when `/run/udev/data` has them.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{CollectError, Collector, DeviceFilter, MetricWriter, Paths, paths};
use crate::validate::FieldError;

/// node_exporter's default: skip RAM disks, loop devices, floppies and
/// partitions of sd/hd/vd/xvd and NVMe disks.
pub const DEFAULT_DEVICE_EXCLUDE: &str = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";
/// Where udev keeps device properties.
pub const DEFAULT_UDEV_DATA: &str = "/run/udev/data";

const SECTOR: f64 = 512.0;
const SECONDS_PER_TICK: f64 = 1.0 / 1000.0;

/// Options of the diskstats collector.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Only devices matching this pattern
    /// (`--collector.diskstats.device-include`).
    pub device_include: Option<String>,
    /// Skip devices matching this pattern
    /// (`--collector.diskstats.device-exclude`).
    pub device_exclude: Option<String>,
    /// udev database directory (`--path.udev.data`).
    pub udev_data: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            device_include: None,
            device_exclude: None,
            udev_data: DEFAULT_UDEV_DATA.into(),
        }
    }
}

/// Reads `/proc/diskstats`.
pub struct Diskstats {
    paths: Paths,
    filter: DeviceFilter,
    udev_data: PathBuf,
}

impl Diskstats {
    /// A collector; `None` (with errors recorded) for bad patterns.
    pub fn new(paths: Paths, s: &Settings, errors: &mut Vec<FieldError>) -> Option<Self> {
        // The exclude default applies only when no include pattern is set.
        let exclude = match (&s.device_include, &s.device_exclude) {
            (Some(i), None) if !i.is_empty() => None,
            (_, Some(e)) => Some(e.as_str()),
            (_, None) => Some(DEFAULT_DEVICE_EXCLUDE),
        };
        let filter = DeviceFilter::new(
            "collectors.diskstats.device",
            s.device_include.as_deref(),
            exclude,
            errors,
        )?;
        Some(Diskstats {
            paths,
            filter,
            udev_data: s.udev_data.clone(),
        })
    }
}

/// One line of `/proc/diskstats`: major, minor, name and up to 17 counters.
#[derive(Debug, PartialEq)]
pub struct Line<'a> {
    /// Major device number.
    pub major: &'a str,
    /// Minor device number.
    pub minor: &'a str,
    /// Device name.
    pub name: &'a str,
    /// The counters, as many as the kernel prints (11, 15 or 17).
    pub stats: Vec<u64>,
}

/// Parses one line; `None` if it is malformed.
pub fn parse_line(line: &str) -> Option<Line<'_>> {
    let mut it = line.split_whitespace();
    let major = it.next()?;
    let minor = it.next()?;
    let name = it.next()?;
    let stats: Option<Vec<u64>> = it.map(|s| s.parse().ok()).collect();
    let stats = stats?;
    if stats.len() < 11 {
        return None;
    }
    Some(Line {
        major,
        minor,
        name,
        stats,
    })
}

/// (metric, help, counter?, scale) for each diskstats field, in order.
const FIELDS: [(&str, &str, bool, f64); 17] = [
    (
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        true,
        1.0,
    ),
    (
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        true,
        1.0,
    ),
    (
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        true,
        SECTOR,
    ),
    (
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        true,
        1.0,
    ),
    (
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        true,
        1.0,
    ),
    (
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        true,
        SECTOR,
    ),
    (
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        false,
        1.0,
    ),
    (
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        true,
        1.0,
    ),
    (
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        true,
        1.0,
    ),
    (
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        true,
        1.0,
    ),
    (
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        true,
        1.0,
    ),
    (
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        true,
        SECONDS_PER_TICK,
    ),
];

fn udev_props(dir: &std::path::Path, major: &str, minor: &str) -> HashMap<String, String> {
    let mut props = HashMap::new();
    let Ok(text) = paths::read_file(&dir.join(format!("b{major}:{minor}"))) else {
        return props;
    };
    for line in text.lines() {
        if let Some(kv) = line.strip_prefix("E:") {
            if let Some((k, v)) = kv.split_once('=') {
                props.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    props
}

impl Collector for Diskstats {
    fn name(&self) -> &'static str {
        "diskstats"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let path = self.paths.proc("diskstats");
        let text = paths::read(&path)?;
        for raw in text.lines() {
            if raw.trim().is_empty() {
                continue;
            }
            let line = parse_line(raw)
                .ok_or_else(|| CollectError::parse(&path, format!("invalid line: {raw:?}")))?;
            if self.filter.ignored(line.name) {
                continue;
            }
            let dev = [("device", line.name)];
            let props = udev_props(&self.udev_data, line.major, line.minor);
            let p = |k: &str| props.get(k).map(String::as_str).unwrap_or("");
            out.gauge(
                "node_disk_info",
                "Info of /sys/block/<block_device>.",
                &[
                    ("device", line.name),
                    ("major", line.major),
                    ("minor", line.minor),
                    ("path", p("ID_PATH")),
                    ("wwn", p("ID_WWN")),
                    ("model", p("ID_MODEL")),
                    ("serial", p("ID_SERIAL_SHORT")),
                    ("revision", p("ID_REVISION")),
                ],
                1.0,
            );
            for (i, v) in line.stats.iter().enumerate().take(FIELDS.len()) {
                let (name, help, counter, scale) = FIELDS[i];
                let v = if scale == 1.0 {
                    *v as f64
                } else {
                    *v as f64 * scale
                };
                if counter {
                    out.counter(name, help, &dev, v);
                } else {
                    out.gauge(name, help, &dev, v);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_parse_a_kernel_5_line() {
        let l = parse_line(
            " 179 0 mmcblk0 92831 26471 7290554 178211 1021384 661271 37622800 3621881 0 1338940 3851902 0 0 0 0 41291 51810",
        );
        let l = l.expect("parses");
        assert_eq!((l.major, l.minor, l.name), ("179", "0", "mmcblk0"));
        assert_eq!(l.stats.len(), 17);
    }

    #[test]
    fn returns_none_when_line_is_short_or_garbage() {
        assert!(parse_line("8 0 sda 1 2 3").is_none());
        assert!(parse_line("8 0 sda 1 2 3 4 5 6 7 8 9 10 x").is_none());
    }

    #[test]
    fn can_exclude_partitions_by_default() {
        let mut errors = Vec::new();
        let d = Diskstats::new(Paths::default(), &Settings::default(), &mut errors).expect("valid");
        assert!(d.filter.ignored("sda1"));
        assert!(d.filter.ignored("loop0"));
        assert!(!d.filter.ignored("sda"));
        assert!(!d.filter.ignored("mmcblk0"));
    }
}
