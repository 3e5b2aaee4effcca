//! Generated sysfs trees, so that the real sysfs backends
//! ([`crate::sysfs`], [`crate::jetson`], [`crate::drivers::pi5_fan`]) run
//! unchanged in tests and in `--hardware sim`.
//!
//! A [`Tree`] lives in a directory the caller creates (a test's temporary
//! directory, the simulator's state directory): `<root>/sys` is the sysfs
//! root, `<root>/proc` a procfs root, and `<root>/etc`, `<root>/var`,
//! `<root>/bin` hold what a root filesystem would (nvfancontrol files, a
//! fake `nvpmodel`). Devices are laid out as the kernel lays them out:
//! the attributes under `devices/…`, relative symlinks from `class/…`,
//! `bus/…/drivers/<driver>/<device>` and the `device`, `driver` and
//! `of_node` links, so lookups by name, device path and driver work as on
//! a board.
//!
//! A plain directory does not react to writes the way sysfs does. Where
//! the kernel would act on a write, the tree offers a step that a test or
//! the simulator's physical model calls:
//!
//! - PWM `export`: [`SimPwmChip::service`] creates the channels written
//!   to `export` (and removes those written to `unexport`);
//!   [`SimPwmChip::precreate`] makes a channel that is already exported.
//! - Thermal governor: [`Pi5::governor_tick`] does what `step_wise` does
//!   on the Pi 5 fan: picks the cooling state for the temperature and
//!   writes the matching `pwm1`, unless the zone is taken from it.
//! - Driver rebinds: [`Tree::renumber_hwmon`] moves `hwmonN` to `hwmonM`.
//!
//! Boards: [`Pi5`] (fan on `pwmfan` and the `pwm-fan` cooling device,
//! `cpu-thermal`, RP1 `pwmchip2`), [`JetsonNano`] (JetPack 4:
//! `/sys/devices/pwm-fan`, INA3221 through the IIO driver at `6-0040`,
//! `gpu.0/load`, devfreq `57000000.gpu`, `GPU-therm`) and
//! [`JetsonOrinNano`] (JetPack 6: hwmon `pwmfan` + `pwm_tach`, INA3221
//! through hwmon at `1-0040`, `platform/gpu.0/load`, devfreq
//! `17000000.gpu`, `gpu-thermal`), each with setters for what a physical
//! model drives (temperatures, load, rails, RPM) and getters for what the
//! agent writes (PWM values, governor state). [`FakeNvpmodel`] writes a
//! `#!/bin/sh` `nvpmodel` into the tree that prints the real tool's
//! output (hardware reference §6.4 \[V\]) and keeps its mode in a file.
//!
//! To extend: a new board is a struct holding a [`Tree`] and the handles
//! of its devices, built from the generic builders here, with setters and
//! getters named after physical quantities.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use crate::sysfs::trim;
use crate::{Error, Result};

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::io(path, &e)
}

fn mkdir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| io(path, e))
}

/// Writes a whole file at once, as the kernel answers a sysfs read: into
/// a hidden sibling, then renamed over the file, so that a driver reading
/// while the world updates never sees it empty or half written.
fn put(path: &Path, value: &str) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return fs::write(path, value).map_err(|e| io(path, e));
    };
    mkdir(parent)?;
    let tmp = parent.join(format!(".{}.sim-new", name.to_string_lossy()));
    fs::write(&tmp, value).map_err(|e| io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io(path, e))
}

fn get(path: &Path) -> Result<String> {
    let bytes = fs::read(path).map_err(|e| io(path, e))?;
    Ok(trim(&String::from_utf8_lossy(&bytes)).to_string())
}

fn get_i64(path: &Path) -> Result<i64> {
    crate::sysfs::parse_number(path, &get(path)?)
}

/// The path of `target` as seen from directory `from` (both absolute,
/// without symlinks in the parts they do not share).
fn relative(target: &Path, from: &Path) -> PathBuf {
    let t: Vec<Component<'_>> = target.components().collect();
    let f: Vec<Component<'_>> = from.components().collect();
    let common = t.iter().zip(f.iter()).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// Makes `link` a relative symlink to `target` (replacing what was there).
fn link(link: &Path, target: &Path) -> Result<()> {
    let parent = link.parent().unwrap_or(Path::new("/"));
    mkdir(parent)?;
    if fs::symlink_metadata(link).is_ok() {
        fs::remove_file(link).map_err(|e| io(link, e))?;
    }
    symlink(relative(target, parent), link).map_err(|e| io(link, e))
}

/// A device-tree node behind a device's `of_node` link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfNode {
    /// Path under `firmware/devicetree/base` (`gpu@57000000`).
    pub path: String,
    /// The node name (`gpu`), the `name` file.
    pub name: String,
    /// The `compatible` strings, most specific first.
    pub compatible: Vec<String>,
}

impl OfNode {
    /// A node at `path` named `name` with `compatible` strings.
    pub fn new(path: &str, name: &str, compatible: &[&str]) -> OfNode {
        OfNode {
            path: path.to_string(),
            name: name.to_string(),
            compatible: compatible.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// A device directory with its links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Path under the sysfs root (`devices/platform/cooling_fan`).
    pub path: String,
    /// The driver directory under the sysfs root
    /// (`bus/platform/drivers/pwm-fan`), for the `driver` link and the
    /// driver's link back to the device.
    pub driver: Option<String>,
    /// The device-tree node.
    pub of_node: Option<OfNode>,
}

impl Device {
    /// A device at `path` without driver or device-tree node.
    pub fn new(path: &str) -> Device {
        Device {
            path: path.to_string(),
            driver: None,
            of_node: None,
        }
    }

    /// Binds it to the driver at `driver_dir` (`bus/i2c/drivers/ina3221`).
    pub fn driver(mut self, driver_dir: &str) -> Device {
        self.driver = Some(driver_dir.to_string());
        self
    }

    /// Gives it a device-tree node.
    pub fn of_node(mut self, node: OfNode) -> Device {
        self.of_node = Some(node);
        self
    }
}

/// An hwmon device to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HwmonSpec {
    /// The `name` file.
    pub name: String,
    /// The device it belongs to.
    pub device: Device,
    /// `hwmonN` index; `None` takes the next free one.
    pub index: Option<u32>,
    /// Attribute files and their contents.
    pub attrs: Vec<(String, String)>,
}

impl HwmonSpec {
    /// An hwmon device named `name` on `device`.
    pub fn new(name: &str, device: Device) -> HwmonSpec {
        HwmonSpec {
            name: name.to_string(),
            device,
            index: None,
            attrs: Vec::new(),
        }
    }

