//! NVIDIA Jetson through sysfs: fan, power rails, GPU load and frequency,
//! GPU thermal zone, nvpmodel.
//!
//! NVML is absent on JetPack ≤5 and answers NotSupported for almost
//! everything on JetPack 6/7 (hardware reference §6.5 \[V\]/\[T\]), so every
//! Jetson reading comes from sysfs here, with the sysfs root a parameter.
//!
//! ## Fan (§6.1)
//!
//! - JetPack 4 (L4T 32: Nano, TX2, Xavier) \[V\] `[S-JTOP-FAN]`:
//!   `/sys/devices/pwm-fan/` (some boards
//!   `/sys/kernel/debug/tegra_fan/`) with `target_pwm` (0–255, what we
//!   write), `cur_pwm` (ramps towards it), `rpm_measured`, `pwm_cap`
//!   and `temp_control` (1 = kernel curve, 0 = manual). [`Jp4Fan`] sets
//!   `temp_control` to 0 at the first duty and [`Jp4Fan::hand_back`]
//!   (or dropping it) restores it. Percent ↔ PWM as jtop does: pwm = % × 255 / 100,
//!   capped at `pwm_cap`.
//! - JetPack 5/6 (Orin, Xavier on L4T 35) \[V\] `[S-JTOP-FAN]`: hwmon
//!   `pwmfan` (`pwm1`, `pwm1_enable`) and the RPM in a separate hwmon
//!   `pwm_tach` (file `rpm`). The reference says to pair them by
//!   `of_node`; there is no link between the two nodes that we know of
//!   \[U\], so [`Jp6Fan`] takes a selector for each, and the default finds
//!   the one `pwmfan` and the one `pwm_tach`.
//!
//!   The userspace daemon **nvfancontrol** owns the fan on JetPack 5/6
//!   and rewrites `pwm1` by its own curve. The agent must stop it before
//!   it drives the fan (`systemctl stop nvfancontrol` and `disable`, or
//!   mask it in the image); [`Nvfancontrol::detect`] tells whether it is
//!   installed and running, so that the fan loop can refuse to fight it.
//!   Nothing here stops it.
//!
//! ## Power rails (§6.2)
//!
//! INA3221 on `/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon*/`
//! (JetPack 5/6: `inK_label`, `inK_input` mV, `currK_input` mA; power =
//! V × I) or `/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device*/`
//! (JetPack 4: `rail_name_K`, `in_voltageK_input` mV, `in_currentK_input`
//! mA, `in_powerK_input` mW) \[V\] `[S-JTOP-PWR]`. [`rails`] lists them by
//! label, skipping "NC" (not connected) and the sum channel
//! (`in7_label` "sum of shunt voltages"); [`Rail`] is a
//! [`PowerMonitor`].
//!
//! ## GPU (§6.3)
//!
//! Load per mille in `…/gpu.0/load` (`/sys/devices/gpu.0/load` on JP4,
//! `/sys/devices/platform/gpu.0/load` on Orin JP6; jtop reads
//! `<devfreq>/device/load`) \[V\]/\[T\]; the devfreq node is the one whose
//! `device/of_node/name` is one of [`GPU_OF_NAMES`] \[V\], with
//! `cur_freq`/`min_freq`/`max_freq` in Hz; the GPU's thermal zone is
//! `GPU-therm` or `gpu-thermal` \[T\]. [`JetsonGpu`] is a [`Gpu`]: identity
//! index 0, uuid = devfreq node name; a power limit is Unsupported (the
//! power knob on a Jetson is nvpmodel).
//!
//! ## nvpmodel (§6.4)
//!
//! `nvpmodel -q` prints `NV Power Mode: <NAME>` and the id on the next
//! line; `nvpmodel -m <id>` switches, and when the change needs a reboot
//! prints `NVPM WARNING` and asks for `YES` on stdin, and reboots when it
//! gets it; `NVPM ERROR` means failure \[V\] `[S-JTOP-NVP]`. [`Nvpmodel`]
//! runs a given executable, answers the prompt with `YES` only when the
//! caller allows a reboot ([`Reboot::Allow`]) and `NO` otherwise, and
//! reports what happened ([`SetOutcome`]). The parsers are pure functions.
//!
//! To extend: a new Jetson generation is usually new paths or names in
//! the candidate lists ([`JP4_FAN_DIRS`], [`GPU_OF_NAMES`],
//! [`GPU_ZONE_TYPES`], [`LOAD_PATHS`]) plus a board in
//! [`crate::sim::sysfs`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::devices::{Fan, Gpu, GpuEvent, GpuIdentity, GpuSample, PowerMonitor, check_duty};
use crate::sysfs::hwmon::{Hwmon, HwmonFan, Selector, is_not_connected};
use crate::sysfs::thermal::Zone;
use crate::sysfs::{is_gone, numbered_entries, read_optional, read_string, read_u64, write_str};
use crate::{Error, Result};

