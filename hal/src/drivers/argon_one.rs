//! Argon40 Argon ONE case MCU (Pi 4 "V2", Pi 5 "V3"/"V5"): fan duty and
//! the power cut after shutdown.
//!
//! The device (hardware reference §1.1–§1.2): an MCU at address **0x1A**
//! on I²C bus 1 \[V\] `[S-ARGCASE]` `[S-ARGREG]`, reported to be an STM8
//! driving the fan at about 20 kHz \[T\]. No tachometer, so
//! [`Fan::rpm`] is `Ok(None)`. Two firmware generations \[V\] `[S-ARGREG]`:
//!
//! | | Legacy (Pi 4 V2 and earlier) | Register (Pi 5 V3 and newer) |
//! |---|---|---|
//! | set duty | SMBus send byte 0–100 | write byte data, register 0x80 = 0–100 |
//! | read duty | none | read byte data, register 0x80 |
//! | arm power cut | send byte 0xFF | write 1 to register 0x86 (CTRL) |
//!
//! [`detect_firmware`] tells them apart the way the vendor's script does
//! \[V\] `[S-ARGREG]`: read 0x80, write back the value + 1 (98 if that would
//! reach 100), wait, read again; a changed value means register firmware,
//! and the old value is written back; otherwise legacy. The vendor sleeps
//! 1 s after every register write, so detection waits [`SETTLE`] after the
//! probe and after the restore. The installer can force the legacy path
//! (`/etc/argon/flag_v1`); the equivalent here is the explicit
//! constructor [`ArgonOne::legacy`].
//!
//! Differences from the vendor: a bus error during detection is returned
//! (transient: try again) instead of meaning "legacy", so a glitch never
//! silently picks the wrong protocol. Whether a legacy MCU acknowledges the
//! read of 0x80 at all is not known \[U\]; if detection keeps failing on a
//! Pi 4 V2 case, configure the legacy firmware explicitly.
//!
//! **Reads.** The MCU can leave the bus, fan stuck at 100 %, until power
//! is removed entirely; `i2cdump` reliably triggers it \[T\]
//! `[S-ARGFORUM2]`. This driver therefore never reads anything but
//! register 0x80, one byte at a time, and nothing in onprem may scan or
//! dump 0x1A. Never run [`detect_firmware`] at 0x1A on a board that may be
//! an Argon **Fan HAT**: any read stops the HAT's fan (§1.4,
//! [`super::argon_fan_hat`]).
//!
//! **Duty read-back.** Register firmware reports register 0x80. Legacy
//! firmware cannot report anything, so [`Fan::duty`] returns the last duty
//! this driver commanded successfully ([`crate::Error::NotReady`] before
//! the first).
//!
//! **Spin-up** is the fan loop's policy, not hidden in [`Fan::set_duty`]:
//! the vendor daemon writes 100 % and waits 1 s before every change to a
//! non-zero duty "to prevent issues on older units" \[V\] `[S-ARGONED]`, and
//! the fan starts turning only at about 10 % \[V\] `[S-ARGI2C]`. Call
//! [`needs_spin_up`] and [`ArgonOne::set_duty_with_spin_up`] for that;
//! plain [`Fan::set_duty`] makes exactly one write. The vendor also spaces
//! writes 1 s apart, polls every 30 s and delays decreases by 30 s; that
//! pacing is the loop's as well.
//!
//! To extend: the "power on after outage" modes (legacy send byte 0xFD =
//! press the button, 0xFE = always on \[V\] `[S-ARGI2C]`, reported to do
//! nothing on some boards \[T\]) would be further send-byte commands on
//! [`Firmware::Legacy`]; register 0x81 (firmware version, format unknown
//! \[U\]) must not be read until its effect on the MCU is known.

use std::time::Duration;

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::devices::{Fan, check_duty};
use crate::{Error, Result};

/// The only address.
pub const ADDRESS: u8 = 0x1A;

/// Register pointers of the register firmware.
pub mod register {
    /// Fan duty 0–100 %, read/write. The only register this driver reads.
    pub const DUTY_CYCLE: u8 = 0x80;
    /// Control: writing [`super::CTRL_POWER_CUT`] arms the power cut.
    pub const CTRL: u8 = 0x86;
}

/// The CTRL value that arms the power cut (register firmware).
pub const CTRL_POWER_CUT: u8 = 1;
/// The send-byte command that arms the power cut (legacy firmware).
pub const LEGACY_POWER_CUT: u8 = 0xFF;
/// The vendor's pause after each register write, used between the
/// detection probe and its read-back, and between spin-up and target.
pub const SETTLE: Duration = Duration::from_secs(1);
/// The duty written first when spinning up.
pub const SPIN_UP_PERCENT: u8 = 100;