    /// Uses `hwmon<index>`.
    pub fn index(mut self, index: u32) -> HwmonSpec {
        self.index = Some(index);
        self
    }

    /// Adds an attribute file.
    pub fn attr(mut self, name: &str, value: &str) -> HwmonSpec {
        self.attrs.push((name.to_string(), value.to_string()));
        self
    }
}

/// A generated sysfs tree (and a little of a root filesystem).
#[derive(Debug)]
pub struct Tree {
    root: PathBuf,
    next_hwmon: u32,
    next_zone: u32,
    next_cdev: u32,
}

impl Tree {
    /// A new tree in `root`, which the caller created (and removes).
    pub fn new(root: &Path) -> Result<Tree> {
        let t = Tree {
            root: root.to_path_buf(),
            next_hwmon: 0,
            next_zone: 0,
            next_cdev: 0,
        };
        for d in [
            "class/hwmon",
            "class/thermal",
            "class/pwm",
            "class/devfreq",
            "devices/platform",
            "devices/virtual/thermal",
            "bus/i2c/devices",
        ] {
            mkdir(&t.sysfs().join(d))?;
        }
        mkdir(&t.procfs())?;
        Ok(t)
    }

    /// The directory holding everything.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sysfs root (`<root>/sys`): what the backends take as `sysfs`.
    pub fn sysfs(&self) -> PathBuf {
        self.root.join("sys")
    }

    /// The procfs root (`<root>/proc`).
    pub fn procfs(&self) -> PathBuf {
        self.root.join("proc")
    }

    /// `rel` under the sysfs root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.sysfs().join(rel)
    }

    /// Writes a file under the sysfs root, creating its directories.
    pub fn write(&self, rel: &str, value: &str) -> Result<()> {
        put(&self.path(rel), value)
    }

    /// Reads a file under the sysfs root, trimmed.
    pub fn read(&self, rel: &str) -> Result<String> {
        get(&self.path(rel))
    }

    /// Creates a device directory with its `driver` and `of_node` links,
    /// the driver's link back, and `bus/i2c/devices/<name>` for I²C
    /// devices (`<bus>-<addr>`). Returns the device directory.
    pub fn add_device(&mut self, dev: &Device) -> Result<PathBuf> {
        let sys = self.sysfs();
        let dir = sys.join(&dev.path);
        mkdir(&dir)?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(driver) = &dev.driver {
            let ddir = sys.join(driver);
            mkdir(&ddir)?;
            link(&dir.join("driver"), &ddir)?;
            link(&ddir.join(&name), &dir)?;
            if driver.starts_with("bus/i2c/") {
                link(&sys.join("bus/i2c/devices").join(&name), &dir)?;
            }
        }
        if let Some(node) = &dev.of_node {
            let ndir = sys.join("firmware/devicetree/base").join(&node.path);
            put(&ndir.join("name"), &format!("{}\0", node.name))?;
            let compat: String = node.compatible.iter().map(|c| format!("{c}\0")).collect();
            put(&ndir.join("compatible"), &compat)?;
            link(&dir.join("of_node"), &ndir)?;
        }
        Ok(dir)
    }

    /// Adds an hwmon device: its device, `<device>/hwmon/hwmonN/` with
    /// `name`, the attributes and a `device` link, and
    /// `class/hwmon/hwmonN`.
    pub fn add_hwmon(&mut self, spec: HwmonSpec) -> Result<SimHwmon> {
        let dev_dir = self.add_device(&spec.device)?;
        let index = spec.index.unwrap_or(self.next_hwmon);
        self.next_hwmon = self.next_hwmon.max(index + 1);
        let dir = dev_dir.join(format!("hwmon/hwmon{index}"));
        mkdir(&dir)?;
        put(&dir.join("name"), &format!("{}\n", spec.name))?;
        for (k, v) in &spec.attrs {
            put(&dir.join(k), &format!("{v}\n"))?;
        }
        link(&dir.join("device"), &dev_dir)?;
        link(
            &self.sysfs().join(format!("class/hwmon/hwmon{index}")),
            &dir,
        )?;
        Ok(SimHwmon {
            device_dir: dev_dir,
        })
    }

    /// Moves an hwmon device to `hwmon<index>`, as a reboot or a driver
    /// rebind may.
    pub fn renumber_hwmon(&mut self, hwmon: &SimHwmon, index: u32) -> Result<()> {
        let old = hwmon.dir()?;
        let old_name = old
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let new = hwmon.device_dir.join(format!("hwmon/hwmon{index}"));
        fs::rename(&old, &new).map_err(|e| io(&old, e))?;
        let class = self.sysfs().join("class/hwmon");
        let old_link = class.join(&old_name);
        fs::remove_file(&old_link).map_err(|e| io(&old_link, e))?;
        link(&class.join(format!("hwmon{index}")), &new)?;
        self.next_hwmon = self.next_hwmon.max(index + 1);
        Ok(())
    }