/// JetPack 4 fan directories, under the sysfs root, tried in order.
pub const JP4_FAN_DIRS: [&str; 2] = ["devices/pwm-fan", "kernel/debug/tegra_fan"];
/// `of_node/name` of a Jetson GPU's devfreq device.
pub const GPU_OF_NAMES: [&str; 5] = ["gp10b", "gv11b", "ga10b", "gb10b", "gpu"];
/// Thermal zone types of the GPU.
pub const GPU_ZONE_TYPES: [&str; 2] = ["GPU-therm", "gpu-thermal"];
/// GPU load files, under the sysfs root, after `<devfreq>/device/load`.
pub const LOAD_PATHS: [&str; 2] = ["devices/gpu.0/load", "devices/platform/gpu.0/load"];
/// INA3221 driver directories: mainline hwmon, NVIDIA IIO (JetPack 4).
pub const INA3221_DRIVERS: [&str; 2] = ["bus/i2c/drivers/ina3221", "bus/i2c/drivers/ina3221x"];

/// PWM value for a duty in percent (jtop: % × 255 / 100), capped.
pub fn percent_to_pwm(percent: f64, cap: u8) -> u8 {
    let v = (percent.clamp(0.0, 100.0) * 255.0 / 100.0).round() as u8;
    v.min(cap)
}

// ---------------------------------------------------------------- fan

/// The JetPack 4 fan (`/sys/devices/pwm-fan`).
#[derive(Debug)]
pub struct Jp4Fan {
    dir: PathBuf,
    saved_temp_control: Option<String>,
}

impl Jp4Fan {
    /// Finds the fan directory under `sysfs` ([`JP4_FAN_DIRS`]).
    pub fn open(sysfs: &Path) -> Result<Jp4Fan> {
        for d in JP4_FAN_DIRS {
            let dir = sysfs.join(d);
            if dir.join("target_pwm").exists() {
                return Ok(Jp4Fan {
                    dir,
                    saved_temp_control: None,
                });
            }
        }
        Err(Error::Io {
            path: sysfs.join(JP4_FAN_DIRS[0]).display().to_string(),
            kind: std::io::ErrorKind::NotFound,
            detail: "no JetPack 4 fan (target_pwm)".into(),
        })
    }

    /// The fan directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the fan from the kernel curve (`temp_control` 0), saving the
    /// old value; `true` when it had to write.
    pub fn assert_manual(&mut self) -> Result<bool> {
        let p = self.dir.join("temp_control");
        let Some(cur) = read_optional(&p)? else {
            return Ok(false);
        };
        if self.saved_temp_control.is_none() {
            self.saved_temp_control = Some(cur.clone());
        }
        if cur == "0" {
            return Ok(false);
        }
        write_str(&p, "0")?;
        Ok(true)
    }

    /// Gives the fan back to the kernel curve (restores `temp_control`).
    pub fn hand_back(&mut self) -> Result<()> {
        if let Some(v) = self.saved_temp_control.take() {
            write_str(&self.dir.join("temp_control"), &v)?;
        }
        Ok(())
    }

    fn cap(&self) -> Result<u8> {
        Ok(match read_optional(&self.dir.join("pwm_cap"))? {
            Some(t) => {
                crate::sysfs::parse_number::<u64>(&self.dir.join("pwm_cap"), &t)?.min(255) as u8
            }
            None => 255,
        })
    }
}

impl Drop for Jp4Fan {
    /// Gives the fan back to the kernel curve, best effort.
    fn drop(&mut self) {
        let _ = self.hand_back();
    }
}

impl Fan for Jp4Fan {
    fn set_duty(&mut self, percent: f64) -> Result<()> {
        let p = check_duty("jetson-fan", percent)?;
        self.assert_manual()?;
        let pwm = percent_to_pwm(p, self.cap()?);
        write_str(&self.dir.join("target_pwm"), &pwm.to_string())
    }

