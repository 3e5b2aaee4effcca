//! A fake `libnvidia-ml.so` for onprem's tests and simulated GPU servers.
//!
//! Built as a `cdylib` that exports NVML's C API (`#[no_mangle] extern
//! "C"`), so that onprem's real NVML backend (nvml-wrapper) loads it with
//! `Nvml::builder().lib_path(..)` exactly as it loads the driver's library
//! (hardware reference §7.4 \[V\]). C types follow `nvml.h` (API 13) as read
//! through nvml-wrapper-sys 0.10: `nvmlReturn_t` is a `u32`, devices and
//! event sets are opaque non-null pointers that are never dereferenced,
//! outputs go through pointer arguments (a null or misaligned one is
//! `NVML_ERROR_INVALID_ARGUMENT`, never dereferenced).
//!
//! ## Where its state comes from
//!
//! The library finds its own file with `dladdr` and reads the control file
//! `fake-nvml.conf` **next to it**. Each test copies the library into its
//! own directory: a copy is a new file (new inode), so `dlopen` loads a
//! separate instance with its own statics, and tests running in parallel
//! in one process do not see each other. The file is read again on every
//! call and parsed again when its content changed (comparing content, not
//! mtime, which is too coarse for a test that writes twice within a
//! millisecond); writers replace it atomically (write + rename).
//!
//! What the library changes itself (a power limit set, a fan switched to
//! manual) lives in memory and is written to `fake-nvml.out` next to it,
//! for the test to read back.
//!
//! ### Control file (one item per line, `#` starts a comment line)
//!
//! ```text
//! driver_version 550.54.15
//! gpu 0 name NVIDIA H100 80GB HBM3        # rest of the line
//! gpu 0 uuid GPU-00000000-0000-0000-0000-000000000000
//! gpu 0 temperature 45                    # °C
//! gpu 0 power_mw 120000
//! gpu 0 energy_mj 5000000
//! gpu 0 utilization 40 10                 # gpu %, memory %
//! gpu 0 memory 85899345920 1073741824     # total, used bytes
//! gpu 0 clocks 1755 1755 2619 1530        # MHz: graphics, sm, memory, video
//! gpu 0 max_clocks 1980 1980 2619 1755
//! gpu 0 fans 30 35                        # % each; "fans" alone: no fans
//! gpu 0 power_limit 700000                # mW, the limit at load
//! gpu 0 power_limit_range 200000 700000   # mW
//! gpu 0 power_limit_default 700000        # mW
//! gpu 0 enforced_power_limit 650000       # mW (default: the limit)
//! gpu 0 ecc 1 1                           # current, pending (0/1)
//! gpu 0 ecc_errors 2 0                    # corrected, uncorrected
//! gpu 0 throttle 0x4                      # reasons bit mask
//! gpu 0 event_types 0x1f                  # supported (default: 0x1f)
//! gpu 0 lost                              # fell off the bus
//! driver_resets 1                         # driver reloads so far
//! fault nvmlDeviceGetPowerUsage 1 3       # function, device or *, code
//! xid 1 0 79                              # sequence, gpu, XID
//! ```
//!
//! A GPU is any index named by a `gpu` line (gaps are GPUs with nothing
//! set). A reading without its line is `NVML_ERROR_NOT_SUPPORTED` (3), so
//! a GPU with only `name` and `uuid` behaves like a Jetson on JetPack 6
//! (enumerates, NotSupported for everything, §6.5). A missing control file
//! is an empty system (no GPUs); a line that does not parse makes every
//! call return `NVML_ERROR_UNKNOWN` (999), so that a test notices.
//!
//! ### Behaviour
//!
//! - Faults: `fault <function> <device> <code>` makes that exported
//!   function return `code` for that device index (`*`: every device, and
//!   the functions without a device). `fault nvmlInit_v2 * 9` is "driver
//!   not loaded". Faults stay until the line is removed.
//! - `lost`: every call on that device, including getting its handle and
//!   waiting on an event set it is registered in, returns
//!   `NVML_ERROR_GPU_IS_LOST` (15).
//! - `nvmlDeviceSetPowerManagementLimit` enforces `power_limit_range`
//!   (outside: `NVML_ERROR_INVALID_ARGUMENT`, 2; no range: NotSupported).
//! - `driver_resets <n>`: a driver reload (a GPU reset, the kernel
//!   module reloaded) each time `n` rises above the count the library has
//!   seen: every power limit set through the API and every fan in manual
//!   mode is forgotten, so GPUs are back at their defaults.
//! - XID events: an event set delivers, in sequence order, the `xid` lines
//!   with a sequence number above the highest one present when the set was
//!   created, for GPUs registered in it with the XID bit (0x8); with none
//!   left, `nvmlEventSetWait_v2` waits up to its timeout (checking every
//!   few milliseconds) and returns `NVML_ERROR_TIMEOUT` (10).
//! - `nvmlInit_v2`/`nvmlShutdown` count references; other calls before
//!   init return `NVML_ERROR_UNINITIALIZED` (1).
//! - `nvmlDeviceGetMemoryInfo_v2` checks the struct version
//!   (`sizeof | 2 << 24`; wrong: `NVML_ERROR_ARGUMENT_VERSION_MISMATCH`, 25).
//!
//! ### Output file (`fake-nvml.out`)
//!
//! ```text
//! gpu 0 power_limit 250000    # set through the API
//! gpu 0 fan 1 60              # fan 1 in manual mode at 60 %
//! ```
//!
//! ## To extend
//!
//! Add the field to `Gpu` and its parser line, export the function with
//! the exact C signature from `nvml.h` (check it against
//! nvml-wrapper-sys's `bindings.rs`), route it through `device_call`, and
//! add it to the writer in onprem-hal's `sim::nvml`. The file must build
//! with plain `rustc` and the standard library only (no crates): onprem-hal's
//! build script compiles it that way and embeds it. A symbol that an older
//! driver lacks gets `#[cfg(not(onprem_fake_nvml_old))]` (see
//! `onprem-fake-nvml-old`).

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::{CStr, c_char, c_uint, c_ulonglong, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// `nvmlReturn_t`.
type Return = c_uint;

const SUCCESS: Return = 0;
const UNINITIALIZED: Return = 1;
const INVALID_ARGUMENT: Return = 2;
const NOT_SUPPORTED: Return = 3;
const INSUFFICIENT_SIZE: Return = 7;
const TIMEOUT: Return = 10;
const GPU_IS_LOST: Return = 15;
const ARGUMENT_VERSION_MISMATCH: Return = 25;
const UNKNOWN: Return = 999;

/// The control file, next to the library.
const CONTROL_FILE: &str = "fake-nvml.conf";
/// What the library changed, next to the library.
const OUTPUT_FILE: &str = "fake-nvml.out";

/// Device handles are `DEVICE_BASE + index`, event sets `SET_BASE + id`:
/// non-null, recognisable, never dereferenced.
const DEVICE_BASE: usize = 0x0d00_0000;
const SET_BASE: usize = 0x0e00_0000;
/// More GPUs than any machine has; guards the handle ranges.
const MAX_GPUS: usize = 1024;

/// NVML's XID event bit.
const EVENT_XID: u64 = 0x8;
/// Event types a GPU supports unless its `event_types` line says otherwise:
/// single- and double-bit ECC, P-state, XID, clock.
const DEFAULT_EVENT_TYPES: u64 = 0x1f;

/// `nvmlDevice_t`: an opaque pointer.
pub type Device = *mut c_void;
/// `nvmlEventSet_t`: an opaque pointer.
pub type EventSet = *mut c_void;

/// `nvmlUtilization_t`.
#[repr(C)]
pub struct Utilization {
    /// GPU busy, %.
    pub gpu: c_uint,
    /// Memory controller busy, %.
    pub memory: c_uint,
}

/// `nvmlMemory_t` (v1).
#[repr(C)]
pub struct Memory {
    /// Bytes.
    pub total: c_ulonglong,
    /// Bytes.
    pub free: c_ulonglong,
    /// Bytes.
    pub used: c_ulonglong,
}

/// `nvmlMemory_v2_t`.
#[repr(C)]
pub struct MemoryV2 {
    /// `sizeof(nvmlMemory_v2_t) | 2 << 24`.
    pub version: c_uint,
    /// Bytes.
    pub total: c_ulonglong,
    /// Bytes reserved by the driver.
    pub reserved: c_ulonglong,
    /// Bytes.
    pub free: c_ulonglong,
    /// Bytes.
    pub used: c_ulonglong,
}

/// `nvmlEventData_t`.
#[repr(C)]
pub struct EventData {
    /// The device the event is about.
    pub device: Device,
    /// One event type bit.
    pub event_type: c_ulonglong,
    /// The XID for XID events.
    pub event_data: c_ulonglong,
    /// 0xFFFFFFFF: none.
    pub gpu_instance_id: c_uint,
    /// 0xFFFFFFFF: none.
    pub compute_instance_id: c_uint,
}

/// One GPU as the control file describes it; `None` is NotSupported.
#[derive(Debug, Clone, Default, PartialEq)]
struct Gpu {
    name: Option<String>,
    uuid: Option<String>,
    temperature: Option<u32>,
    power_mw: Option<u32>,
    energy_mj: Option<u64>,
    utilization: Option<(u32, u32)>,
    memory: Option<(u64, u64)>,
    clocks: Option<[u32; 4]>,
    max_clocks: Option<[u32; 4]>,
    fans: Option<Vec<u32>>,
    power_limit: Option<u32>,
    power_limit_range: Option<(u32, u32)>,
    power_limit_default: Option<u32>,
    enforced_power_limit: Option<u32>,
    ecc: Option<(u32, u32)>,
    ecc_errors: Option<(u64, u64)>,
    throttle: Option<u64>,
    event_types: Option<u64>,
    lost: bool,
}

/// The whole control file.
#[derive(Debug, Clone, Default, PartialEq)]
struct Config {
    driver_version: Option<String>,
    gpus: Vec<Gpu>,
    /// (function, device or `None` for `*`) → code.
    faults: BTreeMap<(String, Option<u32>), Return>,
    /// (sequence, gpu, xid), in file order.
    xids: Vec<(u64, u32, u64)>,
    /// Driver reloads so far.
    driver_resets: u64,
}

impl Config {
    fn fault(&self, function: &str, device: Option<u32>) -> Option<Return> {
        if let Some(d) = device {
            if let Some(code) = self.faults.get(&(function.to_owned(), Some(d))) {
                return Some(*code);
            }
        }
        self.faults.get(&(function.to_owned(), None)).copied()
    }

    fn last_xid_seq(&self) -> u64 {
        self.xids.iter().map(|x| x.0).max().unwrap_or(0)
    }
}

fn parse_num<T: std::str::FromStr>(s: Option<&&str>, line: usize) -> Result<T, String> {
    let s = s.ok_or_else(|| format!("line {line}: value missing"))?;
    s.parse()
        .map_err(|_| format!("line {line}: {s:?} is not a number"))
}

fn parse_hex_or_dec(s: Option<&&str>, line: usize) -> Result<u64, String> {
    let s = s.ok_or_else(|| format!("line {line}: value missing"))?;
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("line {line}: {s:?} is not a number"))
}