    /// Adds a thermal zone of type `kind` at `celsius`, governed by
    /// `step_wise` (with `user_space` available) and enabled.
    pub fn add_zone(&mut self, kind: &str, celsius: f64) -> Result<SimZone> {
        let n = self.next_zone;
        self.next_zone += 1;
        let dir = self
            .sysfs()
            .join(format!("devices/virtual/thermal/thermal_zone{n}"));
        put(&dir.join("type"), &format!("{kind}\n"))?;
        put(&dir.join("policy"), "step_wise\n")?;
        put(&dir.join("available_policies"), "step_wise user_space \n")?;
        put(&dir.join("mode"), "enabled\n")?;
        link(
            &self.sysfs().join(format!("class/thermal/thermal_zone{n}")),
            &dir,
        )?;
        let z = SimZone { dir };
        z.set_celsius(celsius)?;
        Ok(z)
    }

    /// Adds a cooling device of type `kind` with states 0 to `max_state`.
    pub fn add_cooling_device(&mut self, kind: &str, max_state: u64) -> Result<SimCoolingDevice> {
        let n = self.next_cdev;
        self.next_cdev += 1;
        let dir = self
            .sysfs()
            .join(format!("devices/virtual/thermal/cooling_device{n}"));
        put(&dir.join("type"), &format!("{kind}\n"))?;
        put(&dir.join("cur_state"), "0\n")?;
        put(&dir.join("max_state"), &format!("{max_state}\n"))?;
        link(
            &self
                .sysfs()
                .join(format!("class/thermal/cooling_device{n}")),
            &dir,
        )?;
        Ok(SimCoolingDevice { dir })
    }

    /// Binds a cooling device to a zone (`cdevK` link, trip point, weight).
    pub fn bind(&self, zone: &SimZone, cdev: &SimCoolingDevice, trip: u32) -> Result<()> {
        let k = crate::sysfs::numbered_entries(&zone.dir, "cdev")?.len();
        link(&zone.dir.join(format!("cdev{k}")), &cdev.dir)?;
        put(
            &zone.dir.join(format!("cdev{k}_trip_point")),
            &format!("{trip}\n"),
        )?;
        put(&zone.dir.join(format!("cdev{k}_weight")), "0\n")
    }

    /// Adds `class/pwm/pwmchip<index>` with `npwm` channels on the device
    /// at `device` (a path under the sysfs root).
    pub fn add_pwmchip(&mut self, index: u32, npwm: u32, device: &str) -> Result<SimPwmChip> {
        let dev_dir = self.add_device(&Device::new(device))?;
        let dir = dev_dir.join(format!("pwm/pwmchip{index}"));
        put(&dir.join("npwm"), &format!("{npwm}\n"))?;
        put(&dir.join("export"), "")?;
        put(&dir.join("unexport"), "")?;
        link(&dir.join("device"), &dev_dir)?;
        link(
            &self.sysfs().join(format!("class/pwm/pwmchip{index}")),
            &dir,
        )?;
        Ok(SimPwmChip { dir, npwm })
    }

    /// Adds an INA3221 bound to the mainline hwmon driver (JetPack 5/6):
    /// device `<parent>/<dev>` (`dev` = `<bus>-<addr>`, e.g. `1-0040`),
    /// driver `bus/i2c/drivers/ina3221`, `in1..3_label` from `labels`
    /// ("NC" for an unconnected channel), `in7_label` "sum of shunt
    /// voltages", inputs at 0.
    pub fn add_ina3221_hwmon(
        &mut self,
        parent: &str,
        dev: &str,
        labels: [&str; 3],
    ) -> Result<SimIna3221> {
        let mut spec = HwmonSpec::new(
            "ina3221",
            Device::new(&format!("{parent}/{dev}")).driver("bus/i2c/drivers/ina3221"),
        );
        for (i, l) in labels.iter().enumerate() {
            let k = i + 1;
            spec = spec
                .attr(&format!("in{k}_label"), l)
                .attr(&format!("in{k}_input"), "0")
                .attr(&format!("in{}_input", k + 3), "0")
                .attr(&format!("curr{k}_input"), "0")
                .attr(&format!("curr{k}_max"), "0")
                .attr(&format!("curr{k}_crit"), "0");
        }
        spec = spec
            .attr("in7_label", "sum of shunt voltages")
            .attr("in7_input", "0")
            .attr("curr4_crit", "0");
        let h = self.add_hwmon(spec)?;
        Ok(SimIna3221 {
            labels: labels.iter().map(|s| s.to_string()).collect(),
            kind: InaKind::Hwmon(h),
        })
    }

    /// Adds an INA3221 bound to NVIDIA's IIO driver (JetPack 4): device
    /// `<parent>/<dev>`, driver `bus/i2c/drivers/ina3221x`,
    /// `iio:device<iio>/rail_name_K` from `names`, inputs at 0.
    pub fn add_ina3221_iio(
        &mut self,
        parent: &str,
        dev: &str,
        iio: u32,
        names: [&str; 3],
    ) -> Result<SimIna3221> {
        let dev_dir = self.add_device(
            &Device::new(&format!("{parent}/{dev}")).driver("bus/i2c/drivers/ina3221x"),
        )?;
        let dir = dev_dir.join(format!("iio:device{iio}"));
        for (k, n) in names.iter().enumerate() {
            put(&dir.join(format!("rail_name_{k}")), &format!("{n}\n"))?;
            for f in ["in_voltage", "in_current", "in_power"] {
                put(&dir.join(format!("{f}{k}_input")), "0\n")?;
            }
            put(&dir.join(format!("warn_current_limit_{k}")), "0\n")?;
            put(&dir.join(format!("crit_current_limit_{k}")), "0\n")?;
        }
        Ok(SimIna3221 {
            labels: names.iter().map(|s| s.to_string()).collect(),
            kind: InaKind::Iio(dir),
        })
    }

