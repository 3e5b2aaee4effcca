//! Microchip EMC2301/2302/2303/2305 PWM fan controllers (the EMC2301 is
//! the fan controller of the Raspberry Pi CM4 IO board, at 0x2F on the
//! `i2c_csi_dsi` bus).
//!
//! The device: 8-bit registers; fan *n* has its block at base + 0x10·(n−1).
//! Fan setting 0x30 is the drive, 0–255. The tach count is 13 bits split
//! over 0x3E (high: bits 12:5) and 0x3F (low: bits 4:0 in bits 7:3); with
//! the usual 2-pole fan and the range multiplier Linux assumes (2), RPM =
//! 7 864 320 / count, and a count that makes 3 932 160 / count ≤ 480 (the
//! saturated 0x1FFF) means stalled. Product ID 0xFD: 0x34 EMC2305, 0x35
//! EMC2303, 0x36 EMC2302, 0x37 EMC2301; manufacturer 0xFE = 0x5D.
//! Drive-fail status 0x27 has one bit per fan.

use embedded_hal::i2c::I2c;

use crate::devices::{Fan, check_duty};
use crate::{Error, Result};

/// The EMC2301's address (and the EMC2303/2305 default).
pub const DEFAULT_ADDRESS: u8 = 0x2F;

/// Register pointers (fan 1; add [`FAN_STRIDE`] per further fan).
pub mod register {
    /// Configuration.
    pub const CONFIGURATION: u8 = 0x20;
    /// Fan status.
    pub const FAN_STATUS: u8 = 0x24;
    /// Stall status, one bit per fan.
    pub const STALL_STATUS: u8 = 0x25;
    /// Drive-fail status, one bit per fan.
    pub const DRIVE_FAIL_STATUS: u8 = 0x27;
    /// Fan setting (drive), fan 1.
    pub const FAN_SETTING: u8 = 0x30;
    /// Tach reading, high byte, fan 1.
    pub const TACH_HIGH: u8 = 0x3E;
    /// Tach reading, low byte, fan 1.
    pub const TACH_LOW: u8 = 0x3F;
    /// Product ID.
    pub const PRODUCT_ID: u8 = 0xFD;
    /// Manufacturer ID.
    pub const MANUFACTURER_ID: u8 = 0xFE;
}

/// Register distance between fan blocks.
pub const FAN_STRIDE: u8 = 0x10;
/// Microchip (SMSC).
pub const MANUFACTURER: u8 = 0x5D;

/// The model, from its product ID, with its number of fans.
pub fn model(product: u8) -> Option<(&'static str, u8)> {
    match product {
        0x34 => Some(("EMC2305", 5)),
        0x35 => Some(("EMC2303", 3)),
        0x36 => Some(("EMC2302", 2)),
        0x37 => Some(("EMC2301", 1)),
        _ => None,
    }
}

/// The 13-bit tach count from the two registers.
pub fn tach_count(high: u8, low: u8) -> u16 {
    (u16::from(high) << 5) | u16::from(low >> 3)
}

/// RPM from a tach count, 0 when stalled (Linux's rule, integer arithmetic).
pub fn count_to_rpm(count: u16) -> f64 {
    if count == 0 || 3_932_160 / u32::from(count) <= 480 {
        0.0
    } else {
        7_864_320.0 / f64::from(count)
    }
}

/// One fan of an EMC230x.
pub struct Emc230x<I2C> {
    i2c: I2C,
    addr: u8,
    fan: u8,
}

impl<I2C: I2c> Emc230x<I2C> {
    /// A driver for fan `fan` (1–5) of the chip at `addr`; call
    /// [`init`](Self::init) first.
    pub fn new(i2c: I2C, addr: u8, fan: u8) -> Self {
        Emc230x { i2c, addr, fan }
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    fn reg(&self, base: u8) -> u8 {
        base + FAN_STRIDE * (self.fan.saturating_sub(1))
    }

    fn read(&mut self, reg: u8) -> Result<u8> {
        super::regs::read_u8(&mut self.i2c, self.addr, reg)
    }

    /// Checks the IDs and that the model has this fan; returns the model.
    pub fn init(&mut self) -> Result<&'static str> {
        let product = self.read(register::PRODUCT_ID)?;
        let maker = self.read(register::MANUFACTURER_ID)?;
        let wrong = |detail: String| Error::WrongDevice {
            chip: "emc230x",
            addr: self.addr,
            detail,
        };
        let Some((name, fans)) = model(product).filter(|_| maker == MANUFACTURER) else {
            return Err(wrong(format!(
                "product 0x{product:02x}, manufacturer 0x{maker:02x}"
            )));
        };
        if self.fan == 0 || self.fan > fans {
            return Err(wrong(format!(
                "{name} has {fans} fan(s); fan {} requested",
                self.fan
            )));
        }
        Ok(name)
    }

    /// Whether the chip flags this fan's drive as failing (it cannot reach
    /// its target speed). Reading clears the flag if the condition is gone.
    pub fn drive_failed(&mut self) -> Result<bool> {
        Ok(self.read(register::DRIVE_FAIL_STATUS)? & (1 << (self.fan - 1)) != 0)
    }
}

impl<I2C: I2c + Send> Fan for Emc230x<I2C> {
    fn set_duty(&mut self, percent: f64) -> Result<()> {
        let p = check_duty("emc230x", percent)?;
        let v = (p / 100.0 * 255.0).round() as u8;
        let reg = self.reg(register::FAN_SETTING);
        super::regs::write_u8(&mut self.i2c, self.addr, reg, v)
    }

    fn duty(&mut self) -> Result<f64> {
        let reg = self.reg(register::FAN_SETTING);
        Ok(f64::from(self.read(reg)?) * 100.0 / 255.0)
    }

    fn rpm(&mut self) -> Result<Option<f64>> {
        let (h, l) = (self.reg(register::TACH_HIGH), self.reg(register::TACH_LOW));
        let high = self.read(h)?;
        let low = self.read(l)?;
        Ok(Some(count_to_rpm(tach_count(high, low))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_assemble_and_convert_tach_counts() {
        assert_eq!(tach_count(0x1F, 0x40), 0x3E8); // 1000
        assert_eq!(count_to_rpm(1000), 7864.32);
        assert_eq!(count_to_rpm(0x1FFF), 0.0);
        assert_eq!(count_to_rpm(0), 0.0);
    }
}