fn parse_four(v: &[&str], line: usize) -> Result<[u32; 4], String> {
    Ok([
        parse_num(v.first(), line)?,
        parse_num(v.get(1), line)?,
        parse_num(v.get(2), line)?,
        parse_num(v.get(3), line)?,
    ])
}

/// Parses the control file (see the crate documentation).
fn parse(text: &str) -> Result<Config, String> {
    let mut config = Config::default();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let t: Vec<&str> = trimmed.split_whitespace().collect();
        match t.first().copied() {
            Some("driver_version") => {
                config.driver_version = Some(t.get(1..).unwrap_or_default().join(" "));
            }
            Some("fault") => {
                let function = t
                    .get(1)
                    .ok_or_else(|| format!("line {line}: function missing"))?;
                let device = match t.get(2).copied() {
                    Some("*") => None,
                    _ => Some(parse_num(t.get(2), line)?),
                };
                let code = parse_num(t.get(3), line)?;
                config.faults.insert(((*function).to_owned(), device), code);
            }
            Some("driver_resets") => config.driver_resets = parse_num(t.get(1), line)?,
            Some("xid") => {
                config.xids.push((
                    parse_num(t.get(1), line)?,
                    parse_num(t.get(2), line)?,
                    parse_num(t.get(3), line)?,
                ));
            }
            Some("gpu") => {
                let index: usize = parse_num(t.get(1), line)?;
                if index >= MAX_GPUS {
                    return Err(format!("line {line}: GPU index {index} is too high"));
                }
                if config.gpus.len() <= index {
                    config.gpus.resize(index + 1, Gpu::default());
                }
                let v = t.get(3..).unwrap_or_default();
                let g = config
                    .gpus
                    .get_mut(index)
                    .ok_or_else(|| format!("line {line}: GPU index"))?;
                match t.get(2).copied() {
                    Some("name") => g.name = Some(v.join(" ")),
                    Some("uuid") => g.uuid = Some(v.join(" ")),
                    Some("temperature") => g.temperature = Some(parse_num(v.first(), line)?),
                    Some("power_mw") => g.power_mw = Some(parse_num(v.first(), line)?),
                    Some("energy_mj") => g.energy_mj = Some(parse_num(v.first(), line)?),
                    Some("utilization") => {
                        g.utilization =
                            Some((parse_num(v.first(), line)?, parse_num(v.get(1), line)?));
                    }
                    Some("memory") => {
                        g.memory = Some((parse_num(v.first(), line)?, parse_num(v.get(1), line)?));
                    }
                    Some("clocks") => g.clocks = Some(parse_four(v, line)?),
                    Some("max_clocks") => g.max_clocks = Some(parse_four(v, line)?),
                    Some("fans") => {
                        let mut fans = Vec::new();
                        for i in 0..v.len() {
                            fans.push(parse_num(v.get(i), line)?);
                        }
                        g.fans = Some(fans);
                    }
                    Some("power_limit") => g.power_limit = Some(parse_num(v.first(), line)?),
                    Some("power_limit_range") => {
                        g.power_limit_range =
                            Some((parse_num(v.first(), line)?, parse_num(v.get(1), line)?));
                    }
                    Some("power_limit_default") => {
                        g.power_limit_default = Some(parse_num(v.first(), line)?);
                    }
                    Some("enforced_power_limit") => {
                        g.enforced_power_limit = Some(parse_num(v.first(), line)?);
                    }
                    Some("ecc") => {
                        g.ecc = Some((parse_num(v.first(), line)?, parse_num(v.get(1), line)?));
                    }
                    Some("ecc_errors") => {
                        g.ecc_errors =
                            Some((parse_num(v.first(), line)?, parse_num(v.get(1), line)?));
                    }
                    Some("throttle") => g.throttle = Some(parse_hex_or_dec(v.first(), line)?),
                    Some("event_types") => {
                        g.event_types = Some(parse_hex_or_dec(v.first(), line)?);
                    }
                    Some("lost") => g.lost = true,
                    other => return Err(format!("line {line}: unknown GPU field {other:?}")),
                }
            }
            other => return Err(format!("line {line}: unknown item {other:?}")),
        }
    }
    Ok(config)
}

