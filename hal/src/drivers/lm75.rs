//! LM75 family temperature sensors (LM75, LM75A/B, PCT2075, TCN75).
//!
//! The device: a temperature register of two bytes, MSB first; the MSB is
//! the signed whole °C, the fraction sits in the top bits of the LSB (one
//! bit, 0.5 °C, on the LM75; three bits, 0.125 °C, on the LM75A/B and
//! PCT2075). Addresses 0x48–0x4F. An 8-bit configuration register whose
//! bit 0 shuts the converter down; T_HYST and T_OS in the temperature
//! format (75 and 80 °C at power-up).

use embedded_hal::i2c::I2c;

use crate::Result;
use crate::devices::TemperatureSensor;

/// Address with A2..A0 to ground.
pub const DEFAULT_ADDRESS: u8 = 0x48;

/// Register pointers.
pub mod register {
    /// Temperature (read-only, 2 bytes).
    pub const TEMPERATURE: u8 = 0x00;
    /// Configuration (1 byte).
    pub const CONFIGURATION: u8 = 0x01;
    /// Hysteresis threshold (2 bytes).
    pub const T_HYST: u8 = 0x02;
    /// Over-temperature shutdown threshold (2 bytes).
    pub const T_OS: u8 = 0x03;
}

/// Configuration bits.
pub mod config {
    /// Converter shut down.
    pub const SHUTDOWN: u8 = 0x01;
}

/// How many bits of the temperature the chip fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// LM75, TCN75: 0.5 °C.
    Bits9,
    /// LM75A/B, PCT2075: 0.125 °C.
    Bits11,
}

/// Converts the temperature register (as a big-endian i16) to °C.
pub fn raw_to_celsius(raw: i16, resolution: Resolution) -> f64 {
    match resolution {
        Resolution::Bits9 => f64::from(raw >> 7) * 0.5,
        Resolution::Bits11 => f64::from(raw >> 5) * 0.125,
    }
}

/// An LM75-family sensor on an I²C bus.
pub struct Lm75<I2C> {
    i2c: I2C,
    addr: u8,
    resolution: Resolution,
}

impl<I2C: I2c> Lm75<I2C> {
    /// A driver for the chip at `addr`.
    pub fn new(i2c: I2C, addr: u8, resolution: Resolution) -> Self {
        Lm75 {
            i2c,
            addr,
            resolution,
        }
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    fn read16(&mut self, reg: u8) -> Result<i16> {
        Ok(super::regs::read_be16(&mut self.i2c, self.addr, reg)? as i16)
    }

    /// The temperature register as read.
    pub fn read_raw(&mut self) -> Result<i16> {
        self.read16(register::TEMPERATURE)
    }

    /// (T_HYST, T_OS) in °C.
    pub fn thresholds_celsius(&mut self) -> Result<(f64, f64)> {
        let h = self.read16(register::T_HYST)?;
        let os = self.read16(register::T_OS)?;
        Ok((
            raw_to_celsius(h, Resolution::Bits9),
            raw_to_celsius(os, Resolution::Bits9),
        ))
    }

    /// Shuts the converter down (`true`) or wakes it, keeping the other
    /// configuration bits.
    pub fn set_shutdown(&mut self, shutdown: bool) -> Result<()> {
        let c = super::regs::read_u8(&mut self.i2c, self.addr, register::CONFIGURATION)?;
        let v = if shutdown {
            c | config::SHUTDOWN
        } else {
            c & !config::SHUTDOWN
        };
        super::regs::write_u8(&mut self.i2c, self.addr, register::CONFIGURATION, v)
    }
}

impl<I2C: I2c + Send> TemperatureSensor for Lm75<I2C> {
    fn temperature_celsius(&mut self) -> Result<f64> {
        let raw = self.read_raw()?;
        Ok(raw_to_celsius(raw, self.resolution))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_convert_both_resolutions() {
        assert_eq!(raw_to_celsius(0x1960, Resolution::Bits11), 25.375);
        assert_eq!(raw_to_celsius(0x1980, Resolution::Bits9), 25.5);
        assert_eq!(raw_to_celsius(0xE700_u16 as i16, Resolution::Bits11), -25.0);
        assert_eq!(raw_to_celsius(0xFF80_u16 as i16, Resolution::Bits9), -0.5);
    }
}