    /// Adds a Jetson GPU: `gpu_dev` (a path under the sysfs root) with
    /// `load`, its device-tree node, and devfreq node `devfreq_name` under
    /// `devfreq_parent` (defaults to the GPU device) with
    /// `class/devfreq/<devfreq_name>`.
    pub fn add_jetson_gpu(
        &mut self,
        load_dev: &str,
        devfreq_parent: &Device,
        devfreq_name: &str,
        max_hz: u64,
    ) -> Result<SimGpu> {
        let load_dir = self.add_device(&Device::new(load_dev))?;
        put(&load_dir.join("load"), "0\n")?;
        let parent = self.add_device(devfreq_parent)?;
        let df = parent.join("devfreq").join(devfreq_name);
        put(&df.join("cur_freq"), &format!("{max_hz}\n"))?;
        put(&df.join("min_freq"), "76800000\n")?;
        put(&df.join("max_freq"), &format!("{max_hz}\n"))?;
        put(
            &df.join("available_frequencies"),
            &format!("76800000 {} {max_hz}\n", max_hz / 2),
        )?;
        put(&df.join("governor"), "nvhost_podgov\n")?;
        link(&df.join("device"), &parent)?;
        link(&self.sysfs().join("class/devfreq").join(devfreq_name), &df)?;
        Ok(SimGpu {
            load: load_dir.join("load"),
            devfreq: df,
        })
    }

    /// Writes a fake `nvpmodel` into `<root>/bin/nvpmodel` (see
    /// [`FakeNvpmodel`]).
    pub fn add_nvpmodel(&self, fake: &FakeNvpmodel) -> Result<SimNvpmodel> {
        let bin = self.root.join("bin");
        mkdir(&bin)?;
        let state = self.root.join("var/lib/nvpmodel/mode");
        let reboots = self.root.join("var/lib/nvpmodel/reboots");
        put(&state, &format!("{}\n", fake.default))?;
        put(&reboots, "")?;
        let exe = bin.join("nvpmodel");
        let tmp = bin.join(".nvpmodel.tmp");
        put(&tmp, &fake.script(&state, &reboots))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(|e| io(&tmp, e))?;
        fs::rename(&tmp, &exe).map_err(|e| io(&exe, e))?;
        Ok(SimNvpmodel {
            exe,
            state,
            reboots,
        })
    }

    /// Makes the tree look as if `nvfancontrol` were installed (its
    /// config and status files) and, when `running`, as if it ran (a
    /// process in procfs whose `comm` is `nvfancontrol`).
    pub fn set_nvfancontrol(&self, installed: bool, running: bool) -> Result<()> {
        let conf = self.root.join("etc/nvfancontrol.conf");
        let status = self.root.join("var/lib/nvfancontrol/status");
        if installed {
            put(&conf, "FAN_DEFAULT_PROFILE quiet\n")?;
            put(&status, "FAN_PROFILE quiet\n")?;
        } else {
            let _ = fs::remove_file(&conf);
            let _ = fs::remove_file(&status);
        }
        let comm = self.procfs().join("812/comm");
        if running {
            put(&comm, "nvfancontrol\n")?;
        } else if let Some(p) = comm.parent() {
            let _ = fs::remove_dir_all(p);
        }
        // Another process, so that detection has to look at `comm`.
        put(&self.procfs().join("1/comm"), "systemd\n")
    }
}

/// A generated hwmon device. It keeps its device directory and finds its
/// `hwmonN` there on each access, so it survives [`Tree::renumber_hwmon`].
#[derive(Debug, Clone)]
pub struct SimHwmon {
    device_dir: PathBuf,
}

impl SimHwmon {
    /// The device directory.
    pub fn device_dir(&self) -> &Path {
        &self.device_dir
    }

    /// The current `hwmonN` directory.
    pub fn dir(&self) -> Result<PathBuf> {
        let entries = crate::sysfs::numbered_entries(&self.device_dir.join("hwmon"), "hwmon")?;
        entries.into_iter().next().map(|(_, p)| p).ok_or_else(|| {
            io(
                &self.device_dir.join("hwmon"),
                std::io::ErrorKind::NotFound.into(),
            )
        })
    }

    /// The `hwmonN` index now.
    pub fn index(&self) -> Result<u32> {
        let entries = crate::sysfs::numbered_entries(&self.device_dir.join("hwmon"), "hwmon")?;
        entries.first().map(|(n, _)| *n).ok_or_else(|| {
            io(
                &self.device_dir.join("hwmon"),
                std::io::ErrorKind::NotFound.into(),
            )
        })
    }

    /// Writes an attribute.
    pub fn set(&self, attr: &str, value: &str) -> Result<()> {
        put(&self.dir()?.join(attr), &format!("{value}\n"))
    }

    /// Reads an attribute, trimmed.
    pub fn get(&self, attr: &str) -> Result<String> {
        get(&self.dir()?.join(attr))
    }

    /// Reads an attribute as an integer.
    pub fn get_i64(&self, attr: &str) -> Result<i64> {
        get_i64(&self.dir()?.join(attr))
    }

    /// Removes an attribute (a driver version without it).
    pub fn remove(&self, attr: &str) -> Result<()> {
        let p = self.dir()?.join(attr);
        fs::remove_file(&p).map_err(|e| io(&p, e))
    }
}

/// A generated thermal zone.
#[derive(Debug, Clone)]
pub struct SimZone {
    dir: PathBuf,
}

impl SimZone {
    /// The zone's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets the temperature the zone reports.
    pub fn set_celsius(&self, celsius: f64) -> Result<()> {
        put(
            &self.dir.join("temp"),
            &format!("{}\n", (celsius * 1000.0).round() as i64),
        )
    }

    /// The temperature, m°C.
    pub fn millicelsius(&self) -> Result<i64> {
        get_i64(&self.dir.join("temp"))
    }

    /// The governor in charge.
    pub fn policy(&self) -> Result<String> {
        get(&self.dir.join("policy"))
    }

    /// Sets the governor (as another tool would).
    pub fn set_policy(&self, policy: &str) -> Result<()> {
        put(&self.dir.join("policy"), &format!("{policy}\n"))
    }

