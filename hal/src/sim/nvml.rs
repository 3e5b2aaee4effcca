//! Control of the fake NVML library (`hal/fake-nvml`), for tests and the
//! simulated GPU server.
//!
//! [`FakeNvml::install`] writes the fake `libnvidia-ml.so` into a
//! directory of the caller's (a new file each time, so each install is
//! loaded as a separate library with its own state, and parallel tests do
//! not share GPUs), and writes the control file next to it. Hand
//! [`FakeNvml::lib_path`] to [`crate::nvml::Nvml::open`]. Setters change
//! the physical inputs (temperature, power draw, utilisation, …) and inject
//! NVML return codes per function and GPU (hardware reference §9, "NVML
//! fake": NotSupported, NoPermission, GpuLost, Timeout, limit constraints,
//! missing symbols); [`FakeNvml::driver_reset`] reloads the driver (limits
//! and manual fans back to their defaults); getters read back what the library was told to do
//! (a power limit, a fan in manual mode).
//!
//! Every setter rewrites the control file atomically (write + rename); the
//! library reads it on every call. The format is documented in the fake
//! crate (`hal/fake-nvml/src/lib.rs`) and written only here.
//!
//! ## Where the library comes from
//!
//! [`Driver::Current`]: the file named by `ONPREM_FAKE_NVML_LIB` if set;
//! otherwise the copy embedded in this crate ([`EMBEDDED`]): the build
//! script compiles `hal/fake-nvml/src/lib.rs` as a cdylib for the target,
//! so a simulated GPU server works from the `onprem` binary alone, with no
//! `target/` directory.
//!
//! [`Driver::Older`] (tests only): the file named by
//! `ONPREM_FAKE_NVML_OLD_LIB`; otherwise, for `libonprem_fake_nvml_old.so`
//! (with or without a `-<hash>` suffix), the current executable's
//! directory, its `deps/`, its parent and the parent's `deps/`; the newest
//! file wins. Cargo builds the `cdylib` of a (dev-)dependency into
//! `target/<profile>/deps/`, where test binaries live, so naming
//! `onprem-fake-nvml-old` as a dev-dependency is enough.
//!
//! To extend: a field in [`FakeGpu`], its line in `FakeNvml::render`, and
//! the parser line and C function in the fake crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Name in errors.
const CHIP: &str = "fake-nvml";
/// The control file the library reads, next to it.
pub const CONTROL_FILE: &str = "fake-nvml.conf";
/// What the library changed, next to it.
pub const OUTPUT_FILE: &str = "fake-nvml.out";
/// The name the copy gets (the driver's own name).
pub const LIB_FILE: &str = "libnvidia-ml.so.1";

/// Which build of the fake library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// Every symbol onprem uses (`onprem-fake-nvml`).
    Current,
    /// An older driver without energy, memory v2, the `_v2` fan calls and
    /// the events API (`onprem-fake-nvml-old`).
    Older,
}

impl Driver {
    fn crate_name(self) -> &'static str {
        match self {
            Driver::Current => "onprem_fake_nvml",
            Driver::Older => "onprem_fake_nvml_old",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Driver::Current => "onprem-fake-nvml",
            Driver::Older => "onprem-fake-nvml-old",
        }
    }

    /// The environment variable that names the library file directly.
    pub fn env_var(self) -> &'static str {
        match self {
            Driver::Current => "ONPREM_FAKE_NVML_LIB",
            Driver::Older => "ONPREM_FAKE_NVML_OLD_LIB",
        }
    }

    /// Whether `file_name` is this build's library: `lib<name>.so` or
    /// `lib<name>-<hex>.so`.
    fn matches(self, file_name: &str) -> bool {
        let Some(rest) = file_name
            .strip_prefix("lib")
            .and_then(|r| r.strip_prefix(self.crate_name()))
            .and_then(|r| r.strip_suffix(".so"))
        else {
            return false;
        };
        match rest.strip_prefix('-') {
            None => rest.is_empty(),
            Some(hash) => !hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit()),
        }
    }
}

