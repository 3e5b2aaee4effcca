//! Device-level traits: what the rest of onprem sees of hardware.
//!
//! Reconcilers and the exporter hold `Box<dyn TemperatureSensor>` and the
//! like, never a driver or a bus; a real chip, the same driver on the
//! simulated bus, or a sysfs backend all look the same from there.
//!
//! To add a device kind: a trait here with methods in SI units (°C, V, A,
//! W), returning [`crate::Result`], and an implementation in each driver
//! that measures it.

use crate::Result;

/// Something that measures a temperature.
pub trait TemperatureSensor: Send {
    /// The temperature in degrees Celsius.
    fn temperature_celsius(&mut self) -> Result<f64>;
}

/// Something that measures a power rail.
pub trait PowerMonitor: Send {
    /// Bus (load side) voltage in volts.
    fn bus_volts(&mut self) -> Result<f64>;
    /// Current in amperes (negative when flowing backwards).
    fn current_amps(&mut self) -> Result<f64>;
    /// Power in watts.
    fn power_watts(&mut self) -> Result<f64>;
}

/// A fan whose drive can be set.
pub trait Fan: Send {
    /// Sets the drive, in percent of full (0–100).
    fn set_duty(&mut self, percent: f64) -> Result<()>;
    /// The drive the device reports, in percent.
    fn duty(&mut self) -> Result<f64>;
    /// The measured speed in RPM (0 when stalled); `None` when the fan has
    /// no tachometer.
    fn rpm(&mut self) -> Result<Option<f64>>;
}

/// Checks a duty request: a number from 0 to 100.
pub fn check_duty(chip: &'static str, percent: f64) -> Result<f64> {
    if percent.is_finite() && (0.0..=100.0).contains(&percent) {
        Ok(percent)
    } else {
        Err(crate::Error::Invalid {
            chip,
            detail: format!("duty {percent} is not within 0–100 %"),
        })
    }
}

/// A source of samples of one signal (an ADC input, a meter register).
/// Conversions take time: a source starts one when asked and answers
/// `Ok(None)` until it is done, so that a sampling loop never blocks.
pub trait SignalSource: Send {
    /// The next sample in the source's unit (volts for an ADC), or `None`
    /// while a conversion is still running.
    fn poll_sample(&mut self) -> Result<Option<f64>>;
}

/// A battery behind a UPS or power-management board.
pub trait Battery: Send {
    /// State of charge in percent (0–100).
    fn charge_percent(&mut self) -> Result<f64>;
    /// Battery voltage in volts.
    fn volts(&mut self) -> Result<f64>;
    /// Whether external power (mains, the adapter) is present.
    fn on_mains(&mut self) -> Result<bool>;
}

/// Something that switches power: a relay on a GPIO line, a blade's node
/// power, a UPS's output.
pub trait PowerSwitch: Send {
    /// Switches on (`true`) or off.
    fn set_on(&mut self, on: bool) -> Result<()>;
    /// The state the device reports, or `None` for a device that cannot
    /// report it (the last commanded state is the caller's to remember).
    fn is_on(&mut self) -> Result<Option<bool>>;
}

/// Which GPU this is, as NVML and the Jetson sysfs name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuIdentity {
    /// Index in enumeration order (NVML index; 0 for a Jetson iGPU).
    pub index: u32,
    /// Stable identity: NVML UUID (`GPU-…`), or the devfreq node name on
    /// a Jetson.
    pub uuid: String,
    /// Product name.
    pub name: String,
}

/// One reading of a GPU. A field the device does not support is `None`
/// (NVML NotSupported, a passively cooled card's fan), which is a normal
/// state, not an error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuSample {
    /// Core temperature, °C.
    pub temperature_celsius: Option<f64>,
    /// Power draw, W.
    pub power_watts: Option<f64>,
    /// Energy since the driver loaded, J.
    pub energy_joules: Option<f64>,
    /// GPU (SM) utilisation, percent.
    pub utilization_percent: Option<f64>,
    /// Memory-controller utilisation, percent.
    pub memory_utilization_percent: Option<f64>,
    /// Framebuffer memory used, bytes.
    pub memory_used_bytes: Option<f64>,
    /// Framebuffer memory total, bytes.
    pub memory_total_bytes: Option<f64>,
    /// SM (graphics) clock, Hz.
    pub sm_clock_hz: Option<f64>,
    /// Memory clock, Hz.
    pub memory_clock_hz: Option<f64>,
    /// Fan speeds, percent of maximum, one per fan (empty: no fans).
    pub fan_percent: Vec<f64>,
    /// Power limit in force, W.
    pub power_limit_watts: Option<f64>,
    /// Corrected (single-bit) ECC errors since the driver loaded.
    pub ecc_corrected_total: Option<f64>,
    /// Uncorrected (double-bit) ECC errors since the driver loaded.
    pub ecc_uncorrected_total: Option<f64>,
    /// Clock throttle reasons, NVML's bit mask.
    pub throttle_reasons: Option<u64>,
}

/// A critical event a GPU reported (NVML XID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuEvent {
    /// The XID number (999: unknown XID).
    pub xid: u64,
}

/// A GPU: telemetry and a power limit.
pub trait Gpu: Send {
    /// Which GPU.
    fn identity(&self) -> &GpuIdentity;
    /// One reading of everything the device supports.
    fn sample(&mut self) -> Result<GpuSample>;
    /// The range a power limit may take, W (min, max).
    fn power_limit_range_watts(&mut self) -> Result<(f64, f64)>;
    /// Sets the power limit, W. Out of range is [`crate::Error::Invalid`];
    /// not running as root is [`crate::Error::Denied`].
    fn set_power_limit_watts(&mut self, watts: f64) -> Result<()>;
    /// Critical events since the last call (XIDs), without blocking.
    fn events(&mut self) -> Result<Vec<GpuEvent>>;
}

/// What a press of a case's power button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonRequest {
    /// Double tap: reboot.
    Reboot,
    /// Held for about 3 s and released: shut down.
    Shutdown,
}

/// A power button whose presses arrive as requests. The power loop
/// decides what to do with them; a button never acts by itself.
pub trait Button: Send {
    /// The next request, waiting at most `timeout`; `None` when nothing
    /// was pressed.
    fn next_request(&mut self, timeout: std::time::Duration) -> Result<Option<ButtonRequest>>;
}
