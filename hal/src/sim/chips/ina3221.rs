//! INA3221 emulator: three channels with their own load and shunt,
//! power-on configuration 0x7127 (all channels on), channel enable bits,
//! saturation at the shunt range, CVRF, and the ID registers.

use std::any::Any;

use crate::sim::{Chip, ChipError, Pointer, fill_be16};

#[derive(Debug, Clone, Copy, Default)]
struct Rail {
    amps: f64,
    volts: f64,
    shunt_ohms: f64,
}

/// An emulated INA3221.
#[derive(Debug, Clone)]
pub struct Ina3221 {
    pointer: Pointer,
    config: u16,
    rails: [Rail; 3],
}

impl Ina3221 {
    /// A chip at power-on with these shunt resistances.
    pub fn new(shunt_ohms: [f64; 3]) -> Self {
        let mut rails = [Rail::default(); 3];
        for (r, s) in rails.iter_mut().zip(shunt_ohms) {
            r.shunt_ohms = s;
        }
        Ina3221 {
            pointer: Pointer::default(),
            config: 0x7127,
            rails,
        }
    }

    /// Sets the load on channel `ch` (1–3).
    pub fn set_rail(&mut self, ch: usize, amps: f64, volts: f64) {
        if let Some(r) = self.rails.get_mut(ch.wrapping_sub(1)) {
            r.amps = amps;
            r.volts = volts;
        }
    }

    fn register(&self, reg: u8) -> Option<u16> {
        Some(match reg {
            0x00 => self.config,
            0x01..=0x06 => {
                let r = &self.rails[usize::from((reg - 1) / 2)];
                if reg % 2 == 1 {
                    let counts = (r.amps * r.shunt_ohms / 40e-6)
                        .round()
                        .clamp(-4095.0, 4095.0) as i16;
                    (counts << 3) as u16
                } else {
                    let counts = (r.volts / 8e-3).round().clamp(0.0, 3250.0) as u16;
                    counts << 3
                }
            }
            0x0F => 0x0001,
            0xFE => 0x5449,
            0xFF => 0x3220,
            _ => return None,
        })
    }
}

impl Chip for Ina3221 {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ChipError> {
        let data = self.pointer.write(bytes);
        match (self.pointer.register, data) {
            (_, []) => Ok(()),
            (0x00, [hi, lo]) => {
                let v = u16::from_be_bytes([*hi, *lo]);
                self.config = if v & 0x8000 != 0 { 0x7127 } else { v };
                Ok(())
            }
            (0x07..=0x11, [_, _]) => Ok(()), // limits: accepted, not modelled
            _ => Err(ChipError::Nack),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), ChipError> {
        fill_be16(
            buf,
            self.register(self.pointer.register)
                .ok_or(ChipError::Nack)?,
        );
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