/// The current-driver fake library, as built for this target by the
/// build script (empty where the target links statically and so can
/// neither build nor load one).
pub static EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libonprem_fake_nvml.so"));

/// Where an install takes the library from.
enum Source {
    /// A file (an environment variable's, or a built `…_old.so`).
    File(PathBuf),
    /// [`EMBEDDED`].
    Embedded,
}

/// Where an install of `driver` takes the library from (see the module
/// documentation).
fn source(driver: Driver) -> Result<Source> {
    if std::env::var_os(driver.env_var()).is_some() || driver == Driver::Older {
        return locate(driver).map(Source::File);
    }
    if EMBEDDED.is_empty() {
        return Err(Error::Io {
            path: LIB_FILE.to_owned(),
            kind: std::io::ErrorKind::Unsupported,
            detail: format!(
                "this build links statically and embeds no fake NVML library; \
                 set {} to a built one",
                driver.env_var()
            ),
        });
    }
    Ok(Source::Embedded)
}

/// Finds a fake library file: the one the driver's environment variable
/// names, or else a built one next to the executable (see the module
/// documentation).
pub fn locate(driver: Driver) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(driver.env_var()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::Io {
                path: path.display().to_string(),
                kind: std::io::ErrorKind::NotFound,
                detail: format!("named by {}, but not a file", driver.env_var()),
            })
        };
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", &e))?;
    let mut dirs = Vec::new();
    if let Some(dir) = exe.parent() {
        dirs.push(dir.to_path_buf());
        dirs.push(dir.join("deps"));
        if let Some(parent) = dir.parent() {
            dirs.push(parent.to_path_buf());
            dirs.push(parent.join("deps"));
        }
    }
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_str().is_some_and(|n| driver.matches(n)) {
                continue;
            }
            let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            if best.as_ref().is_none_or(|(t, _)| modified > *t) {
                best = Some((modified, entry.path()));
            }
        }
    }
    best.map(|(_, path)| path).ok_or_else(|| Error::Io {
        path: format!("lib{}.so", driver.crate_name()),
        kind: std::io::ErrorKind::NotFound,
        detail: format!(
            "fake NVML library not found (looked in {}); build it with `cargo build -p {}`",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            driver.package()
        ),
    })
}

/// An NVML return code to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `NVML_ERROR_INVALID_ARGUMENT` (2).
    InvalidArg,
    /// `NVML_ERROR_NOT_SUPPORTED` (3).
    NotSupported,
    /// `NVML_ERROR_NO_PERMISSION` (4): not root.
    NoPermission,
    /// `NVML_ERROR_DRIVER_NOT_LOADED` (9), for `nvmlInit_v2`.
    DriverNotLoaded,
    /// `NVML_ERROR_TIMEOUT` (10), for `nvmlEventSetWait_v2`.
    Timeout,
    /// `NVML_ERROR_GPU_IS_LOST` (15).
    GpuLost,
    /// `NVML_ERROR_UNKNOWN` (999).
    Unknown,
    /// Any other `nvmlReturn_t`.
    Code(u32),
}

impl Fault {
    /// The `nvmlReturn_t` value.
    pub fn code(self) -> u32 {
        match self {
            Fault::InvalidArg => 2,
            Fault::NotSupported => 3,
            Fault::NoPermission => 4,
            Fault::DriverNotLoaded => 9,
            Fault::Timeout => 10,
            Fault::GpuLost => 15,
            Fault::Unknown => 999,
            Fault::Code(c) => c,
        }
    }
}

