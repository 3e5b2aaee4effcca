//! Argon ONE case MCU emulator, both firmware generations (hardware
//! reference §1.2, §9).
//!
//! - Legacy: a one-byte write (SMBus send byte) 0–100 sets the duty, 0xFF
//!   arms the power cut, 0xFD/0xFE set the power-on mode, anything else is
//!   ignored. Register writes (two bytes or more) are ignored, so the
//!   firmware detection reads back an unchanged 0x80 and falls back to
//!   legacy. What a legacy MCU answers to a read of 0x80 is not known \[U\];
//!   the emulator answers the current duty.
//! - Register: register 0x80 reads and writes the duty (stored as
//!   written: the host clamps, not the device \[U\]); writing 1 to 0x86
//!   arms the power cut; other writes (IR upload to 0x82, …) are accepted
//!   and ignored.
//!
//! Physical input: [`ArgonOne::uart_tx_low`], the Pi's UART TX dropping at
//! the end of shutdown: when armed, the MCU cuts power ([`ArgonOne::powered`]
//! turns false, fan off) \[V\]. [`ArgonOne::press_power`] powers the Pi on
//! again.
//!
//! Fault (§1.2 failure modes \[T\]): reading any register other than 0x80,
//! more than one byte, or without a register pointer written just before
//! (what `i2cdump` does) makes the MCU leave the bus: every transfer is
//! NACKed and the fan sticks at 100 % until [`ArgonOne::power_cycle`].
//! The simulated bus can only report that as a data NACK.
//!
//! To extend: the power-on mode's effect on [`ArgonOne::power_cycle`]
//! (mode 1 waits for a button press, mode 2 powers on) once it matters.

use std::any::Any;

use crate::sim::{Chip, ChipError};

/// Which firmware the emulated MCU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// Send-byte commands, no registers.
    Legacy,
    /// Registers 0x80 and 0x86.
    Register,
}

/// An emulated Argon ONE case MCU.
#[derive(Debug, Clone)]
pub struct ArgonOne {
    firmware: Firmware,
    duty: u8,
    armed: bool,
    powered: bool,
    vanished: bool,
    pointer: Option<u8>,
    mode: Option<u8>,
    reads: u64,
}

impl ArgonOne {
    fn with_firmware(firmware: Firmware) -> Self {
        ArgonOne {
            firmware,
            duty: 0,
            armed: false,
            powered: true,
            vanished: false,
            pointer: None,
            mode: None,
            reads: 0,
        }
    }

    /// An MCU with legacy firmware (Pi 4 V2), fan off, Pi powered.
    pub fn legacy() -> Self {
        Self::with_firmware(Firmware::Legacy)
    }

    /// An MCU with register firmware (Pi 5 V3), fan off, Pi powered.
    pub fn register() -> Self {
        Self::with_firmware(Firmware::Register)
    }

    /// The firmware.
    pub fn firmware(&self) -> Firmware {
        self.firmware
    }

    /// The fan's duty in percent (a register value above 100 drives 100).
    pub fn duty(&self) -> u8 {
        self.duty.min(100)
    }

    /// The duty register as written (register firmware stores what it is
    /// given).
    pub fn duty_register(&self) -> u8 {
        self.duty
    }

    /// Whether the power cut is armed.
    pub fn armed(&self) -> bool {
        self.armed
    }

    /// Whether the Pi has power.
    pub fn powered(&self) -> bool {
        self.powered
    }

    /// Whether the MCU has left the bus (after a dump).
    pub fn vanished(&self) -> bool {
        self.vanished
    }

    /// The last power-on mode command (legacy 0xFD or 0xFE), if any.
    pub fn mode(&self) -> Option<u8> {
        self.mode
    }

    /// Reads the master has made (each read operation counts one).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// The Pi's UART TX pin drops low (the end of shutdown). When armed,
    /// the MCU cuts the Pi's power and the fan stops; otherwise nothing
    /// happens (TX low is also ordinary serial traffic), nor does it on an
    /// MCU that has left the bus (it is hung).
    pub fn uart_tx_low(&mut self) {
        if self.armed && self.answering() {
            self.powered = false;
            self.armed = false;
            self.duty = 0;
            self.pointer = None;
        }
    }

    /// A short press of the power button: powers the Pi on if it was off.
    pub fn press_power(&mut self) {
        if !self.powered {
            self.powered = true;
        }
    }

    /// Power removed entirely and restored: the MCU restarts (back on the
    /// bus, fan off, not armed) and the Pi has power.
    pub fn power_cycle(&mut self) {
        *self = ArgonOne {
            mode: self.mode,
            reads: self.reads,
            ..Self::with_firmware(self.firmware)
        };
    }

    fn vanish(&mut self) {
        self.vanished = true;
        self.duty = 100;
        self.pointer = None;
    }

    fn answering(&self) -> bool {
        self.powered && !self.vanished
    }

    fn write_legacy(&mut self, bytes: &[u8]) {
        match bytes {
            [b] => {
                match *b {
                    0..=100 => self.duty = *b,
                    0xFD | 0xFE => self.mode = Some(*b),
                    0xFF => self.armed = true,
                    _ => {}
                }
                // An SMBus read byte data writes the register first.
                self.pointer = Some(*b);
            }
            // Quick write, or register writes this firmware lacks.
            _ => self.pointer = None,
        }
    }

    fn write_register(&mut self, bytes: &[u8]) {
        match bytes {
            [reg] => self.pointer = Some(*reg),
            [0x80, v] => {
                self.duty = *v;
                self.pointer = None;
            }
            [0x86, v] => {
                if *v == 1 {
                    self.armed = true;
                }
                self.pointer = None;
            }
            _ => self.pointer = None,
        }
    }
}

impl Chip for ArgonOne {
    fn present(&self) -> bool {
        self.answering()
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ChipError> {
        if !self.answering() {
            return Err(ChipError::AddressNack);
        }
        match self.firmware {
            Firmware::Legacy => self.write_legacy(bytes),
            Firmware::Register => self.write_register(bytes),
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), ChipError> {
        if !self.answering() {
            return Err(ChipError::AddressNack);
        }
        self.reads += 1;
        match (self.pointer.take(), buf) {
            (Some(0x80), [out]) => {
                *out = self.duty;
                Ok(())
            }
            _ => {
                // A dump, a read of another register, or a read without a
                // pointer: the MCU hangs.
                self.vanish();
                Err(ChipError::Nack)
            }
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
