//! `watchdog`: hardware watchdogs from `/sys/class/watchdog` (the Pi's
//! BCM2835 watchdog, the Jetson's Tegra watchdog, iTCO on x86): timeout,
//! time left, boot status, and an info metric.

use super::{CollectError, Collector, MetricWriter, Paths, paths};

/// Reads `/sys/class/watchdog`.
pub struct Watchdog {
    paths: Paths,
}

impl Watchdog {
    /// A collector reading below `paths.sysfs`.
    pub fn new(paths: Paths) -> Self {
        Watchdog { paths }
    }
}

const NUMERIC: [(&str, &str); 7] = [
    ("bootstatus", "node_watchdog_bootstatus"),
    ("fw_version", "node_watchdog_fw_version"),
    ("nowayout", "node_watchdog_nowayout"),
    ("timeleft", "node_watchdog_timeleft_seconds"),
    ("timeout", "node_watchdog_timeout_seconds"),
    ("pretimeout", "node_watchdog_pretimeout_seconds"),
    ("access_cs0", "node_watchdog_access_cs0"),
];

impl Collector for Watchdog {
    fn name(&self) -> &'static str {
        "watchdog"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let base = self.paths.sys("class/watchdog");
        let entries = paths::list_dir(&base)?.ok_or(CollectError::NoData)?;
        for wd in entries {
            let dir = base.join(&wd);
            if !dir.is_dir() {
                continue;
            }
            let labels = [("name", wd.as_str())];
            for (file, name) in NUMERIC {
                if let Some(v) = paths::attr_i64(&dir.join(file)) {
                    out.gauge(
                        name,
                        &format!("Value of /sys/class/watchdog/<watchdog>/{file}"),
                        &labels,
                        v as f64,
                    );
                }
            }
            let a = |f: &str| paths::attr(&dir.join(f)).unwrap_or_default();
            out.gauge(
                "node_watchdog_info",
                "Info of /sys/class/watchdog/<watchdog>",
                &[
                    ("name", &wd),
                    ("options", &a("options")),
                    ("identity", &a("identity")),
                    ("state", &a("state")),
                    ("status", &a("status")),
                    ("pretimeout_governor", &a("pretimeout_governor")),
                ],
                1.0,
            );
        }
        Ok(())
    }
}
