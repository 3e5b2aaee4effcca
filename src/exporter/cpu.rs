//! `cpu`: seconds each CPU spent in each mode (`node_cpu_seconds_total`),
//! guest time, and on x86 the thermal throttle counters, from `/proc/stat`
//! and `/sys/devices/system/cpu`.
//!
//! Counters never go backwards: iowait and idle can dip on some kernels,
//! and a value lower than the last one is held at the last one, unless
//! idle fell by 3 s or more (a CPU was hot-plugged), which resets that CPU.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Deserialize;

use super::{CollectError, Collector, MetricWriter, Paths, paths};

/// `USER_HZ`: /proc/stat counts in hundredths of a second on every Linux
/// architecture.
const USER_HZ: f64 = 100.0;
/// A fall of idle time this large (seconds) means a hot-plugged CPU.
const JUMP_BACK_SECONDS: f64 = 3.0;
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// Options of the cpu collector.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Export `node_cpu_guest_seconds_total` (`--collector.cpu.guest`).
    pub guest: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { guest: true }
    }
}

/// One CPU's times in seconds: the eight modes, then guest and guest_nice.
pub type CpuTimes = [f64; 10];

/// Parses the `cpuN` lines of `/proc/stat` (not the `cpu` total).
pub fn parse_cpu_lines(text: &str) -> Result<BTreeMap<u32, CpuTimes>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(key) = it.next() else { continue };
        let Some(num) = key.strip_prefix("cpu") else {
            continue;
        };
        if num.is_empty() {
            continue;
        }
        let n: u32 = num
            .parse()
            .map_err(|_| format!("invalid cpu line: {line:?}"))?;
        let mut t = [0.0; 10];
        for (i, field) in it.take(10).enumerate() {
            let v: u64 = field
                .parse()
                .map_err(|_| format!("invalid cpu line: {line:?}"))?;
            t[i] = v as f64 / USER_HZ;
        }
        out.insert(n, t);
    }
    Ok(out)
}

/// Reads per-CPU times and throttle counters.
pub struct Cpu {
    paths: Paths,
    guest: bool,
    last: Mutex<HashMap<u32, CpuTimes>>,
}

impl Cpu {
    /// A collector reading below `paths`.
    pub fn new(paths: Paths, s: &Settings) -> Self {
        Cpu {
            paths,
            guest: s.guest,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Holds counters that went backwards (see the module doc).
    fn monotonic(&self, cpus: &mut BTreeMap<u32, CpuTimes>) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        for (n, t) in cpus.iter_mut() {
            let prev = last.entry(*n).or_insert([0.0; 10]);
            if prev[3] - t[3] >= JUMP_BACK_SECONDS {
                *prev = [0.0; 10];
            }
            for i in 0..10 {
                if t[i] >= prev[i] {
                    prev[i] = t[i];
                } else {
                    t[i] = prev[i];
                }
            }
        }
        last.retain(|n, _| cpus.contains_key(n));
    }

    fn throttles(&self, out: &mut MetricWriter) {
        let base = self.paths.sys("devices/system/cpu");
        let Ok(Some(entries)) = paths::list_dir(&base) else {
            return;
        };
        let mut cores: BTreeMap<(String, String), f64> = BTreeMap::new();
        let mut packages: BTreeMap<String, f64> = BTreeMap::new();
        for e in entries {
            if !e
                .strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            {
                continue;
            }
            let dir = base.join(&e);
            let Some(pkg) = paths::attr(&dir.join("topology/physical_package_id")) else {
                continue;
            };
            let Some(core) = paths::attr(&dir.join("topology/core_id")) else {
                continue;
            };
            if let Some(v) = paths::attr_i64(&dir.join("thermal_throttle/core_throttle_count")) {
                cores.entry((core, pkg.clone())).or_insert(v as f64);
            }
            if let Some(v) = paths::attr_i64(&dir.join("thermal_throttle/package_throttle_count")) {
                packages.entry(pkg).or_insert(v as f64);
            }
        }
        for ((core, pkg), v) in cores {
            out.counter(
                "node_cpu_core_throttles_total",
                "Number of times this CPU core has been throttled.",
                &[("core", &core), ("package", &pkg)],
                v,
            );
        }
        for (pkg, v) in packages {
            out.counter(
                "node_cpu_package_throttles_total",
                "Number of times this CPU package has been throttled.",
                &[("package", &pkg)],
                v,
            );
        }
    }
}

impl Collector for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let path = self.paths.proc("stat");
        let mut cpus =
            parse_cpu_lines(&paths::read(&path)?).map_err(|m| CollectError::parse(&path, m))?;
        self.monotonic(&mut cpus);
        let mut num = String::new();
        for (n, t) in &cpus {
            num.clear();
            num.push_str(&n.to_string());
            for (i, mode) in MODES.iter().enumerate() {
                out.counter(
                    "node_cpu_seconds_total",
                    "Seconds the CPUs spent in each mode.",
                    &[("cpu", &num), ("mode", mode)],
                    t[i],
                );
            }
            if self.guest {
                for (i, mode) in [(8, "user"), (9, "nice")] {
                    out.counter(
                        "node_cpu_guest_seconds_total",
                        "Seconds the CPUs spent in guests (VMs) for each mode.",
                        &[("cpu", &num), ("mode", mode)],
                        t[i],
                    );
                }
            }
        }
        self.throttles(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_parse_cpu_lines_in_seconds() {
        let m = parse_cpu_lines(
            "cpu  1 2 3 4\ncpu0 640211 512 230114 9756112 13811 0 7120 0 5 0\nintr 1\n",
        )
        .unwrap_or_default();
        assert_eq!(m.len(), 1);
        assert_eq!(m[&0][0], 6402.11);
        assert_eq!(m[&0][8], 0.05);
    }

    #[test]
    fn can_hold_counters_that_go_backwards() {
        let c = Cpu::new(Paths::default(), &Settings::default());
        let mut a = BTreeMap::from([(0, [1.0, 0.0, 0.0, 100.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0])]);
        c.monotonic(&mut a);
        let mut b = BTreeMap::from([(0, [2.0, 0.0, 0.0, 101.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0])]);
        c.monotonic(&mut b);
        assert_eq!(b[&0][4], 5.0, "iowait held");
        let mut hotplug = BTreeMap::from([(0, [0.1, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])]);
        c.monotonic(&mut hotplug);
        assert_eq!(hotplug[&0][3], 1.0, "reset after a hot-plug");
    }
}
