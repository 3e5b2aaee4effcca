//! Microchip EMC2101 / EMC2101-R fan controller with temperature sensing.
//!
//! The device: fixed address 0x4C; product ID 0x16 (0x28 for the -R part),
//! manufacturer 0x5D. One byte per transaction (no multi-byte transfers).
//! A 6-bit fan setting (0–63) in register 0x4C, writable once the look-up
//! table is disabled (fan configuration bit 5, PROG). Tach count in 0x46
//! (LSB, read first: it latches the MSB) and 0x47; RPM = 5 400 000 /
//! count, 0xFFFF when there is no tach signal (stalled). The external
//! diode reads MSB (0x01, read first: it latches the LSB) then LSB (0x10),
//! 0.125 °C steps; 0x3F8 means an open diode and 0x3FF a short.

use embedded_hal::i2c::I2c;

use crate::devices::{Fan, TemperatureSensor, check_duty};
use crate::{Error, Result};

/// The only address.
pub const ADDRESS: u8 = 0x4C;

/// Register pointers.
pub mod register {
    /// Internal temperature, signed °C.
    pub const INTERNAL_TEMPERATURE: u8 = 0x00;
    /// External diode temperature, MSB.
    pub const EXTERNAL_TEMPERATURE_MSB: u8 = 0x01;
    /// Configuration.
    pub const CONFIGURATION: u8 = 0x03;
    /// External diode temperature, LSB (bits 7:5).
    pub const EXTERNAL_TEMPERATURE_LSB: u8 = 0x10;
    /// Tach count, LSB (read first).
    pub const TACH_LSB: u8 = 0x46;
    /// Tach count, MSB.
    pub const TACH_MSB: u8 = 0x47;
    /// Fan configuration.
    pub const FAN_CONFIGURATION: u8 = 0x4A;
    /// Fan setting, 6 bits.
    pub const FAN_SETTING: u8 = 0x4C;
    /// Product ID.
    pub const PRODUCT_ID: u8 = 0xFD;
    /// Manufacturer ID.
    pub const MANUFACTURER_ID: u8 = 0xFE;
}

/// Configuration: pin 6 is the tach input (not ALERT).
pub const CONFIG_ALT_TCH: u8 = 0x04;
/// Fan configuration: look-up table off, fan setting writable.
pub const FAN_CONFIG_PROG: u8 = 0x20;
/// Product IDs of the EMC2101 and EMC2101-R.
pub const PRODUCT_IDS: [u8; 2] = [0x16, 0x28];
/// Microchip (SMSC).
pub const MANUFACTURER: u8 = 0x5D;
/// Full scale of the fan setting.
pub const SETTING_MAX: u8 = 63;

/// RPM from a tach count; 0 for 0xFFFF (no pulses: stalled) or 0.
pub fn count_to_rpm(count: u16) -> f64 {
    if count == 0xFFFF || count == 0 {
        0.0
    } else {
        5_400_000.0 / f64::from(count)
    }
}

/// °C from the external diode registers, or the fault they encode.
pub fn diode_to_celsius(msb: u8, lsb: u8) -> std::result::Result<f64, &'static str> {
    let raw = i16::from_be_bytes([msb, lsb]) >> 5;
    match raw as u16 & 0x7FF {
        0x3F8 => Err("external diode open"),
        0x3FF => Err("external diode shorted"),
        _ => Ok(f64::from(raw) * 0.125),
    }
}

/// An EMC2101 on an I²C bus.
pub struct Emc2101<I2C> {
    i2c: I2C,
    addr: u8,
}

impl<I2C: I2c> Emc2101<I2C> {
    /// A driver for the chip at `addr` (always [`ADDRESS`] on real parts);
    /// call [`init`](Self::init) first.
    pub fn new(i2c: I2C, addr: u8) -> Self {
        Emc2101 { i2c, addr }
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    fn read(&mut self, reg: u8) -> Result<u8> {
        super::regs::read_u8(&mut self.i2c, self.addr, reg)
    }

    fn write(&mut self, reg: u8, v: u8) -> Result<()> {
        super::regs::write_u8(&mut self.i2c, self.addr, reg, v)
    }

    /// Checks the IDs, makes pin 6 the tach input, and takes the fan
    /// setting out of the look-up table's hands.
    pub fn init(&mut self) -> Result<()> {
        let product = self.read(register::PRODUCT_ID)?;
        let maker = self.read(register::MANUFACTURER_ID)?;
        if !PRODUCT_IDS.contains(&product) || maker != MANUFACTURER {
            return Err(Error::WrongDevice {
                chip: "emc2101",
                addr: self.addr,
                detail: format!(
                    "product 0x{product:02x}, manufacturer 0x{maker:02x} (want 0x16/0x28, 0x5d)"
                ),
            });
        }
        let c = self.read(register::CONFIGURATION)?;
        if c & CONFIG_ALT_TCH == 0 {
            self.write(register::CONFIGURATION, c | CONFIG_ALT_TCH)?;
        }
        let f = self.read(register::FAN_CONFIGURATION)?;
        if f & FAN_CONFIG_PROG == 0 {
            self.write(register::FAN_CONFIGURATION, f | FAN_CONFIG_PROG)?;
        }
        Ok(())
    }

    /// The internal (die) temperature in °C.
    pub fn internal_celsius(&mut self) -> Result<f64> {
        Ok(f64::from(self.read(register::INTERNAL_TEMPERATURE)? as i8))
    }
}

impl<I2C: I2c + Send> Fan for Emc2101<I2C> {
    fn set_duty(&mut self, percent: f64) -> Result<()> {
        let p = check_duty("emc2101", percent)?;
        let setting = (p / 100.0 * f64::from(SETTING_MAX)).round() as u8;
        self.write(register::FAN_SETTING, setting)
    }

    fn duty(&mut self) -> Result<f64> {
        let s = self.read(register::FAN_SETTING)? & 0x3F;
        Ok(f64::from(s) * 100.0 / f64::from(SETTING_MAX))
    }

    fn rpm(&mut self) -> Result<Option<f64>> {
        let lsb = self.read(register::TACH_LSB)?;
        let msb = self.read(register::TACH_MSB)?;
        Ok(Some(count_to_rpm(u16::from_be_bytes([msb, lsb]))))
    }
}

impl<I2C: I2c + Send> TemperatureSensor for Emc2101<I2C> {
    /// The external diode (the CPU or board sensor the fan cools).
    fn temperature_celsius(&mut self) -> Result<f64> {
        let msb = self.read(register::EXTERNAL_TEMPERATURE_MSB)?;
        let lsb = self.read(register::EXTERNAL_TEMPERATURE_LSB)?;
        diode_to_celsius(msb, lsb).map_err(|d| Error::Invalid {
            chip: "emc2101",
            detail: d.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_convert_tach_counts() {
        assert_eq!(count_to_rpm(0xFFFF), 0.0);
        assert_eq!(count_to_rpm(1800), 3000.0);
    }

    #[test]
    fn can_decode_diode_values_and_faults() {
        assert_eq!(diode_to_celsius(0x2A, 0x60), Ok(42.375));
        assert_eq!(diode_to_celsius(0xF6, 0x00), Ok(-10.0));
        assert!(diode_to_celsius(0x7F, 0x00).is_err()); // 0x3F8 open
        assert!(diode_to_celsius(0x7F, 0xE0).is_err()); // 0x3FF short
    }
}
