//! Linux I²C buses and bus scanning.
//!
//! Two backends give the drivers an embedded-hal 1.0 [`I2c`] bus:
//!
//! - [`LinuxI2c`] (feature `linux-i2c`): `/dev/i2c-N` through
//!   linux-embedded-hal. Every `transaction` is one `I2C_RDWR` transfer,
//!   so a register write followed by a read uses a repeated start, as the
//!   sensors' datasheets draw it. It works on every Linux board (Pi,
//!   Jetson, x86 servers with an SMBus adapter), and is the default.
//! - [`RppalI2c`] (feature `rppal`): the Pi's I²C through rppal. rppal's
//!   own embedded-hal `transaction` runs each operation separately, with a
//!   STOP between them (hardware reference §0 [V]); this adapter sends a
//!   write followed by a read as rppal's `write_read`, which is one
//!   `I2C_RDWR` with a repeated start.
//!
//! Errors follow the kernel's I²C fault codes: `ENXIO` is a NACK of the
//! address, `ENODEV` of data, `EAGAIN` arbitration loss. The Pi's
//! i2c-bcm2835 reports a NACK as `EREMOTEIO` and a stretched-clock timeout
//! as `ETIMEDOUT` (§0 [T]); linux-embedded-hal calls both "other", so
//! [`LinuxI2c`] maps them itself (NACK, bus error), which keeps a missing
//! device transient rather than unknown.
//!
//! [`scan`] probes a bus the way `i2cdetect` does, and skips the addresses
//! where a probe is known to hurt a device ([`HARMFUL`]).
//!
//! To add a backend: a type implementing [`I2c`] whose error's `kind()`
//! follows the fault codes above.

#[cfg(any(feature = "linux-i2c", feature = "rppal"))]
use embedded_hal::i2c::Operation;
use embedded_hal::i2c::{self, ErrorKind, I2c, NoAcknowledgeSource};

/// How a probe of one address is made, as i2c-tools' `i2cdetect` chooses
/// it by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// SMBus quick write: the address byte and nothing else.
    QuickWrite,
    /// One-byte read: for EEPROM ranges, where a quick write can corrupt
    /// some parts (AT24RF08), and for write-protected ranges.
    ReadByte,
}

/// The probe `i2cdetect` uses for `addr` in its default mode: a read for
/// 0x30–0x37 and 0x50–0x5F, a quick write elsewhere.
pub fn probe_for(addr: u8) -> Probe {
    if (0x30..=0x37).contains(&addr) || (0x50..=0x5F).contains(&addr) {
        Probe::ReadByte
    } else {
        Probe::QuickWrite
    }
}

/// Addresses where a probe is known to hurt a device, with the reason.
/// [`scan`] skips them unless forced.
pub const HARMFUL: &[(u8, &str)] = &[(
    0x1A,
    "Argon ONE / Fan HAT MCU: scanning or dumping it can make it leave the bus with the fan stuck at 100 % until power is removed; a read stops a Fan HAT's fan",
)];

/// The first and last address `i2cdetect` scans by default (0x00–0x07 and
/// 0x78–0x7F are reserved).
pub const SCAN_RANGE: std::ops::RangeInclusive<u8> = 0x08..=0x77;

/// What a scan found at one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Not scanned (reserved range).
    Blank,
    /// Nothing answered.
    Empty,
    /// A device acknowledged.
    Found,
    /// A kernel driver has claimed the address; not probed (`UU`).
    Claimed,
    /// Skipped: a probe is known to hurt the device there.
    Skipped,
    /// The probe failed with something other than a NACK.
    Error,
}

impl Cell {
    /// Two characters, as `i2cdetect` prints them (`SS` for skipped, `EE`
    /// for an error).
    pub fn render(self, addr: u8) -> String {
        match self {
            Cell::Blank => "  ".into(),
            Cell::Empty => "--".into(),
            Cell::Found => format!("{addr:02x}"),
            Cell::Claimed => "UU".into(),
            Cell::Skipped => "SS".into(),
            Cell::Error => "EE".into(),
        }
    }
}

/// Options for [`scan`].
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Probe the [`HARMFUL`] addresses too.
    pub force: bool,
    /// Addresses a kernel driver has claimed (shown as `UU`, not probed).
    pub claimed: Vec<u8>,
}

/// Probes every address of [`SCAN_RANGE`] on `bus`; the result has 128
/// cells, indexed by address.
pub fn scan<B: I2c>(bus: &mut B, opts: &ScanOptions) -> Vec<Cell> {
    let mut cells = vec![Cell::Blank; 128];
    for addr in SCAN_RANGE {
        let cell = &mut cells[usize::from(addr)];
        if opts.claimed.contains(&addr) {
            *cell = Cell::Claimed;
            continue;
        }
        if !opts.force && HARMFUL.iter().any(|(a, _)| *a == addr) {
            *cell = Cell::Skipped;
            continue;
        }
        let r = match probe_for(addr) {
            Probe::QuickWrite => bus.write(addr, &[]),
            Probe::ReadByte => bus.read(addr, &mut [0u8]),
        };
        *cell = match r {
            Ok(()) => Cell::Found,
            Err(e) => match i2c::Error::kind(&e) {
                ErrorKind::NoAcknowledge(_) => Cell::Empty,
                _ => Cell::Error,
            },
        };
    }
    cells
}

