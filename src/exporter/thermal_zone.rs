//! `thermal_zone`: thermal zone temperatures and cooling device states
//! from `/sys/class/thermal`. On a Raspberry Pi the SoC temperature is
//! `node_thermal_zone_temp{type="cpu-thermal"}`.

use super::{CollectError, Collector, MetricWriter, Paths, paths};

/// Reads `/sys/class/thermal`.
pub struct ThermalZone {
    paths: Paths,
}

impl ThermalZone {
    /// A collector reading below `paths.sysfs`.
    pub fn new(paths: Paths) -> Self {
        ThermalZone { paths }
    }
}

impl Collector for ThermalZone {
    fn name(&self) -> &'static str {
        "thermal_zone"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let base = self.paths.sys("class/thermal");
        let entries = paths::list_dir(&base)?.ok_or(CollectError::NoData)?;
        for e in entries {
            let dir = base.join(&e);
            if let Some(zone) = e.strip_prefix("thermal_zone") {
                let Some(ty) = paths::attr(&dir.join("type")) else {
                    continue;
                };
                // A zone whose sensor is asleep or absent answers EINVAL or
                // ENODATA: skip it rather than fail every zone.
                let Some(temp) = paths::attr_i64(&dir.join("temp")) else {
                    continue;
                };
                out.gauge(
                    "node_thermal_zone_temp",
                    "Zone temperature in Celsius",
                    &[("zone", zone), ("type", &ty)],
                    temp as f64 / 1000.0,
                );
            } else if let Some(n) = e.strip_prefix("cooling_device") {
                let Some(ty) = paths::attr(&dir.join("type")) else {
                    continue;
                };
                let labels = [("name", n), ("type", ty.as_str())];
                if let Some(v) = paths::attr_i64(&dir.join("cur_state")) {
                    out.gauge(
                        "node_cooling_device_cur_state",
                        "Current throttle state of the cooling device",
                        &labels,
                        v as f64,
                    );
                }
                if let Some(v) = paths::attr_i64(&dir.join("max_state")) {
                    out.gauge(
                        "node_cooling_device_max_state",
                        "Maximum throttle state of the cooling device",
                        &labels,
                        v as f64,
                    );
                }
            }
        }
        Ok(())
    }
}
