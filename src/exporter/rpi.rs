//! `rpi`: Raspberry Pi under-voltage and throttling flags, read from
//! sysfs without `vcgencmd` (see `onprem_hal::rpi`), as `onprem_rpi_*`
//! metrics. Boards that are not a Pi report no data.
//!
//! - `onprem_rpi_throttled{flag}`: the condition holds now (bits 0–3).
//! - `onprem_rpi_throttled_since_boot{flag}`: it has happened since boot
//!   (sticky bits 16–19).
//! - `onprem_rpi_throttled_raw`: the whole firmware word, for alerts on
//!   bits this version does not name.
//! - `onprem_rpi_under_voltage_alarm`: the `rpi_volt` hwmon alarm, present
//!   on mainline kernels too.

use onprem_hal::rpi;

use super::{CollectError, Collector, MetricWriter, Paths, paths};

/// Reads the Pi firmware's throttling state.
pub struct Rpi {
    paths: Paths,
}

impl Rpi {
    /// A collector reading below `paths.sysfs`.
    pub fn new(paths: Paths) -> Self {
        Rpi { paths }
    }

    fn rpi_volt_alarm(&self) -> Option<f64> {
        let base = self.paths.sys("class/hwmon");
        let entries = paths::list_dir(&base).ok()??;
        entries.iter().find_map(|e| {
            let dir = base.join(e);
            (paths::attr(&dir.join("name")).as_deref() == Some("rpi_volt"))
                .then(|| paths::attr_i64(&dir.join("in0_lcrit_alarm")))
                .flatten()
                .map(|v| v as f64)
        })
    }
}

impl Collector for Rpi {
    fn name(&self) -> &'static str {
        "rpi"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let word = match rpi::read_throttled(&self.paths.sysfs) {
            Ok(w) => w,
            Err(rpi::Error::Io { path, source }) => return Err(CollectError::Io { path, source }),
            Err(rpi::Error::Parse { path, value }) => {
                return Err(CollectError::parse(
                    path,
                    format!("{value:?} is not a hex throttling word"),
                ));
            }
        };
        let alarm = self.rpi_volt_alarm();
        if word.is_none() && alarm.is_none() {
            return Err(CollectError::NoData);
        }
        if let Some(w) = word {
            out.gauge(
                "onprem_rpi_throttled_raw",
                "Raspberry Pi firmware throttling word (vcgencmd get_throttled), read from sysfs.",
                &[],
                w.0 as f64,
            );
            for f in &rpi::FLAGS {
                let (name, help) = if f.sticky {
                    (
                        "onprem_rpi_throttled_since_boot",
                        "Whether the Raspberry Pi firmware condition has occurred since boot (get_throttled bits 16-19).",
                    )
                } else {
                    (
                        "onprem_rpi_throttled",
                        "Whether the Raspberry Pi firmware condition holds now (get_throttled bits 0-3).",
                    )
                };
                out.gauge(
                    name,
                    help,
                    &[("flag", f.name)],
                    if w.is_set(f) { 1.0 } else { 0.0 },
                );
            }
        }
        if let Some(a) = alarm {
            out.gauge(
                "onprem_rpi_under_voltage_alarm",
                "Raspberry Pi under-voltage alarm of the rpi_volt hwmon chip (in0_lcrit_alarm).",
                &[],
                a,
            );
        }
        Ok(())
    }
}
