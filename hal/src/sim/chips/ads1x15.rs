//! ADS1115 / ADS1015 emulator: four analog inputs, MUX and PGA scaling
//! with clipping at full scale, and a single-shot conversion that stays
//! busy (OS = 0) for a number of status reads before its result appears;
//! a new start while busy restarts it. Tests can put a sine on an input
//! ([`Ads1x15::set_sine`]), stepped once per conversion, to check a
//! sampler's statistics against a known waveform.

use std::any::Any;

use crate::drivers::ads1x15::{FULL_SCALE, Variant};
use crate::sim::{Chip, ChipError, Pointer, fill_be16};

/// A sine on one input: `offset + amplitude · sin(2π · k / period)` at
/// conversion `k`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sine {
    /// Volts.
    pub offset: f64,
    /// Volts (peak).
    pub amplitude: f64,
    /// Conversions per cycle.
    pub period: u32,
}

impl Sine {
    /// The voltage at conversion `k`.
    pub fn at(&self, k: u64) -> f64 {
        let p = u64::from(self.period.max(1));
        let phase = (k % p) as f64 / p as f64;
        self.offset + self.amplitude * (std::f64::consts::TAU * phase).sin()
    }
}

/// An emulated ADS1x15.
#[derive(Debug, Clone)]
pub struct Ads1x15 {
    pointer: Pointer,
    variant: Variant,
    inputs: [f64; 4],
    sines: [Option<Sine>; 4],
    conversions: u64,
    config: u16,
    conversion: u16,
    busy_reads: u32,
    busy_left: u32,
}

impl Ads1x15 {
    /// A chip at power-on whose conversions stay busy for `busy_reads`
    /// status reads.
    pub fn new(variant: Variant, busy_reads: u32) -> Self {
        Ads1x15 {
            pointer: Pointer::default(),
            variant,
            inputs: [0.0; 4],
            sines: [None; 4],
            conversions: 0,
            config: 0x8583,
            conversion: 0,
            busy_reads,
            busy_left: 0,
        }
    }

    /// Sets the voltage on input `n` (0–3).
    pub fn set_input(&mut self, n: usize, volts: f64) {
        if let Some(v) = self.inputs.get_mut(n) {
            *v = volts;
        }
    }

    /// Puts a sine on input `n` (0–3), stepped once per conversion; it
    /// takes over from [`set_input`](Self::set_input) until cleared with
    /// `None`.
    pub fn set_sine(&mut self, n: usize, sine: Option<Sine>) {
        if let Some(s) = self.sines.get_mut(n) {
            *s = sine;
        }
    }

    /// Conversions done since power-on.
    pub fn conversions(&self) -> u64 {
        self.conversions
    }

    fn input(&self, n: usize) -> f64 {
        match self.sines[n] {
            Some(s) => s.at(self.conversions),
            None => self.inputs[n],
        }
    }

    fn measure(&self) -> u16 {
        let [p, n] = match (self.config >> 12) & 7 {
            0 => [0, 1],
            1 => [0, 3],
            2 => [1, 3],
            3 => [2, 3],
            m => [usize::from(m - 4), usize::MAX],
        };
        let neg = if n == usize::MAX { 0.0 } else { self.input(n) };
        let v = self.input(p) - neg;
        let fs = FULL_SCALE[usize::from((self.config >> 9) & 7)];
        match self.variant {
            Variant::Ads1115 => (v / fs * 32768.0).round().clamp(-32768.0, 32767.0) as i16 as u16,
            Variant::Ads1015 => {
                (((v / fs * 2048.0).round().clamp(-2048.0, 2047.0) as i16) << 4) as u16
            }
        }
    }

    fn finish(&mut self) {
        self.conversion = self.measure();
        self.conversions += 1;
        self.config |= 0x8000;
    }
}

impl Chip for Ads1x15 {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ChipError> {
        let data = self.pointer.write(bytes);
        match (self.pointer.register, data) {
            (_, []) => Ok(()),
            (0x01, [hi, lo]) => {
                let v = u16::from_be_bytes([*hi, *lo]);
                self.config = v & 0x7FFF;
                if v & 0x0100 == 0 {
                    self.finish(); // continuous: converting all the time
                } else if v & 0x8000 != 0 {
                    self.busy_left = self.busy_reads;
                    if self.busy_left == 0 {
                        self.finish();
                    }
                } else {
                    self.config |= 0x8000;
                }
                Ok(())
            }
            (0x02 | 0x03, [_, _]) => Ok(()),
            _ => Err(ChipError::Nack),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), ChipError> {
        let v = match self.pointer.register {
            0x00 => {
                if self.config & 0x0100 == 0 {
                    self.finish();
                }
                self.conversion
            }
            0x01 => {
                if self.busy_left > 0 {
                    self.busy_left -= 1;
                    if self.busy_left == 0 {
                        self.finish();
                        // this read still sees the conversion running
                        fill_be16(buf, self.config & 0x7FFF);
                        return Ok(());
                    }
                }
                self.config
            }
            0x02 => 0x8000,
            0x03 => 0x7FFF,
            _ => return Err(ChipError::Nack),
        };
        fill_be16(buf, v);
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