/// One fake GPU. A `None` field is a reading the GPU does not support
/// (the library answers NotSupported).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FakeGpu {
    /// Product name.
    pub name: Option<String>,
    /// UUID; [`FakeNvml::add_gpu`] makes one up when `None`.
    pub uuid: Option<String>,
    /// °C.
    pub temperature_celsius: Option<u32>,
    /// Power draw, mW.
    pub power_mw: Option<u32>,
    /// Energy since the driver loaded, mJ.
    pub energy_mj: Option<u64>,
    /// (GPU %, memory controller %).
    pub utilization: Option<(u32, u32)>,
    /// (total, used) bytes.
    pub memory: Option<(u64, u64)>,
    /// Current clocks, MHz: graphics, SM, memory, video.
    pub clocks_mhz: Option<[u32; 4]>,
    /// Maximum clocks, MHz: graphics, SM, memory, video.
    pub max_clocks_mhz: Option<[u32; 4]>,
    /// Fan speeds, % (an empty list: a card without fans that says so).
    pub fans: Option<Vec<u32>>,
    /// Power limit at load, mW.
    pub power_limit_mw: Option<u32>,
    /// (min, max) power limit, mW; setting outside is InvalidArg.
    pub power_limit_range_mw: Option<(u32, u32)>,
    /// Default power limit, mW.
    pub power_limit_default_mw: Option<u32>,
    /// Limit after all limiters, mW (`None`: the power limit).
    pub enforced_power_limit_mw: Option<u32>,
    /// ECC mode (current, pending).
    pub ecc: Option<(bool, bool)>,
    /// ECC error counts (corrected, uncorrected); read only while ECC is on.
    pub ecc_errors: Option<(u64, u64)>,
    /// Clock throttle reasons, NVML's bit mask.
    pub throttle_reasons: Option<u64>,
    /// Supported event types (`None`: all of 0x1f).
    pub event_types: Option<u64>,
    /// Fell off the bus: every call on it returns GpuLost.
    pub lost: bool,
}

impl FakeGpu {
    /// A data-centre GPU at idle with every reading (values of an H100
    /// SXM class card, 700 W).
    pub fn datacenter(name: &str) -> FakeGpu {
        FakeGpu {
            name: Some(name.to_owned()),
            uuid: None,
            temperature_celsius: Some(35),
            power_mw: Some(70_000),
            energy_mj: Some(1_000_000),
            utilization: Some((0, 0)),
            memory: Some((85_899_345_920, 536_870_912)),
            clocks_mhz: Some([345, 345, 2619, 765]),
            max_clocks_mhz: Some([1980, 1980, 2619, 1965]),
            fans: Some(Vec::new()),
            power_limit_mw: Some(700_000),
            power_limit_range_mw: Some((200_000, 700_000)),
            power_limit_default_mw: Some(700_000),
            enforced_power_limit_mw: None,
            ecc: Some((true, true)),
            ecc_errors: Some((0, 0)),
            throttle_reasons: Some(0x1),
            event_types: None,
            lost: false,
        }
    }

    /// A workstation card with two fans and without ECC.
    pub fn workstation(name: &str) -> FakeGpu {
        FakeGpu {
            fans: Some(vec![30, 30]),
            power_limit_mw: Some(300_000),
            power_limit_range_mw: Some((100_000, 300_000)),
            power_limit_default_mw: Some(300_000),
            memory: Some((51_539_607_552, 536_870_912)),
            ecc: Some((false, false)),
            ecc_errors: None,
            ..FakeGpu::datacenter(name)
        }
    }

    /// A GPU that enumerates but supports no reading (Jetson on JetPack 6,
    /// hardware reference §6.5).
    pub fn bare(name: &str) -> FakeGpu {
        FakeGpu {
            name: Some(name.to_owned()),
            ..FakeGpu::default()
        }
    }
}

/// A fake NVML installed in a directory.
#[derive(Debug)]
pub struct FakeNvml {
    dir: PathBuf,
    lib: PathBuf,
    driver_version: Option<String>,
    gpus: Vec<FakeGpu>,
    faults: BTreeMap<(String, Option<u32>), u32>,
    xids: Vec<(u64, u32, u64)>,
    next_seq: u64,
    driver_resets: u64,
}

/// XID lines kept in the control file; older ones are dropped.
const MAX_XIDS: usize = 256;

impl FakeNvml {
    /// Installs the current-driver fake into `dir`, with no GPUs.
    pub fn install(dir: &Path) -> Result<FakeNvml> {
        FakeNvml::install_driver(dir, Driver::Current)
    }

