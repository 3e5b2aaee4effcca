//! `cpufreq`: current, minimum and maximum frequency of each CPU (hardware
//! and scaling) and its governor, from
//! `/sys/devices/system/cpu/cpuN/cpufreq`.

use super::{CollectError, Collector, MetricWriter, Paths, paths};

/// Reads cpufreq attributes.
pub struct Cpufreq {
    paths: Paths,
}

impl Cpufreq {
    /// A collector reading below `paths.sysfs`.
    pub fn new(paths: Paths) -> Self {
        Cpufreq { paths }
    }
}

const FREQS: [(&str, &str, &str); 6] = [
    (
        "cpuinfo_cur_freq",
        "node_cpu_frequency_hertz",
        "Current cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_max_freq",
        "node_cpu_frequency_max_hertz",
        "Maximum cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_min_freq",
        "node_cpu_frequency_min_hertz",
        "Minimum cpu thread frequency in hertz.",
    ),
    (
        "scaling_cur_freq",
        "node_cpu_scaling_frequency_hertz",
        "Current scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_max_freq",
        "node_cpu_scaling_frequency_max_hertz",
        "Maximum scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_min_freq",
        "node_cpu_scaling_frequency_min_hertz",
        "Minimum scaled CPU thread frequency in hertz.",
    ),
];

impl Collector for Cpufreq {
    fn name(&self) -> &'static str {
        "cpufreq"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let base = self.paths.sys("devices/system/cpu");
        let entries = paths::list_dir(&base)?.ok_or(CollectError::NoData)?;
        let mut any = false;
        for e in entries {
            let Some(num) = e
                .strip_prefix("cpu")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let dir = base.join(&e).join("cpufreq");
            if !dir.is_dir() {
                continue;
            }
            any = true;
            for (file, name, help) in FREQS {
                if let Some(khz) = paths::attr_i64(&dir.join(file)) {
                    out.gauge(name, help, &[("cpu", num)], khz as f64 * 1000.0);
                }
            }
            if let (Some(cur), Some(avail)) = (
                paths::attr(&dir.join("scaling_governor")),
                paths::attr(&dir.join("scaling_available_governors")),
            ) {
                for g in avail.split_whitespace() {
                    out.gauge(
                        "node_cpu_scaling_governor",
                        "Current enabled CPU frequency governor.",
                        &[("cpu", num), ("governor", g)],
                        if g == cur { 1.0 } else { 0.0 },
                    );
                }
            }
        }
        if any {
            Ok(())
        } else {
            Err(CollectError::NoData)
        }
    }
}