/// An event set created through `nvmlEventSetCreate`.
#[derive(Debug, Default)]
struct Set {
    /// Registered GPU index → event mask.
    devices: BTreeMap<u32, u64>,
    /// Highest XID sequence number delivered or skipped.
    cursor: u64,
}

/// The library instance's state.
struct State {
    dir: PathBuf,
    raw: Option<Vec<u8>>,
    config: Result<Config, String>,
    init_count: u32,
    /// Power limits set through the API, mW.
    limits: BTreeMap<u32, u32>,
    /// Fans in manual mode: (gpu, fan) → %.
    manual_fans: BTreeMap<(u32, u32), u32>,
    sets: BTreeMap<usize, Set>,
    next_set: usize,
    /// Driver reloads already applied.
    resets_seen: u64,
}

impl State {
    fn new(dir: PathBuf) -> State {
        State {
            dir,
            raw: None,
            config: Ok(Config::default()),
            init_count: 0,
            limits: BTreeMap::new(),
            manual_fans: BTreeMap::new(),
            sets: BTreeMap::new(),
            next_set: 0,
            resets_seen: 0,
        }
    }

    /// Reads the control file and parses it again if it changed.
    fn refresh(&mut self) {
        let raw = std::fs::read(self.dir.join(CONTROL_FILE)).ok();
        if raw == self.raw {
            return;
        }
        self.config = match &raw {
            None => Ok(Config::default()),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => parse(text),
                Err(_) => Err("control file is not UTF-8".to_owned()),
            },
        };
        self.raw = raw;
        // A driver reload forgets what was set through the API.
        let resets = self.config.as_ref().map_or(0, |c| c.driver_resets);
        if resets > self.resets_seen {
            self.resets_seen = resets;
            self.limits.clear();
            self.manual_fans.clear();
            self.write_outputs();
        }
    }

    /// Writes what the library changed to the output file (atomically).
    fn write_outputs(&self) {
        let mut out = String::new();
        for (gpu, mw) in &self.limits {
            out.push_str(&format!("gpu {gpu} power_limit {mw}\n"));
        }
        for ((gpu, fan), pct) in &self.manual_fans {
            out.push_str(&format!("gpu {gpu} fan {fan} {pct}\n"));
        }
        let tmp = self.dir.join(format!("{OUTPUT_FILE}.tmp"));
        // A failure only loses the read-back for the test, which then
        // fails on its own; the call itself succeeded.
        if std::fs::write(&tmp, out).is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join(OUTPUT_FILE));
        }
    }
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// An address inside this library, for `dladdr`.
static ANCHOR: u8 = 0;