    /// Installs the given build of the fake into `dir`, with no GPUs. The
    /// directory must not hold one already.
    pub fn install_driver(dir: &Path, driver: Driver) -> Result<FakeNvml> {
        let source = source(driver)?;
        let lib = dir.join(LIB_FILE);
        if lib.exists() {
            return Err(Error::Io {
                path: lib.display().to_string(),
                kind: std::io::ErrorKind::AlreadyExists,
                detail: "a fake NVML is already installed here".to_owned(),
            });
        }
        match source {
            Source::File(path) => std::fs::copy(&path, &lib).map(drop),
            Source::Embedded => std::fs::write(&lib, EMBEDDED),
        }
        .map_err(|e| Error::io(&lib, &e))?;
        let fake = FakeNvml {
            dir: dir.to_path_buf(),
            lib,
            driver_version: Some("550.54.15".to_owned()),
            gpus: Vec::new(),
            faults: BTreeMap::new(),
            xids: Vec::new(),
            next_seq: 1,
            driver_resets: 0,
        };
        fake.write()?;
        Ok(fake)
    }

    /// The library to pass to [`crate::nvml::Nvml::open`].
    pub fn lib_path(&self) -> &Path {
        &self.lib
    }

    /// The directory the fake lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a GPU; returns its index.
    pub fn add_gpu(&mut self, mut gpu: FakeGpu) -> Result<u32> {
        let index = self.gpus.len() as u32;
        if gpu.uuid.is_none() {
            gpu.uuid = Some(format!("GPU-fa4e0000-0000-4000-8000-{index:012x}"));
        }
        self.gpus.push(gpu);
        self.write()?;
        Ok(index)
    }

    /// How many GPUs the library enumerates.
    pub fn gpu_count(&self) -> u32 {
        u32::try_from(self.gpus.len()).unwrap_or(u32::MAX)
    }

    /// GPU `index` as the control file describes it.
    pub fn gpu(&self, index: u32) -> Option<&FakeGpu> {
        self.gpus.get(index as usize)
    }

    /// Changes GPU `index` with `f`.
    pub fn update(&mut self, index: u32, f: impl FnOnce(&mut FakeGpu)) -> Result<()> {
        let count = self.gpus.len();
        let gpu = self
            .gpus
            .get_mut(index as usize)
            .ok_or_else(|| Error::Invalid {
                chip: CHIP,
                detail: format!("no fake GPU {index} (there are {count})"),
            })?;
        f(gpu);
        self.write()
    }

    /// Sets the temperature, °C.
    pub fn set_temperature(&mut self, index: u32, celsius: u32) -> Result<()> {
        self.update(index, |g| g.temperature_celsius = Some(celsius))
    }

    /// Sets the utilisation: GPU and memory controller, %.
    pub fn set_utilization(&mut self, index: u32, gpu: u32, memory: u32) -> Result<()> {
        self.update(index, |g| g.utilization = Some((gpu, memory)))
    }

    /// Sets the power draw, mW.
    pub fn set_power_mw(&mut self, index: u32, mw: u32) -> Result<()> {
        self.update(index, |g| g.power_mw = Some(mw))
    }

    /// Sets the energy counter, mJ.
    pub fn set_energy_mj(&mut self, index: u32, mj: u64) -> Result<()> {
        self.update(index, |g| g.energy_mj = Some(mj))
    }

    /// Sets the memory in use, bytes (the total stays).
    pub fn set_memory_used(&mut self, index: u32, used: u64) -> Result<()> {
        self.update(index, |g| {
            let total = g.memory.map_or(used, |m| m.0);
            g.memory = Some((total, used));
        })
    }

    /// Sets the fan speeds the driver reports, %.
    pub fn set_fans(&mut self, index: u32, percent: Vec<u32>) -> Result<()> {
        self.update(index, |g| g.fans = Some(percent))
    }

    /// Sets the ECC error counts (corrected, uncorrected).
    pub fn set_ecc_errors(&mut self, index: u32, corrected: u64, uncorrected: u64) -> Result<()> {
        self.update(index, |g| g.ecc_errors = Some((corrected, uncorrected)))
    }

