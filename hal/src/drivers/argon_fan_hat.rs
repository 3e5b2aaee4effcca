//! Argon40 Fan HAT: a write-only fan duty at address 0x1A.
//!
//! The device (hardware reference §1.4): same address as the Argon ONE
//! case MCU, **0x1A**. The Linux driver (`pwm-argon-fan-hat.c`, DT
//! compatible `argon40,fan-hat`) writes the duty with SMBus write byte
//! data to **register 0x80**, 0–100, and treats the PWM as fixed at about
//! 30 kHz \[V\] `[S-K-ARGHAT]`. No tachometer: [`Fan::rpm`] is `Ok(None)`.
//!
//! **Never read from the HAT: a read stops its fan** \[V\] `[S-K-ARGHAT]`.
//! The kernel driver never reads, and neither does this one: every call
//! makes at most one two-byte write, and [`Fan::duty`] answers the last
//! duty written successfully, from memory. Before the first write it is
//! [`crate::Error::NotReady`] (the fan loop's first period sets one). The
//! same rule makes the Argon ONE firmware detection (which reads 0x80)
//! unsafe on a Fan HAT: the hardware section must say which board sits at
//! 0x1A, nothing may probe it.
//!
//! The HAT's power-on duty is not known \[U\]; an earlier kernel patch set
//! 100 % on shutdown, the merged one has no shutdown hook \[V\]. The vendor
//! installer sets the HAT up with the fan daemon only: no serial port, no
//! power-cut signal, no IR \[V\] `[S-ARG1SH]`.
//!
//! To extend: nothing to read, by design; a new write-only control would
//! be one more `write_u8` here.

use embedded_hal::i2c::I2c;

use crate::devices::{Fan, check_duty};
use crate::{Error, Result};

/// The only address.
pub const ADDRESS: u8 = 0x1A;
/// The duty register, write only.
pub const REGISTER_DUTY: u8 = 0x80;

const CHIP: &str = "argon_fan_hat";

/// An Argon Fan HAT on an I²C bus.
pub struct ArgonFanHat<I2C> {
    i2c: I2C,
    addr: u8,
    last: Option<u8>,
}

impl<I2C: I2c> ArgonFanHat<I2C> {
    /// A driver for the HAT at `addr` (always [`ADDRESS`] on real
    /// boards). Touches nothing on the bus.
    pub fn new(i2c: I2C, addr: u8) -> Self {
        ArgonFanHat {
            i2c,
            addr,
            last: None,
        }
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    /// The last duty written successfully, in percent.
    pub fn last_commanded(&self) -> Option<f64> {
        self.last.map(f64::from)
    }
}

impl<I2C: I2c + Send> Fan for ArgonFanHat<I2C> {
    /// One write: register 0x80 = duty rounded to a whole percent.
    fn set_duty(&mut self, percent: f64) -> Result<()> {
        let byte = check_duty(CHIP, percent)?.round() as u8;
        super::regs::write_u8(&mut self.i2c, self.addr, REGISTER_DUTY, byte)?;
        self.last = Some(byte);
        Ok(())
    }

    /// The last duty written (the HAT cannot be read);
    /// [`Error::NotReady`] before the first write.
    fn duty(&mut self) -> Result<f64> {
        self.last_commanded().ok_or(Error::NotReady {
            chip: CHIP,
            detail: "the Fan HAT cannot report its duty and none was commanded yet",
        })
    }

    /// No tachometer.
    fn rpm(&mut self) -> Result<Option<f64>> {
        Ok(None)
    }
}
