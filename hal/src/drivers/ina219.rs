//! TI INA219 current, bus-voltage and power monitor.
//!
//! The device: 16-bit registers, MSB first. Shunt voltage at 10 µV/LSB;
//! bus voltage in bits 15:3 at 4 mV/LSB with CNVR (bit 1, conversion
//! ready) and OVF (bit 0, math overflow: current and power invalid).
//! Current and power come from the chip's own arithmetic and need the
//! calibration register: Cal = trunc(0.04096 / (Current_LSB × R_shunt)),
//! Current = Shunt × Cal / 4096, Power = Current × Bus / 5000, power LSB =
//! 20 × Current_LSB. Addresses 0x40–0x4F.
//!
//! A brown-out or reset clears the calibration to 0, and current and power
//! then read 0 with no error. The driver checks the calibration whenever
//! current or power reads 0, re-initialises the chip if it was lost, and
//! reports [`Error::NotReady`] for that period (the next conversion takes
//! up to 68 ms), as the Linux driver does.

use embedded_hal::i2c::I2c;

use crate::devices::PowerMonitor;
use crate::{Error, Result};

/// Address with A1 and A0 to ground.
pub const DEFAULT_ADDRESS: u8 = 0x40;

/// Register pointers.
pub mod register {
    /// Configuration.
    pub const CONFIGURATION: u8 = 0x00;
    /// Shunt voltage.
    pub const SHUNT_VOLTAGE: u8 = 0x01;
    /// Bus voltage, CNVR, OVF.
    pub const BUS_VOLTAGE: u8 = 0x02;
    /// Power.
    pub const POWER: u8 = 0x03;
    /// Current.
    pub const CURRENT: u8 = 0x04;
    /// Calibration.
    pub const CALIBRATION: u8 = 0x05;
}

/// Configuration and status bits.
pub mod config {
    /// Reset (self-clearing).
    pub const RESET: u16 = 0x8000;
    /// Power-on value: 32 V range, PGA ÷8 (±320 mV), 12-bit bus and shunt
    /// ADC, shunt and bus continuous.
    pub const POWER_ON: u16 = 0x399F;
    /// Bus register: conversion ready.
    pub const CNVR: u16 = 0x0002;
    /// Bus register: math overflow.
    pub const OVF: u16 = 0x0001;
}

/// The calibration for a shunt and an expected maximum current.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Amperes per current-register LSB.
    pub current_lsb: f64,
    /// The calibration register value.
    pub register: u16,
}

/// Computes the calibration: Current_LSB = max / 2¹⁵, Cal = trunc(0.04096
/// / (Current_LSB × R)); bit 0 of the register is always 0.
pub fn calibration(shunt_ohms: f64, max_amps: f64) -> Calibration {
    let current_lsb = max_amps / 32768.0;
    let cal = (0.04096 / (current_lsb * shunt_ohms))
        .trunc()
        .clamp(0.0, 65534.0) as u16
        & !1;
    Calibration {
        current_lsb,
        register: cal,
    }
}

/// An INA219 on an I²C bus.
pub struct Ina219<I2C> {
    i2c: I2C,
    addr: u8,
    cal: Calibration,
    reinitialisations: u32,
}

impl<I2C: I2c> Ina219<I2C> {
    /// A driver for the chip at `addr` with a `shunt_ohms` shunt, scaled
    /// for currents up to `max_amps`; call [`init`](Self::init) first.
    pub fn new(i2c: I2C, addr: u8, shunt_ohms: f64, max_amps: f64) -> Self {
        Ina219 {
            i2c,
            addr,
            cal: calibration(shunt_ohms, max_amps),
            reinitialisations: 0,
        }
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    /// The calibration in use.
    pub fn calibration(&self) -> Calibration {
        self.cal
    }

    /// How often the driver found the calibration lost and re-initialised.
    pub fn reinitialisations(&self) -> u32 {
        self.reinitialisations
    }

    fn write16(&mut self, reg: u8, v: u16) -> Result<()> {
        super::regs::write_be16(&mut self.i2c, self.addr, reg, v)
    }

    fn read16(&mut self, reg: u8) -> Result<u16> {
        super::regs::read_be16(&mut self.i2c, self.addr, reg)
    }

    /// Writes the configuration and the calibration.
    pub fn init(&mut self) -> Result<()> {
        self.write16(register::CONFIGURATION, config::POWER_ON)?;
        self.write16(register::CALIBRATION, self.cal.register)
    }

    /// The shunt voltage in volts.
    pub fn shunt_volts(&mut self) -> Result<f64> {
        Ok(f64::from(self.read16(register::SHUNT_VOLTAGE)? as i16) * 10e-6)
    }

    /// Reads the bus register; an overflow invalidates current and power.
    fn bus_register(&mut self) -> Result<u16> {
        self.read16(register::BUS_VOLTAGE)
    }

    /// Reads current or power, checking for overflow and lost calibration.
    fn derived(&mut self, reg: u8) -> Result<u16> {
        if self.bus_register()? & config::OVF != 0 {
            return Err(Error::Invalid {
                chip: "ina219",
                detail: "math overflow: current beyond the calibrated range".to_owned(),
            });
        }
        let v = self.read16(reg)?;
        if v == 0 && self.read16(register::CALIBRATION)? == 0 {
            self.init()?;
            self.reinitialisations += 1;
            return Err(Error::NotReady {
                chip: "ina219",
                detail: "calibration lost (reset or brown-out); re-initialised",
            });
        }
        Ok(v)
    }
}

impl<I2C: I2c + Send> PowerMonitor for Ina219<I2C> {
    fn bus_volts(&mut self) -> Result<f64> {
        Ok(f64::from(self.bus_register()? >> 3) * 0.004)
    }

    fn current_amps(&mut self) -> Result<f64> {
        let raw = self.derived(register::CURRENT)? as i16;
        Ok(f64::from(raw) * self.cal.current_lsb)
    }

    fn power_watts(&mut self) -> Result<f64> {
        let raw = self.derived(register::POWER)?;
        Ok(f64::from(raw) * 20.0 * self.cal.current_lsb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_compute_calibration_like_the_datasheet() {
        // 0.1 Ω shunt, 3.2 A max: Current_LSB = 97.66 µA, Cal = 4194 → 4194.
        let c = calibration(0.1, 3.2);
        assert_eq!(c.register, 4194);
        // 10 mΩ, 32.768 A: LSB 1 mA, Cal 4096 (the Linux default).
        assert_eq!(calibration(0.01, 32.768).register, 4096);
    }
}
