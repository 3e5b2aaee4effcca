//! hwmon devices (`/sys/class/hwmon/hwmonN`): fans, temperatures, rails.
//!
//! A device is chosen by a [`Selector`]: its `name` file (`pwmfan`,
//! `rpi_volt`, `ina3221`), its stable device path (the resolved `device`
//! symlink, e.g. `/sys/bus/i2c/devices/1-0040` or
//! `…/platform/cooling_fan`), or its driver (basename of the
//! `device/driver` link), alone or together. Never by the `hwmonN` index:
//! the kernel numbers hwmon devices in probe order, which changes across
//! boots and when a driver is rebound. A [`Hwmon`] keeps its selector and
//! finds its device again when an attribute vanishes (the device was
//! renumbered while the agent ran).
//!
//! Units (kernel `Documentation/hwmon/sysfs-interface`): `pwmN` 0–255,
//! `fanN_input` RPM, `tempN_input` m°C, `inN_input` mV, `currN_input` mA,
//! `powerN_input` µW. `inN_label` names a channel; the Jetson device trees
//! label unconnected INA3221 channels "NC" (hardware reference §6.2 \[V\]).
//!
//! `pwmN_enable`: 1 is manual control for most hwmon fan drivers; other
//! values hand the fan to the chip's or the kernel's automatic mode. The
//! fan loop calls [`HwmonFan::assert_manual`] every period (and
//! [`HwmonFan::set_duty`](crate::devices::Fan::set_duty) does it too), so
//! a tool or a driver reload that set it back to automatic loses within
//! one period. For the `pwm-fan` driver (Pi 5, Jetson JP5/6)
//! `pwm1_enable` only says what happens at `pwm1` = 0 (1: PWM off,
//! supply kept), and 1 is the driver's default.
//!
//! Older kernels put the attributes in `hwmonN/device/` instead of
//! `hwmonN/`; both are read.
//!
//! To extend: a new hwmon channel type gets a small struct holding a
//! [`Hwmon`] and a channel index, implementing a device trait, with a
//! `by_label` constructor when the driver labels its channels.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{
    canonical, device_matches, is_gone, link_basename, numbered_entries, parse_number, read_string,
    write_str,
};
use crate::devices::{Fan, PowerMonitor, TemperatureSensor, check_duty};
use crate::{Error, Result};

/// The label that marks an unconnected channel.
pub const NOT_CONNECTED: &str = "NC";

/// Which hwmon device: every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Content of the `name` file (`pwmfan`, `ina3221`, `rpi_volt`).
    pub name: Option<String>,
    /// Device path: absolute under the sysfs root (`/sys/bus/i2c/devices/1-0040`,
    /// resolved through its symlinks) or a trailing part of the resolved
    /// device path (`1-0040`, `platform/cooling_fan`).
    pub device: Option<String>,
    /// Driver name (basename of `device/driver`).
    pub driver: Option<String>,
}

impl Selector {
    /// Selects by the `name` file.
    pub fn name(name: impl Into<String>) -> Self {
        Selector {
            name: Some(name.into()),
            ..Selector::default()
        }
    }

    /// Selects by device path.
    pub fn device(path: impl Into<String>) -> Self {
        Selector {
            device: Some(path.into()),
            ..Selector::default()
        }
    }

    /// Selects by driver name.
    pub fn driver(driver: impl Into<String>) -> Self {
        Selector {
            driver: Some(driver.into()),
            ..Selector::default()
        }
    }

    /// Also requires the `name` file.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Also requires the device path.
    pub fn with_device(mut self, path: impl Into<String>) -> Self {
        self.device = Some(path.into());
        self
    }

    /// Also requires the driver.
    pub fn with_driver(mut self, driver: impl Into<String>) -> Self {
        self.driver = Some(driver.into());
        self
    }