    /// Sets the governors offered.
    pub fn set_available_policies(&self, policies: &str) -> Result<()> {
        put(
            &self.dir.join("available_policies"),
            &format!("{policies}\n"),
        )
    }

    /// `enabled` / `disabled`.
    pub fn mode(&self) -> Result<String> {
        get(&self.dir.join("mode"))
    }

    /// Sets the mode (as another tool would).
    pub fn set_mode(&self, mode: &str) -> Result<()> {
        put(&self.dir.join("mode"), &format!("{mode}\n"))
    }
}

/// A generated cooling device.
#[derive(Debug, Clone)]
pub struct SimCoolingDevice {
    dir: PathBuf,
}

impl SimCoolingDevice {
    /// The device's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current state.
    pub fn cur_state(&self) -> Result<u64> {
        Ok(get_i64(&self.dir.join("cur_state"))?.max(0) as u64)
    }

    /// Sets the current state (as the governor would).
    pub fn set_cur_state(&self, state: u64) -> Result<()> {
        put(&self.dir.join("cur_state"), &format!("{state}\n"))
    }
}

/// A generated PWM chip with export emulation.
#[derive(Debug, Clone)]
pub struct SimPwmChip {
    dir: PathBuf,
    npwm: u32,
}

impl SimPwmChip {
    /// The chip's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn channel_dir(&self, ch: u32) -> PathBuf {
        self.dir.join(format!("pwm{ch}"))
    }

    /// Creates channel `ch` as the kernel does on export: `period` and
    /// `duty_cycle` 0, `polarity` normal, `enable` 0.
    pub fn precreate(&self, ch: u32) -> Result<()> {
        let d = self.channel_dir(ch);
        if d.exists() {
            return Ok(());
        }
        put(&d.join("period"), "0\n")?;
        put(&d.join("duty_cycle"), "0\n")?;
        put(&d.join("polarity"), "normal\n")?;
        put(&d.join("enable"), "0\n")
    }

    /// Does what the kernel does with what was written to `export` and
    /// `unexport` since the last call: creates or removes channels. Returns
    /// the channels it created.
    pub fn service(&self) -> Result<Vec<u32>> {
        let mut created = Vec::new();
        let export = self.dir.join("export");
        let text = get(&export)?;
        if let Ok(ch) = text.parse::<u32>() {
            if ch < self.npwm && !self.channel_dir(ch).exists() {
                self.precreate(ch)?;
                created.push(ch);
            }
        }
        put(&export, "")?;
        let unexport = self.dir.join("unexport");
        if let Ok(ch) = get(&unexport)?.parse::<u32>() {
            let d = self.channel_dir(ch);
            if d.exists() {
                fs::remove_dir_all(&d).map_err(|e| io(&d, e))?;
            }
        }
        put(&unexport, "")?;
        Ok(created)
    }

    /// Whether channel `ch` is exported.
    pub fn exported(&self, ch: u32) -> bool {
        self.channel_dir(ch).exists()
    }

    /// `duty_cycle` of channel `ch`, ns.
    pub fn duty_cycle(&self, ch: u32) -> Result<i64> {
        get_i64(&self.channel_dir(ch).join("duty_cycle"))
    }

    /// `period` of channel `ch`, ns.
    pub fn period(&self, ch: u32) -> Result<i64> {
        get_i64(&self.channel_dir(ch).join("period"))
    }

    /// `polarity` of channel `ch`.
    pub fn polarity(&self, ch: u32) -> Result<String> {
        get(&self.channel_dir(ch).join("polarity"))
    }

    /// Whether channel `ch` is enabled.
    pub fn enabled(&self, ch: u32) -> Result<bool> {
        Ok(get_i64(&self.channel_dir(ch).join("enable"))? != 0)
    }
}

#[derive(Debug, Clone)]
enum InaKind {
    Hwmon(SimHwmon),
    Iio(PathBuf),
}

/// A generated INA3221 (hwmon or IIO driver).
#[derive(Debug, Clone)]
pub struct SimIna3221 {
    labels: Vec<String>,
    kind: InaKind,
}

impl SimIna3221 {
    /// The hwmon device, for the hwmon driver.
    pub fn hwmon(&self) -> Option<&SimHwmon> {
        match &self.kind {
            InaKind::Hwmon(h) => Some(h),
            InaKind::Iio(_) => None,
        }
    }

    /// Sets what the rail labelled `label` measures: bus voltage and
    /// current (the IIO driver also reports power, in mW).
    pub fn set_rail(&self, label: &str, volts: f64, amps: f64) -> Result<()> {
        let Some(i) = self.labels.iter().position(|l| l == label) else {
            return Err(Error::Invalid {
                chip: "sim-sysfs",
                detail: format!("no rail {label:?} (rails: {})", self.labels.join(", ")),
            });
        };
        let mv = (volts * 1000.0).round() as i64;
        let ma = (amps * 1000.0).round() as i64;
        match &self.kind {
            InaKind::Hwmon(h) => {
                let k = i + 1;
                h.set(&format!("in{k}_input"), &mv.to_string())?;
                h.set(&format!("curr{k}_input"), &ma.to_string())
            }
            InaKind::Iio(dir) => {
                let mw = (volts * amps * 1000.0).round() as i64;
                put(
                    &dir.join(format!("in_voltage{i}_input")),
                    &format!("{mv}\n"),
                )?;
                put(
                    &dir.join(format!("in_current{i}_input")),
                    &format!("{ma}\n"),
                )?;
                put(&dir.join(format!("in_power{i}_input")), &format!("{mw}\n"))
            }
        }
    }
}

/// A generated Jetson GPU: load and devfreq.
#[derive(Debug, Clone)]
pub struct SimGpu {
    load: PathBuf,
    devfreq: PathBuf,
}