/// `Dl_info` from `<dlfcn.h>` (glibc and musl: four pointers). Declared
/// here rather than taken from the `libc` crate, so that this file builds
/// as a cdylib with plain `rustc` (onprem-hal's build script embeds it).
#[repr(C)]
struct DlInfo {
    dli_fname: *const c_char,
    dli_fbase: *mut c_void,
    dli_sname: *const c_char,
    dli_saddr: *mut c_void,
}

// The standard library already links libc (and libdl, where glibc before
// 2.34 keeps `dladdr`).
unsafe extern "C" {
    fn dladdr(addr: *const c_void, info: *mut DlInfo) -> std::ffi::c_int;
}

/// The directory this library file is in.
fn own_dir() -> Option<PathBuf> {
    let mut info = DlInfo {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let addr: *const u8 = &ANCHOR;
    // SAFETY: `addr` points into this library's data and `info` is a valid,
    // writable Dl_info; dladdr only writes to it.
    let found = unsafe { dladdr(addr.cast(), &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr succeeded, so dli_fname is a NUL-terminated string
    // owned by the dynamic loader, valid while this library is loaded.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    let path = Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()));
    path.parent().map(Path::to_path_buf)
}

/// Locks the state, creating it on first use, and refreshes the config.
fn lock() -> Option<MutexGuard<'static, Option<State>>> {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        *guard = Some(State::new(own_dir()?));
    }
    if let Some(state) = guard.as_mut() {
        state.refresh();
    }
    Some(guard)
}

/// Runs `f` on the state for a call that needs an initialised library,
/// after the function's injected fault, if any.
fn call(
    function: &str,
    device: Option<u32>,
    f: impl FnOnce(&mut State, &Config) -> Return,
) -> Return {
    let Some(mut guard) = lock() else {
        return UNKNOWN;
    };
    let Some(state) = guard.as_mut() else {
        return UNKNOWN;
    };
    if state.init_count == 0 {
        return UNINITIALIZED;
    }
    let config = match &state.config {
        Ok(c) => c.clone(),
        Err(_) => return UNKNOWN,
    };
    if let Some(code) = config.fault(function, device) {
        return code;
    }
    f(state, &config)
}

/// Runs `f` for one GPU's call: checks the handle, the injected fault and
/// a lost GPU.
fn device_call(
    function: &str,
    device: Device,
    f: impl FnOnce(&mut State, u32, &Gpu) -> Return,
) -> Return {
    let Some(index) = device.addr().checked_sub(DEVICE_BASE) else {
        return INVALID_ARGUMENT;
    };
    let Ok(index) = u32::try_from(index) else {
        return INVALID_ARGUMENT;
    };
    call(function, Some(index), |state, config| {
        let Some(gpu) = config.gpus.get(index as usize) else {
            return INVALID_ARGUMENT;
        };
        if gpu.lost {
            return GPU_IS_LOST;
        }
        f(state, index, gpu)
    })
}

/// Writes `value` through an out-pointer.
///
/// # Safety
/// `out` is null or valid for a write of `T`.
unsafe fn put<T>(out: *mut T, value: T) -> Return {
    if out.is_null() || !out.is_aligned() {
        return INVALID_ARGUMENT;
    }
    // SAFETY: non-null and aligned here; valid for writes per the contract.
    unsafe { out.write(value) };
    SUCCESS
}

/// Copies `s` with its NUL into a caller's buffer of `len` bytes.
///
/// # Safety
/// `buf` is null or valid for writes of `len` bytes.
unsafe fn put_str(buf: *mut c_char, len: c_uint, s: &str) -> Return {
    if buf.is_null() {
        return INVALID_ARGUMENT;
    }
    let bytes = s.as_bytes();
    if bytes.len() + 1 > len as usize {
        return INSUFFICIENT_SIZE;
    }
    // SAFETY: `buf` is valid for `len` bytes and we write bytes.len() + 1
    // <= len of them; the regions cannot overlap (ours is a Rust string).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
        buf.add(bytes.len()).write(0);
    }
    SUCCESS
}

/// A present value through an out-pointer, or NotSupported.
///
/// # Safety
/// As [`put`].
unsafe fn put_opt<T>(out: *mut T, value: Option<T>) -> Return {
    match value {
        // SAFETY: forwarded contract.
        Some(v) => unsafe { put(out, v) },
        None => NOT_SUPPORTED,
    }
}

fn init(function: &str) -> Return {
    let Some(mut guard) = lock() else {
        return UNKNOWN;
    };
    let Some(state) = guard.as_mut() else {
        return UNKNOWN;
    };
    let config = match &state.config {
        Ok(c) => c,
        Err(_) => return UNKNOWN,
    };
    if let Some(code) = config.fault(function, None) {
        return code;
    }
    state.init_count = state.init_count.saturating_add(1);
    SUCCESS
}

/// `nvmlInit_v2(void)`.
///
/// # Safety
/// None beyond C's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlInit_v2() -> Return {
    init("nvmlInit_v2")
}

/// `nvmlInitWithFlags(unsigned int flags)`; flags are ignored.
///
/// # Safety
/// None beyond C's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> Return {
    init("nvmlInitWithFlags")
}

