//! Argon Fan HAT emulator (hardware reference §1.4, §9): register 0x80
//! takes the duty (SMBus write byte data); **any read stops the fan**
//! (duty 0) \[V\] `[S-K-ARGHAT]`. What the read returns is not known \[U\]; the
//! emulator answers zeros. Values above 100 are stored as written and
//! drive 100 % \[U\] (the kernel driver clamps on the host).
//!
//! Getters: [`ArgonFanHat::duty`], and [`ArgonFanHat::reads`] /
//! [`ArgonFanHat::writes`] so tests can show a driver never reads.
//!
//! To extend: the HAT has no other known register; writes elsewhere are
//! accepted and ignored.

use std::any::Any;

use crate::sim::{Chip, ChipError};

/// An emulated Argon Fan HAT.
#[derive(Debug, Clone, Default)]
pub struct ArgonFanHat {
    duty: u8,
    reads: u64,
    writes: u64,
}

impl ArgonFanHat {
    /// A HAT with the fan off.
    pub fn new() -> Self {
        Self::default()
    }

    /// A HAT whose fan runs at `duty` % (as left by an earlier boot).
    pub fn running(duty: u8) -> Self {
        ArgonFanHat {
            duty,
            ..Self::default()
        }
    }

    /// The fan's duty in percent.
    pub fn duty(&self) -> u8 {
        self.duty.min(100)
    }

    /// Read operations the master has made (each one stopped the fan).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Write operations the master has made.
    pub fn writes(&self) -> u64 {
        self.writes
    }
}

impl Chip for ArgonFanHat {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ChipError> {
        self.writes += 1;
        if let [0x80, v] = bytes {
            self.duty = *v;
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), ChipError> {
        self.reads += 1;
        self.duty = 0;
        buf.fill(0);
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
