//! NVIDIA GPUs through NVML (nvml-wrapper 0.13), loaded at run time.
//!
//! [`Nvml::open`] dlopens `libnvidia-ml.so.1` (or a given path, such as
//! the fake library of [`crate::sim::nvml`]) and [`Nvml::gpus`] gives one
//! [`Gpu`] per GPU, implementing [`devices::Gpu`].
//!
//! Facts this module relies on (hardware reference §6.5, §7):
//!
//! - No library, or a library whose driver is not loaded, is a **normal
//!   state**: Jetson on JetPack 4/5 has no `libnvidia-ml.so.1` at all \[V\].
//!   [`Nvml::open`] then returns an absent [`Nvml`] (no GPUs), not an error.
//!   Any other init failure (no permission, not an NVML library) is an error.
//! - Symbols load lazily: a symbol an older driver lacks fails only when
//!   called (`FailedToLoadSymbol`), which is mapped to
//!   [`Error::Unsupported`] like `NotSupported` \[V\].
//! - `Drop for nvml_wrapper::Nvml` **panics** when `nvmlShutdown` is
//!   missing \[V\]; [`Nvml::open`] refuses such a library (and leaks it
//!   instead of dropping it), so a broken library can never panic the agent.
//!   Likewise an event set is only created when `nvmlEventSetFree` exists.
//! - Units: power and limits mW, energy mJ, clocks MHz, memory bytes \[V\];
//!   [`devices::GpuSample`] carries W, J, Hz, bytes.
//! - Jetson on JetPack 6/7 enumerates its iGPU but answers NotSupported for
//!   almost every reading \[T\]/\[V\]: [`sample`](devices::Gpu::sample) then succeeds with
//!   every field `None`.
//! - Setting a power limit needs root (NoPermission → [`Error::Denied`]),
//!   must lie within the constraints (→ [`Error::Invalid`], checked here
//!   first for a clear message, and again by NVML), and does not survive a
//!   reboot or driver reload \[V\].
//! - Fan control (`set_fan_speed` / `set_default_fan_speed`) switches the
//!   fan to manual; the default must be restored on exit \[V\]. [`Gpu`]
//!   restores every fan it set when it is dropped.
//!
//! ## Per-field errors in a sample
//!
//! A reading the device does not support is `None`. A reading that fails
//! otherwise (NoPermission, an NVML internal error) is also `None`, and
//! its error is kept in [`Gpu::sample_errors`] for the caller to log and
//! count. [`sample`](devices::Gpu::sample) itself fails only when the GPU is gone
//! ([`Error::Gone`], e.g. `GpuLost`: "fell off the bus") or when no reading
//! succeeded and at least one failed (the first error).
//!
//! ## XID events
//!
//! nvml-wrapper's `EventSet` borrows the `Nvml` it came from, so it cannot
//! live next to it in a struct without unsafe code. [`Nvml::gpus`] starts
//! one thread that owns an `Arc` of the library and one event set per GPU
//! (registered for critical XID errors), and answers requests: each
//! [`events`](devices::Gpu::events) call asks it to drain that GPU's set (waits of
//! [`DRAIN_WAIT_MS`] until NVML times out) and gets the events back, so
//! the call returns what NVML has queued without blocking on the next
//! event. The thread ends when the last [`Gpu`] of that enumeration is
//! dropped (the drop joins it). Events only arrive after registration,
//! i.e. after [`Nvml::gpus`]. A GPU or driver without events gives
//! [`Error::Unsupported`] from [`events`](devices::Gpu::events).
//!
//! ## To extend
//!
//! A new reading: a field in [`devices::GpuSample`], one `Reader::get` line
//! in [`sample`](devices::Gpu::sample), the C symbol in the fake library (`hal/fake-nvml`)
//! and its setter in [`crate::sim::nvml`], and a test in `tests/nvml.rs`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, EventSet};

use crate::devices::{self, GpuEvent, GpuIdentity, GpuSample};
use crate::{Error, ErrorKind, Result};

/// Name in errors.
const CHIP: &str = "nvml";

