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