/// `nvmlShutdown(void)`.
///
/// # Safety
/// None beyond C's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlShutdown() -> Return {
    call("nvmlShutdown", None, |state, _| {
        state.init_count -= 1;
        SUCCESS
    })
}

/// `nvmlSystemGetDriverVersion(char *version, unsigned int length)`.
///
/// # Safety
/// `version` is null or valid for `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    version: *mut c_char,
    length: c_uint,
) -> Return {
    call("nvmlSystemGetDriverVersion", None, |_, config| {
        match &config.driver_version {
            // SAFETY: forwarded contract.
            Some(v) => unsafe { put_str(version, length, v) },
            None => NOT_SUPPORTED,
        }
    })
}

/// `nvmlDeviceGetCount_v2(unsigned int *deviceCount)`.
///
/// # Safety
/// `count` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> Return {
    call("nvmlDeviceGetCount_v2", None, |_, config| {
        // SAFETY: forwarded contract; the count is at most MAX_GPUS.
        unsafe { put(count, config.gpus.len() as c_uint) }
    })
}

/// `nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)`.
///
/// # Safety
/// `device` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut Device,
) -> Return {
    call("nvmlDeviceGetHandleByIndex_v2", Some(index), |_, config| {
        match config.gpus.get(index as usize) {
            None => INVALID_ARGUMENT,
            Some(g) if g.lost => GPU_IS_LOST,
            Some(_) => {
                let handle = std::ptr::without_provenance_mut(DEVICE_BASE + index as usize);
                // SAFETY: forwarded contract.
                unsafe { put(device, handle) }
            }
        }
    })
}

/// `nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)`.
///
/// # Safety
/// `index` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetIndex(device: Device, index: *mut c_uint) -> Return {
    // SAFETY: forwarded contract.
    device_call("nvmlDeviceGetIndex", device, |_, i, _| unsafe {
        put(index, i)
    })
}

/// `nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)`.
///
/// # Safety
/// `name` is null or valid for `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: Device,
    name: *mut c_char,
    length: c_uint,
) -> Return {
    device_call("nvmlDeviceGetName", device, |_, _, g| match &g.name {
        // SAFETY: forwarded contract.
        Some(n) => unsafe { put_str(name, length, n) },
        None => NOT_SUPPORTED,
    })
}

/// `nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)`.
///
/// # Safety
/// `uuid` is null or valid for `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: Device,
    uuid: *mut c_char,
    length: c_uint,
) -> Return {
    device_call("nvmlDeviceGetUUID", device, |_, _, g| match &g.uuid {
        // SAFETY: forwarded contract.
        Some(u) => unsafe { put_str(uuid, length, u) },
        None => NOT_SUPPORTED,
    })
}

/// `nvmlDeviceGetTemperature(nvmlDevice_t, nvmlTemperatureSensors_t, unsigned int *temp)`;
/// sensor 0 (GPU) only.
///
/// # Safety
/// `temp` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: Device,
    sensor: c_uint,
    temp: *mut c_uint,
) -> Return {
    device_call("nvmlDeviceGetTemperature", device, |_, _, g| {
        if sensor != 0 {
            return INVALID_ARGUMENT;
        }
        // SAFETY: forwarded contract.
        unsafe { put_opt(temp, g.temperature) }
    })
}

/// `nvmlDeviceGetPowerUsage(nvmlDevice_t, unsigned int *power)`, mW.
///
/// # Safety
/// `power` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(device: Device, power: *mut c_uint) -> Return {
    // SAFETY: forwarded contract.
    device_call("nvmlDeviceGetPowerUsage", device, |_, _, g| unsafe {
        put_opt(power, g.power_mw)
    })
}

/// `nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t, unsigned long long *energy)`, mJ.
///
/// # Safety
/// `energy` is null or valid for a write.
#[cfg(not(onprem_fake_nvml_old))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEnergyConsumption(
    device: Device,
    energy: *mut c_ulonglong,
) -> Return {
    device_call("nvmlDeviceGetTotalEnergyConsumption", device, |_, _, g| {
        // SAFETY: forwarded contract.
        unsafe { put_opt(energy, g.energy_mj) }
    })
}

/// `nvmlDeviceGetPowerManagementLimit(nvmlDevice_t, unsigned int *limit)`, mW.
///
/// # Safety
/// `limit` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementLimit(
    device: Device,
    limit: *mut c_uint,
) -> Return {
    device_call(
        "nvmlDeviceGetPowerManagementLimit",
        device,
        |state, i, g| {
            let value = state.limits.get(&i).copied().or(g.power_limit);
            // SAFETY: forwarded contract.
            unsafe { put_opt(limit, value) }
        },
    )
}

/// `nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_t, unsigned int *defaultLimit)`, mW.
///
/// # Safety
/// `limit` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementDefaultLimit(
    device: Device,
    limit: *mut c_uint,
) -> Return {
    device_call(
        "nvmlDeviceGetPowerManagementDefaultLimit",
        device,
        |_, _, g| {
            // SAFETY: forwarded contract.
            unsafe { put_opt(limit, g.power_limit_default) }
        },
    )
}

/// `nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t, unsigned int *minLimit,
/// unsigned int *maxLimit)`, mW.
///
/// # Safety
/// `min` and `max` are null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementLimitConstraints(
    device: Device,
    min: *mut c_uint,
    max: *mut c_uint,
) -> Return {
    device_call(
        "nvmlDeviceGetPowerManagementLimitConstraints",
        device,
        |_, _, g| {
            let Some((lo, hi)) = g.power_limit_range else {
                return NOT_SUPPORTED;
            };
            if max.is_null() {
                return INVALID_ARGUMENT;
            }
            // SAFETY: forwarded contract.
            match unsafe { put(min, lo) } {
                // SAFETY: forwarded contract.
                SUCCESS => unsafe { put(max, hi) },
                e => e,
            }
        },
    )
}