    /// Sets the clock throttle reasons mask.
    pub fn set_throttle_reasons(&mut self, index: u32, mask: u64) -> Result<()> {
        self.update(index, |g| g.throttle_reasons = Some(mask))
    }

    /// The GPU falls off the bus.
    pub fn lose_gpu(&mut self, index: u32) -> Result<()> {
        self.update(index, |g| g.lost = true)
    }

    /// Sets the driver version string (`None`: the call is unsupported).
    pub fn set_driver_version(&mut self, version: Option<&str>) -> Result<()> {
        self.driver_version = version.map(str::to_owned);
        self.write()
    }

    /// Makes the exported C function `function` (e.g.
    /// `"nvmlDeviceGetPowerUsage"`, `"nvmlInit_v2"`) return `fault` for
    /// GPU `gpu`, or for every GPU and the calls without one when `None`.
    pub fn inject(&mut self, function: &str, gpu: Option<u32>, fault: Fault) -> Result<()> {
        if function.is_empty() || function.contains(char::is_whitespace) {
            return Err(Error::Invalid {
                chip: CHIP,
                detail: format!("{function:?} is not a function name"),
            });
        }
        self.faults.insert((function.to_owned(), gpu), fault.code());
        self.write()
    }

    /// Removes an injected fault.
    pub fn clear_fault(&mut self, function: &str, gpu: Option<u32>) -> Result<()> {
        self.faults.remove(&(function.to_owned(), gpu));
        self.write()
    }

    /// Queues a critical XID event on GPU `index`. Event sets created
    /// before this call deliver it.
    pub fn queue_xid(&mut self, index: u32, xid: u64) -> Result<()> {
        self.xids.push((self.next_seq, index, xid));
        self.next_seq += 1;
        if self.xids.len() > MAX_XIDS {
            let excess = self.xids.len() - MAX_XIDS;
            self.xids.drain(..excess);
        }
        self.write()
    }