    /// `target_pwm` (what was set; `cur_pwm` ramps towards it).
    fn duty(&mut self) -> Result<f64> {
        let v = read_u64(&self.dir.join("target_pwm"))?;
        Ok(v.min(255) as f64 * 100.0 / 255.0)
    }

    fn rpm(&mut self) -> Result<Option<f64>> {
        Ok(read_optional(&self.dir.join("rpm_measured"))?.and_then(|t| t.parse::<f64>().ok()))
    }
}

/// The JetPack 5/6 fan: hwmon `pwmfan` and the `pwm_tach` tachometer.
#[derive(Debug)]
pub struct Jp6Fan {
    fan: HwmonFan,
    tach: Option<Hwmon>,
}

impl Jp6Fan {
    /// The one `pwmfan` and the one `pwm_tach` (if any) under `sysfs`.
    pub fn open(sysfs: &Path) -> Result<Jp6Fan> {
        let tach = match Hwmon::open(sysfs, Selector::name("pwm_tach")) {
            Ok(t) => Some(t),
            Err(e) if is_gone(&e) => None,
            Err(e) => return Err(e),
        };
        Self::open_with(sysfs, Selector::name("pwmfan"), tach)
    }

    /// The fan `fan` selects, with the tachometer `tach` (`None`: no RPM).
    pub fn open_with(sysfs: &Path, fan: Selector, tach: Option<Hwmon>) -> Result<Jp6Fan> {
        Ok(Jp6Fan {
            fan: HwmonFan::new(Hwmon::open(sysfs, fan)?, 1)?,
            tach,
        })
    }

    /// Re-asserts `pwm1_enable` = 1 (call every period).
    pub fn assert_manual(&mut self) -> Result<bool> {
        self.fan.assert_manual()
    }
}

impl Fan for Jp6Fan {
    fn set_duty(&mut self, percent: f64) -> Result<()> {
        self.fan.set_duty(percent)
    }

    fn duty(&mut self) -> Result<f64> {
        self.fan.duty()
    }

    fn rpm(&mut self) -> Result<Option<f64>> {
        match self.tach.as_mut() {
            Some(t) => Ok(Some(t.read_i64("rpm")? as f64)),
            None => self.fan.rpm(),
        }
    }
}

/// A Jetson fan of either generation.
#[derive(Debug)]
pub enum JetsonFan {
    /// `/sys/devices/pwm-fan` (JetPack 4).
    Jp4(Jp4Fan),
    /// hwmon `pwmfan` + `pwm_tach` (JetPack 5/6).
    Jp6(Jp6Fan),
}

impl JetsonFan {
    /// The JetPack 4 fan if there is one, else the JetPack 5/6 fan.
    pub fn open(sysfs: &Path) -> Result<JetsonFan> {
        match Jp4Fan::open(sysfs) {
            Ok(f) => Ok(JetsonFan::Jp4(f)),
            Err(e) if is_gone(&e) => Ok(JetsonFan::Jp6(Jp6Fan::open(sysfs)?)),
            Err(e) => Err(e),
        }
    }

    /// Re-asserts manual control (call every period).
    pub fn assert_manual(&mut self) -> Result<bool> {
        match self {
            JetsonFan::Jp4(f) => f.assert_manual(),
            JetsonFan::Jp6(f) => f.assert_manual(),
        }
    }
}

impl Fan for JetsonFan {
    fn set_duty(&mut self, percent: f64) -> Result<()> {
        match self {
            JetsonFan::Jp4(f) => f.set_duty(percent),
            JetsonFan::Jp6(f) => f.set_duty(percent),
        }
    }

    fn duty(&mut self) -> Result<f64> {
        match self {
            JetsonFan::Jp4(f) => f.duty(),
            JetsonFan::Jp6(f) => f.duty(),
        }
    }

    fn rpm(&mut self) -> Result<Option<f64>> {
        match self {
            JetsonFan::Jp4(f) => f.rpm(),
            JetsonFan::Jp6(f) => f.rpm(),
        }
    }
}

/// What is known of nvfancontrol on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Nvfancontrol {
    /// `/etc/nvfancontrol.conf` exists.
    pub installed: bool,
    /// `/var/lib/nvfancontrol/status` exists.
    pub has_status: bool,
    /// A process named `nvfancontrol` runs.
    pub running: bool,
}