/// The scan as `i2cdetect` prints it, with a legend for skipped
/// addresses.
pub fn render(cells: &[Cell]) -> String {
    let mut out = String::from("     0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f\n");
    for row in 0..8u8 {
        out.push_str(&format!("{:02x}:", row * 16));
        for col in 0..16u8 {
            let addr = row * 16 + col;
            let cell = cells.get(usize::from(addr)).copied().unwrap_or(Cell::Blank);
            out.push(' ');
            out.push_str(&cell.render(addr));
        }
        out.push('\n');
    }
    for (addr, why) in HARMFUL {
        if cells.get(usize::from(*addr)) == Some(&Cell::Skipped) {
            out.push_str(&format!(
                "SS at 0x{addr:02x}: not probed ({why}); --force probes it\n"
            ));
        }
    }
    out
}

/// Addresses on `bus` that a kernel driver has claimed, from
/// `<sysfs>/bus/i2c/devices/<bus>-00XX/driver`.
pub fn claimed_addresses(sysfs: &std::path::Path, bus: u32) -> Vec<u8> {
    let dir = sysfs.join("bus/i2c/devices");
    let prefix = format!("{bus}-00");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(hex) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if let Ok(addr) = u8::from_str_radix(hex, 16) {
            if e.path().join("driver").exists() {
                out.push(addr);
            }
        }
    }
    out.sort_unstable();
    out
}

/// The error of the Linux backends: the kernel's errno, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxError {
    /// The errno, when the kernel gave one.
    pub errno: Option<i32>,
    /// The message.
    pub message: String,
}

impl std::fmt::Display for LinuxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LinuxError {}

const ENXIO: i32 = 6;
const ENODEV: i32 = 19;
const EAGAIN: i32 = 11;
const EIO: i32 = 5;
const EBUSY: i32 = 16;
const EINVAL: i32 = 22;
const EREMOTEIO: i32 = 121;
const ETIMEDOUT: i32 = 110;

/// Classifies an errno of an I²C transfer (kernel `i2c/fault-codes`).
pub fn classify_errno(errno: i32) -> ErrorKind {
    match errno {
        ENXIO => ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address),
        ENODEV => ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data),
        EREMOTEIO => ErrorKind::NoAcknowledge(NoAcknowledgeSource::Unknown),
        EAGAIN => ErrorKind::ArbitrationLoss,
        EIO | EBUSY | EINVAL | ETIMEDOUT => ErrorKind::Bus,
        _ => ErrorKind::Other,
    }
}

impl i2c::Error for LinuxError {
    fn kind(&self) -> ErrorKind {
        self.errno.map_or(ErrorKind::Other, classify_errno)
    }
}

/// Opening a bus failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {detail}")]
pub struct OpenError {
    /// The device node or bus.
    pub path: String,
    /// Why.
    pub detail: String,
    /// The errno, when there was one (`ENOENT`: bus not enabled;
    /// `EACCES`: the agent's user lacks the `i2c` group).
    pub errno: Option<i32>,
}

impl From<OpenError> for crate::Error {
    fn from(e: OpenError) -> Self {
        let kind = match e.errno {
            Some(2) => std::io::ErrorKind::NotFound,
            Some(13) | Some(1) => std::io::ErrorKind::PermissionDenied,
            _ => std::io::ErrorKind::Other,
        };
        crate::Error::Io {
            path: e.path,
            kind,
            detail: e.detail,
        }
    }
}

/// `/dev/i2c-N` through linux-embedded-hal: one `I2C_RDWR` per
/// transaction (repeated starts).
#[cfg(feature = "linux-i2c")]
pub struct LinuxI2c {
    dev: linux_embedded_hal::I2cdev,
    bus: u32,
}

#[cfg(feature = "linux-i2c")]
impl LinuxI2c {
    /// Opens `/dev/i2c-<bus>`.
    pub fn open(bus: u32) -> Result<Self, OpenError> {
        Self::open_path(&format!("/dev/i2c-{bus}"), bus)
    }

    /// Opens a bus device node by path.
    pub fn open_path(path: &str, bus: u32) -> Result<Self, OpenError> {
        linux_embedded_hal::I2cdev::new(path)
            .map(|dev| Self { dev, bus })
            .map_err(|e| OpenError {
                path: path.to_string(),
                errno: linux_errno(&e),
                detail: e.to_string(),
            })
    }

