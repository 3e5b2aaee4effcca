//! TMP102 emulator: power-on configuration 0x60A0 (4 Hz, normal mode),
//! read-only resolution bits, normal (12-bit) and extended (13-bit)
//! temperature formats, and a temperature register that keeps its last
//! conversion until the next one, so a read right after a configuration
//! change returns the previous value in the previous format.

use std::any::Any;

use crate::sim::{Chip, ChipError, Pointer, fill_be16};

const POWER_ON_CONFIG: u16 = 0x60A0;
const READ_ONLY_BITS: u16 = 0x6000 | 0x0020; // R1/R0 and AL
const EXTENDED: u16 = 0x0010;
const SHUTDOWN: u16 = 0x0100;

/// An emulated TMP102.
#[derive(Debug, Clone)]
pub struct Tmp102 {
    pointer: Pointer,
    temperature: f64,
    converted: u16,
    config: u16,
    t_low: u16,
    t_high: u16,
}

impl Tmp102 {
    /// A chip at power-on measuring `celsius`.
    pub fn new(celsius: f64) -> Self {
        let mut c = Tmp102 {
            pointer: Pointer::default(),
            temperature: celsius,
            converted: 0,
            config: POWER_ON_CONFIG,
            t_low: 75 << 8,
            t_high: 80 << 8,
        };
        c.convert();
        c
    }

    /// Runs one conversion of the current temperature in the current mode
    /// (the chip does this at its conversion rate).
    pub fn convert(&mut self) {
        if self.config & SHUTDOWN != 0 {
            return;
        }
        let counts = (self.temperature / 0.0625).floor();
        self.converted = if self.config & EXTENDED != 0 {
            let c = counts.clamp(-4096.0, 4095.0) as i32;
            (((c << 3) | 1) & 0xFFFF) as u16
        } else {
            let c = counts.clamp(-2048.0, 2047.0) as i32;
            ((c << 4) & 0xFFFF) as u16
        };
    }

    /// Sets what the sensor measures and converts it.
    pub fn set_temperature(&mut self, celsius: f64) {
        self.temperature = celsius;
        self.convert();
    }

    /// The configuration register.
    pub fn config(&self) -> u16 {
        self.config
    }
}

impl Chip for Tmp102 {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ChipError> {
        let Some(v) = self.pointer.write_word(bytes)? else {
            return Ok(());
        };
        match self.pointer.register {
            0x00 => return Err(ChipError::Nack),
            // The new mode applies from the next conversion on.
            0x01 => self.config = (v & !READ_ONLY_BITS) | (self.config & READ_ONLY_BITS),
            0x02 => self.t_low = v,
            0x03 => self.t_high = v,
            _ => return Err(ChipError::Nack),
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), ChipError> {
        let v = match self.pointer.register {
            0x00 => self.converted,
            0x01 => self.config,
            0x02 => self.t_low,
            0x03 => self.t_high,
            _ => return Err(ChipError::Nack),
        };
        fill_be16(buf, v);
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
