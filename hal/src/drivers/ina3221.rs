//! TI INA3221 three-channel shunt and bus monitor (the power rails of
//! NVIDIA Jetson modules, and many carrier boards).
//!
//! The device: 16-bit registers, MSB first. Per channel *n* (1–3): shunt
//! voltage at 0x01 + 2(n−1), bus voltage at 0x02 + 2(n−1), both
//! left-aligned (shift right 3): shunt 40 µV/LSB (±163.8 mV), bus 8 mV/LSB
//! (0–26 V). Configuration 0x00 (power-on 0x7127) with channel enables in
//! bits 14/13/12 for channels 1/2/3; a disabled channel has no data.
//! Mask/enable 0x0F bit 0 (CVRF) is set when a conversion cycle finished.
//! Manufacturer ID 0xFE = 0x5449 ("TI"), die ID 0xFF = 0x3220. Current is
//! shunt voltage over the shunt resistance, which the board defines.

use embedded_hal::i2c::I2c;

use crate::{Error, Result};

/// Address with A0 to ground.
pub const DEFAULT_ADDRESS: u8 = 0x40;

/// Register pointers.
pub mod register {
    /// Configuration.
    pub const CONFIGURATION: u8 = 0x00;
    /// Shunt voltage, channel 1 (channel n: + 2(n−1)).
    pub const SHUNT_VOLTAGE_1: u8 = 0x01;
    /// Bus voltage, channel 1 (channel n: + 2(n−1)).
    pub const BUS_VOLTAGE_1: u8 = 0x02;
    /// Mask/enable, with CVRF in bit 0.
    pub const MASK_ENABLE: u8 = 0x0F;
    /// Manufacturer ID.
    pub const MANUFACTURER_ID: u8 = 0xFE;
    /// Die ID.
    pub const DIE_ID: u8 = 0xFF;
}

/// "TI".
pub const MANUFACTURER: u16 = 0x5449;
/// The INA3221's die.
pub const DIE: u16 = 0x3220;

/// Shunt register to volts.
pub fn shunt_to_volts(raw: u16) -> f64 {
    f64::from((raw as i16) >> 3) * 40e-6
}

/// Bus register to volts.
pub fn bus_to_volts(raw: u16) -> f64 {
    f64::from((raw as i16) >> 3) * 8e-3
}

/// An INA3221 with the shunt resistance of each channel.
pub struct Ina3221<I2C> {
    i2c: I2C,
    addr: u8,
    shunt_ohms: [f64; 3],
}

impl<I2C: I2c> Ina3221<I2C> {
    /// A driver for the chip at `addr`; call [`init`](Self::init) first.
    pub fn new(i2c: I2C, addr: u8, shunt_ohms: [f64; 3]) -> Self {
        Ina3221 {
            i2c,
            addr,
            shunt_ohms,
        }
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    fn read16(&mut self, reg: u8) -> Result<u16> {
        super::regs::read_be16(&mut self.i2c, self.addr, reg)
    }

    /// Checks the manufacturer and die IDs.
    pub fn init(&mut self) -> Result<()> {
        let m = self.read16(register::MANUFACTURER_ID)?;
        let d = self.read16(register::DIE_ID)?;
        if m != MANUFACTURER || d != DIE {
            return Err(Error::WrongDevice {
                chip: "ina3221",
                addr: self.addr,
                detail: format!("manufacturer 0x{m:04x}, die 0x{d:04x} (want 0x5449, 0x3220)"),
            });
        }
        Ok(())
    }

    fn check_channel(&mut self, ch: u8) -> Result<()> {
        if !(1..=3).contains(&ch) {
            return Err(Error::Invalid {
                chip: "ina3221",
                detail: format!("channel {ch} does not exist (1–3)"),
            });
        }
        let c = self.read16(register::CONFIGURATION)?;
        if c & (0x8000 >> ch) == 0 {
            return Err(Error::Invalid {
                chip: "ina3221",
                detail: format!("channel {ch} is disabled"),
            });
        }
        Ok(())
    }

    /// Bus voltage of channel `ch` (1–3), volts.
    pub fn bus_volts(&mut self, ch: u8) -> Result<f64> {
        self.check_channel(ch)?;
        Ok(bus_to_volts(
            self.read16(register::BUS_VOLTAGE_1 + 2 * (ch - 1))?,
        ))
    }

    /// Shunt voltage of channel `ch`, volts.
    pub fn shunt_volts(&mut self, ch: u8) -> Result<f64> {
        self.check_channel(ch)?;
        Ok(shunt_to_volts(
            self.read16(register::SHUNT_VOLTAGE_1 + 2 * (ch - 1))?,
        ))
    }

    /// Current of channel `ch`, amperes.
    pub fn current_amps(&mut self, ch: u8) -> Result<f64> {
        let v = self.shunt_volts(ch)?;
        let r = self.shunt_ohms[usize::from(ch - 1)];
        if !(r.is_finite() && r > 0.0) {
            return Err(Error::Invalid {
                chip: "ina3221",
                detail: format!("channel {ch} has no shunt resistance"),
            });
        }
        Ok(v / r)
    }

    /// Power of channel `ch`, watts (bus voltage × current).
    pub fn power_watts(&mut self, ch: u8) -> Result<f64> {
        Ok(self.bus_volts(ch)? * self.current_amps(ch)?)
    }

    /// Whether a conversion cycle has finished since the last check.
    pub fn conversion_ready(&mut self) -> Result<bool> {
        Ok(self.read16(register::MASK_ENABLE)? & 1 != 0)
    }
}

/// One channel of an INA3221 as a [`crate::devices::PowerMonitor`]: the rest of onprem
/// sees each rail on its own.
pub struct Channel<I2C> {
    chip: Ina3221<I2C>,
    ch: u8,
}

impl<I2C: I2c> Channel<I2C> {
    /// Channel `ch` (1–3) of `chip`.
    pub fn new(chip: Ina3221<I2C>, ch: u8) -> Self {
        Channel { chip, ch }
    }

    /// Gives the chip back.
    pub fn release(self) -> Ina3221<I2C> {
        self.chip
    }
}

impl<I2C: I2c + Send> crate::devices::PowerMonitor for Channel<I2C> {
    fn bus_volts(&mut self) -> Result<f64> {
        self.chip.bus_volts(self.ch)
    }

    fn current_amps(&mut self) -> Result<f64> {
        self.chip.current_amps(self.ch)
    }

    fn power_watts(&mut self) -> Result<f64> {
        self.chip.power_watts(self.ch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_convert_left_aligned_registers() {
        assert_eq!(bus_to_volts(0x2710), 10.0); // 1250 counts × 8 mV
        assert!((shunt_to_volts(0x0FA0) - 0.02).abs() < 1e-12); // 500 counts × 40 µV
        assert!((shunt_to_volts(0xF060) + 0.02).abs() < 1e-12);
    }
}
