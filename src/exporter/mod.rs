//! # The node exporter: node_exporter-compatible `/metrics`
//!
//! One file per collector, each a struct named after what it reads
//! (`hwmon::Hwmon`) implementing [`Collector`]; one hand-written list,
//! [`COLLECTORS`] and [`build`]; one scrape loop, [`Exporter::scrape`], that
//! times every collector, isolates its failure (an error or a panic fails
//! that collector only) and writes `node_scrape_collector_duration_seconds`
//! and `node_scrape_collector_success`. Two encoders in [`encode`] write
//! Prometheus text 0.0.4 (default) or OpenMetrics. [`http`] serves it.
//!
//! Metric names, label names, types and HELP texts are node_exporter's, so
//! dashboards and alerts written for node_exporter work unchanged; onprem's
//! own metrics are named `onprem_*`.
//!
//! ## To add a collector
//!
//! 1. `src/exporter/<name>.rs` with `pub struct <Name>` implementing
//!    [`Collector`]; `name()` returns node_exporter's collector name, which
//!    is also the file name, the `collector` label and the config key.
//!    Split reading from parsing: a pure `parse_*` function that unit tests
//!    call, and `update` that reads files through [`paths::Paths`].
//! 2. Add a row to [`COLLECTORS`] and an arm to [`build`].
//! 3. Add fixture files under `tests/fixtures/` and regenerate the golden
//!    file (`UPDATE_GOLDEN=1 cargo test --test golden`); review its diff.
//!
//! Absent hardware (no `/sys/class/hwmon`, no PSI) is
//! [`CollectError::NoData`]: the collector still reports success, since a
//! board without fans has not failed.

pub mod encode;
pub mod http;
pub mod metrics;
pub mod paths;
pub mod process;
pub mod textparse;

pub mod cpu;
pub mod cpufreq;
pub mod devices;
pub mod diskstats;
pub mod filesystem;
pub mod hwmon;
pub mod loadavg;
pub mod loops;
pub mod meminfo;
pub mod netclass;
pub mod netdev;
pub mod os;
pub mod powersupplyclass;
pub mod pressure;
pub mod rpi;
pub mod stat;
pub mod sys;
pub mod textfile;
pub mod thermal_zone;
pub mod time;
pub mod uname;
pub mod vmstat;
pub mod watchdog;

use std::collections::BTreeSet;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Instant;

use serde::Deserialize;

use crate::validate::FieldError;
pub use metrics::{Family, Kind, MetricWriter, Value};
pub use paths::Paths;

/// A source of metric families, run once per scrape.
pub trait Collector: Send + Sync {
    /// node_exporter's name for this collector (`"hwmon"`): the file name,
    /// the `collector` label and the config key.
    fn name(&self) -> &'static str;
    /// Writes this collector's samples. [`CollectError::NoData`] means
    /// "nothing to report here" and is not a failure.
    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError>;
}

/// Why a collector produced no (or partial) data.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The hardware or kernel facility is absent (no hwmon chips, no PSI).
    /// Reported as success; nothing for the operator to do.
    #[error("no data")]
    NoData,
    /// A file could not be read: check permissions and the `--path.*`
    /// flags.
    #[error("reading {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A file did not have the format the kernel documents.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