/// `nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t, unsigned int *limit)`, mW: the
/// `enforced_power_limit` line, else the limit in force.
///
/// # Safety
/// `limit` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetEnforcedPowerLimit(
    device: Device,
    limit: *mut c_uint,
) -> Return {
    device_call("nvmlDeviceGetEnforcedPowerLimit", device, |state, i, g| {
        let current = state.limits.get(&i).copied().or(g.power_limit);
        let value = match (g.enforced_power_limit, current) {
            (Some(e), Some(c)) => Some(e.min(c)),
            (e, c) => e.or(c),
        };
        // SAFETY: forwarded contract.
        unsafe { put_opt(limit, value) }
    })
}

/// `nvmlDeviceSetPowerManagementLimit(nvmlDevice_t, unsigned int limit)`, mW, within
/// the constraints.
///
/// # Safety
/// None beyond C's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceSetPowerManagementLimit(
    device: Device,
    limit: c_uint,
) -> Return {
    device_call(
        "nvmlDeviceSetPowerManagementLimit",
        device,
        |state, i, g| {
            let Some((lo, hi)) = g.power_limit_range else {
                return NOT_SUPPORTED;
            };
            if !(lo..=hi).contains(&limit) {
                return INVALID_ARGUMENT;
            }
            state.limits.insert(i, limit);
            state.write_outputs();
            SUCCESS
        },
    )
}

/// `nvmlDeviceGetNumFans(nvmlDevice_t, unsigned int *numFans)`.
///
/// # Safety
/// `count` is null or valid for a write.
#[cfg(not(onprem_fake_nvml_old))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetNumFans(device: Device, count: *mut c_uint) -> Return {
    device_call("nvmlDeviceGetNumFans", device, |_, _, g| {
        let n = g.fans.as_ref().map(|f| f.len() as c_uint);
        // SAFETY: forwarded contract.
        unsafe { put_opt(count, n) }
    })
}

/// Fan `fan`'s speed: the manual setting, else the control file's.
fn fan_speed(state: &State, i: u32, g: &Gpu, fan: c_uint) -> Result<c_uint, Return> {
    let fans = g.fans.as_ref().ok_or(NOT_SUPPORTED)?;
    let configured = *fans.get(fan as usize).ok_or(INVALID_ARGUMENT)?;
    Ok(state
        .manual_fans
        .get(&(i, fan))
        .copied()
        .unwrap_or(configured))
}

/// `nvmlDeviceGetFanSpeed_v2(nvmlDevice_t, unsigned int fan, unsigned int *speed)`, %.
///
/// # Safety
/// `speed` is null or valid for a write.
#[cfg(not(onprem_fake_nvml_old))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFanSpeed_v2(
    device: Device,
    fan: c_uint,
    speed: *mut c_uint,
) -> Return {
    device_call(
        "nvmlDeviceGetFanSpeed_v2",
        device,
        |state, i, g| match fan_speed(state, i, g, fan) {
            // SAFETY: forwarded contract.
            Ok(s) => unsafe { put(speed, s) },
            Err(e) => e,
        },
    )
}

/// `nvmlDeviceGetFanSpeed(nvmlDevice_t, unsigned int *speed)`, % of fan 0 (the API
/// older drivers have).
///
/// # Safety
/// `speed` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFanSpeed(device: Device, speed: *mut c_uint) -> Return {
    device_call(
        "nvmlDeviceGetFanSpeed",
        device,
        |state, i, g| match fan_speed(state, i, g, 0) {
            // SAFETY: forwarded contract.
            Ok(s) => unsafe { put(speed, s) },
            Err(INVALID_ARGUMENT) => NOT_SUPPORTED,
            Err(e) => e,
        },
    )
}

/// `nvmlDeviceSetFanSpeed_v2(nvmlDevice_t, unsigned int fan, unsigned int speed)`:
/// manual mode at `speed` % (0–100).
///
/// # Safety
/// None beyond C's.
#[cfg(not(onprem_fake_nvml_old))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceSetFanSpeed_v2(
    device: Device,
    fan: c_uint,
    speed: c_uint,
) -> Return {
    device_call("nvmlDeviceSetFanSpeed_v2", device, |state, i, g| {
        if let Err(e) = fan_speed(state, i, g, fan) {
            return e;
        }
        if speed > 100 {
            return INVALID_ARGUMENT;
        }
        state.manual_fans.insert((i, fan), speed);
        state.write_outputs();
        SUCCESS
    })
}

/// `nvmlDeviceSetDefaultFanSpeed_v2(nvmlDevice_t, unsigned int fan)`: back to
/// automatic control.
///
/// # Safety
/// None beyond C's.
#[cfg(not(onprem_fake_nvml_old))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceSetDefaultFanSpeed_v2(device: Device, fan: c_uint) -> Return {
    device_call("nvmlDeviceSetDefaultFanSpeed_v2", device, |state, i, g| {
        if let Err(e) = fan_speed(state, i, g, fan) {
            return e;
        }
        state.manual_fans.remove(&(i, fan));
        state.write_outputs();
        SUCCESS
    })
}

fn clock(clocks: Option<[u32; 4]>, kind: c_uint) -> Result<c_uint, Return> {
    let clocks = clocks.ok_or(NOT_SUPPORTED)?;
    clocks.get(kind as usize).copied().ok_or(INVALID_ARGUMENT)
}

/// `nvmlDeviceGetClockInfo(nvmlDevice_t, nvmlClockType_t type, unsigned int *clock)`,
/// MHz; type 0 graphics, 1 SM, 2 memory, 3 video.
///
/// # Safety
/// `mhz` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetClockInfo(
    device: Device,
    kind: c_uint,
    mhz: *mut c_uint,
) -> Return {
    device_call("nvmlDeviceGetClockInfo", device, |_, _, g| {
        match clock(g.clocks, kind) {
            // SAFETY: forwarded contract.
            Ok(c) => unsafe { put(mhz, c) },
            Err(e) => e,
        }
    })
}

