//! LM75-family emulator: a converter that quantises the set temperature
//! to the chip's resolution, keeps the last conversion while shut down,
//! and power-on thresholds of 75 / 80 °C.

use std::any::Any;

use crate::sim::{Chip, ChipError, Pointer, fill_be16};

/// An emulated LM75 (9-bit) or LM75A/B (11-bit).
#[derive(Debug, Clone)]
pub struct Lm75 {
    pointer: Pointer,
    bits: u8,
    temperature: f64,
    converted: i16,
    config: u8,
    t_hyst: i16,
    t_os: i16,
}

impl Lm75 {
    /// A chip with `bits` of resolution (9 or 11) at `celsius`.
    pub fn new(bits: u8, celsius: f64) -> Self {
        let mut c = Lm75 {
            pointer: Pointer::default(),
            bits,
            temperature: celsius,
            converted: 0,
            config: 0,
            t_hyst: 75 << 8,
            t_os: 80 << 8,
        };
        c.convert();
        c
    }

    fn convert(&mut self) {
        if self.config & 0x01 != 0 {
            return; // shut down: the register keeps the last conversion
        }
        let step = if self.bits == 9 { 0.5 } else { 0.125 };
        let shift = 16 - u32::from(self.bits);
        let counts = (self.temperature / step).floor().clamp(
            -((1 << (self.bits - 1)) as f64),
            ((1 << (self.bits - 1)) - 1) as f64,
        ) as i32;
        self.converted = ((counts << shift) & 0xFFFF) as u16 as i16;
    }

    /// Sets what the sensor measures; the next conversion picks it up.
    pub fn set_temperature(&mut self, celsius: f64) {
        self.temperature = celsius;
        self.convert();
    }

    /// Whether the converter is shut down.
    pub fn is_shut_down(&self) -> bool {
        self.config & 0x01 != 0
    }
}

impl Chip for Lm75 {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ChipError> {
        let data = self.pointer.write(bytes);
        match (self.pointer.register, data.len()) {
            (_, 0) => Ok(()),
            (0x00, _) => Err(ChipError::Nack), // temperature is read-only
            (0x01, _) => {
                self.config = data[0];
                self.convert();
                Ok(())
            }
            (0x02, 2) => {
                self.t_hyst = i16::from_be_bytes([data[0], data[1]]);
                Ok(())
            }
            (0x03, 2) => {
                self.t_os = i16::from_be_bytes([data[0], data[1]]);
                Ok(())
            }
            _ => Err(ChipError::Nack),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), ChipError> {
        match self.pointer.register {
            0x00 => fill_be16(buf, self.converted as u16),
            0x01 => buf.fill(self.config),
            0x02 => fill_be16(buf, self.t_hyst as u16),
            0x03 => fill_be16(buf, self.t_os as u16),
            _ => return Err(ChipError::Nack),
        }
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
