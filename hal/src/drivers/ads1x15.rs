//! TI ADS1115 (16-bit) and ADS1015 (12-bit) four-input ADCs.
//!
//! The device: 16-bit registers, MSB first: conversion 0x00, config 0x01
//! (power-on 0x8583), thresholds 0x02/0x03. Config: OS (bit 15: write 1
//! to start a single conversion; reads 0 while converting), MUX (14:12:
//! differential pairs 0–3, single-ended AIN0–3 as 4–7), PGA (11:9: ±6.144,
//! ±4.096, ±2.048, ±1.024, ±0.512, ±0.256 V), MODE (8: 1 single-shot),
//! DR (7:5), comparator (4:0; 0x03 disables it). The ADS1115's result is
//! 16-bit two's complement, LSB = full scale / 32768; the ADS1015's is
//! 12-bit, left-aligned. A conversion takes about 1/DR (7.8 ms at the
//! ADS1115's default 128 SPS). Addresses 0x48–0x4B.

use embedded_hal::i2c::I2c;

use crate::Result;
use crate::devices::SignalSource;

/// Address with ADDR to ground.
pub const DEFAULT_ADDRESS: u8 = 0x48;

/// Register pointers.
pub mod register {
    /// Conversion result.
    pub const CONVERSION: u8 = 0x00;
    /// Configuration.
    pub const CONFIG: u8 = 0x01;
}

/// Configuration bits.
pub mod config {
    /// Start a conversion (write) / not busy (read).
    pub const OS: u16 = 0x8000;
    /// Single-shot mode.
    pub const MODE_SINGLE: u16 = 0x0100;
    /// Comparator disabled.
    pub const COMPARATOR_OFF: u16 = 0x0003;
    /// Power-on value.
    pub const POWER_ON: u16 = 0x8583;
}

/// Which chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// 16-bit.
    Ads1115,
    /// 12-bit.
    Ads1015,
}

/// Input selection (MUX field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// AIN0 − AIN1.
    Diff01 = 0,
    /// AIN0 − AIN3.
    Diff03 = 1,
    /// AIN1 − AIN3.
    Diff13 = 2,
    /// AIN2 − AIN3.
    Diff23 = 3,
    /// AIN0 against ground.
    Ain0 = 4,
    /// AIN1 against ground.
    Ain1 = 5,
    /// AIN2 against ground.
    Ain2 = 6,
    /// AIN3 against ground.
    Ain3 = 7,
}

/// Full-scale range of each PGA setting, volts.
pub const FULL_SCALE: [f64; 8] = [6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256];

/// The conversion register to volts.
pub fn raw_to_volts(raw: u16, variant: Variant, pga: u8) -> f64 {
    let fs = FULL_SCALE[usize::from(pga & 7)];
    match variant {
        Variant::Ads1115 => f64::from(raw as i16) * fs / 32768.0,
        Variant::Ads1015 => f64::from((raw as i16) >> 4) * fs / 2048.0,
    }
}

/// The configuration word that starts one single-shot conversion of
/// `input` with PGA setting `pga` and data-rate setting `rate`, comparator
/// off.
pub fn start_word(input: Input, pga: u8, rate: u8) -> u16 {
    config::OS
        | (input as u16) << 12
        | u16::from(pga & 7) << 9
        | config::MODE_SINGLE
        | u16::from(rate & 7) << 5
        | config::COMPARATOR_OFF
}

/// One input of an ADS1x15, sampled single-shot.
pub struct Ads1x15<I2C> {
    i2c: I2C,
    addr: u8,
    variant: Variant,
    input: Input,
    pga: u8,
    rate: u8,
    pending: bool,
}

impl<I2C: I2c> Ads1x15<I2C> {
    /// A driver sampling `input` with PGA setting `pga` (0–5) and data rate
    /// setting `rate` (0–7).
    pub fn new(i2c: I2C, addr: u8, variant: Variant, input: Input, pga: u8, rate: u8) -> Self {
        Ads1x15 {
            i2c,
            addr,
            variant,
            input,
            pga: pga & 7,
            rate: rate & 7,
            pending: false,
        }
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    /// The configuration word that starts one conversion.
    pub fn start_word(&self) -> u16 {
        start_word(self.input, self.pga, self.rate)
    }

    fn read16(&mut self, reg: u8) -> Result<u16> {
        super::regs::read_be16(&mut self.i2c, self.addr, reg)
    }

    /// Starts a single conversion.
    pub fn start(&mut self) -> Result<()> {
        let word = self.start_word();
        super::regs::write_be16(&mut self.i2c, self.addr, register::CONFIG, word)?;
        self.pending = true;
        Ok(())
    }

    /// The result of the running conversion, `None` while it runs.
    pub fn poll(&mut self) -> Result<Option<f64>> {
        if self.read16(register::CONFIG)? & config::OS == 0 {
            return Ok(None);
        }
        let raw = self.read16(register::CONVERSION)?;
        self.pending = false;
        Ok(Some(raw_to_volts(raw, self.variant, self.pga)))
    }
}

impl<I2C: I2c + Send> SignalSource for Ads1x15<I2C> {
    fn poll_sample(&mut self) -> Result<Option<f64>> {
        if !self.pending {
            self.start()?;
            return Ok(None);
        }
        self.poll()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_build_start_word_for_default_setup() {
        // The power-on word with OS set is the default single-shot start.
        assert_eq!(start_word(Input::Diff01, 2, 4), config::POWER_ON);
        assert_eq!(start_word(Input::Ain3, 0, 7), 0xF1E3);
    }

    #[test]
    fn can_convert_both_variants() {
        assert_eq!(raw_to_volts(0x4000, Variant::Ads1115, 2), 1.024);
        assert_eq!(raw_to_volts(0x8000, Variant::Ads1115, 0), -6.144);
        assert_eq!(raw_to_volts(0x4000, Variant::Ads1015, 2), 1.024);
    }
}