impl Nvfancontrol {
    /// Looks under `rootfs` (`/`) and `procfs` (`/proc`).
    pub fn detect(rootfs: &Path, procfs: &Path) -> Result<Nvfancontrol> {
        let mut running = false;
        if let Ok(rd) = std::fs::read_dir(procfs) {
            for entry in rd.flatten() {
                let name = entry.file_name();
                if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                // A process that exits while we look is not running.
                if let Ok(comm) = read_string(&entry.path().join("comm")) {
                    if comm == "nvfancontrol" {
                        running = true;
                        break;
                    }
                }
            }
        }
        Ok(Nvfancontrol {
            installed: rootfs.join("etc/nvfancontrol.conf").exists(),
            has_status: rootfs.join("var/lib/nvfancontrol/status").exists(),
            running,
        })
    }

    /// Whether nvfancontrol would fight the agent for the fan.
    pub fn owns_fan(&self) -> bool {
        self.running
    }
}

// ---------------------------------------------------------------- rails

/// Which INA3221 driver a rail is read through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RailDriver {
    /// Mainline hwmon driver (`ina3221`, JetPack 5/6).
    Hwmon,
    /// NVIDIA IIO driver (`ina3221x`, JetPack 4).
    Iio,
}

/// A rail found by [`rails`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RailInfo {
    /// The label (`VDD_IN`, `POM_5V_GPU`).
    pub name: String,
    /// The I²C device (`1-0040`).
    pub device: String,
    /// Channel: `inK` index (1–3) for hwmon, `K` (0–2) for IIO.
    pub channel: u32,
    /// The driver.
    pub driver: RailDriver,
}

/// Whether a label is a real rail: not "NC", not the sum channel.
pub fn is_rail_label(label: &str) -> bool {
    let l = label.trim();
    !l.is_empty() && !is_not_connected(l) && !l.to_ascii_lowercase().starts_with("sum")
}

fn driver_devices(sysfs: &Path, driver: &str) -> Result<Vec<(String, PathBuf)>> {
    let dir = sysfs.join(driver);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::sysfs::io_error(&dir, &e)),
    };
    let mut out: Vec<(String, PathBuf)> = rd
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            // `<bus>-<addr>`; `module` and the like are not devices.
            n.contains('-').then(|| (n, e.path()))
        })
        .collect();
    out.sort();
    Ok(out)
}

