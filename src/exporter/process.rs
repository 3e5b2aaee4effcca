//! The `process_*` metrics about the agent itself (CPU, memory, file
//! descriptors, start time), named as Prometheus client libraries name
//! them. Always read from the real `/proc/self`, whatever `--path.procfs`
//! says: they describe this process, not the host.

use std::fs;

use super::{MetricWriter, sys};

/// Fields of `/proc/self/stat` the metrics need.
#[derive(Debug, PartialEq)]
pub struct SelfStat {
    /// User plus system CPU seconds.
    pub cpu_seconds: f64,
    /// Start time in clock ticks after boot.
    pub start_ticks: f64,
    /// Virtual memory size in bytes.
    pub vsize: f64,
    /// Resident pages.
    pub rss_pages: f64,
}

/// Parses `/proc/<pid>/stat`; the command name may contain spaces and
/// parentheses, so fields are counted after the last `)`.
pub fn parse_self_stat(text: &str, ticks: f64) -> Option<SelfStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, so index 11.
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok());
    Some(SelfStat {
        cpu_seconds: (num(11)? + num(12)?) / ticks,
        start_ticks: num(19)?,
        vsize: num(20)?,
        rss_pages: num(21)?,
    })
}

/// Reads a limit's soft value from `/proc/self/limits`; `unlimited` is
/// reported as 2^64 as the Go client does.
pub fn parse_limit(text: &str, name: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let soft = line[name.len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        Some(18446744073709551615.0)
    } else {
        soft.parse().ok()
    }
}

/// Writes the process metrics; a metric whose source cannot be read is
/// left out.
pub fn write(out: &mut MetricWriter) {
    let ticks = sys::clock_ticks();
    if let Some(s) = fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| parse_self_stat(&t, ticks))
    {
        out.counter(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            &[],
            s.cpu_seconds,
        );
        out.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            &[],
            s.rss_pages * sys::page_size(),
        );
        out.gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            &[],
            s.vsize,
        );
        let btime = fs::read_to_string("/proc/stat").ok().and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("btime ")
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
        });
        if let Some(b) = btime {
            out.gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                &[],
                b + s.start_ticks / ticks,
            );
        }
    }
    if let Ok(rd) = fs::read_dir("/proc/self/fd") {
        out.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            &[],
            rd.count() as f64,
        );
    }
    if let Ok(limits) = fs::read_to_string("/proc/self/limits") {
        if let Some(v) = parse_limit(&limits, "Max open files") {
            out.gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                &[],
                v,
            );
        }
        if let Some(v) = parse_limit(&limits, "Max address space") {
            out.gauge(
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
                &[],
                v,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_parse_stat_with_spaces_in_comm() {
        let t = "42 (on prem) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1234 104857600 2560 18446744073709551615";
        let s = parse_self_stat(t, 100.0).expect("parses");
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.start_ticks, 1234.0);
        assert_eq!(s.vsize, 104857600.0);
        assert_eq!(s.rss_pages, 2560.0);
    }

    #[test]
    fn can_parse_limits() {
        let t = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\nMax address space         unlimited            unlimited            bytes\n";
        assert_eq!(parse_limit(t, "Max open files"), Some(1024.0));
        assert_eq!(
            parse_limit(t, "Max address space"),
            Some(18446744073709551615.0)
        );
    }
}
