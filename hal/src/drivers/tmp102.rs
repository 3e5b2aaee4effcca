//! TI TMP102 temperature sensor.
//!
//! The device: 16-bit registers, MSB first; temperature in two's
//! complement, left-aligned, 0.0625 °C per LSB: 12 bits in normal mode,
//! 13 bits (to 150 °C) in extended mode, which bit 0 of the temperature
//! register flags. Configuration bits 14:13 (R1/R0) always read 1, which
//! the driver uses as an identity check, as Linux does. Addresses
//! 0x48–0x4B. After a configuration write the first conversion takes up
//! to 35 ms (Linux answers EAGAIN until then); a read before it returns
//! the previous value.

use embedded_hal::i2c::I2c;

use crate::devices::TemperatureSensor;
use crate::{Error, Result};

/// Address with ADD0 to ground.
pub const DEFAULT_ADDRESS: u8 = 0x48;

/// Register pointers.
pub mod register {
    /// Temperature (read-only).
    pub const TEMPERATURE: u8 = 0x00;
    /// Configuration.
    pub const CONFIGURATION: u8 = 0x01;
    /// Low limit.
    pub const T_LOW: u8 = 0x02;
    /// High limit.
    pub const T_HIGH: u8 = 0x03;
}

/// Configuration bits, as the 16-bit MSB-first value.
pub mod config {
    /// One-shot / OS.
    pub const ONE_SHOT: u16 = 0x8000;
    /// Converter resolution bits R1/R0, read-only, always 1.
    pub const RESOLUTION: u16 = 0x6000;
    /// Shutdown.
    pub const SHUTDOWN: u16 = 0x0100;
    /// Conversion rate CR1/CR0.
    pub const RATE: u16 = 0x00C0;
    /// Alert.
    pub const ALERT: u16 = 0x0020;
    /// Extended (13-bit) mode.
    pub const EXTENDED: u16 = 0x0010;
}

/// Converts the temperature register to °C; the format (12- or 13-bit)
/// comes from bit 0 of the value itself.
pub fn raw_to_celsius(raw: i16) -> f64 {
    if raw & 1 == 1 {
        f64::from(raw >> 3) * 0.0625
    } else {
        f64::from(raw >> 4) * 0.0625
    }
}

/// A TMP102 on an I²C bus.
pub struct Tmp102<I2C> {
    i2c: I2C,
    addr: u8,
}

impl<I2C: I2c> Tmp102<I2C> {
    /// A driver for the chip at `addr`; call [`init`](Self::init) before
    /// reading.
    pub fn new(i2c: I2C, addr: u8) -> Self {
        Tmp102 { i2c, addr }
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    fn read16(&mut self, reg: u8) -> Result<u16> {
        super::regs::read_be16(&mut self.i2c, self.addr, reg)
    }

    /// Checks the chip's identity bits, then selects extended mode (to
    /// 150 °C) and continuous conversion, keeping the rate and alert
    /// settings.
    pub fn init(&mut self) -> Result<()> {
        let c = self.read16(register::CONFIGURATION)?;
        if c & config::RESOLUTION != config::RESOLUTION {
            return Err(Error::WrongDevice {
                chip: "tmp102",
                addr: self.addr,
                detail: format!(
                    "configuration 0x{c:04x} lacks the read-only resolution bits 0x6000"
                ),
            });
        }
        let want = (c | config::EXTENDED) & !(config::SHUTDOWN | config::ONE_SHOT);
        if want != c {
            super::regs::write_be16(&mut self.i2c, self.addr, register::CONFIGURATION, want)?;
        }
        Ok(())
    }
}

impl<I2C: I2c + Send> TemperatureSensor for Tmp102<I2C> {
    fn temperature_celsius(&mut self) -> Result<f64> {
        let raw = self.read16(register::TEMPERATURE)? as i16;
        Ok(raw_to_celsius(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_convert_normal_and_extended_mode() {
        assert_eq!(raw_to_celsius(0x1900), 25.0); // 12-bit
        assert_eq!(raw_to_celsius(0x0C81), 25.0); // 13-bit, EM flag set
        assert_eq!(raw_to_celsius(0x4B01), 150.0);
        assert_eq!(raw_to_celsius(0xE700_u16 as i16), -25.0);
    }
}