fn iio_dirs(dev: &Path) -> Result<Vec<PathBuf>> {
    Ok(numbered_entries(dev, "iio:device")?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// Every INA3221 rail under `sysfs`, by label, both drivers, in device
/// and channel order; "NC" and the sum channel are left out.
pub fn rails(sysfs: &Path) -> Result<Vec<RailInfo>> {
    let mut out = Vec::new();
    for (dev, _) in driver_devices(sysfs, INA3221_DRIVERS[0])? {
        let mut h = Hwmon::open(sysfs, Selector::driver("ina3221").with_device(dev.clone()))?;
        for (k, label) in h.labels("in")? {
            if is_rail_label(&label) {
                out.push(RailInfo {
                    name: label,
                    device: dev.clone(),
                    channel: k,
                    driver: RailDriver::Hwmon,
                });
            }
        }
    }
    for (dev, path) in driver_devices(sysfs, INA3221_DRIVERS[1])? {
        for iio in iio_dirs(&path)? {
            for (k, p) in numbered_entries(&iio, "rail_name_")? {
                let label = read_string(&p)?;
                if is_rail_label(&label) {
                    out.push(RailInfo {
                        name: label,
                        device: dev.clone(),
                        channel: k,
                        driver: RailDriver::Iio,
                    });
                }
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum RailSource {
    Hwmon(Hwmon),
    Iio { dev: PathBuf, dir: PathBuf },
}

/// One INA3221 rail, by label.
#[derive(Debug, Clone)]
pub struct Rail {
    info: RailInfo,
    source: RailSource,
}

impl Rail {
    /// The rail labelled `name` under `sysfs`.
    pub fn open(sysfs: &Path, name: &str) -> Result<Rail> {
        let all = rails(sysfs)?;
        let Some(info) = all.iter().find(|r| r.name == name).cloned() else {
            return Err(Error::Io {
                path: sysfs.join(INA3221_DRIVERS[0]).display().to_string(),
                kind: std::io::ErrorKind::NotFound,
                detail: format!(
                    "no INA3221 rail {name:?} (rails: {})",
                    all.iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        let source = match info.driver {
            RailDriver::Hwmon => RailSource::Hwmon(Hwmon::open(
                sysfs,
                Selector::driver("ina3221").with_device(info.device.clone()),
            )?),
            RailDriver::Iio => {
                let dev = sysfs.join(INA3221_DRIVERS[1]).join(&info.device);
                let dir = first_iio(&dev)?;
                RailSource::Iio { dev, dir }
            }
        };
        Ok(Rail { info, source })
    }

    /// What and where the rail is.
    pub fn info(&self) -> &RailInfo {
        &self.info
    }

    fn read_iio(&mut self, stem: &str) -> Result<i64> {
        let k = self.info.channel;
        let RailSource::Iio { dev, dir } = &mut self.source else {
            return Err(Error::Invalid {
                chip: "jetson",
                detail: "not an IIO rail".into(),
            });
        };
        let p = dir.join(format!("{stem}{k}_input"));
        match crate::sysfs::read_i64(&p) {
            Err(e) if is_gone(&e) && !dir.exists() => {
                *dir = first_iio(dev)?;
                crate::sysfs::read_i64(&dir.join(format!("{stem}{k}_input")))
            }
            r => r,
        }
    }
}

fn first_iio(dev: &Path) -> Result<PathBuf> {
    iio_dirs(dev)?.into_iter().next().ok_or_else(|| Error::Io {
        path: dev.display().to_string(),
        kind: std::io::ErrorKind::NotFound,
        detail: "no iio:device* under the INA3221".into(),
    })
}

impl PowerMonitor for Rail {
    fn bus_volts(&mut self) -> Result<f64> {
        let k = self.info.channel;
        let mv = match &mut self.source {
            RailSource::Hwmon(h) => h.read_i64(&format!("in{k}_input"))?,
            RailSource::Iio { .. } => self.read_iio("in_voltage")?,
        };
        Ok(mv as f64 / 1000.0)
    }

    fn current_amps(&mut self) -> Result<f64> {
        let k = self.info.channel;
        let ma = match &mut self.source {
            RailSource::Hwmon(h) => h.read_i64(&format!("curr{k}_input"))?,
            RailSource::Iio { .. } => self.read_iio("in_current")?,
        };
        Ok(ma as f64 / 1000.0)
    }

    fn power_watts(&mut self) -> Result<f64> {
        match &self.source {
            RailSource::Iio { .. } => Ok(self.read_iio("in_power")? as f64 / 1000.0),
            RailSource::Hwmon(_) => Ok(self.bus_volts()? * self.current_amps()?),
        }
    }
}

// ---------------------------------------------------------------- GPU

/// A product name from the GPU's device-tree `compatible` strings
/// (`nvidia,tegra210-gm20b` → `Jetson GPU (gm20b)`), else its node name.
pub fn gpu_name(compatible: &[String], of_name: &str) -> String {
    let chip = compatible
        .first()
        .map(|c| {
            let c = c.rsplit(',').next().unwrap_or(c);
            c.rsplit('-').next().unwrap_or(c).to_string()
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| of_name.to_string());
    format!("Jetson GPU ({chip})")
}

/// Splits a device-tree string list (`compatible`) at its NULs.
pub fn parse_string_list(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The devfreq directory of the GPU: the node under `class/devfreq` whose
/// `device/of_node/name` is one of [`GPU_OF_NAMES`].
pub fn find_gpu_devfreq(sysfs: &Path) -> Result<PathBuf> {
    let class = sysfs.join("class/devfreq");
    let rd = match std::fs::read_dir(&class) {
        Ok(rd) => rd,
        Err(e) => return Err(crate::sysfs::io_error(&class, &e)),
    };
    let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    names.sort();
    for p in names {
        if let Ok(n) = read_string(&p.join("device/of_node/name")) {
            if GPU_OF_NAMES.contains(&n.as_str()) {
                return Ok(p);
            }
        }
    }
    Err(Error::Io {
        path: class.display().to_string(),
        kind: std::io::ErrorKind::NotFound,
        detail: format!("no devfreq node with of_node name in {GPU_OF_NAMES:?}"),
    })
}

/// The integrated GPU of a Jetson.
#[derive(Debug)]
pub struct JetsonGpu {
    identity: GpuIdentity,
    devfreq: PathBuf,
    load: PathBuf,
    zone: Option<Zone>,
    rail: Option<Rail>,
}

impl JetsonGpu {
    /// Finds the GPU under `sysfs`; `power_rail` names the INA3221 rail
    /// that feeds it (e.g. `POM_5V_GPU` on a Nano; Orin boards share one
    /// rail with the CPU, so profiles usually name none).
    pub fn open(sysfs: &Path, power_rail: Option<&str>) -> Result<JetsonGpu> {
        let devfreq = find_gpu_devfreq(sysfs)?;
        let node = devfreq
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let of_name = read_string(&devfreq.join("device/of_node/name"))?;
        let compatible = std::fs::read(devfreq.join("device/of_node/compatible"))
            .map(|b| parse_string_list(&b))
            .unwrap_or_default();
        let mut load = devfreq.join("device/load");
        if !load.exists() {
            load = LOAD_PATHS
                .iter()
                .map(|p| sysfs.join(p))
                .find(|p| p.exists())
                .ok_or_else(|| Error::Io {
                    path: sysfs.join(LOAD_PATHS[0]).display().to_string(),
                    kind: std::io::ErrorKind::NotFound,
                    detail: format!("no GPU load file ({} or {LOAD_PATHS:?})", load.display()),
                })?;
        }
        let zone = Zone::open_any(sysfs, &GPU_ZONE_TYPES)?;
        let rail = power_rail.map(|r| Rail::open(sysfs, r)).transpose()?;
        Ok(JetsonGpu {
            identity: GpuIdentity {
                index: 0,
                uuid: node,
                name: gpu_name(&compatible, &of_name),
            },
            devfreq,
            load,
            zone,
            rail,
        })
    }

    /// The load, per mille.
    pub fn load_permille(&self) -> Result<u64> {
        read_u64(&self.load)
    }

    /// The current GPU clock, Hz.
    pub fn cur_freq_hz(&self) -> Result<u64> {
        read_u64(&self.devfreq.join("cur_freq"))
    }

    /// The clock range the governor may use, Hz (nvpmodel sets it).
    pub fn freq_range_hz(&self) -> Result<(u64, u64)> {
        Ok((
            read_u64(&self.devfreq.join("min_freq"))?,
            read_u64(&self.devfreq.join("max_freq"))?,
        ))
    }

    /// The devfreq directory.
    pub fn devfreq_dir(&self) -> &Path {
        &self.devfreq
    }
}

fn optional<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == crate::ErrorKind::Unsupported => Ok(None),
        Err(e) => Err(e),
    }
}

impl Gpu for JetsonGpu {
    fn identity(&self) -> &GpuIdentity {
        &self.identity
    }

    fn sample(&mut self) -> Result<GpuSample> {
        let load = self.load_permille()?;
        let freq = self.cur_freq_hz()?;
        let temperature_celsius = match self.zone.as_mut() {
            Some(z) => optional(z.millicelsius())?.map(|m| m as f64 / 1000.0),
            None => None,
        };
        let power_watts = match self.rail.as_mut() {
            Some(r) => optional(r.power_watts())?,
            None => None,
        };
        Ok(GpuSample {
            temperature_celsius,
            power_watts,
            utilization_percent: Some(load.min(1000) as f64 / 10.0),
            sm_clock_hz: Some(freq as f64),
            ..GpuSample::default()
        })
    }

    fn power_limit_range_watts(&mut self) -> Result<(f64, f64)> {
        Err(unsupported_limit())
    }

    fn set_power_limit_watts(&mut self, _watts: f64) -> Result<()> {
        Err(unsupported_limit())
    }

    /// A Jetson reports no XIDs: always empty.
    fn events(&mut self) -> Result<Vec<GpuEvent>> {
        Ok(Vec::new())
    }
}

fn unsupported_limit() -> Error {
    Error::Unsupported {
        chip: "jetson",
        what: "a GPU power limit (on a Jetson the power knob is nvpmodel)".into(),
    }
}

// ---------------------------------------------------------------- nvpmodel

/// A power mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerMode {
    /// The numeric id (`nvpmodel -m <id>`).
    pub id: u32,
    /// The name (`MAXN`, `MODE_15W`).
    pub name: String,
}

/// Parses `nvpmodel -q`: the line `NV Power Mode: <NAME>` and the id on
/// the next non-empty line.
pub fn parse_query(output: &str) -> Option<PowerMode> {
    let mut lines = output.lines();
    while let Some(line) = lines.next() {
        if let Some(i) = line.find("NV Power Mode:") {
            let name = line[i + "NV Power Mode:".len()..].trim().to_string();
            let id = lines
                .find(|l| !l.trim().is_empty())
                .and_then(|l| l.trim().parse().ok())?;
            return Some(PowerMode { id, name });
        }
    }
    None
}

/// Parses `nvpmodel -p --verbose`: the modes (`POWER_MODEL: ID=<n>
/// NAME=<name>`) and the default id (`PM_CONFIG: DEFAULT=<name>(<id>)`).
pub fn parse_modes(output: &str) -> (Vec<PowerMode>, Option<u32>) {
    let mut modes = Vec::new();
    let mut default = None;
    for line in output.lines() {
        if let Some(i) = line.find("POWER_MODEL: ID=") {
            let rest = &line[i + "POWER_MODEL: ID=".len()..];
            let (id, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = rest.trim().strip_prefix("NAME=").unwrap_or("").trim();
            if let Ok(id) = id.trim().parse() {
                modes.push(PowerMode {
                    id,
                    name: name.to_string(),
                });
            }
        } else if let Some(i) = line.find("PM_CONFIG: DEFAULT=") {
            let rest = &line[i + "PM_CONFIG: DEFAULT=".len()..];
            default = rest
                .rsplit_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .and_then(|(id, _)| id.trim().parse().ok());
        }
    }
    (modes, default)
}

/// Whether a mode change may reboot the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reboot {
    /// Answer `NO` when nvpmodel asks: the mode stays as it is.
    Refuse,
    /// Answer `YES`: nvpmodel switches and reboots the node.
    Allow,
}

/// What `nvpmodel -m` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// The mode is in force.
    Applied,
    /// The change needs a reboot, which was refused: nothing changed.
    RebootRequired,
    /// The change needs a reboot, which was confirmed: the node reboots.
    Rebooting,
}

/// Reads the output of `nvpmodel -m`: `NVPM ERROR` lines are an error
/// (returned as text), `NVPM WARNING` a reboot prompt.
pub fn parse_set(output: &str, reboot: Reboot) -> std::result::Result<SetOutcome, String> {
    let errors: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("NVPM ERROR"))
        .map(str::trim)
        .collect();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    if output.contains("NVPM WARNING") {
        return Ok(match reboot {
            Reboot::Allow => SetOutcome::Rebooting,
            Reboot::Refuse => SetOutcome::RebootRequired,
        });
    }
    Ok(SetOutcome::Applied)
}

/// The `nvpmodel` tool.
#[derive(Debug, Clone)]
pub struct Nvpmodel {
    exe: PathBuf,
}

/// `ETXTBSY`: the executable is open for writing somewhere (a fork of a
/// thread that had just written it); it passes within moments.
const ETXTBSY: i32 = 26;

impl Nvpmodel {
    /// The tool at `exe` (`/usr/sbin/nvpmodel` on a Jetson).
    pub fn new(exe: impl Into<PathBuf>) -> Nvpmodel {
        Nvpmodel { exe: exe.into() }
    }

    fn run(&self, args: &[&str], stdin: &str) -> Result<(bool, String)> {
        let mut tries = 0;
        let mut child = loop {
            match Command::new(&self.exe)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
            {
                Ok(c) => break c,
                Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::Unsupported {
                        chip: "nvpmodel",
                        what: format!("power modes ({} not found)", self.exe.display()),
                    });
                }
                Err(e) => return Err(Error::io(&self.exe, &e)),
            }
        };
        if let Some(mut input) = child.stdin.take() {
            // The tool reads stdin only when it prompts; a tool that exits
            // first closes the pipe, which is fine.
            let _ = input.write_all(stdin.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io(&self.exe, &e))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        if text.contains("run as root") || text.contains("Permission denied") {
            return Err(Error::Denied {
                chip: "nvpmodel",
                detail: format!("{} {}: {}", self.exe.display(), args.join(" "), text.trim()),
            });
        }
        Ok((out.status.success(), text))
    }

    /// The mode in force (`nvpmodel -q`).
    pub fn query(&self) -> Result<PowerMode> {
        let (_, text) = self.run(&["-q"], "")?;
        parse_query(&text).ok_or_else(|| Error::Protocol {
            chip: "nvpmodel",
            detail: format!("no \"NV Power Mode\" in the output of -q: {}", text.trim()),
        })
    }

    /// The modes the configuration defines and the default
    /// (`nvpmodel -p --verbose`).
    pub fn modes(&self) -> Result<(Vec<PowerMode>, Option<u32>)> {
        let (_, text) = self.run(&["-p", "--verbose"], "")?;
        Ok(parse_modes(&text))
    }

    /// Switches to mode `id` (`nvpmodel -m <id>`), answering a reboot
    /// prompt as `reboot` says.
    pub fn set(&self, id: u32, reboot: Reboot) -> Result<SetOutcome> {
        let answer = match reboot {
            Reboot::Allow => "YES\n",
            Reboot::Refuse => "NO\n",
        };
        let id_s = id.to_string();
        let (ok, text) = self.run(&["-m", &id_s], answer)?;
        match parse_set(&text, reboot) {
            Err(msg) => Err(Error::Invalid {
                chip: "nvpmodel",
                detail: format!("-m {id}: {msg}"),
            }),
            Ok(_) if !ok => Err(Error::Invalid {
                chip: "nvpmodel",
                detail: format!("-m {id} failed: {}", text.trim()),
            }),
            Ok(o) => Ok(o),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_parse_query_after_a_warning_line() {
        let out = "NVPM WARN: fan mode is not set!\nNV Power Mode: MODE_15W\n2\n";
        assert_eq!(
            parse_query(out),
            Some(PowerMode {
                id: 2,
                name: "MODE_15W".into()
            })
        );
        assert_eq!(
            parse_query("NV Power Mode: MAXN\n\n0\n").map(|m| m.id),
            Some(0)
        );
        assert_eq!(parse_query("nothing here\n"), None);
        assert_eq!(parse_query("NV Power Mode: MAXN\nxyz\n"), None);
    }

    #[test]
    fn can_parse_mode_list_and_default() {
        let out = "NVPM VERB: PM_CONFIG: DEFAULT=MODE_15W(2)\n\
                   NVPM VERB: POWER_MODEL: ID=0 NAME=MAXN\n\
                   NVPM VERB: CPU_ONLINE CORE_0 1\n\
                   NVPM VERB: POWER_MODEL: ID=1 NAME=MODE_10W\n\
                   NVPM VERB: POWER_MODEL: ID=2 NAME=MODE_15W\n";
        let (modes, default) = parse_modes(out);
        assert_eq!(default, Some(2));
        assert_eq!(modes.len(), 3);
        assert_eq!(modes[1].name, "MODE_10W");
    }

    #[test]
    fn can_classify_set_output() {
        assert_eq!(parse_set("", Reboot::Refuse), Ok(SetOutcome::Applied));
        let warn = "NVPM WARNING: Reboot required for changing to this power mode: 2\n";
        assert_eq!(
            parse_set(warn, Reboot::Refuse),
            Ok(SetOutcome::RebootRequired)
        );
        assert_eq!(parse_set(warn, Reboot::Allow), Ok(SetOutcome::Rebooting));
        let err = "NVPM ERROR: Invalid power mode ID: 9\n";
        assert!(parse_set(err, Reboot::Allow).unwrap_err().contains("ID: 9"));
        // The harmless "NVPM WARN:" of -q is not a reboot prompt.
        assert_eq!(
            parse_set("NVPM WARN: fan mode is not set!\n", Reboot::Refuse),
            Ok(SetOutcome::Applied)
        );
    }

    #[test]
    fn can_name_gpu_from_compatible() {
        let c = parse_string_list(b"nvidia,tegra210-gm20b\0nvidia,gm20b\0");
        assert_eq!(c, vec!["nvidia,tegra210-gm20b", "nvidia,gm20b"]);
        assert_eq!(gpu_name(&c, "gpu"), "Jetson GPU (gm20b)");
        assert_eq!(
            gpu_name(&["nvidia,ga10b".into()], "gpu"),
            "Jetson GPU (ga10b)"
        );
        assert_eq!(gpu_name(&[], "gv11b"), "Jetson GPU (gv11b)");
    }

    #[test]
    fn can_tell_rails_from_nc_and_sum() {
        assert!(is_rail_label("VDD_IN"));
        assert!(!is_rail_label("NC"));
        assert!(!is_rail_label("sum of shunt voltages"));
        assert!(!is_rail_label(""));
    }

    #[test]
    fn can_cap_fan_pwm() {
        assert_eq!(percent_to_pwm(100.0, 255), 255);
        assert_eq!(percent_to_pwm(100.0, 200), 200);
        assert_eq!(percent_to_pwm(40.0, 255), 102);
    }
}