/// Timeout of each wait while draining an event set, ms. Short, so that a
/// drain does not block; not 0, because the header does not say that 0
/// means "do not wait" rather than "wait forever" \[U\].
pub const DRAIN_WAIT_MS: u32 = 1;

/// At most this many events are drained per [`events`](devices::Gpu::events) call; the rest
/// stay queued for the next call.
const MAX_EVENTS_PER_DRAIN: usize = 256;

/// The XID NVML reports when it does not know the XID.
const UNKNOWN_XID: u64 = 999;

/// Maps an NVML error of `call` on GPU `gpu` to the crate's error.
fn map_error(call: &str, gpu: Option<u32>, e: NvmlError) -> Error {
    let on = match gpu {
        Some(i) => format!("GPU {i}: {call}"),
        None => call.to_owned(),
    };
    match e {
        NvmlError::NotSupported | NvmlError::FunctionNotFound => Error::Unsupported {
            chip: CHIP,
            what: on,
        },
        NvmlError::FailedToLoadSymbol(_) => Error::Unsupported {
            chip: CHIP,
            what: format!("{on} (the library lacks it: older driver)"),
        },
        NvmlError::NoPermission => Error::Denied {
            chip: CHIP,
            detail: format!("{on}: no permission (run as root, or drop the setting)"),
        },
        NvmlError::OperatingSystem => Error::Denied {
            chip: CHIP,
            detail: format!("{on}: blocked by the operating system or cgroups"),
        },
        NvmlError::GpuLost => Error::Gone {
            chip: CHIP,
            detail: format!("{on}: the GPU fell off the bus; reset or power-cycle it"),
        },
        NvmlError::ResetRequired => Error::Gone {
            chip: CHIP,
            detail: format!("{on}: the GPU needs a reset"),
        },
        NvmlError::InsufficientPower => Error::Gone {
            chip: CHIP,
            detail: format!("{on}: external power cables not properly attached"),
        },
        NvmlError::LibRmVersionMismatch => Error::Gone {
            chip: CHIP,
            detail: format!(
                "{on}: driver and NVML library versions differ (driver upgraded?); reboot"
            ),
        },
        NvmlError::DriverNotLoaded | NvmlError::Uninitialized => Error::Gone {
            chip: CHIP,
            detail: format!("{on}: {e}"),
        },
        NvmlError::CorruptedInfoROM => Error::Gone {
            chip: CHIP,
            detail: format!("{on}: the GPU's infoROM is corrupted"),
        },
        NvmlError::NotFound => Error::Gone {
            chip: CHIP,
            detail: format!("{on}: no such GPU"),
        },
        NvmlError::InvalidArg => Error::Invalid {
            chip: CHIP,
            detail: format!("{on}: invalid argument"),
        },
        NvmlError::Utf8Error(_)
        | NvmlError::IncorrectBits(_)
        | NvmlError::UnexpectedVariant(_)
        | NvmlError::StringTooLong { .. }
        | NvmlError::InsufficientSize(_) => Error::Invalid {
            chip: CHIP,
            detail: format!("{on}: unexpected answer: {e}"),
        },
        // Timeout, Unknown, IrqIssue, InUse, InsufficientMemory, NoData,
        // and wrapper-side failures: may pass.
        other => Error::Protocol {
            chip: CHIP,
            detail: format!("{on}: {other}"),
        },
    }
}

/// The NVML library, or its absence.
#[derive(Debug)]
pub struct Nvml {
    lib: Option<Arc<nvml_wrapper::Nvml>>,
    absent: Option<String>,
    driver_version: Option<String>,
}

