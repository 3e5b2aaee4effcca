//! Register access shared by the drivers: one register pointer byte, then
//! a 16-bit value MSB first (TI sensors and ADCs) or one byte (Microchip
//! fan controllers), each transfer mapped to [`crate::Error`].

use embedded_hal::i2c::I2c;

use crate::{Error, Result};

/// Reads a 16-bit register, MSB first, with a repeated start.
pub(crate) fn read_be16<I2C: I2c>(i2c: &mut I2C, addr: u8, reg: u8) -> Result<u16> {
    let mut b = [0u8; 2];
    i2c.write_read(addr, &[reg], &mut b).map_err(Error::i2c)?;
    Ok(u16::from_be_bytes(b))
}

/// Writes a 16-bit register, MSB first.
pub(crate) fn write_be16<I2C: I2c>(i2c: &mut I2C, addr: u8, reg: u8, v: u16) -> Result<()> {
    let [hi, lo] = v.to_be_bytes();
    i2c.write(addr, &[reg, hi, lo]).map_err(Error::i2c)
}

/// Reads an 8-bit register.
pub(crate) fn read_u8<I2C: I2c>(i2c: &mut I2C, addr: u8, reg: u8) -> Result<u8> {
    let mut b = [0u8; 1];
    i2c.write_read(addr, &[reg], &mut b).map_err(Error::i2c)?;
    Ok(b[0])
}

/// Writes an 8-bit register.
pub(crate) fn write_u8<I2C: I2c>(i2c: &mut I2C, addr: u8, reg: u8, v: u8) -> Result<()> {
    i2c.write(addr, &[reg, v]).map_err(Error::i2c)
}