/// `nvmlDeviceGetMaxClockInfo(nvmlDevice_t, nvmlClockType_t type, unsigned int *clock)`, MHz.
///
/// # Safety
/// `mhz` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxClockInfo(
    device: Device,
    kind: c_uint,
    mhz: *mut c_uint,
) -> Return {
    device_call("nvmlDeviceGetMaxClockInfo", device, |_, _, g| {
        match clock(g.max_clocks, kind) {
            // SAFETY: forwarded contract.
            Ok(c) => unsafe { put(mhz, c) },
            Err(e) => e,
        }
    })
}

/// `nvmlDeviceGetUtilizationRates(nvmlDevice_t, nvmlUtilization_t *utilization)`.
///
/// # Safety
/// `rates` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    device: Device,
    rates: *mut Utilization,
) -> Return {
    device_call("nvmlDeviceGetUtilizationRates", device, |_, _, g| {
        let value = g
            .utilization
            .map(|(gpu, memory)| Utilization { gpu, memory });
        // SAFETY: forwarded contract.
        unsafe { put_opt(rates, value) }
    })
}

/// `nvmlDeviceGetMemoryInfo(nvmlDevice_t, nvmlMemory_t *memory)`.
///
/// # Safety
/// `memory` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo(device: Device, memory: *mut Memory) -> Return {
    device_call("nvmlDeviceGetMemoryInfo", device, |_, _, g| {
        let value = g.memory.map(|(total, used)| Memory {
            total,
            free: total.saturating_sub(used),
            used,
        });
        // SAFETY: forwarded contract.
        unsafe { put_opt(memory, value) }
    })
}

/// `nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t, nvmlMemory_v2_t *memory)`; the caller
/// sets `version`.
///
/// # Safety
/// `memory` is null or valid for a read and a write.
#[cfg(not(onprem_fake_nvml_old))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    device: Device,
    memory: *mut MemoryV2,
) -> Return {
    device_call("nvmlDeviceGetMemoryInfo_v2", device, |_, _, g| {
        if memory.is_null() || !memory.is_aligned() {
            return INVALID_ARGUMENT;
        }
        // SAFETY: non-null and aligned; valid for reads per the contract.
        let version = unsafe { (*memory).version };
        let expected = (std::mem::size_of::<MemoryV2>() | (2 << 24)) as c_uint;
        if version != expected {
            return ARGUMENT_VERSION_MISMATCH;
        }
        let Some((total, used)) = g.memory else {
            return NOT_SUPPORTED;
        };
        let value = MemoryV2 {
            version,
            total,
            reserved: 0,
            free: total.saturating_sub(used),
            used,
        };
        // SAFETY: forwarded contract.
        unsafe { put(memory, value) }
    })
}

/// `nvmlDeviceGetEccMode(nvmlDevice_t, nvmlEnableState_t *current, nvmlEnableState_t *pending)`.
///
/// # Safety
/// `current` and `pending` are null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetEccMode(
    device: Device,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> Return {
    device_call("nvmlDeviceGetEccMode", device, |_, _, g| {
        let Some((c, p)) = g.ecc else {
            return NOT_SUPPORTED;
        };
        if pending.is_null() {
            return INVALID_ARGUMENT;
        }
        // SAFETY: forwarded contract.
        match unsafe { put(current, c) } {
            // SAFETY: forwarded contract.
            SUCCESS => unsafe { put(pending, p) },
            e => e,
        }
    })
}

/// `nvmlDeviceGetTotalEccErrors(nvmlDevice_t, nvmlMemoryErrorType_t, nvmlEccCounterType_t,
/// unsigned long long *count)`: type 0 corrected, 1 uncorrected; both counter
/// types (volatile, aggregate) give the same counts. NotSupported while ECC
/// is off.
///
/// # Safety
/// `count` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEccErrors(
    device: Device,
    error_type: c_uint,
    counter_type: c_uint,
    count: *mut c_ulonglong,
) -> Return {
    device_call("nvmlDeviceGetTotalEccErrors", device, |_, _, g| {
        if error_type > 1 || counter_type > 1 {
            return INVALID_ARGUMENT;
        }
        if g.ecc.map(|e| e.0) != Some(1) {
            return NOT_SUPPORTED;
        }
        let value = g.ecc_errors.map(|(corrected, uncorrected)| {
            if error_type == 0 {
                corrected
            } else {
                uncorrected
            }
        });
        // SAFETY: forwarded contract.
        unsafe { put_opt(count, value) }
    })
}

/// `nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t, unsigned long long *reasons)`.
///
/// # Safety
/// `reasons` is null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksThrottleReasons(
    device: Device,
    reasons: *mut c_ulonglong,
) -> Return {
    device_call(
        "nvmlDeviceGetCurrentClocksThrottleReasons",
        device,
        |_, _, g| {
            // SAFETY: forwarded contract.
            unsafe { put_opt(reasons, g.throttle) }
        },
    )
}

/// `nvmlDeviceGetSupportedEventTypes(nvmlDevice_t, unsigned long long *eventTypes)`.
///
/// # Safety
/// `types` is null or valid for a write.
#[cfg(not(onprem_fake_nvml_old))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetSupportedEventTypes(
    device: Device,
    types: *mut c_ulonglong,
) -> Return {
    device_call("nvmlDeviceGetSupportedEventTypes", device, |_, _, g| {
        // SAFETY: forwarded contract.
        unsafe { put(types, g.event_types.unwrap_or(DEFAULT_EVENT_TYPES)) }
    })
}

/// An event set handle → its id.
fn set_id(set: EventSet) -> Option<usize> {
    set.addr().checked_sub(SET_BASE)
}