impl Nvml {
    /// Loads and initialises NVML from `lib_path` (default: the system's
    /// `libnvidia-ml.so.1`). A missing library or a driver that is not
    /// loaded gives an absent `Nvml` ([`Nvml::is_present`] false, no
    /// GPUs); other failures are errors.
    pub fn open(lib_path: Option<&Path>) -> Result<Nvml> {
        let mut builder = nvml_wrapper::Nvml::builder();
        if let Some(path) = lib_path {
            builder.lib_path(path.as_os_str());
        }
        let where_ = lib_path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "libnvidia-ml.so.1".to_owned());
        match builder.init() {
            Ok(lib) => {
                if lib.lib().nvmlShutdown.is_err() {
                    // Dropping it would panic inside nvml-wrapper.
                    std::mem::forget(lib);
                    return Err(Error::Invalid {
                        chip: CHIP,
                        detail: format!("{where_}: lacks nvmlShutdown, not a usable NVML library"),
                    });
                }
                let driver_version = lib.sys_driver_version().ok();
                Ok(Nvml {
                    lib: Some(Arc::new(lib)),
                    absent: None,
                    driver_version,
                })
            }
            Err(NvmlError::LibloadingError(e)) => Ok(Nvml::absent(format!("{where_}: {e}"))),
            Err(NvmlError::DriverNotLoaded) => Ok(Nvml::absent(format!(
                "{where_}: the NVIDIA driver is not loaded"
            ))),
            Err(NvmlError::LibraryNotFound) => Ok(Nvml::absent(format!(
                "{where_}: NVML could not find its libraries"
            ))),
            Err(e) => Err(map_error(&format!("{where_}: nvmlInit_v2"), None, e)),
        }
    }

    fn absent(reason: String) -> Nvml {
        Nvml {
            lib: None,
            absent: Some(reason),
            driver_version: None,
        }
    }

    /// Whether NVML was loaded and initialised.
    pub fn is_present(&self) -> bool {
        self.lib.is_some()
    }

    /// Why NVML is absent (for the log), or `None` when present.
    pub fn absent_reason(&self) -> Option<&str> {
        self.absent.as_deref()
    }

    /// The driver version NVML reports, when present and readable.
    pub fn driver_version(&self) -> Option<&str> {
        self.driver_version.as_deref()
    }

    /// Enumerates the GPUs: a handle for each one that could be opened,
    /// and the error for each that could not (a GPU that fell off the
    /// bus, one the agent may not access). Absent NVML: none of either.
    /// Starts the event thread (see the module documentation).
    pub fn gpus(&self) -> Result<Enumeration> {
        let mut out = Enumeration {
            gpus: Vec::new(),
            failed: Vec::new(),
        };
        let Some(lib) = &self.lib else {
            return Ok(out);
        };
        let count = lib
            .device_count()
            .map_err(|e| map_error("nvmlDeviceGetCount_v2", None, e))?;
        let mut identities = Vec::new();
        for index in 0..count {
            match identity(lib, index) {
                Ok(id) => identities.push(id),
                Err(e) => out.failed.push((index, e)),
            }
        }
        let indices: Vec<u32> = identities.iter().map(|id| id.index).collect();
        let (hub, registrations) = EventHub::start(Arc::clone(lib), indices)?;
        for ((slot, identity), registered) in identities.into_iter().enumerate().zip(registrations)
        {
            let events = match (&hub, registered) {
                (Some(hub), Ok(())) => Ok((Arc::clone(hub), slot)),
                (_, Err(e)) => Err(e),
                (None, Ok(())) => Err(Error::Unsupported {
                    chip: CHIP,
                    what: format!("GPU {}: XID events", identity.index),
                }),
            };
            out.gpus.push(Gpu {
                events,
                lib: Arc::clone(lib),
                identity,
                manual_fans: BTreeSet::new(),
                sample_errors: Vec::new(),
            });
        }
        Ok(out)
    }
}

/// What [`Nvml::gpus`] found.
#[derive(Debug)]
pub struct Enumeration {
    /// The GPUs that could be opened, in index order.
    pub gpus: Vec<Gpu>,
    /// (index, why) for each GPU that could not be opened.
    pub failed: Vec<(u32, Error)>,
}

/// Reads a GPU's identity; a name or UUID the device does not report is
/// replaced by a placeholder.
fn identity(lib: &nvml_wrapper::Nvml, index: u32) -> Result<GpuIdentity> {
    let device = lib
        .device_by_index(index)
        .map_err(|e| map_error("nvmlDeviceGetHandleByIndex_v2", Some(index), e))?;
    let name = or_unsupported(device.name(), "nvmlDeviceGetName", index)?
        .unwrap_or_else(|| "NVIDIA GPU".to_owned());
    let uuid = or_unsupported(device.uuid(), "nvmlDeviceGetUUID", index)?
        .unwrap_or_else(|| format!("nvml-index-{index}"));
    Ok(GpuIdentity { index, uuid, name })
}

