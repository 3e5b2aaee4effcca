//! `stat`: boot time, context switches, forks, interrupts and process
//! counts from `/proc/stat`.

use super::{CollectError, Collector, MetricWriter, Paths, paths};

/// Reads `/proc/stat`.
pub struct Stat {
    paths: Paths,
}

impl Stat {
    /// A collector reading below `paths.procfs`.
    pub fn new(paths: Paths) -> Self {
        Stat { paths }
    }
}

/// The system-wide fields of `/proc/stat`.
#[derive(Debug, Default, PartialEq)]
pub struct Fields {
    /// Total interrupts (first number of the `intr` line).
    pub intr: Option<f64>,
    /// Context switches.
    pub ctxt: Option<f64>,
    /// Boot time, Unix seconds.
    pub btime: Option<f64>,
    /// Forks since boot.
    pub processes: Option<f64>,
    /// Runnable processes.
    pub procs_running: Option<f64>,
    /// Processes blocked on I/O.
    pub procs_blocked: Option<f64>,
}

/// Parses the system-wide lines of `/proc/stat`.
pub fn parse_stat(text: &str) -> Result<Fields, String> {
    let mut f = Fields::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(key) = it.next() else { continue };
        let slot = match key {
            "intr" => &mut f.intr,
            "ctxt" => &mut f.ctxt,
            "btime" => &mut f.btime,
            "processes" => &mut f.processes,
            "procs_running" => &mut f.procs_running,
            "procs_blocked" => &mut f.procs_blocked,
            _ => continue,
        };
        let v = it
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| format!("invalid {key} line: {line:?}"))?;
        *slot = Some(v as f64);
    }
    Ok(f)
}

impl Collector for Stat {
    fn name(&self) -> &'static str {
        "stat"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let path = self.paths.proc("stat");
        let f = parse_stat(&paths::read(&path)?).map_err(|m| CollectError::parse(&path, m))?;
        if let Some(v) = f.intr {
            out.counter(
                "node_intr_total",
                "Total number of interrupts serviced.",
                &[],
                v,
            );
        }
        if let Some(v) = f.ctxt {
            out.counter(
                "node_context_switches_total",
                "Total number of context switches.",
                &[],
                v,
            );
        }
        if let Some(v) = f.processes {
            out.counter("node_forks_total", "Total number of forks.", &[], v);
        }
        if let Some(v) = f.btime {
            out.gauge(
                "node_boot_time_seconds",
                "Node boot time, in unixtime.",
                &[],
                v,
            );
        }
        if let Some(v) = f.procs_running {
            out.gauge(
                "node_procs_running",
                "Number of processes in runnable state.",
                &[],
                v,
            );
        }
        if let Some(v) = f.procs_blocked {
            out.gauge(
                "node_procs_blocked",
                "Number of processes blocked waiting for I/O to complete.",
                &[],
                v,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_parse_system_fields() {
        let f = parse_stat("cpu 1 2 3\nintr 55 1 2\nctxt 9\nbtime 100\nprocesses 7\nprocs_running 2\nprocs_blocked 0\n").unwrap_or_default();
        assert_eq!(f.intr, Some(55.0));
        assert_eq!(f.btime, Some(100.0));
        assert_eq!(f.procs_blocked, Some(0.0));
    }

    #[test]
    fn returns_error_when_ctxt_is_garbage() {
        assert!(parse_stat("ctxt many\n").is_err());
    }
}