impl SimGpu {
    /// Sets the load, per mille (0–1000).
    pub fn set_load_permille(&self, permille: u32) -> Result<()> {
        put(&self.load, &format!("{permille}\n"))
    }

    /// Sets the current frequency, Hz.
    pub fn set_freq_hz(&self, hz: u64) -> Result<()> {
        put(&self.devfreq.join("cur_freq"), &format!("{hz}\n"))
    }

    /// The devfreq directory.
    pub fn devfreq_dir(&self) -> &Path {
        &self.devfreq
    }
}

/// The modes a fake `nvpmodel` offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeNvpmodel {
    /// (id, name) of each mode.
    pub modes: Vec<(u32, String)>,
    /// The mode at start.
    pub default: u32,
    /// Modes whose selection needs a reboot: the fake prints
    /// `NVPM WARNING` and asks for `YES` on stdin; with `YES` it records
    /// a reboot and switches, otherwise it keeps the mode.
    pub reboot_required: Vec<u32>,
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

impl FakeNvpmodel {
    /// Jetson Nano (hardware reference §6.4: 0 MAXN, 1 5W).
    pub fn nano() -> FakeNvpmodel {
        FakeNvpmodel {
            modes: vec![(0, "MAXN".into()), (1, "5W".into())],
            default: 0,
            reboot_required: Vec::new(),
        }
    }

    /// Jetson Orin Nano on JetPack 6 (0 15W, 1 25W, 2 MAXN_SUPER; which
    /// changes need a reboot is the simulator's choice: 2).
    pub fn orin_nano() -> FakeNvpmodel {
        FakeNvpmodel {
            modes: vec![
                (0, "15W".into()),
                (1, "25W".into()),
                (2, "MAXN_SUPER".into()),
            ],
            default: 1,
            reboot_required: vec![2],
        }
    }

    /// The script text.
    pub fn script(&self, state: &Path, reboots: &Path) -> String {
        let names: String = self
            .modes
            .iter()
            .map(|(id, n)| format!("    {id}) echo '{n}' ;;\n"))
            .collect();
        let reboot: String = self
            .reboot_required
            .iter()
            .map(|id| format!("    {id}) return 0 ;;\n"))
            .collect();
        let list: String = self
            .modes
            .iter()
            .map(|(id, n)| format!("echo 'NVPM VERB: POWER_MODEL: ID={id} NAME={n}'\n"))
            .collect();
        let default_name = self
            .modes
            .iter()
            .find(|(id, _)| *id == self.default)
            .map(|(_, n)| n.as_str())
            .unwrap_or("UNKNOWN");
        format!(
            r#"#!/bin/sh
# Fake nvpmodel for onprem's generated sysfs trees.
STATE={state}
REBOOTS={reboots}
name_of() {{
  case "$1" in
{names}    *) return 1 ;;
  esac
}}
needs_reboot() {{
  case "$1" in
{reboot}    *) return 1 ;;
  esac
}}
cur=$(cat "$STATE")
case "$1" in
  -q|--query)
    echo "NVPM WARN: fan mode is not set!"
    echo "NV Power Mode: $(name_of "$cur")"
    echo "$cur"
    ;;
  -p)
    echo "NVPM VERB: Config file: /etc/nvpmodel.conf"
    echo "NVPM VERB: PM_CONFIG: DEFAULT={default_name}({default})"
{list}    ;;
  -m|--mode)
    id="$2"
    if ! name_of "$id" >/dev/null 2>&1; then
      echo "NVPM ERROR: Invalid power mode ID: $id"
      exit 1
    fi
    if [ "$id" = "$cur" ]; then
      exit 0
    fi
    if needs_reboot "$id"; then
      echo "NVPM WARNING: Reboot required for changing to this power mode: $id"
      echo "NVPM WARNING: DO YOU WANT TO REBOOT NOW? enter YES/yes to confirm:"
      ans=""
      read ans || true
      case "$ans" in
        YES|yes)
          echo "$id" > "$STATE"
          echo "$id" >> "$REBOOTS"
          echo "Rebooting..."
          ;;
        *)
          echo "NVPM WARN: power mode not changed"
          ;;
      esac
    else
      echo "$id" > "$STATE"
    fi
    ;;
  *)
    echo "NVPM ERROR: unknown option $1"
    exit 1
    ;;
esac
exit 0
"#,
            state = sh_quote(state),
            reboots = sh_quote(reboots),
            default = self.default,
        )
    }
}

/// A fake `nvpmodel` in a tree.
#[derive(Debug, Clone)]
pub struct SimNvpmodel {
    exe: PathBuf,
    state: PathBuf,
    reboots: PathBuf,
}

impl SimNvpmodel {
    /// The executable, to give to [`crate::jetson::Nvpmodel::new`].
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The mode in force.
    pub fn mode(&self) -> Result<u32> {
        Ok(get_i64(&self.state)?.max(0) as u32)
    }

