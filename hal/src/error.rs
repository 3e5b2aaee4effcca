//! One error type for every device, with a classifier.
//!
//! The fan and power loops must choose between "retry with backoff" and
//! "drive the fan to fail-safe now"; [`Error::kind`] tells them which. It
//! follows embedded-hal's `i2c::ErrorKind`, mapped the way Linux reports
//! I²C failures (see the hardware reference §0): a NACK or arbitration loss
//! is transient; a chip that answers with the wrong identity, or a value
//! that cannot be, is fatal for that device until it is re-detected.

use embedded_hal::i2c::{self, NoAcknowledgeSource};

/// Whether an operation may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Try again after a backoff (bus noise, a NACK, a conversion not yet
    /// done, a chip that lost its calibration and was re-initialised).
    Transient,
    /// Do not expect a retry to help: the device is not what the
    /// configuration says, or it reports something impossible.
    Fatal,
    /// The device does not offer this reading or control (NVML answering
    /// NotSupported, a fan without a tachometer). A normal state: report
    /// the value as absent, do not count it as a failure.
    Unsupported,
}

/// A device operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The I²C transfer failed. A NACK of the address usually means the
    /// device is absent or powered down; check wiring and `onprem
    /// i2cdetect`.
    #[error("I²C {0}")]
    I2c(I2cFailure),
    /// The chip answered, but not as this driver's chip does (an ID or
    /// read-only bits did not match): wrong address or wrong chip type in
    /// the hardware section.
    #[error("{chip} at 0x{addr:02x}: {detail}")]
    WrongDevice {
        /// Driver name.
        chip: &'static str,
        /// 7-bit address.
        addr: u8,
        /// What did not match.
        detail: String,
    },
    /// The chip has no new value yet (a conversion is running, or it was
    /// just re-initialised); the next period will have one.
    #[error("{chip}: {detail}")]
    NotReady {
        /// Driver name.
        chip: &'static str,
        /// Why.
        detail: &'static str,
    },
    /// The chip reports an impossible or overflowed value.
    #[error("{chip}: {detail}")]
    Invalid {
        /// Driver name.
        chip: &'static str,
        /// What.
        detail: String,
    },
    /// A file of a Linux interface (sysfs attribute, device node, serial
    /// port) could not be read or written. `NotFound` usually means the
    /// driver is not bound or the overlay not loaded; `PermissionDenied`
    /// that the agent's user lacks the group or the unit's `DeviceAllow=`.
    #[error("{path}: {detail}")]
    Io {
        /// The file.
        path: String,
        /// How it failed.
        kind: std::io::ErrorKind,
        /// The operating system's message.
        detail: String,
    },
    /// A device answered with a frame that is corrupt or out of protocol
    /// (bad CRC, wrong start byte, timeout waiting for a reply); the next
    /// request usually succeeds.
    #[error("{chip}: {detail}")]
    Protocol {
        /// Driver name.
        chip: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The device does not offer this reading or control. A normal state
    /// (NVML on Jetson, a passively cooled GPU asked for its fan speed).
    #[error("{chip}: {what} is not supported by this device")]
    Unsupported {
        /// Driver or backend name.
        chip: &'static str,
        /// The reading or control.
        what: String,
    },
    /// The operation needs a privilege the agent does not have (setting a
    /// GPU power limit as a non-root user): grant it, or drop the setting
    /// from the bundle.
    #[error("{chip}: {detail}")]
    Denied {
        /// Driver or backend name.
        chip: &'static str,
        /// What was refused.
        detail: String,
    },
    /// The device is gone until it is reset or power-cycled (a GPU that
    /// fell off the bus, a case MCU that left the bus).
    #[error("{chip}: {detail}")]
    Gone {
        /// Driver or backend name.
        chip: &'static str,
        /// What happened and what the operator can do.
        detail: String,
    },
}

/// An I²C failure as embedded-hal classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct I2cFailure(pub i2c::ErrorKind);

impl std::fmt::Display for I2cFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            i2c::ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address) => {
                f.write_str("no acknowledge of the address")
            }
            i2c::ErrorKind::NoAcknowledge(_) => f.write_str("no acknowledge of data"),
            i2c::ErrorKind::ArbitrationLoss => f.write_str("arbitration lost"),
            i2c::ErrorKind::Bus => f.write_str("bus error"),
            i2c::ErrorKind::Overrun => f.write_str("overrun"),
            _ => f.write_str("transfer failed"),
        }
    }
}

impl Error {
    /// Retry, or fail safe?
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::I2c(_) | Error::NotReady { .. } | Error::Protocol { .. } => ErrorKind::Transient,
            Error::Io { kind, .. } => match kind {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                    ErrorKind::Fatal
                }
                _ => ErrorKind::Transient,
            },
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::WrongDevice { .. }
            | Error::Invalid { .. }
            | Error::Denied { .. }
            | Error::Gone { .. } => ErrorKind::Fatal,
        }
    }

    /// Wraps an I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, e: &std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            kind: e.kind(),
            detail: e.to_string(),
        }
    }

    /// Maps a bus error from any embedded-hal I²C implementation.
    pub fn i2c<E: i2c::Error>(e: E) -> Error {
        Error::I2c(I2cFailure(e.kind()))
    }
}

/// Result of a device operation.
pub type Result<T> = std::result::Result<T, Error>;
