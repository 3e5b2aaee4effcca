//! The simulated world: a simulated I²C bus that routes each transaction
//! by address to a register-level emulator of a chip, so the real driver
//! code runs unchanged against it. Chosen by configuration (`--hardware
//! sim`), never by a build flag.
//!
//! Tests reach into an attached chip to change what it measures
//! ([`SimBus::with_chip`]) and inject bus faults per address
//! ([`SimBus::inject`]): a NACK, a vanished device, arbitration loss.
//!
//! To add an emulator: `sim/chips/<chip>.rs` implementing [`Chip`], with
//! its power-on register values from the datasheet and setters for its
//! physical inputs (temperature, current, …).

pub mod chips;
pub mod gpio;
pub mod identity;
pub mod model;
#[cfg(feature = "nvml")]
pub mod nvml;
pub mod serial;
pub mod sysfs;
pub mod world;

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use embedded_hal::i2c::{self, ErrorKind, NoAcknowledgeSource, Operation};

/// A chip's answer that is not data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChipError {
    /// The chip did not acknowledge a byte (bad register pointer, read-only
    /// register written).
    Nack,
    /// The chip did not acknowledge its address: it has left the bus (a
    /// hung MCU) while still attached.
    AddressNack,
}

/// A register-level emulator of one chip.
pub trait Chip: Any + Send {
    /// The master wrote `bytes` (after the address byte).
    fn write(&mut self, bytes: &[u8]) -> Result<(), ChipError>;
    /// The master reads `buf.len()` bytes.
    fn read(&mut self, buf: &mut [u8]) -> Result<(), ChipError>;
    /// For [`SimBus::with_chip`].
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Whether the chip answers its address now (a scan finds it).
    fn present(&self) -> bool {
        true
    }
}

/// A fault injected at one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every transfer to the address is NACKed, as if the device were
    /// unplugged or powered down; the chip keeps its state.
    Nack,
    /// The next `n` transfers lose arbitration, then the bus recovers.
    ArbitrationLoss(u32),
}

/// The error type of the simulated bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimError(pub ErrorKind);

impl i2c::Error for SimError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

#[derive(Default)]
struct State {
    chips: BTreeMap<u8, Box<dyn Chip>>,
    faults: BTreeMap<u8, Fault>,
    transfers: u64,
}

/// A simulated I²C bus; clones share the bus, as several drivers share
/// `/dev/i2c-1`.
#[derive(Clone, Default)]
pub struct SimBus {
    state: Arc<Mutex<State>>,
}

impl SimBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `chip` on the bus at `addr` (replacing what was there).
    pub fn attach(&self, addr: u8, chip: impl Chip) {
        self.lock().chips.insert(addr, Box::new(chip));
    }

    /// Takes the chip at `addr` off the bus (the device vanished).
    pub fn detach(&self, addr: u8) -> bool {
        self.lock().chips.remove(&addr).is_some()
    }

    /// Addresses that answer, as a bus scan would find them.
    pub fn addresses(&self) -> Vec<u8> {
        let s = self.lock();
        s.chips
            .keys()
            .copied()
            .filter(|a| s.faults.get(a) != Some(&Fault::Nack))
            .filter(|a| s.chips.get(a).is_some_and(|c| c.present()))
            .collect()
    }

    /// Injects a fault at `addr`.
    pub fn inject(&self, addr: u8, fault: Fault) {
        self.lock().faults.insert(addr, fault);
    }

    /// Removes any fault at `addr`.
    pub fn clear(&self, addr: u8) {
        self.lock().faults.remove(&addr);
    }

    /// Transfers the bus has carried (each `transaction` call counts one).
    pub fn transfers(&self) -> u64 {
        self.lock().transfers
    }

    /// Runs `f` on the chip of type `C` at `addr`; `None` if there is no
    /// such chip.
    pub fn with_chip<C: Chip, R>(&self, addr: u8, f: impl FnOnce(&mut C) -> R) -> Option<R> {
        let mut s = self.lock();
        let chip = s.chips.get_mut(&addr)?;
        chip.as_any_mut().downcast_mut::<C>().map(f)
    }
}

impl i2c::ErrorType for SimBus {
    type Error = SimError;
}

impl i2c::I2c for SimBus {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), SimError> {
        let mut s = self.lock();
        s.transfers += 1;
        match s.faults.get(&address).copied() {
            Some(Fault::Nack) => {
                return Err(SimError(ErrorKind::NoAcknowledge(
                    NoAcknowledgeSource::Address,
                )));
            }
            Some(Fault::ArbitrationLoss(n)) => {
                if n <= 1 {
                    s.faults.remove(&address);
                } else {
                    s.faults.insert(address, Fault::ArbitrationLoss(n - 1));
                }
                return Err(SimError(ErrorKind::ArbitrationLoss));
            }
            None => {}
        }
        let Some(chip) = s.chips.get_mut(&address) else {
            return Err(SimError(ErrorKind::NoAcknowledge(
                NoAcknowledgeSource::Address,
            )));
        };
        for op in operations {
            let r = match op {
                Operation::Write(bytes) => chip.write(bytes),
                Operation::Read(buf) => chip.read(buf),
            };
            r.map_err(|e| {
                SimError(ErrorKind::NoAcknowledge(match e {
                    ChipError::Nack => NoAcknowledgeSource::Data,
                    ChipError::AddressNack => NoAcknowledgeSource::Address,
                }))
            })?;
        }
        Ok(())
    }
}

/// The common register-pointer protocol of many sensors: the first byte
/// of a write selects a register, further bytes are written to it; reads
/// return the selected register, MSB first.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pointer {
    /// The selected register.
    pub register: u8,
}

impl Pointer {
    /// For chips whose registers are all 16 bits: selects the register,
    /// and returns the word written to it (`None` for a pointer-only
    /// write); any other length is NACKed.
    pub fn write_word(&mut self, bytes: &[u8]) -> Result<Option<u16>, ChipError> {
        match self.write(bytes) {
            [] => Ok(None),
            [hi, lo] => Ok(Some(u16::from_be_bytes([*hi, *lo]))),
            _ => Err(ChipError::Nack),
        }
    }

    /// Splits a write into the new pointer and the data bytes.
    pub fn write<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        match bytes.split_first() {
            Some((reg, data)) => {
                self.register = *reg;
                data
            }
            None => &[],
        }
    }
}

/// Fills `buf` with `value` MSB first, repeating as a chip that keeps
/// clocking out its register does.
pub fn fill_be16(buf: &mut [u8], value: u16) {
    let b = value.to_be_bytes();
    for (i, out) in buf.iter_mut().enumerate() {
        *out = b[i % 2];
    }
}
