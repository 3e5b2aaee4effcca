//! EMC2101 emulator: ID registers, a fan whose tach follows the 6-bit
//! setting (and stalls below a minimum drive), the fan setting ignored
//! while the look-up table owns it, LSB-first tach and MSB-first diode
//! reads through shadow registers, and open or shorted diode codes.

use std::any::Any;

use crate::sim::{Chip, ChipError, Pointer};

/// The external diode's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Diode {
    /// Connected, at this temperature in °C.
    Celsius(f64),
    /// Disconnected.
    Open,
    /// Shorted.
    Short,
}

/// An emulated EMC2101 driving one fan.
#[derive(Debug, Clone)]
pub struct Emc2101 {
    pointer: Pointer,
    product: u8,
    config: u8,
    fan_config: u8,
    setting: u8,
    internal: i8,
    diode: Diode,
    max_rpm: f64,
    stall_below: f64,
    stuck: bool,
    tach_msb_shadow: u8,
    diode_lsb_shadow: u8,
}

impl Emc2101 {
    /// A chip at power-on driving a fan of `max_rpm` at full drive that
    /// stalls below 20 % drive.
    pub fn new(max_rpm: f64) -> Self {
        Emc2101 {
            pointer: Pointer::default(),
            product: 0x16,
            config: 0x00,
            fan_config: 0x00,
            setting: 0,
            internal: 35,
            diode: Diode::Celsius(40.0),
            max_rpm,
            stall_below: 0.2,
            stuck: false,
            tach_msb_shadow: 0xFF,
            diode_lsb_shadow: 0,
        }
    }

    /// The -R part (product ID 0x28).
    pub fn r_variant(mut self) -> Self {
        self.product = 0x28;
        self
    }

    /// Sets the external diode.
    pub fn set_diode(&mut self, d: Diode) {
        self.diode = d;
    }

    /// A seized rotor: no tach pulses whatever the drive.
    pub fn set_stuck(&mut self, stuck: bool) {
        self.stuck = stuck;
    }

    /// The fan setting register (0–63).
    pub fn setting(&self) -> u8 {
        self.setting
    }

    /// The fan's speed now.
    pub fn rpm(&self) -> f64 {
        let duty = f64::from(self.setting) / 63.0;
        if self.stuck || duty < self.stall_below {
            0.0
        } else {
            self.max_rpm * duty
        }
    }

    fn tach_count(&self) -> u16 {
        let rpm = self.rpm();
        if self.config & 0x04 == 0 || rpm <= 0.0 {
            0xFFFF
        } else {
            (5_400_000.0 / rpm).round().clamp(1.0, 65534.0) as u16
        }
    }

    fn diode_raw(&self) -> u16 {
        let code: i32 = match self.diode {
            Diode::Celsius(c) => ((c / 0.125).floor() as i32).clamp(-1024, 1015),
            Diode::Open => 0x3F8,
            Diode::Short => 0x3FF,
        };
        ((code << 5) & 0xFFE0) as u16
    }

    fn read_register(&mut self, reg: u8) -> Option<u8> {
        Some(match reg {
            0x00 => self.internal as u8,
            0x01 => {
                let [msb, lsb] = self.diode_raw().to_be_bytes();
                self.diode_lsb_shadow = lsb;
                msb
            }
            0x10 => self.diode_lsb_shadow,
            0x03 => self.config,
            0x46 => {
                let [msb, lsb] = self.tach_count().to_be_bytes();
                self.tach_msb_shadow = msb;
                lsb
            }
            0x47 => self.tach_msb_shadow,
            0x4A => self.fan_config,
            0x4C => self.setting,
            0xFD => self.product,
            0xFE => 0x5D,
            0xFF => 0x01,
            _ => return None,
        })
    }
}

impl Chip for Emc2101 {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ChipError> {
        let data = self.pointer.write(bytes);
        match data {
            [] => Ok(()),
            [v] => {
                match self.pointer.register {
                    0x03 => self.config = *v,
                    0x4A => self.fan_config = *v,
                    // Writable only with the look-up table off (PROG).
                    0x4C if self.fan_config & 0x20 != 0 => self.setting = v & 0x3F,
                    0x4C => {}
                    0x00 | 0x01 | 0x10 | 0x46 | 0x47 | 0xFD | 0xFE | 0xFF => {
                        return Err(ChipError::Nack);
                    }
                    _ => {}
                }
                Ok(())
            }
            // No multi-byte writes.
            _ => Err(ChipError::Nack),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), ChipError> {
        if buf.len() != 1 {
            return Err(ChipError::Nack); // one byte per transaction
        }
        buf[0] = self
            .read_register(self.pointer.register)
            .ok_or(ChipError::Nack)?;
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