const CHIP: &str = "argon_one";

/// Which protocol the MCU speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// Send byte 0–100 for the duty, 0xFF to arm the power cut; no reads.
    Legacy,
    /// Register 0x80 (duty, read/write) and 0x86 (CTRL).
    Register,
}

/// The value the detection probe writes when register 0x80 holds
/// `current`: `current + 1`, or 98 where that would reach 100 or more.
pub fn probe_value(current: u8) -> u8 {
    if current >= 99 { 98 } else { current + 1 }
}

/// The vendor's spin-up rule: before a change to a non-zero duty below
/// 100 %, write 100 % and wait [`SETTLE`]. `previous` is the last commanded
/// duty (`None`: unknown, e.g. after start).
pub fn needs_spin_up(previous: Option<f64>, target: f64) -> bool {
    target > 0.0 && target < f64::from(SPIN_UP_PERCENT) && previous != Some(target)
}

/// A duty in percent (checked to be 0–100) as the byte both firmware
/// generations take.
pub fn duty_byte(percent: f64) -> Result<u8> {
    Ok(check_duty(CHIP, percent)?.round() as u8)
}

fn settle<D: DelayNs>(delay: &mut D) {
    delay.delay_ms(SETTLE.as_millis() as u32);
}

fn read_duty_register<I2C: I2c>(i2c: &mut I2C, addr: u8) -> Result<u8> {
    // The one read this driver ever makes: register 0x80, one byte.
    super::regs::read_u8(i2c, addr, register::DUTY_CYCLE)
}

/// Finds out which firmware the MCU at `addr` runs (see the module docs),
/// leaving register 0x80 as it found it on register firmware. Waits
/// [`SETTLE`] on `delay` after each write, so about 2 s on register
/// firmware and 1 s on legacy. A bus error is returned as it is (transient:
/// try again); the register may then hold the probe value.
pub fn detect_firmware<I2C: I2c, D: DelayNs>(
    i2c: &mut I2C,
    addr: u8,
    delay: &mut D,
) -> Result<Firmware> {
    let old = read_duty_register(i2c, addr)?;
    let probe = probe_value(old);
    super::regs::write_u8(i2c, addr, register::DUTY_CYCLE, probe)?;
    settle(delay);
    let now = read_duty_register(i2c, addr)?;
    if now == old {
        return Ok(Firmware::Legacy);
    }
    super::regs::write_u8(i2c, addr, register::DUTY_CYCLE, old)?;
    settle(delay);
    Ok(Firmware::Register)
}

/// An Argon ONE case MCU on an I²C bus.
pub struct ArgonOne<I2C> {
    i2c: I2C,
    addr: u8,
    firmware: Firmware,
    last: Option<u8>,
}

impl<I2C: I2c> ArgonOne<I2C> {
    /// A driver for the MCU at `addr` (always [`ADDRESS`] on real cases)
    /// speaking `firmware`. Touches nothing on the bus.
    pub fn new(i2c: I2C, addr: u8, firmware: Firmware) -> Self {
        ArgonOne {
            i2c,
            addr,
            firmware,
            last: None,
        }
    }

    /// Legacy firmware, without detection (what `/etc/argon/flag_v1`
    /// forces in the vendor's installer).
    pub fn legacy(i2c: I2C, addr: u8) -> Self {
        Self::new(i2c, addr, Firmware::Legacy)
    }

    /// Register firmware, without detection.
    pub fn register(i2c: I2C, addr: u8) -> Self {
        Self::new(i2c, addr, Firmware::Register)
    }

    /// Detects the firmware ([`detect_firmware`]) and returns a driver for
    /// it. On an error the bus is dropped; call [`detect_firmware`] with a
    /// borrowed bus to keep it.
    pub fn detect<D: DelayNs>(mut i2c: I2C, addr: u8, delay: &mut D) -> Result<Self> {
        let firmware = detect_firmware(&mut i2c, addr, delay)?;
        Ok(Self::new(i2c, addr, firmware))
    }