/// `nvmlEventSetCreate(nvmlEventSet_t *set)`.
///
/// # Safety
/// `set` is null or valid for a write.
#[cfg(not(onprem_fake_nvml_old))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlEventSetCreate(set: *mut EventSet) -> Return {
    call("nvmlEventSetCreate", None, |state, config| {
        let id = state.next_set;
        let handle = std::ptr::without_provenance_mut(SET_BASE + id);
        // SAFETY: forwarded contract.
        let r = unsafe { put(set, handle) };
        if r == SUCCESS {
            state.next_set += 1;
            let created = Set {
                devices: BTreeMap::new(),
                cursor: config.last_xid_seq(),
            };
            state.sets.insert(id, created);
        }
        r
    })
}

/// `nvmlDeviceRegisterEvents(nvmlDevice_t, unsigned long long eventTypes, nvmlEventSet_t set)`;
/// types the GPU does not support: NotSupported.
///
/// # Safety
/// None beyond C's.
#[cfg(not(onprem_fake_nvml_old))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceRegisterEvents(
    device: Device,
    types: c_ulonglong,
    set: EventSet,
) -> Return {
    device_call("nvmlDeviceRegisterEvents", device, |state, i, g| {
        let supported = g.event_types.unwrap_or(DEFAULT_EVENT_TYPES);
        if types & !supported != 0 {
            return NOT_SUPPORTED;
        }
        let Some(s) = set_id(set).and_then(|id| state.sets.get_mut(&id)) else {
            return INVALID_ARGUMENT;
        };
        *s.devices.entry(i).or_insert(0) |= types;
        SUCCESS
    })
}

/// One attempt to take the next event of a set.
enum Next {
    Event(EventData),
    Empty,
    Fail(Return),
}

fn next_event(set: EventSet) -> Next {
    let mut next = Next::Empty;
    let r = call("nvmlEventSetWait_v2", None, |state, config| {
        let Some(s) = set_id(set).and_then(|id| state.sets.get_mut(&id)) else {
            return INVALID_ARGUMENT;
        };
        let lost = s
            .devices
            .keys()
            .any(|i| config.gpus.get(*i as usize).is_some_and(|g| g.lost));
        if lost {
            return GPU_IS_LOST;
        }
        let mut pending: Vec<&(u64, u32, u64)> =
            config.xids.iter().filter(|x| x.0 > s.cursor).collect();
        pending.sort_by_key(|x| x.0);
        for &&(seq, gpu, xid) in &pending {
            s.cursor = seq;
            let wanted = s
                .devices
                .get(&gpu)
                .is_some_and(|mask| mask & EVENT_XID != 0);
            if wanted {
                next = Next::Event(EventData {
                    device: std::ptr::without_provenance_mut(DEVICE_BASE + gpu as usize),
                    event_type: EVENT_XID,
                    event_data: xid,
                    gpu_instance_id: u32::MAX,
                    compute_instance_id: u32::MAX,
                });
                break;
            }
        }
        SUCCESS
    });
    if r == SUCCESS { next } else { Next::Fail(r) }
}

/// `nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms)`.
///
/// # Safety
/// `data` is null or valid for a write.
#[cfg(not(onprem_fake_nvml_old))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlEventSetWait_v2(
    set: EventSet,
    data: *mut EventData,
    timeout_ms: c_uint,
) -> Return {
    if data.is_null() || !data.is_aligned() {
        return INVALID_ARGUMENT;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms.into());
    loop {
        match next_event(set) {
            // SAFETY: forwarded contract.
            Next::Event(e) => return unsafe { put(data, e) },
            Next::Fail(code) => return code,
            Next::Empty => {}
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return TIMEOUT;
        }
        // Emulates the driver's blocking wait: check again shortly (the
        // state lock is not held while sleeping).
        std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(5)));
    }
}

/// `nvmlEventSetFree(nvmlEventSet_t set)`.
///
/// # Safety
/// None beyond C's.
#[cfg(not(onprem_fake_nvml_old))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlEventSetFree(set: EventSet) -> Return {
    call("nvmlEventSetFree", None, |state, _| {
        match set_id(set).and_then(|id| state.sets.remove(&id)) {
            Some(_) => SUCCESS,
            None => INVALID_ARGUMENT,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_parse_every_line_kind() {
        let c = parse(
            "# comment\n\
             driver_version 550.54.15\n\
             gpu 1 name NVIDIA H100 80GB HBM3\n\
             gpu 1 fans 30 35\n\
             gpu 1 throttle 0x4\n\
             gpu 0 fans\n\
             gpu 0 lost\n\
             fault nvmlInit_v2 * 9\n\
             fault nvmlDeviceGetPowerUsage 1 3\n\
             xid 7 1 79\n\
             driver_resets 2\n",
        )
        .unwrap();
        assert_eq!(c.driver_version.as_deref(), Some("550.54.15"));
        assert_eq!(c.gpus.len(), 2);
        assert_eq!(c.gpus[1].name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(c.gpus[1].fans, Some(vec![30, 35]));
        assert_eq!(c.gpus[1].throttle, Some(4));
        assert_eq!(c.gpus[0].fans, Some(vec![]));
        assert!(c.gpus[0].lost);
        assert_eq!(c.fault("nvmlInit_v2", None), Some(9));
        assert_eq!(c.fault("nvmlDeviceGetPowerUsage", Some(1)), Some(3));
        assert_eq!(c.fault("nvmlDeviceGetPowerUsage", Some(0)), None);
        assert_eq!(c.xids, vec![(7, 1, 79)]);
        assert_eq!(c.driver_resets, 2);
    }

    #[test]
    fn returns_error_when_a_line_does_not_parse() {
        assert!(parse("gpu 0 temperature hot").is_err());
        assert!(parse("gpu 0 colour red").is_err());
        assert!(parse("bogus").is_err());
    }
}