    /// The bus number.
    pub fn bus(&self) -> u32 {
        self.bus
    }
}

#[cfg(feature = "linux-i2c")]
fn linux_errno(e: &linux_embedded_hal::i2cdev::linux::LinuxI2CError) -> Option<i32> {
    use linux_embedded_hal::i2cdev::linux::LinuxI2CError;
    match e {
        LinuxI2CError::Errno(n) => Some(*n),
        LinuxI2CError::Io(io) => io.raw_os_error(),
    }
}

#[cfg(feature = "linux-i2c")]
impl i2c::ErrorType for LinuxI2c {
    type Error = LinuxError;
}

#[cfg(feature = "linux-i2c")]
impl I2c for LinuxI2c {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), LinuxError> {
        I2c::transaction(&mut self.dev, address, operations).map_err(|e| LinuxError {
            errno: linux_errno(e.inner()),
            message: e.to_string(),
        })
    }
}

/// The Pi's I²C through rppal, with a repeated start between a register
/// write and the read that follows it.
#[cfg(feature = "rppal")]
pub struct RppalI2c {
    dev: rppal::i2c::I2c,
    addr: Option<u8>,
}

#[cfg(feature = "rppal")]
impl RppalI2c {
    /// Opens I²C bus `bus` (1 on the 40-pin header). Fails with "unknown
    /// model" when this is not a Raspberry Pi.
    pub fn open(bus: u8) -> Result<Self, OpenError> {
        rppal::i2c::I2c::with_bus(bus)
            .map(|dev| Self { dev, addr: None })
            .map_err(|e| OpenError {
                path: format!("/dev/i2c-{bus}"),
                errno: match &e {
                    rppal::i2c::Error::Io(io) => io.raw_os_error(),
                    _ => None,
                },
                detail: e.to_string(),
            })
    }

    fn address(&mut self, addr: u8) -> Result<(), LinuxError> {
        if self.addr != Some(addr) {
            self.dev
                .set_slave_address(u16::from(addr))
                .map_err(rppal_error)?;
            self.addr = Some(addr);
        }
        Ok(())
    }
}

#[cfg(feature = "rppal")]
fn rppal_error(e: rppal::i2c::Error) -> LinuxError {
    LinuxError {
        errno: match &e {
            rppal::i2c::Error::Io(io) => io.raw_os_error(),
            _ => None,
        },
        message: e.to_string(),
    }
}

#[cfg(feature = "rppal")]
impl i2c::ErrorType for RppalI2c {
    type Error = LinuxError;
}

#[cfg(feature = "rppal")]
impl I2c for RppalI2c {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), LinuxError> {
        self.address(address)?;
        match operations {
            [Operation::Write(w), Operation::Read(r)] => {
                self.dev.write_read(w, r).map_err(rppal_error)
            }
            ops => {
                for op in ops.iter_mut() {
                    match op {
                        Operation::Write(w) => self.dev.write(w).map(drop),
                        Operation::Read(r) => self.dev.read(r).map(drop),
                    }
                    .map_err(rppal_error)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_choose_the_probe_i2cdetect_uses() {
        assert_eq!(probe_for(0x48), Probe::QuickWrite);
        assert_eq!(probe_for(0x30), Probe::ReadByte);
        assert_eq!(probe_for(0x37), Probe::ReadByte);
        assert_eq!(probe_for(0x38), Probe::QuickWrite);
        assert_eq!(probe_for(0x50), Probe::ReadByte);
        assert_eq!(probe_for(0x5F), Probe::ReadByte);
        assert_eq!(probe_for(0x60), Probe::QuickWrite);
    }

    #[test]
    fn can_classify_kernel_fault_codes() {
        assert_eq!(
            classify_errno(6),
            ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)
        );
        assert_eq!(
            classify_errno(121),
            ErrorKind::NoAcknowledge(NoAcknowledgeSource::Unknown)
        );
        assert_eq!(classify_errno(11), ErrorKind::ArbitrationLoss);
        assert_eq!(classify_errno(110), ErrorKind::Bus);
        assert_eq!(classify_errno(95), ErrorKind::Other);
    }

    #[test]
    fn can_find_claimed_addresses_in_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let devs = dir.path().join("bus/i2c/devices");
        for (name, bound) in [("1-0048", true), ("1-001a", false), ("3-0040", true)] {
            std::fs::create_dir_all(devs.join(name)).unwrap();
            if bound {
                std::fs::create_dir_all(devs.join(name).join("driver")).unwrap();
            }
        }
        assert_eq!(claimed_addresses(dir.path(), 1), vec![0x48]);
        assert_eq!(claimed_addresses(dir.path(), 3), vec![0x40]);
        assert!(claimed_addresses(dir.path(), 7).is_empty());
    }
}