    /// The firmware this driver speaks.
    pub fn firmware(&self) -> Firmware {
        self.firmware
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    /// The last duty written successfully, in percent.
    pub fn last_commanded(&self) -> Option<f64> {
        self.last.map(f64::from)
    }

    fn write_duty(&mut self, byte: u8) -> Result<()> {
        match self.firmware {
            Firmware::Legacy => self.i2c.write(self.addr, &[byte]).map_err(Error::i2c)?,
            Firmware::Register => {
                super::regs::write_u8(&mut self.i2c, self.addr, register::DUTY_CYCLE, byte)?
            }
        }
        self.last = Some(byte);
        Ok(())
    }

    /// Sets the duty the vendor's way: if [`needs_spin_up`] says so, first
    /// [`SPIN_UP_PERCENT`] and a pause of [`SETTLE`], then `percent`.
    pub fn set_duty_with_spin_up<D: DelayNs>(&mut self, percent: f64, delay: &mut D) -> Result<()> {
        let byte = duty_byte(percent)?;
        if needs_spin_up(self.last_commanded(), f64::from(byte)) {
            self.write_duty(SPIN_UP_PERCENT)?;
            settle(delay);
        }
        self.write_duty(byte)
    }

    /// Tells the MCU to cut the Pi's power once shutdown has finished:
    /// legacy send byte 0xFF, or 1 to register 0x86.
    ///
    /// After this the MCU watches the Pi's **UART TX** pin (GPIO 14) and
    /// cuts power when it drops low at the end of shutdown \[V\]
    /// `[S-ARGI2C]` `[S-ARGCASE]`. That only works with the serial port
    /// enabled (`enable_uart=1` in `config.txt`, `dtparam=uart0` on a
    /// Pi 5); without it the Pi halts but stays powered.
    ///
    /// Call it only for a power-off or halt, never for a reboot (the
    /// TX line drops then too), and as late in shutdown as possible: the
    /// vendor's `argon-shutdown.sh`, a systemd shutdown hook, turns the fan
    /// off on every shutdown but sends this only when its argument is
    /// `poweroff` or `halt` \[V\] (same repository as `[S-ARGSCRIPT]`). What
    /// the MCU does if TX drops low for another reason after arming is not
    /// known \[U\].
    pub fn arm_power_cut(&mut self) -> Result<()> {
        match self.firmware {
            Firmware::Legacy => self
                .i2c
                .write(self.addr, &[LEGACY_POWER_CUT])
                .map_err(Error::i2c),
            Firmware::Register => {
                super::regs::write_u8(&mut self.i2c, self.addr, register::CTRL, CTRL_POWER_CUT)
            }
        }
    }
}

impl<I2C: I2c + Send> Fan for ArgonOne<I2C> {
    /// One write of the duty, rounded to a whole percent; no spin-up (see
    /// [`ArgonOne::set_duty_with_spin_up`]).
    fn set_duty(&mut self, percent: f64) -> Result<()> {
        let byte = duty_byte(percent)?;
        self.write_duty(byte)
    }

    /// Register firmware: register 0x80. Legacy firmware: the last duty
    /// commanded, [`Error::NotReady`] before the first.
    fn duty(&mut self) -> Result<f64> {
        match self.firmware {
            Firmware::Register => {
                let v = read_duty_register(&mut self.i2c, self.addr)?;
                if v > 100 {
                    return Err(Error::Invalid {
                        chip: CHIP,
                        detail: format!("duty register reads {v}, above 100 %"),
                    });
                }
                Ok(f64::from(v))
            }
            Firmware::Legacy => self.last_commanded().ok_or(Error::NotReady {
                chip: CHIP,
                detail: "legacy firmware cannot report its duty and none was commanded yet",
            }),
        }
    }

    /// No tachometer.
    fn rpm(&mut self) -> Result<Option<f64>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_choose_probe_values_like_the_vendor() {
        assert_eq!(probe_value(0), 1);
        assert_eq!(probe_value(55), 56);
        assert_eq!(probe_value(98), 99);
        assert_eq!(probe_value(99), 98);
        assert_eq!(probe_value(100), 98);
        assert_eq!(probe_value(255), 98);
    }

    #[test]
    fn can_decide_spin_up() {
        assert!(needs_spin_up(None, 30.0));
        assert!(needs_spin_up(Some(0.0), 30.0));
        assert!(needs_spin_up(Some(55.0), 30.0));
        assert!(!needs_spin_up(Some(30.0), 30.0), "no change");
        assert!(!needs_spin_up(Some(30.0), 0.0), "stopping");
        assert!(!needs_spin_up(Some(30.0), 100.0), "already full");
    }

    #[test]
    fn can_round_duties_to_bytes() {
        assert_eq!(duty_byte(0.0), Ok(0));
        assert_eq!(duty_byte(54.6), Ok(55));
        assert_eq!(duty_byte(100.0), Ok(100));
        assert!(duty_byte(100.5).is_err());
        assert!(duty_byte(-1.0).is_err());
        assert!(duty_byte(f64::NAN).is_err());
    }
}
