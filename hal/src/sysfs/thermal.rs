//! Thermal zones and cooling devices (`/sys/class/thermal`).
//!
//! A zone (`thermal_zoneN`) has a `type` (`cpu-thermal` on a Pi, `GPU-therm`
//! on a Jetson Nano, `gpu-thermal` on Orin), `temp` in m°C, the governor
//! `policy` (`step_wise`, `user_space`, … as listed in
//! `available_policies`) and, on most kernels, `mode` (`enabled` /
//! `disabled`). Its cooling devices appear as `cdevK` links to
//! `cooling_deviceN`, each with a `type` (`pwm-fan`, `cpufreq-cpu0`),
//! `cur_state` and `max_state`.
//!
//! Zones are found by type, never by their number (probe order). A
//! [`Zone`] finds itself again when its directory vanishes.
//!
//! Facts: Pi CPU temperature from `thermal_zone0/temp` in m°C (hardware
//! reference §5 \[V\]); Jetson GPU zones `GPU-therm` / `gpu-thermal`
//! (§6.3 \[T\]).
//!
//! To extend: another zone attribute is a method on [`Zone`] built on the
//! helpers in [`super`].

use std::path::{Path, PathBuf};

use super::{is_gone, numbered_entries, read_optional, read_string, read_u64, write_str};
use crate::devices::TemperatureSensor;
use crate::{Error, Result};

/// The policy that leaves cooling devices to user space.
pub const USER_SPACE: &str = "user_space";

fn zones_dir(sysfs: &Path) -> PathBuf {
    sysfs.join("class/thermal")
}

fn find_typed(sysfs: &Path, prefix: &str, kind: &str) -> Result<PathBuf> {
    let dir = zones_dir(sysfs);
    let mut found = Vec::new();
    let mut seen = Vec::new();
    for (_, entry) in numbered_entries(&dir, prefix)? {
        let Ok(t) = read_string(&entry.join("type")) else {
            continue;
        };
        if t == kind {
            found.push(entry);
        } else {
            seen.push(t);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::Io {
            path: dir.display().to_string(),
            kind: std::io::ErrorKind::NotFound,
            detail: format!("no {prefix} of type {kind:?} (types: {})", seen.join(", ")),
        }),
        n => Err(Error::Invalid {
            chip: "thermal",
            detail: format!("{n} {prefix}s have type {kind:?}"),
        }),
    }
}

/// A thermal zone, found by its `type`.
#[derive(Debug, Clone)]
pub struct Zone {
    sysfs: PathBuf,
    kind: String,
    dir: PathBuf,
}

impl Zone {
    /// The zone of type `kind` under `sysfs` (exactly one must exist).
    pub fn open(sysfs: &Path, kind: &str) -> Result<Zone> {
        let dir = find_typed(sysfs, "thermal_zone", kind)?;
        Ok(Zone {
            sysfs: sysfs.to_path_buf(),
            kind: kind.to_string(),
            dir,
        })
    }