    /// The modes a confirmed reboot switched to, in order.
    pub fn reboots(&self) -> Result<Vec<u32>> {
        Ok(get(&self.reboots)?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }
}

/// The Pi 5 fan's cooling levels (`pwm1` per cooling state).
pub const PI5_COOLING_LEVELS: [u8; 5] = [0, 75, 125, 175, 250];
/// The Pi 5 default fan trip points, m°C (states 1–4).
pub const PI5_TRIPS_MILLICELSIUS: [i64; 4] = [50_000, 60_000, 67_500, 75_000];

/// A Raspberry Pi 5 with the official fan (hardware reference §5 \[V\]
/// `[S-BCM2712DTS]`): hwmon `pwmfan` on `platform/cooling_fan` (`pwm1`,
/// `pwm1_enable`, `fan1_input`), cooling device `pwm-fan` (states 0–4)
/// bound to `cpu-thermal`, `rpi_volt`, and RP1's `pwmchip2` (4 channels)
/// for hardware PWM.
#[derive(Debug)]
pub struct Pi5 {
    /// The tree.
    pub tree: Tree,
    /// The fan's hwmon device.
    pub fan: SimHwmon,
    /// `cpu-thermal`.
    pub zone: SimZone,
    /// The fan's cooling device.
    pub cooling: SimCoolingDevice,
    /// RP1 PWM (GPIO12, 13, 18, 19).
    pub pwm: SimPwmChip,
}

impl Pi5 {
    /// Builds the tree in `root` (created by the caller): 45 °C, fan off.
    pub fn build(root: &Path) -> Result<Pi5> {
        let mut tree = Tree::new(root)?;
        tree.add_hwmon(
            HwmonSpec::new(
                "rpi_volt",
                Device::new("devices/platform/soc/soc:firmware/raspberrypi-hwmon")
                    .driver("bus/platform/drivers/raspberrypi-hwmon"),
            )
            .attr("in0_lcrit_alarm", "0"),
        )?;
        let zone = tree.add_zone("cpu-thermal", 45.0)?;
        let fan = tree.add_hwmon(
            HwmonSpec::new(
                "pwmfan",
                Device::new("devices/platform/cooling_fan")
                    .driver("bus/platform/drivers/pwm-fan")
                    .of_node(OfNode::new("cooling_fan", "cooling_fan", &["pwm-fan"])),
            )
            .attr("pwm1", "0")
            .attr("pwm1_enable", "1")
            .attr("fan1_input", "0"),
        )?;
        let cooling = tree.add_cooling_device("pwm-fan", 4)?;
        tree.bind(&zone, &cooling, 0)?;
        let pwm = tree.add_pwmchip(2, 4, "devices/platform/axi/1000120000.pcie/1f00098000.pwm")?;
        Ok(Pi5 {
            tree,
            fan,
            zone,
            cooling,
            pwm,
        })
    }

    /// The sysfs root.
    pub fn sysfs(&self) -> PathBuf {
        self.tree.sysfs()
    }

    /// Sets the CPU temperature.
    pub fn set_cpu_celsius(&self, celsius: f64) -> Result<()> {
        self.zone.set_celsius(celsius)
    }

    /// Sets the tach reading.
    pub fn set_fan_rpm(&self, rpm: u32) -> Result<()> {
        self.fan.set("fan1_input", &rpm.to_string())
    }

    /// `pwm1` as last written.
    pub fn pwm1(&self) -> Result<i64> {
        self.fan.get_i64("pwm1")
    }

    /// `pwm1_enable` as last written.
    pub fn pwm1_enable(&self) -> Result<i64> {
        self.fan.get_i64("pwm1_enable")
    }

    /// One poll of the `step_wise` governor as the kernel does it for
    /// this fan: when the zone is enabled and governed by `step_wise`, the
    /// cooling state for the temperature (trips at 50/60/67.5/75 °C,
    /// hysteresis ignored) is written to `cur_state` and its cooling level
    /// to `pwm1`, but only when the state changes (the governor and the
    /// pwm-fan driver act on changes only). Returns whether it wrote.
    pub fn governor_tick(&self) -> Result<bool> {
        if self.zone.mode()? != "enabled" || self.zone.policy()? != "step_wise" {
            return Ok(false);
        }
        let t = self.zone.millicelsius()?;
        let state = PI5_TRIPS_MILLICELSIUS
            .iter()
            .filter(|&&trip| t >= trip)
            .count();
        if self.cooling.cur_state()? == state as u64 {
            return Ok(false);
        }
        self.cooling.set_cur_state(state as u64)?;
        self.fan
            .set("pwm1", &PI5_COOLING_LEVELS[state].to_string())?;
        Ok(true)
    }
}

/// A Jetson Nano on JetPack 4 (hardware reference §6 \[V\]/\[T\]): fan at
/// `devices/pwm-fan` (`target_pwm`, `cur_pwm`, `rpm_measured`,
/// `temp_control` 1 = kernel curve), INA3221 on the IIO driver at
/// `6-0040` (POM_5V_IN, POM_5V_GPU, POM_5V_CPU), `devices/gpu.0/load`,
/// devfreq `57000000.gpu`, zones `CPU-therm` and `GPU-therm`, and a fake
/// `nvpmodel` (0 MAXN, 1 5W).
#[derive(Debug)]
pub struct JetsonNano {
    /// The tree.
    pub tree: Tree,
    /// The power monitor.
    pub ina: SimIna3221,
    /// The GPU.
    pub gpu: SimGpu,
    /// `CPU-therm`.
    pub cpu_zone: SimZone,
    /// `GPU-therm`.
    pub gpu_zone: SimZone,
    /// The fake `nvpmodel`.
    pub nvpmodel: SimNvpmodel,
}

impl JetsonNano {
    /// The fan directory, under the sysfs root.
    pub const FAN: &'static str = "devices/pwm-fan";

    /// Builds the tree in `root` (created by the caller).
    pub fn build(root: &Path) -> Result<JetsonNano> {
        let mut tree = Tree::new(root)?;
        for (f, v) in [
            ("target_pwm", "0"),
            ("cur_pwm", "0"),
            ("rpm_measured", "0"),
            ("temp_control", "1"),
            ("pwm_cap", "255"),
            ("step_time", "100"),
        ] {
            tree.write(&format!("{}/{f}", Self::FAN), &format!("{v}\n"))?;
        }
        let ina = tree.add_ina3221_iio(
            "devices/7000c400.i2c/i2c-6",
            "6-0040",
            0,
            ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"],
        )?;
        let gpu = tree.add_jetson_gpu(
            "devices/gpu.0",
            &Device::new("devices/gpu.0").of_node(OfNode::new(
                "gpu@57000000",
                "gpu",
                &["nvidia,tegra210-gm20b", "nvidia,gm20b"],
            )),
            "57000000.gpu",
            921_600_000,
        )?;
        let cpu_zone = tree.add_zone("CPU-therm", 40.0)?;
        let gpu_zone = tree.add_zone("GPU-therm", 38.5)?;
        let nvpmodel = tree.add_nvpmodel(&FakeNvpmodel::nano())?;
        Ok(JetsonNano {
            tree,
            ina,
            gpu,
            cpu_zone,
            gpu_zone,
            nvpmodel,
        })
    }