/// `Ok(None)` for an unsupported reading, the mapped error otherwise.
fn or_unsupported<T>(
    r: std::result::Result<T, NvmlError>,
    call: &str,
    gpu: u32,
) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let e = map_error(call, Some(gpu), e);
            if e.kind() == ErrorKind::Unsupported {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// A request to the event thread: drain the set in `slot`.
struct Drain {
    slot: usize,
    reply: mpsc::Sender<Result<Vec<GpuEvent>>>,
}

/// The event thread of one enumeration; dropping it ends and joins the
/// thread.
#[derive(Debug)]
struct EventHub {
    requests: Option<mpsc::Sender<Drain>>,
    thread: Option<JoinHandle<()>>,
}

/// Per GPU: whether its event set was registered.
type Registrations = Vec<Result<()>>;

impl EventHub {
    /// Starts the thread and waits until it has registered the GPUs. No
    /// hub when no GPU could be registered (the thread has then ended).
    fn start(
        lib: Arc<nvml_wrapper::Nvml>,
        indices: Vec<u32>,
    ) -> Result<(Option<Arc<EventHub>>, Registrations)> {
        if indices.is_empty() {
            return Ok((None, Vec::new()));
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        let (req_tx, req_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("nvml-events".to_owned())
            .spawn(move || event_thread(lib, indices, ready_tx, req_rx))
            .map_err(|e| Error::Protocol {
                chip: CHIP,
                detail: format!("cannot start the NVML event thread: {e}"),
            })?;
        let Ok(registrations) = ready_rx.recv() else {
            let _ = thread.join();
            return Err(Error::Protocol {
                chip: CHIP,
                detail: "the NVML event thread ended while registering".to_owned(),
            });
        };
        if registrations.iter().all(|r| r.is_err()) {
            drop(req_tx);
            let _ = thread.join();
            return Ok((None, registrations));
        }
        let hub = EventHub {
            requests: Some(req_tx),
            thread: Some(thread),
        };
        Ok((Some(Arc::new(hub)), registrations))
    }

    fn drain(&self, slot: usize, gpu: u32) -> Result<Vec<GpuEvent>> {
        // The thread only ends early by panicking: a bug that a retry
        // does not fix.
        let gone = || Error::Gone {
            chip: CHIP,
            detail: format!("GPU {gpu}: the NVML event thread has ended; restart the agent"),
        };
        let (reply, answer) = mpsc::channel();
        let requests = self.requests.as_ref().ok_or_else(gone)?;
        requests.send(Drain { slot, reply }).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

impl Drop for EventHub {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Registers `index` for critical XID events in a new set.
fn register(lib: &nvml_wrapper::Nvml, index: u32) -> Result<EventSet<'_>> {
    if lib.lib().nvmlEventSetFree.is_err() {
        // An EventSet without nvmlEventSetFree would panic when dropped.
        return Err(Error::Unsupported {
            chip: CHIP,
            what: format!("GPU {index}: XID events (the library lacks nvmlEventSetFree)"),
        });
    }
    let device = lib
        .device_by_index(index)
        .map_err(|e| map_error("nvmlDeviceGetHandleByIndex_v2", Some(index), e))?;
    let set = lib
        .create_event_set()
        .map_err(|e| map_error("nvmlEventSetCreate", Some(index), e))?;
    device
        .register_events(EventTypes::CRITICAL_XID_ERROR, set)
        .map_err(|e| map_error("nvmlDeviceRegisterEvents", Some(index), e.error))
}

/// Drains one set: the XIDs NVML has queued, without waiting for more.
fn drain(set: &EventSet<'_>, gpu: u32) -> Result<Vec<GpuEvent>> {
    let mut events = Vec::new();
    while events.len() < MAX_EVENTS_PER_DRAIN {
        match set.wait(DRAIN_WAIT_MS) {
            Ok(data) => {
                if let Some(xid) = data.event_data {
                    let xid = match xid {
                        XidError::Value(v) => v,
                        XidError::Unknown => UNKNOWN_XID,
                    };
                    events.push(GpuEvent { xid });
                }
            }
            Err(NvmlError::Timeout) => break,
            // Deliver what arrived; the failure repeats on the next call.
            Err(_) if !events.is_empty() => break,
            Err(e) => return Err(map_error("nvmlEventSetWait_v2", Some(gpu), e)),
        }
    }
    Ok(events)
}

fn event_thread(
    lib: Arc<nvml_wrapper::Nvml>,
    indices: Vec<u32>,
    ready: mpsc::Sender<Registrations>,
    requests: mpsc::Receiver<Drain>,
) {
    let mut sets = Vec::new();
    let mut registrations = Vec::new();
    for &index in &indices {
        match register(&lib, index) {
            Ok(set) => {
                sets.push(Some(set));
                registrations.push(Ok(()));
            }
            Err(e) => {
                sets.push(None);
                registrations.push(Err(e));
            }
        }
    }
    let any = sets.iter().any(Option::is_some);
    if ready.send(registrations).is_err() || !any {
        return;
    }
    while let Ok(Drain { slot, reply }) = requests.recv() {
        let gpu = indices.get(slot).copied().unwrap_or(u32::MAX);
        let answer = match sets.get(slot) {
            Some(Some(set)) => drain(set, gpu),
            _ => Err(Error::Unsupported {
                chip: CHIP,
                what: format!("GPU {gpu}: XID events"),
            }),
        };
        let _ = reply.send(answer);
    }
    // The sets borrow `lib`: they are freed here, before it.
    drop(sets);
}

/// Reads the fields of one sample, sorting failures (see the module
/// documentation).
struct Reader {
    gpu: u32,
    read: usize,
    errors: Vec<Error>,
}

impl Reader {
    /// `Ok(Some)` when read, `Ok(None)` when unsupported or failed
    /// (recorded), `Err` when the GPU is gone.
    fn get<T>(&mut self, call: &str, r: std::result::Result<T, NvmlError>) -> Result<Option<T>> {
        match r {
            Ok(v) => {
                self.read += 1;
                Ok(Some(v))
            }
            Err(e) => {
                let e = map_error(call, Some(self.gpu), e);
                match e {
                    Error::Gone { .. } => Err(e),
                    _ if e.kind() == ErrorKind::Unsupported => Ok(None),
                    _ => {
                        self.errors.push(e);
                        Ok(None)
                    }
                }
            }
        }
    }
}

/// One GPU seen through NVML.
#[derive(Debug)]
pub struct Gpu {
    // Declared first so that it is dropped first: the event thread
    // releases its reference to the library before `lib` does.
    events: std::result::Result<(Arc<EventHub>, usize), Error>,
    lib: Arc<nvml_wrapper::Nvml>,
    identity: GpuIdentity,
    manual_fans: BTreeSet<u32>,
    sample_errors: Vec<Error>,
}

impl Gpu {
    fn device(&self) -> Result<Device<'_>> {
        self.lib.device_by_index(self.identity.index).map_err(|e| {
            map_error(
                "nvmlDeviceGetHandleByIndex_v2",
                Some(self.identity.index),
                e,
            )
        })
    }

    /// The errors of readings that failed (other than unsupported) in the
    /// last [`devices::Gpu::sample`]; their fields were `None`.
    pub fn sample_errors(&self) -> &[Error] {
        &self.sample_errors
    }

    /// Sets fan `fan` to `percent` (0–100), which switches it to manual
    /// control; [`Gpu::restore_fan`], or dropping this handle, gives it
    /// back to the driver.
    pub fn set_fan_percent(&mut self, fan: u32, percent: f64) -> Result<()> {
        let percent = devices::check_duty(CHIP, percent)?;
        let index = self.identity.index;
        let mut device = self.device()?;
        // Within 0–100 after check_duty, so the cast cannot truncate.
        let speed = percent.round() as u32;
        device
            .set_fan_speed(fan, speed)
            .map_err(|e| map_error("nvmlDeviceSetFanSpeed_v2", Some(index), e))?;
        self.manual_fans.insert(fan);
        Ok(())
    }

    /// Gives fan `fan` back to the driver's automatic control.
    pub fn restore_fan(&mut self, fan: u32) -> Result<()> {
        let index = self.identity.index;
        let mut device = self.device()?;
        device
            .set_default_fan_speed(fan)
            .map_err(|e| map_error("nvmlDeviceSetDefaultFanSpeed_v2", Some(index), e))?;
        self.manual_fans.remove(&fan);
        Ok(())
    }

    fn constraints_mw(&self, device: &Device<'_>) -> Result<(u32, u32)> {
        let c = device.power_management_limit_constraints().map_err(|e| {
            map_error(
                "nvmlDeviceGetPowerManagementLimitConstraints",
                Some(self.identity.index),
                e,
            )
        })?;
        Ok((c.min_limit, c.max_limit))
    }
}

impl devices::Gpu for Gpu {
    fn identity(&self) -> &GpuIdentity {
        &self.identity
    }

    fn sample(&mut self) -> Result<GpuSample> {
        self.sample_errors.clear();
        let device = self.device()?;
        let mut r = Reader {
            gpu: self.identity.index,
            read: 0,
            errors: Vec::new(),
        };
        let mut s = GpuSample {
            temperature_celsius: r
                .get(
                    "nvmlDeviceGetTemperature",
                    device.temperature(TemperatureSensor::Gpu),
                )?
                .map(f64::from),
            power_watts: r
                .get("nvmlDeviceGetPowerUsage", device.power_usage())?
                .map(|mw| f64::from(mw) / 1000.0),
            energy_joules: r
                .get(
                    "nvmlDeviceGetTotalEnergyConsumption",
                    device.total_energy_consumption(),
                )?
                .map(|mj| mj as f64 / 1000.0),
            ..GpuSample::default()
        };
        if let Some(u) = r.get("nvmlDeviceGetUtilizationRates", device.utilization_rates())? {
            s.utilization_percent = Some(f64::from(u.gpu));
            s.memory_utilization_percent = Some(f64::from(u.memory));
        }
        if let Some(m) = r.get("nvmlDeviceGetMemoryInfo_v2", device.memory_info())? {
            s.memory_used_bytes = Some(m.used as f64);
            s.memory_total_bytes = Some(m.total as f64);
        }
        s.sm_clock_hz = r
            .get("nvmlDeviceGetClockInfo(SM)", device.clock_info(Clock::SM))?
            .map(|mhz| f64::from(mhz) * 1e6);
        s.memory_clock_hz = r
            .get(
                "nvmlDeviceGetClockInfo(memory)",
                device.clock_info(Clock::Memory),
            )?
            .map(|mhz| f64::from(mhz) * 1e6);
        if let Some(n) = r.get("nvmlDeviceGetNumFans", device.num_fans())? {
            for fan in 0..n {
                match r.get("nvmlDeviceGetFanSpeed_v2", device.fan_speed(fan))? {
                    Some(pct) => s.fan_percent.push(f64::from(pct)),
                    // One fan unreadable: report none rather than a list
                    // whose positions no longer match the fans.
                    None => {
                        s.fan_percent.clear();
                        break;
                    }
                }
            }
        }
        s.power_limit_watts = match r.get(
            "nvmlDeviceGetEnforcedPowerLimit",
            device.enforced_power_limit(),
        )? {
            Some(mw) => Some(mw),
            None => r.get(
                "nvmlDeviceGetPowerManagementLimit",
                device.power_management_limit(),
            )?,
        }
        .map(|mw| f64::from(mw) / 1000.0);
        if let Some(ecc) = r.get("nvmlDeviceGetEccMode", device.is_ecc_enabled())? {
            if ecc.currently_enabled {
                s.ecc_corrected_total = r
                    .get(
                        "nvmlDeviceGetTotalEccErrors(corrected)",
                        device.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile),
                    )?
                    .map(|n| n as f64);
                s.ecc_uncorrected_total = r
                    .get(
                        "nvmlDeviceGetTotalEccErrors(uncorrected)",
                        device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile),
                    )?
                    .map(|n| n as f64);
            }
        }
        s.throttle_reasons = r
            .get(
                "nvmlDeviceGetCurrentClocksThrottleReasons",
                device.current_throttle_reasons(),
            )?
            .map(|reasons| reasons.bits());
        if r.read == 0 {
            if let Some(first) = r.errors.first() {
                return Err(first.clone());
            }
        }
        self.sample_errors = r.errors;
        Ok(s)
    }

    fn power_limit_range_watts(&mut self) -> Result<(f64, f64)> {
        let device = self.device()?;
        let (lo, hi) = self.constraints_mw(&device)?;
        Ok((f64::from(lo) / 1000.0, f64::from(hi) / 1000.0))
    }

    fn set_power_limit_watts(&mut self, watts: f64) -> Result<()> {
        let index = self.identity.index;
        let milliwatts = watts * 1000.0;
        if !milliwatts.is_finite() || milliwatts < 0.0 || milliwatts > f64::from(u32::MAX) {
            return Err(Error::Invalid {
                chip: CHIP,
                detail: format!("GPU {index}: power limit {watts} W is not a valid limit"),
            });
        }
        // Within u32 after the check above.
        let mw = milliwatts.round() as u32;
        let mut device = self.device()?;
        // Check the range first for a message with the range in it; when
        // the GPU does not report its constraints, NVML checks alone.
        match self.constraints_mw(&device) {
            Ok((lo, hi)) if !(lo..=hi).contains(&mw) => {
                return Err(Error::Invalid {
                    chip: CHIP,
                    detail: format!(
                        "GPU {index}: power limit {watts} W is outside {}–{} W",
                        f64::from(lo) / 1000.0,
                        f64::from(hi) / 1000.0
                    ),
                });
            }
            Err(e @ Error::Gone { .. }) => return Err(e),
            _ => {}
        }
        device
            .set_power_management_limit(mw)
            .map_err(|e| map_error("nvmlDeviceSetPowerManagementLimit", Some(index), e))
    }

    fn events(&mut self) -> Result<Vec<GpuEvent>> {
        match &self.events {
            Ok((hub, slot)) => hub.drain(*slot, self.identity.index),
            Err(e) => Err(e.clone()),
        }
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // Fans set to manual go back to the driver (hardware reference
        // §7.2: always restore on exit or failure).
        for fan in std::mem::take(&mut self.manual_fans) {
            if let Ok(mut device) = self.lib.device_by_index(self.identity.index) {
                let _ = device.set_default_fan_speed(fan);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_classify_nvml_errors() {
        let kind = |e| map_error("nvmlX", Some(0), e).kind();
        assert_eq!(kind(NvmlError::NotSupported), ErrorKind::Unsupported);
        assert_eq!(
            kind(NvmlError::FailedToLoadSymbol("x".into())),
            ErrorKind::Unsupported
        );
        assert_eq!(kind(NvmlError::NoPermission), ErrorKind::Fatal);
        assert_eq!(kind(NvmlError::GpuLost), ErrorKind::Fatal);
        assert_eq!(kind(NvmlError::InvalidArg), ErrorKind::Fatal);
        assert_eq!(kind(NvmlError::Timeout), ErrorKind::Transient);
        assert_eq!(kind(NvmlError::Unknown), ErrorKind::Transient);
        assert!(matches!(
            map_error("nvmlX", Some(0), NvmlError::NoPermission),
            Error::Denied { .. }
        ));
        assert!(matches!(
            map_error("nvmlX", Some(0), NvmlError::GpuLost),
            Error::Gone { .. }
        ));
    }

    #[test]
    fn names_the_call_and_gpu_in_errors() {
        let e = map_error("nvmlDeviceGetPowerUsage", Some(3), NvmlError::Unknown);
        let text = e.to_string();
        assert!(text.contains("GPU 3"), "{text}");
        assert!(text.contains("nvmlDeviceGetPowerUsage"), "{text}");
    }
}