    /// Reloads the driver (a GPU reset, the kernel module reloaded): every
    /// power limit set through the API and every fan in manual mode is
    /// forgotten, and the GPUs are back at their default limits.
    pub fn driver_reset(&mut self) -> Result<()> {
        self.driver_resets += 1;
        self.write()?;
        // The library forgets on its next call; what it reported goes now.
        let out = self.dir.join(OUTPUT_FILE);
        match std::fs::remove_file(&out) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&out, &e)),
            _ => Ok(()),
        }
    }

    /// The power limit the library accepted through
    /// `nvmlDeviceSetPowerManagementLimit`, mW; `None` if never set.
    pub fn power_limit_set_mw(&self, index: u32) -> Result<Option<u32>> {
        let key = format!("gpu {index} power_limit ");
        Ok(self
            .outputs()?
            .iter()
            .find_map(|l| l.strip_prefix(&key).and_then(|v| v.trim().parse().ok())))
    }

    /// The speed fan `fan` of GPU `index` was set to in manual mode, %;
    /// `None` while the driver controls it.
    pub fn fan_manual_percent(&self, index: u32, fan: u32) -> Result<Option<u32>> {
        let key = format!("gpu {index} fan {fan} ");
        Ok(self
            .outputs()?
            .iter()
            .find_map(|l| l.strip_prefix(&key).and_then(|v| v.trim().parse().ok())))
    }

    fn outputs(&self) -> Result<Vec<String>> {
        let path = self.dir.join(OUTPUT_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(&path, &e)),
        }
    }

    /// The control file's text.
    fn render(&self) -> String {
        let mut out =
            String::from("# onprem fake NVML control file (written by onprem_hal::sim::nvml)\n");
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        if let Some(v) = &self.driver_version {
            line(format!("driver_version {v}"));
        }
        for (i, g) in self.gpus.iter().enumerate() {
            let p = format!("gpu {i}");
            // Every GPU gets a line, so that one with nothing set exists.
            line(format!(
                "{p} event_types {:#x}",
                g.event_types.unwrap_or(0x1f)
            ));
            let four = |c: [u32; 4]| format!("{} {} {} {}", c[0], c[1], c[2], c[3]);
            if let Some(v) = &g.name {
                line(format!("{p} name {}", one_line(v)));
            }
            if let Some(v) = &g.uuid {
                line(format!("{p} uuid {}", one_line(v)));
            }
            if let Some(v) = g.temperature_celsius {
                line(format!("{p} temperature {v}"));
            }
            if let Some(v) = g.power_mw {
                line(format!("{p} power_mw {v}"));
            }
            if let Some(v) = g.energy_mj {
                line(format!("{p} energy_mj {v}"));
            }
            if let Some((gpu, mem)) = g.utilization {
                line(format!("{p} utilization {gpu} {mem}"));
            }
            if let Some((total, used)) = g.memory {
                line(format!("{p} memory {total} {used}"));
            }
            if let Some(c) = g.clocks_mhz {
                line(format!("{p} clocks {}", four(c)));
            }
            if let Some(c) = g.max_clocks_mhz {
                line(format!("{p} max_clocks {}", four(c)));
            }
            if let Some(fans) = &g.fans {
                let list: Vec<String> = fans.iter().map(u32::to_string).collect();
                line(format!("{p} fans {}", list.join(" ")).trim_end().to_owned());
            }
            if let Some(v) = g.power_limit_mw {
                line(format!("{p} power_limit {v}"));
            }
            if let Some((lo, hi)) = g.power_limit_range_mw {
                line(format!("{p} power_limit_range {lo} {hi}"));
            }
            if let Some(v) = g.power_limit_default_mw {
                line(format!("{p} power_limit_default {v}"));
            }
            if let Some(v) = g.enforced_power_limit_mw {
                line(format!("{p} enforced_power_limit {v}"));
            }
            if let Some((cur, pending)) = g.ecc {
                line(format!("{p} ecc {} {}", u8::from(cur), u8::from(pending)));
            }
            if let Some((c, u)) = g.ecc_errors {
                line(format!("{p} ecc_errors {c} {u}"));
            }
            if let Some(v) = g.throttle_reasons {
                line(format!("{p} throttle {v:#x}"));
            }
            if g.lost {
                line(format!("{p} lost"));
            }
        }
        for ((function, gpu), code) in &self.faults {
            let on = gpu.map_or_else(|| "*".to_owned(), |g| g.to_string());
            line(format!("fault {function} {on} {code}"));
        }
        for (seq, gpu, xid) in &self.xids {
            line(format!("xid {seq} {gpu} {xid}"));
        }
        if self.driver_resets > 0 {
            line(format!("driver_resets {}", self.driver_resets));
        }
        out
    }

    /// Replaces the control file atomically.
    fn write(&self) -> Result<()> {
        let path = self.dir.join(CONTROL_FILE);
        let tmp = self.dir.join(format!("{CONTROL_FILE}.tmp"));
        std::fs::write(&tmp, self.render()).map_err(|e| Error::io(&tmp, &e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, &e))
    }
}

/// A name or UUID on one line of the control file.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_match_library_file_names() {
        assert!(Driver::Current.matches("libonprem_fake_nvml.so"));
        assert!(Driver::Current.matches("libonprem_fake_nvml-0123abcd.so"));
        assert!(!Driver::Current.matches("libonprem_fake_nvml_old.so"));
        assert!(!Driver::Current.matches("libonprem_fake_nvml.rlib"));
        assert!(!Driver::Current.matches("libonprem_fake_nvml-.so"));
        assert!(Driver::Older.matches("libonprem_fake_nvml_old.so"));
        assert!(!Driver::Older.matches("libonprem_fake_nvml.so"));
    }

    #[test]
    fn embeds_a_shared_library_exporting_nvml() {
        assert!(EMBEDDED.starts_with(b"\x7fELF"), "{} bytes", EMBEDDED.len());
        for symbol in [
            &b"nvmlInit_v2"[..],
            b"nvmlDeviceGetFanSpeed_v2",
            b"nvmlEventSetWait_v2",
        ] {
            assert!(
                EMBEDDED.windows(symbol.len()).any(|w| w == symbol),
                "{}",
                String::from_utf8_lossy(symbol)
            );
        }
    }
}
