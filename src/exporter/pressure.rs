//! `pressure`: pressure stall information (PSI) from `/proc/pressure`:
//! how long tasks waited for CPU, I/O and memory. Needs Linux ≥ 4.20 with
//! `CONFIG_PSI`; absent PSI is reported as no data.

use super::{CollectError, Collector, MetricWriter, Paths};

/// Reads `/proc/pressure/{cpu,io,memory}`.
pub struct Pressure {
    paths: Paths,
}

impl Pressure {
    /// A collector reading below `paths.procfs`.
    pub fn new(paths: Paths) -> Self {
        Pressure { paths }
    }
}

/// The `total=` microseconds of the `some` and `full` lines.
pub fn parse_psi(text: &str) -> Result<(Option<u64>, Option<u64>), String> {
    let (mut some, mut full) = (None, None);
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let slot = match it.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        let total = it
            .find_map(|kv| kv.strip_prefix("total="))
            .ok_or_else(|| format!("no total in line {line:?}"))?;
        *slot = Some(
            total
                .parse()
                .map_err(|_| format!("invalid total in line {line:?}"))?,
        );
    }
    Ok((some, full))
}

impl Collector for Pressure {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        for res in ["cpu", "io", "memory"] {
            let path = self.paths.proc(&format!("pressure/{res}"));
            let text = match super::paths::read_file(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(CollectError::NoData);
                }
                Err(source) => return Err(CollectError::Io { path, source }),
            };
            let (some, full) = parse_psi(&text).map_err(|m| CollectError::parse(&path, m))?;
            let secs = |us: u64| us as f64 / 1000.0 / 1000.0;
            match res {
                "cpu" => {
                    if let Some(v) = some {
                        out.counter(
                            "node_pressure_cpu_waiting_seconds_total",
                            "Total time in seconds that processes have waited for CPU time",
                            &[],
                            secs(v),
                        );
                    }
                }
                "io" => {
                    if let Some(v) = some {
                        out.counter(
                            "node_pressure_io_waiting_seconds_total",
                            "Total time in seconds that processes have waited due to IO congestion",
                            &[],
                            secs(v),
                        );
                    }
                    if let Some(v) = full {
                        out.counter(
                            "node_pressure_io_stalled_seconds_total",
                            "Total time in seconds no process could make progress due to IO congestion",
                            &[],
                            secs(v),
                        );
                    }
                }
                _ => {
                    if let Some(v) = some {
                        out.counter(
                            "node_pressure_memory_waiting_seconds_total",
                            "Total time in seconds that processes have waited for memory",
                            &[],
                            secs(v),
                        );
                    }
                    if let Some(v) = full {
                        out.counter(
                            "node_pressure_memory_stalled_seconds_total",
                            "Total time in seconds no process could make progress due to memory congestion",
                            &[],
                            secs(v),
                        );
                    }
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
    fn can_parse_some_and_full() {
        let t = "some avg10=0.00 avg60=0.12 avg300=0.10 total=141234567\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_psi(t), Ok((Some(141234567), Some(0))));
    }

    #[test]
    fn returns_error_when_total_is_missing() {
        assert!(parse_psi("some avg10=0.00\n").is_err());
    }
}
