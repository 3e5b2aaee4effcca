//! INA219 emulator: the chip's own arithmetic (shunt → current → power
//! through the calibration register), PGA saturation, CNVR and OVF, and
//! the calibration cleared by a reset or a brown-out, after which current
//! and power read 0.

use std::any::Any;

use crate::sim::{Chip, ChipError, Pointer, fill_be16};

const POWER_ON_CONFIG: u16 = 0x399F;
const RESET: u16 = 0x8000;

/// An emulated INA219 measuring a load through a shunt.
#[derive(Debug, Clone)]
pub struct Ina219 {
    pointer: Pointer,
    shunt_ohms: f64,
    amps: f64,
    bus_volts: f64,
    config: u16,
    calibration: u16,
}

impl Ina219 {
    /// A chip at power-on (calibration 0) with a `shunt_ohms` shunt.
    pub fn new(shunt_ohms: f64) -> Self {
        Ina219 {
            pointer: Pointer::default(),
            shunt_ohms,
            amps: 0.0,
            bus_volts: 0.0,
            config: POWER_ON_CONFIG,
            calibration: 0,
        }
    }

    /// Sets the load: current through the shunt and bus voltage.
    pub fn set_load(&mut self, amps: f64, bus_volts: f64) {
        self.amps = amps;
        self.bus_volts = bus_volts;
    }

    /// A supply dip: registers return to their power-on values.
    pub fn brown_out(&mut self) {
        self.config = POWER_ON_CONFIG;
        self.calibration = 0;
    }

    /// The calibration register.
    pub fn calibration(&self) -> u16 {
        self.calibration
    }

    /// Shunt register counts (10 µV), saturated at the PGA range.
    fn shunt_counts(&self) -> i32 {
        let range = [4000.0, 8000.0, 16000.0, 32000.0][usize::from((self.config >> 11) & 3)];
        (self.amps * self.shunt_ohms / 10e-6)
            .round()
            .clamp(-range, range) as i32
    }

    fn bus_counts(&self) -> u16 {
        (self.bus_volts / 0.004).round().clamp(0.0, 8000.0) as u16
    }

    /// The current register as the chip computes it, and whether it
    /// overflowed.
    fn current(&self) -> (i16, bool) {
        let c = self.shunt_counts() as i64 * i64::from(self.calibration) / 4096;
        if c > i64::from(i16::MAX) || c < i64::from(i16::MIN) {
            (if c > 0 { i16::MAX } else { i16::MIN }, true)
        } else {
            (c as i16, false)
        }
    }

    fn register(&self, reg: u8) -> Option<u16> {
        let (current, ovf) = self.current();
        Some(match reg {
            0x00 => self.config,
            0x01 => self.shunt_counts() as i16 as u16,
            0x02 => (self.bus_counts() << 3) | 0x0002 | u16::from(ovf),
            0x03 => {
                let p = i64::from(current).unsigned_abs() * u64::from(self.bus_counts()) / 5000;
                p.min(0xFFFF) as u16
            }
            0x04 => current as u16,
            0x05 => self.calibration,
            _ => return None,
        })
    }
}

impl Chip for Ina219 {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ChipError> {
        let Some(v) = self.pointer.write_word(bytes)? else {
            return Ok(());
        };
        match self.pointer.register {
            0x00 if v & RESET != 0 => self.brown_out(),
            0x00 => self.config = v,
            0x05 => self.calibration = v & !1,
            0x01..=0x04 => {} // read-only: ignored
            _ => return Err(ChipError::Nack),
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), ChipError> {
        let v = self
            .register(self.pointer.register)
            .ok_or(ChipError::Nack)?;
        fill_be16(buf, v);
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