impl CollectError {
    /// A parse error for `path`.
    pub fn parse(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        CollectError::Parse {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The collectors onprem implements: name, on by default, and what it
/// reads. Hand-written, in alphabetical order.
pub const COLLECTORS: &[(&str, bool, &str)] = &[
    ("cpu", true, "CPU time per mode from /proc/stat"),
    (
        "cpufreq",
        true,
        "CPU frequency and governor from sysfs cpufreq",
    ),
    (
        "devices",
        true,
        "the hardware inventory's fans, sensors, rails, batteries, GPUs (onprem_*)",
    ),
    ("diskstats", true, "disk I/O from /proc/diskstats"),
    (
        "filesystem",
        true,
        "filesystem space and inodes (statfs) for /proc/1/mounts",
    ),
    (
        "hwmon",
        true,
        "hardware monitor chips from /sys/class/hwmon",
    ),
    ("loadavg", true, "load average from /proc/loadavg"),
    (
        "loops",
        true,
        "the reconcile loops and the running bundle: conditions, runs, zones, alerts (onprem_*)",
    ),
    ("meminfo", true, "memory from /proc/meminfo"),
    (
        "netclass",
        true,
        "network interface properties from /sys/class/net",
    ),
    (
        "netdev",
        true,
        "network interface counters from /proc/net/dev",
    ),
    ("os", true, "OS release from /etc/os-release"),
    (
        "powersupplyclass",
        true,
        "batteries and mains from /sys/class/power_supply",
    ),
    (
        "pressure",
        true,
        "pressure stall information from /proc/pressure",
    ),
    (
        "rpi",
        true,
        "Raspberry Pi throttling and under-voltage flags (onprem_rpi_*)",
    ),
    (
        "stat",
        true,
        "boot time, context switches, forks, interrupts from /proc/stat",
    ),
    ("textfile", true, "*.prom files written by other programs"),
    (
        "thermal_zone",
        true,
        "thermal zones and cooling devices from /sys/class/thermal",
    ),
    ("time", true, "system time, time zone and clock sources"),
    ("uname", true, "kernel and machine from uname(2)"),
    ("vmstat", true, "paging and OOM counters from /proc/vmstat"),
    (
        "watchdog",
        true,
        "hardware watchdogs from /sys/class/watchdog",
    ),
];

/// Whether `name` is a collector onprem implements.
pub fn is_known(name: &str) -> bool {
    COLLECTORS.iter().any(|(n, _, _)| *n == name)
}

/// The `collectors:` section of the agent config file; every field can
/// also be set by the node_exporter flag named in its doc.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Start from no collectors instead of the default set
    /// (`--collector.disable-defaults`).
    pub disable_defaults: bool,
    /// Collectors to turn on (`--collector.<name>`).
    pub enable: Vec<String>,
    /// Collectors to turn off (`--no-collector.<name>`).
    pub disable: Vec<String>,
    /// Options of the cpu collector.
    pub cpu: cpu::Settings,
    /// Options of the diskstats collector.
    pub diskstats: diskstats::Settings,
    /// Options of the filesystem collector.
    pub filesystem: filesystem::Settings,
    /// Options of the hwmon collector.
    pub hwmon: hwmon::Settings,
    /// Options of the netclass collector.
    pub netclass: netclass::Settings,
    /// Options of the netdev collector.
    pub netdev: netdev::Settings,
    /// Options of the powersupplyclass collector.
    pub powersupplyclass: powersupplyclass::Settings,
    /// Options of the textfile collector.
    pub textfile: textfile::Settings,
    /// Options of the vmstat collector.
    pub vmstat: vmstat::Settings,
}

impl Settings {
    /// The enabled collector names, or every problem with the selection.
    pub fn enabled(&self) -> Result<BTreeSet<&'static str>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut set: BTreeSet<&'static str> = if self.disable_defaults {
            BTreeSet::new()
        } else {
            COLLECTORS.iter().filter(|c| c.1).map(|c| c.0).collect()
        };
        for (field, list, on) in [
            ("collectors.enable", &self.enable, true),
            ("collectors.disable", &self.disable, false),
        ] {
            for (i, name) in list.iter().enumerate() {
                match COLLECTORS.iter().find(|c| c.0 == name) {
                    Some(c) if on => {
                        set.insert(c.0);
                    }
                    Some(c) => {
                        set.remove(c.0);
                    }
                    None => errors.push(FieldError::new(
                        format!("{field}[{i}]"),
                        format!("unknown collector {name:?} (known: {})", known_list()),
                    )),
                }
            }
        }
        for name in &self.enable {
            if self.disable.contains(name) && is_known(name) {
                errors.push(FieldError::new(
                    "collectors",
                    format!("collector {name:?} is both enabled and disabled"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }
}

fn known_list() -> String {
    COLLECTORS
        .iter()
        .map(|c| c.0)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds one collector from its settings; regular expressions are
/// compiled here, so a bad one is reported with its field path.
pub fn build(
    name: &str,
    s: &Settings,
    paths: &Paths,
    errors: &mut Vec<FieldError>,
) -> Option<Box<dyn Collector>> {
    let p = paths.clone();
    Some(match name {
        "cpu" => Box::new(cpu::Cpu::new(p, &s.cpu)),
        "cpufreq" => Box::new(cpufreq::Cpufreq::new(p)),
        // Needs the agent's device hub: the agent adds it (Exporter::add).
        "devices" | "loops" => return None,
        "diskstats" => Box::new(diskstats::Diskstats::new(p, &s.diskstats, errors)?),
        "filesystem" => Box::new(filesystem::Filesystem::new(p, &s.filesystem, errors)?),
        "hwmon" => Box::new(hwmon::Hwmon::new(p, &s.hwmon, errors)?),
        "loadavg" => Box::new(loadavg::Loadavg::new(p)),
        "meminfo" => Box::new(meminfo::Meminfo::new(p)),
        "netclass" => Box::new(netclass::Netclass::new(p, &s.netclass, errors)?),
        "netdev" => Box::new(netdev::Netdev::new(p, &s.netdev, errors)?),
        "os" => Box::new(os::Os::new(p)),
        "powersupplyclass" => Box::new(powersupplyclass::Powersupplyclass::new(
            p,
            &s.powersupplyclass,
            errors,
        )?),
        "pressure" => Box::new(pressure::Pressure::new(p)),
        "rpi" => Box::new(rpi::Rpi::new(p)),
        "stat" => Box::new(stat::Stat::new(p)),
        "textfile" => Box::new(textfile::Textfile::new(&s.textfile)),
        "thermal_zone" => Box::new(thermal_zone::ThermalZone::new(p)),
        "time" => Box::new(time::Time::new(p)),
        "uname" => Box::new(uname::Uname::new()),
        "vmstat" => Box::new(vmstat::Vmstat::new(p, &s.vmstat, errors)?),
        "watchdog" => Box::new(watchdog::Watchdog::new(p)),
        other => {
            errors.push(FieldError::new(
                "collectors",
                format!("unknown collector {other:?}"),
            ));
            return None;
        }
    })
}

/// The set of enabled collectors and the scrape loop over them.
pub struct Exporter {
    collectors: Vec<Box<dyn Collector>>,
    exporter_metrics: bool,
}

/// One scrape's result.
#[derive(Debug)]
pub struct Scrape {
    /// The families, sorted.
    pub families: Vec<Family>,
    /// Collectors that failed, with the reason.
    pub failed: Vec<(&'static str, String)>,
}

impl Scrape {
    /// Number of samples (lines other than comments in text format).
    pub fn samples(&self) -> usize {
        self.families
            .iter()
            .flat_map(|f| &f.metrics)
            .map(|m| match &m.value {
                Value::Single(_) => 1,
                Value::Summary { quantiles, .. } => quantiles.len() + 2,
                Value::Histogram { buckets, .. } => buckets.len() + 2,
            })
            .sum()
    }
}

impl Exporter {
    /// Builds every enabled collector, or returns every configuration
    /// problem found.
    pub fn new(
        settings: &Settings,
        paths: &Paths,
        exporter_metrics: bool,
    ) -> Result<Exporter, Vec<FieldError>> {
        let (enabled, mut errors) = match settings.enabled() {
            Ok(set) => (set, Vec::new()),
            Err(e) => (BTreeSet::new(), e),
        };
        // Every collector's settings are checked, enabled or not, so that
        // one run reports every problem.
        let mut collectors: Vec<Box<dyn Collector>> = Vec::new();
        for (name, _, _) in COLLECTORS {
            if let Some(c) = build(name, settings, paths, &mut errors) {
                if enabled.contains(name) {
                    collectors.push(c);
                }
            }
        }
        if errors.is_empty() {
            Ok(Exporter {
                collectors,
                exporter_metrics,
            })
        } else {
            Err(errors)
        }
    }

    /// Adds a collector built outside [`build`] (one that needs the
    /// agent's state, like `devices`), keeping the list sorted by name.
    pub fn add(&mut self, c: Box<dyn Collector>) {
        self.collectors.push(c);
        self.collectors.sort_by_key(|c| c.name());
    }

    /// Names of the enabled collectors.
    pub fn names(&self) -> Vec<&'static str> {
        self.collectors.iter().map(|c| c.name()).collect()
    }

    /// Runs the collectors (all, or those in `only`) and returns the sorted
    /// families with the per-collector meta-metrics, the process metrics
    /// and `onprem_build_info`.
    pub fn scrape(&self, only: Option<&BTreeSet<String>>) -> Scrape {
        let mut out = MetricWriter::new();
        let mut failed = Vec::new();
        for c in &self.collectors {
            let name = c.name();
            if only.is_some_and(|o| !o.contains(name)) {
                continue;
            }
            let start = Instant::now();
            let res = catch_unwind(AssertUnwindSafe(|| c.update(&mut out)));
            let secs = start.elapsed().as_secs_f64();
            let ok = match res {
                Ok(Ok(())) | Ok(Err(CollectError::NoData)) => true,
                Ok(Err(e)) => {
                    let msg = error_chain(&e);
                    tracing::warn!(collector = name, error = %msg, "collector failed");
                    failed.push((name, msg));
                    false
                }
                Err(_) => {
                    tracing::error!(collector = name, "collector panicked");
                    failed.push((name, "panicked".to_owned()));
                    false
                }
            };
            out.gauge(
                "node_scrape_collector_duration_seconds",
                "node_exporter: Duration of a collector scrape.",
                &[("collector", name)],
                secs,
            );
            out.gauge(
                "node_scrape_collector_success",
                "node_exporter: Whether a collector succeeded.",
                &[("collector", name)],
                if ok { 1.0 } else { 0.0 },
            );
        }
        if self.exporter_metrics {
            process::write(&mut out);
            out.gauge(
                "onprem_build_info",
                "A metric with a constant '1' value labeled by version, target architecture and OS from which onprem was built.",
                &[("version", crate::VERSION), ("arch", std::env::consts::ARCH), ("os", std::env::consts::OS)],
                1.0,
            );
        }
        for c in std::mem::take(&mut out.conflicts) {
            tracing::warn!(conflict = %c, "metric family clashes with one written before it; dropped");
        }
        Scrape {
            families: out.finish(),
            failed,
        }
    }
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// A node_exporter device filter: an include or an exclude pattern (not
/// both), as `--collector.netdev.device-include/-exclude`.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    include: Option<regex::Regex>,
    exclude: Option<regex::Regex>,
}

impl DeviceFilter {
    /// Compiles the patterns; empty or absent patterns filter nothing.
    pub fn new(
        field: &str,
        include: Option<&str>,
        exclude: Option<&str>,
        errors: &mut Vec<FieldError>,
    ) -> Option<DeviceFilter> {
        let include = include.filter(|s| !s.is_empty());
        let exclude = exclude.filter(|s| !s.is_empty());
        if include.is_some() && exclude.is_some() {
            errors.push(FieldError::new(
                field,
                "device include and exclude patterns are mutually exclusive; set one of them",
            ));
            return None;
        }
        let n = errors.len();
        let inc =
            include.and_then(|p| crate::validate::regex(&format!("{field}_include"), p, errors));
        let exc =
            exclude.and_then(|p| crate::validate::regex(&format!("{field}_exclude"), p, errors));
        (errors.len() == n).then_some(DeviceFilter {
            include: inc,
            exclude: exc,
        })
    }

    /// Whether `name` is filtered out.
    pub fn ignored(&self, name: &str) -> bool {
        self.exclude.as_ref().is_some_and(|r| r.is_match(name))
            || self.include.as_ref().is_some_and(|r| !r.is_match(name))
    }
}