    /// The first of `kinds` that exists, in the order given; `None` when
    /// none does.
    pub fn open_any(sysfs: &Path, kinds: &[&str]) -> Result<Option<Zone>> {
        for k in kinds {
            match Zone::open(sysfs, k) {
                Ok(z) => return Ok(Some(z)),
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Every zone, in number order.
    pub fn all(sysfs: &Path) -> Result<Vec<Zone>> {
        let mut out = Vec::new();
        for (_, dir) in numbered_entries(&zones_dir(sysfs), "thermal_zone")? {
            let Ok(kind) = read_string(&dir.join("type")) else {
                continue;
            };
            out.push(Zone {
                sysfs: sysfs.to_path_buf(),
                kind,
                dir,
            });
        }
        Ok(out)
    }

    /// The zone's `type`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The zone's directory now.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn retry<T>(&mut self, f: impl Fn(&Path) -> Result<T>) -> Result<T> {
        match f(&self.dir) {
            Err(e) if is_gone(&e) && !self.dir.exists() => {
                self.dir = find_typed(&self.sysfs, "thermal_zone", &self.kind)?;
                f(&self.dir)
            }
            r => r,
        }
    }

    /// The temperature, m°C.
    pub fn millicelsius(&mut self) -> Result<i64> {
        self.retry(|d| super::read_i64(&d.join("temp")))
    }

    /// The governor in charge.
    pub fn policy(&mut self) -> Result<String> {
        self.retry(|d| read_string(&d.join("policy")))
    }

    /// Hands the zone to another governor.
    pub fn set_policy(&mut self, policy: &str) -> Result<()> {
        self.retry(|d| write_str(&d.join("policy"), policy))
    }

    /// The governors this kernel offers.
    pub fn available_policies(&mut self) -> Result<Vec<String>> {
        let t = self.retry(|d| read_string(&d.join("available_policies")))?;
        Ok(t.split_whitespace().map(str::to_string).collect())
    }

    /// `enabled` / `disabled`; `None` on kernels without `mode`.
    pub fn mode(&mut self) -> Result<Option<String>> {
        self.retry(|d| read_optional(&d.join("mode")))
    }

    /// Enables or disables the zone (`enabled` / `disabled`).
    pub fn set_mode(&mut self, mode: &str) -> Result<()> {
        self.retry(|d| write_str(&d.join("mode"), mode))
    }

    /// The cooling devices bound to this zone (its `cdevK` links).
    pub fn cooling_devices(&mut self) -> Result<Vec<CoolingDevice>> {
        let entries = self.retry(|d| {
            if d.exists() {
                numbered_entries(d, "cdev")
            } else {
                Err(Error::io(
                    d,
                    &std::io::Error::from(std::io::ErrorKind::NotFound),
                ))
            }
        })?;
        let mut out = Vec::new();
        for (_, link) in entries {
            // `cdevK_trip_point` and `cdevK_weight` do not parse as numbers
            // after the prefix, so only the links are here.
            if let Ok(dir) = std::fs::canonicalize(&link) {
                if let Ok(kind) = read_string(&dir.join("type")) {
                    out.push(CoolingDevice { dir, kind });
                }
            }
        }
        Ok(out)
    }
}

impl TemperatureSensor for Zone {
    fn temperature_celsius(&mut self) -> Result<f64> {
        Ok(self.millicelsius()? as f64 / 1000.0)
    }
}

/// A cooling device (`cooling_deviceN`).
#[derive(Debug, Clone)]
pub struct CoolingDevice {
    dir: PathBuf,
    kind: String,
}

impl CoolingDevice {
    /// The cooling device of type `kind` (exactly one must exist).
    pub fn open(sysfs: &Path, kind: &str) -> Result<CoolingDevice> {
        let dir = find_typed(sysfs, "cooling_device", kind)?;
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        Ok(CoolingDevice {
            dir,
            kind: kind.to_string(),
        })
    }

    /// Every cooling device, in number order.
    pub fn all(sysfs: &Path) -> Result<Vec<CoolingDevice>> {
        let mut out = Vec::new();
        for (_, dir) in numbered_entries(&zones_dir(sysfs), "cooling_device")? {
            let Ok(kind) = read_string(&dir.join("type")) else {
                continue;
            };
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            out.push(CoolingDevice { dir, kind });
        }
        Ok(out)
    }

    /// The device's `type`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The device's directory (symlinks resolved).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current cooling state.
    pub fn cur_state(&self) -> Result<u64> {
        read_u64(&self.dir.join("cur_state"))
    }

    /// Sets the cooling state (0 to [`max_state`](Self::max_state)).
    pub fn set_cur_state(&self, state: u64) -> Result<()> {
        write_str(&self.dir.join("cur_state"), &state.to_string())
    }

    /// The highest state.
    pub fn max_state(&self) -> Result<u64> {
        read_u64(&self.dir.join("max_state"))
    }
}