    fn matches(&self, sysfs: &Path, c: &Candidate) -> bool {
        if let Some(n) = &self.name {
            if c.name.as_deref() != Some(n.as_str()) {
                return false;
            }
        }
        if let Some(d) = &self.device {
            match &c.device {
                Some(dev) if device_matches(sysfs, dev, d) => {}
                _ => return false,
            }
        }
        if let Some(d) = &self.driver {
            if c.driver.as_deref() != Some(d.as_str()) {
                return false;
            }
        }
        true
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = &self.name {
            parts.push(format!("name={n}"));
        }
        if let Some(d) = &self.device {
            parts.push(format!("device={d}"));
        }
        if let Some(d) = &self.driver {
            parts.push(format!("driver={d}"));
        }
        if parts.is_empty() {
            f.write_str("(any)")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

struct Candidate {
    attrs: PathBuf,
    name: Option<String>,
    device: Option<PathBuf>,
    driver: Option<String>,
}

fn candidates(sysfs: &Path) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for (_, entry) in numbered_entries(&sysfs.join("class/hwmon"), "hwmon")? {
        // A device that vanishes while we scan is simply not a candidate.
        let Ok(dir) = canonical(&entry) else { continue };
        let attrs = if dir.join("name").exists() {
            dir.clone()
        } else if dir.join("device/name").exists() {
            dir.join("device")
        } else {
            dir.clone()
        };
        let name = read_string(&attrs.join("name")).ok();
        let device = std::fs::canonicalize(dir.join("device")).ok();
        let driver = link_basename(&dir.join("device/driver"));
        out.push(Candidate {
            attrs,
            name,
            device,
            driver,
        });
    }
    Ok(out)
}

/// One hwmon device, found by its [`Selector`].
#[derive(Debug, Clone)]
pub struct Hwmon {
    sysfs: PathBuf,
    selector: Selector,
    dir: PathBuf,
}

impl Hwmon {
    /// Finds the one hwmon device under `sysfs` that `selector` matches.
    /// None is [`Error::Io`] `NotFound` (driver not bound, overlay not
    /// loaded); several is [`Error::Invalid`] (add a device path).
    pub fn open(sysfs: &Path, selector: Selector) -> Result<Hwmon> {
        let dir = resolve(sysfs, &selector)?;
        Ok(Hwmon {
            sysfs: sysfs.to_path_buf(),
            selector,
            dir,
        })
    }

    /// Every hwmon device under `sysfs` that `selector` matches, in index
    /// order.
    pub fn find_all(sysfs: &Path, selector: &Selector) -> Result<Vec<Hwmon>> {
        Ok(candidates(sysfs)?
            .into_iter()
            .filter(|c| selector.matches(sysfs, c))
            .map(|c| Hwmon {
                sysfs: sysfs.to_path_buf(),
                selector: selector.clone(),
                dir: c.attrs,
            })
            .collect())
    }

    /// Finds the device again (after a renumbering or a driver rebind).
    pub fn reopen(&mut self) -> Result<()> {
        self.dir = resolve(&self.sysfs, &self.selector)?;
        Ok(())
    }

    /// The directory holding the attributes now.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The selector this device was found by.
    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// The `name` file.
    pub fn name(&mut self) -> Result<String> {
        self.read("name")
    }

    /// The resolved device path, if the device has one.
    pub fn device_path(&self) -> Option<PathBuf> {
        std::fs::canonicalize(self.dir.join("device")).ok()
    }

    /// The path of an attribute.
    pub fn attr_path(&self, attr: &str) -> PathBuf {
        self.dir.join(attr)
    }

    /// Whether the device has an attribute.
    pub fn has(&self, attr: &str) -> bool {
        self.dir.join(attr).exists()
    }

    fn retry<T>(&mut self, f: impl Fn(&Path) -> Result<T>) -> Result<T> {
        match f(&self.dir) {
            Err(e) if is_gone(&e) && !self.dir.exists() => {
                self.reopen()?;
                f(&self.dir)
            }
            r => r,
        }
    }

    /// Reads an attribute as trimmed text, finding the device again if it
    /// was renumbered.
    pub fn read(&mut self, attr: &str) -> Result<String> {
        self.retry(|d| read_string(&d.join(attr)))
    }

    /// Reads an attribute as an integer.
    pub fn read_i64(&mut self, attr: &str) -> Result<i64> {
        self.retry(|d| {
            let p = d.join(attr);
            parse_number(&p, &read_string(&p)?)
        })
    }

    /// Writes an attribute.
    pub fn write(&mut self, attr: &str, value: &str) -> Result<()> {
        self.retry(|d| write_str(&d.join(attr), value))
    }

    /// The labels of channels of one type (`in`, `curr`, `temp`, `fan`),
    /// as (index, label), in index order.
    pub fn labels(&mut self, kind: &str) -> Result<Vec<(u32, String)>> {
        let dir = self.dir.clone();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                let err = super::io_error(&dir, &e);
                if is_gone(&err) {
                    self.reopen()?;
                    std::fs::read_dir(&self.dir).map_err(|e| super::io_error(&self.dir, &e))?
                } else {
                    return Err(err);
                }
            }
        };
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let fname = entry.file_name();
            let fname = fname.to_string_lossy();
            let Some(index) = fname
                .strip_prefix(kind)
                .and_then(|r| r.strip_suffix("_label"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            out.push((index, read_string(&entry.path())?));
        }
        out.sort_by_key(|(i, _)| *i);
        Ok(out)
    }

    /// The index of the channel of type `kind` labelled `label`. "NC"
    /// (not connected) is never a channel to use.
    pub fn find_label(&mut self, kind: &str, label: &str) -> Result<u32> {
        if is_not_connected(label) {
            return Err(Error::Invalid {
                chip: "hwmon",
                detail: format!("{label:?} marks an unconnected channel, not a rail"),
            });
        }
        let labels = self.labels(kind)?;
        labels
            .iter()
            .find(|(_, l)| l == label)
            .map(|(i, _)| *i)
            .ok_or_else(|| Error::Io {
                path: self.dir.display().to_string(),
                kind: std::io::ErrorKind::NotFound,
                detail: format!(
                    "no {kind}*_label {label:?} (labels: {})",
                    labels
                        .iter()
                        .map(|(_, l)| l.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}

fn resolve(sysfs: &Path, selector: &Selector) -> Result<PathBuf> {
    let mut found: Vec<Candidate> = candidates(sysfs)?
        .into_iter()
        .filter(|c| selector.matches(sysfs, c))
        .collect();
    match found.len() {
        0 => Err(Error::Io {
            path: sysfs.join("class/hwmon").display().to_string(),
            kind: std::io::ErrorKind::NotFound,
            detail: format!("no hwmon device with {selector} (driver not bound?)"),
        }),
        1 => Ok(found.remove(0).attrs),
        n => Err(Error::Invalid {
            chip: "hwmon",
            detail: format!(
                "{n} hwmon devices match {selector} ({}); add a device path to choose one",
                found
                    .iter()
                    .map(|c| c.attrs.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Whether a channel label marks an unconnected channel.
pub fn is_not_connected(label: &str) -> bool {
    label.trim().eq_ignore_ascii_case(NOT_CONNECTED)
}

/// `pwmN` value (0–255) for a duty in percent, rounded to nearest.
pub fn percent_to_pwm(percent: f64) -> u8 {
    (percent.clamp(0.0, 100.0) * 255.0 / 100.0).round() as u8
}

/// Duty in percent for a `pwmN` value.
pub fn pwm_to_percent(pwm: u8) -> f64 {
    f64::from(pwm) * 100.0 / 255.0
}

/// A fan on an hwmon device: `pwmN`, `pwmN_enable`, `fanN_input`.
#[derive(Debug, Clone)]
pub struct HwmonFan {
    hwmon: Hwmon,
    index: u32,
}

impl HwmonFan {
    /// The fan on `pwm<index>` of `hwmon`; the attribute must exist.
    pub fn new(mut hwmon: Hwmon, index: u32) -> Result<HwmonFan> {
        hwmon.read(&format!("pwm{index}"))?;
        Ok(HwmonFan { hwmon, index })
    }

    /// The hwmon device.
    pub fn hwmon(&self) -> &Hwmon {
        &self.hwmon
    }

    /// Gives the hwmon device back.
    pub fn release(self) -> Hwmon {
        self.hwmon
    }

    /// Sets `pwmN_enable` to 1 (manual) unless it is 1 already; `true`
    /// when it had to (something else took the fan). A device without
    /// `pwmN_enable` is always manual. Call this every fan-loop period.
    pub fn assert_manual(&mut self) -> Result<bool> {
        match self.enable_mode()? {
            None | Some(1) => Ok(false),
            Some(_) => {
                self.set_enable_mode(1)?;
                Ok(true)
            }
        }
    }

    /// The raw `pwmN_enable` value; `None` without the attribute.
    pub fn enable_mode(&mut self) -> Result<Option<i64>> {
        let attr = format!("pwm{}_enable", self.index);
        match self.hwmon.read_i64(&attr) {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_gone(&e) && self.hwmon.dir().exists() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `pwmN_enable` as is (to restore a saved mode).
    pub fn set_enable_mode(&mut self, mode: i64) -> Result<()> {
        let attr = format!("pwm{}_enable", self.index);
        self.hwmon.write(&attr, &mode.to_string())
    }

    /// The raw `pwmN` value, 0–255.
    pub fn pwm(&mut self) -> Result<u8> {
        let attr = format!("pwm{}", self.index);
        let v = self.hwmon.read_i64(&attr)?;
        u8::try_from(v).map_err(|_| Error::Invalid {
            chip: "hwmon",
            detail: format!(
                "{}: {v} is outside 0–255",
                self.hwmon.attr_path(&attr).display()
            ),
        })
    }

    /// Writes `pwmN` as is.
    pub fn set_pwm(&mut self, pwm: u8) -> Result<()> {
        let attr = format!("pwm{}", self.index);
        self.hwmon.write(&attr, &pwm.to_string())
    }
}

impl Fan for HwmonFan {
    fn set_duty(&mut self, percent: f64) -> Result<()> {
        let p = check_duty("hwmon", percent)?;
        self.assert_manual()?;
        self.set_pwm(percent_to_pwm(p))
    }

    fn duty(&mut self) -> Result<f64> {
        Ok(pwm_to_percent(self.pwm()?))
    }

    fn rpm(&mut self) -> Result<Option<f64>> {
        let attr = format!("fan{}_input", self.index);
        match self.hwmon.read_i64(&attr) {
            Ok(v) => Ok(Some(v as f64)),
            Err(e) if is_gone(&e) && self.hwmon.dir().exists() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A temperature channel: `tempN_input` in m°C.
#[derive(Debug, Clone)]
pub struct HwmonTemp {
    hwmon: Hwmon,
    index: u32,
}

impl HwmonTemp {
    /// The channel `temp<index>` of `hwmon`.
    pub fn new(hwmon: Hwmon, index: u32) -> HwmonTemp {
        HwmonTemp { hwmon, index }
    }

    /// The channel whose `tempN_label` is `label`.
    pub fn by_label(mut hwmon: Hwmon, label: &str) -> Result<HwmonTemp> {
        let index = hwmon.find_label("temp", label)?;
        Ok(HwmonTemp { hwmon, index })
    }

    /// Gives the hwmon device back.
    pub fn release(self) -> Hwmon {
        self.hwmon
    }
}

impl TemperatureSensor for HwmonTemp {
    fn temperature_celsius(&mut self) -> Result<f64> {
        let m = self.hwmon.read_i64(&format!("temp{}_input", self.index))?;
        Ok(m as f64 / 1000.0)
    }
}

/// A power rail: `inN_input` (mV), `currN_input` (mA) and `powerN_input`
/// (µW) when the driver has it, else power = V × A.
#[derive(Debug, Clone)]
pub struct HwmonRail {
    hwmon: Hwmon,
    index: u32,
}

impl HwmonRail {
    /// The rail on channel `index` (`in<index>_input`, `curr<index>_input`).
    pub fn new(hwmon: Hwmon, index: u32) -> HwmonRail {
        HwmonRail { hwmon, index }
    }

    /// The rail whose `inN_label` is `label` ("NC" is refused).
    pub fn by_label(mut hwmon: Hwmon, label: &str) -> Result<HwmonRail> {
        let index = hwmon.find_label("in", label)?;
        Ok(HwmonRail { hwmon, index })
    }

    /// The channel index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Gives the hwmon device back.
    pub fn release(self) -> Hwmon {
        self.hwmon
    }
}

impl PowerMonitor for HwmonRail {
    fn bus_volts(&mut self) -> Result<f64> {
        Ok(self.hwmon.read_i64(&format!("in{}_input", self.index))? as f64 / 1000.0)
    }

    fn current_amps(&mut self) -> Result<f64> {
        Ok(self.hwmon.read_i64(&format!("curr{}_input", self.index))? as f64 / 1000.0)
    }

    fn power_watts(&mut self) -> Result<f64> {
        let attr = format!("power{}_input", self.index);
        if self.hwmon.has(&attr) {
            return Ok(self.hwmon.read_i64(&attr)? as f64 / 1_000_000.0);
        }
        Ok(self.bus_volts()? * self.current_amps()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_convert_percent_to_pwm_and_back() {
        assert_eq!(percent_to_pwm(0.0), 0);
        assert_eq!(percent_to_pwm(50.0), 128);
        assert_eq!(percent_to_pwm(100.0), 255);
        assert_eq!(pwm_to_percent(255), 100.0);
        assert_eq!(pwm_to_percent(0), 0.0);
    }

    #[test]
    fn can_recognise_not_connected_labels() {
        assert!(is_not_connected("NC"));
        assert!(is_not_connected("nc\n"));
        assert!(!is_not_connected("VDD_IN"));
    }

    #[test]
    fn can_describe_selector() {
        let s = Selector::name("ina3221").with_device("1-0040");
        assert_eq!(s.to_string(), "name=ina3221 device=1-0040");
    }
}