    /// The sysfs root.
    pub fn sysfs(&self) -> PathBuf {
        self.tree.sysfs()
    }

    /// Sets the tach reading.
    pub fn set_fan_rpm(&self, rpm: u32) -> Result<()> {
        self.tree
            .write(&format!("{}/rpm_measured", Self::FAN), &format!("{rpm}\n"))
    }

    /// `target_pwm` as last written.
    pub fn target_pwm(&self) -> Result<i64> {
        get_i64(&self.tree.path(&format!("{}/target_pwm", Self::FAN)))
    }

    /// `temp_control` as last written (1 = kernel curve, 0 = manual).
    pub fn temp_control(&self) -> Result<i64> {
        get_i64(&self.tree.path(&format!("{}/temp_control", Self::FAN)))
    }
}

/// A Jetson Orin Nano on JetPack 6 (hardware reference §6 \[V\]/\[T\]/\[U\]):
/// hwmon `pwmfan` on `platform/pwm-fan` (`pwm1`, `pwm1_enable`) and
/// `pwm_tach` on `platform/39c0000.tachometer` (`rpm`), INA3221 on the
/// hwmon driver at `1-0040` (VDD_IN, VDD_CPU_GPU_CV, VDD_SOC),
/// `devices/platform/gpu.0/load`, devfreq `17000000.gpu`, zones
/// `cpu-thermal` and `gpu-thermal`, a fake `nvpmodel` (0 15W, 1 25W,
/// 2 MAXN_SUPER needing a reboot) and nvfancontrol installed and running.
#[derive(Debug)]
pub struct JetsonOrinNano {
    /// The tree.
    pub tree: Tree,
    /// The fan's hwmon device.
    pub fan: SimHwmon,
    /// The tachometer's hwmon device.
    pub tach: SimHwmon,
    /// The power monitor.
    pub ina: SimIna3221,
    /// The GPU.
    pub gpu: SimGpu,
    /// `cpu-thermal`.
    pub cpu_zone: SimZone,
    /// `gpu-thermal`.
    pub gpu_zone: SimZone,
    /// The fake `nvpmodel`.
    pub nvpmodel: SimNvpmodel,
}

impl JetsonOrinNano {
    /// Builds the tree in `root` (created by the caller).
    pub fn build(root: &Path) -> Result<JetsonOrinNano> {
        let mut tree = Tree::new(root)?;
        let cpu_zone = tree.add_zone("cpu-thermal", 42.0)?;
        let gpu_zone = tree.add_zone("gpu-thermal", 41.0)?;
        let ina = tree.add_ina3221_hwmon(
            "devices/platform/bus@0/c240000.i2c/i2c-1",
            "1-0040",
            ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"],
        )?;
        let fan = tree.add_hwmon(
            HwmonSpec::new(
                "pwmfan",
                Device::new("devices/platform/pwm-fan")
                    .driver("bus/platform/drivers/pwm-fan")
                    .of_node(OfNode::new("pwm-fan", "pwm-fan", &["pwm-fan"])),
            )
            .attr("pwm1", "0")
            .attr("pwm1_enable", "1"),
        )?;
        let tach = tree.add_hwmon(
            HwmonSpec::new(
                "pwm_tach",
                Device::new("devices/platform/39c0000.tachometer")
                    .driver("bus/platform/drivers/pwm-tegra-tachometer")
                    .of_node(OfNode::new(
                        "tachometer@39c0000",
                        "tachometer",
                        &["nvidia,pwm-tegra234-tachometer"],
                    )),
            )
            .attr("rpm", "0"),
        )?;
        let gpu = tree.add_jetson_gpu(
            "devices/platform/gpu.0",
            &Device::new("devices/platform/bus@0/17000000.gpu").of_node(OfNode::new(
                "bus@0/gpu@17000000",
                "gpu",
                &["nvidia,ga10b"],
            )),
            "17000000.gpu",
            1_020_000_000,
        )?;
        let nvpmodel = tree.add_nvpmodel(&FakeNvpmodel::orin_nano())?;
        tree.set_nvfancontrol(true, true)?;
        Ok(JetsonOrinNano {
            tree,
            fan,
            tach,
            ina,
            gpu,
            cpu_zone,
            gpu_zone,
            nvpmodel,
        })
    }

    /// The sysfs root.
    pub fn sysfs(&self) -> PathBuf {
        self.tree.sysfs()
    }

    /// Sets the tach reading.
    pub fn set_fan_rpm(&self, rpm: u32) -> Result<()> {
        self.tach.set("rpm", &rpm.to_string())
    }

    /// `pwm1` as last written.
    pub fn pwm1(&self) -> Result<i64> {
        self.fan.get_i64("pwm1")
    }

    /// `pwm1_enable` as last written.
    pub fn pwm1_enable(&self) -> Result<i64> {
        self.fan.get_i64("pwm1_enable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_compute_relative_links() {
        assert_eq!(
            relative(
                Path::new("/r/sys/devices/a/b"),
                Path::new("/r/sys/class/hwmon")
            ),
            PathBuf::from("../../devices/a/b")
        );
        assert_eq!(
            relative(
                Path::new("/r/sys/devices/a"),
                Path::new("/r/sys/devices/a/hwmon/hwmon1")
            ),
            PathBuf::from("../..")
        );
    }

    #[test]
    fn can_quote_paths_for_sh() {
        assert_eq!(sh_quote(Path::new("/tmp/a'b")), "'/tmp/a'\\''b'");
    }
}
