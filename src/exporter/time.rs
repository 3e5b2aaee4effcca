//! `time`: the system clock (`node_time_seconds`), the local time zone's
//! offset, and the kernel's clock sources.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{CollectError, Collector, MetricWriter, Paths, paths, sys};

/// Reads the clock and `/sys/devices/system/clocksource`.
pub struct Time {
    paths: Paths,
}

impl Time {
    /// A collector reading below `paths.sysfs`.
    pub fn new(paths: Paths) -> Self {
        Time { paths }
    }
}

impl Collector for Time {
    fn name(&self) -> &'static str {
        "time"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        out.gauge(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            &[],
            now.as_nanos() as f64 / 1e9,
        );
        let (zone, offset) = sys::local_zone(now.as_secs() as i64);
        out.gauge(
            "node_time_zone_offset_seconds",
            "System time zone offset in seconds.",
            &[("time_zone", &zone)],
            offset as f64,
        );
        let base = self.paths.sys("devices/system/clocksource");
        for dev in paths::list_dir(&base).ok().flatten().unwrap_or_default() {
            let Some(n) = dev.strip_prefix("clocksource") else {
                continue;
            };
            let dir = base.join(&dev);
            if let Some(avail) = paths::attr(&dir.join("available_clocksource")) {
                for cs in avail.split_whitespace() {
                    out.gauge(
                        "node_time_clocksource_available_info",
                        "Available clocksources read from '/sys/devices/system/clocksource'.",
                        &[("device", n), ("clocksource", cs)],
                        1.0,
                    );
                }
            }
            if let Some(cur) = paths::attr(&dir.join("current_clocksource")) {
                out.gauge(
                    "node_time_clocksource_current_info",
                    "Current clocksource read from '/sys/devices/system/clocksource'.",
                    &[("device", n), ("clocksource", &cur)],
                    1.0,
                );
            }
        }
        Ok(())
    }
}
