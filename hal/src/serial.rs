//! Serial ports (serialport, without libudev): opening, framing helpers
//! and the transports that serial drivers own.
//!
//! A serial driver (the Modbus RTU client, the BitScope BMC link) is
//! generic over a [`Transport`]: a byte stream with a settable read
//! timeout and an input buffer it can discard. It is implemented for the
//! two things [`serialport`] hands out, `Box<dyn SerialPort>` (from
//! [`open`]) and [`serialport::TTYPort`] (from [`open_native`], and the
//! ends of a pseudo-terminal pair in tests), so a driver takes its port in
//! `new(..)` and gives it back in `release()`.
//!
//! Facts used here:
//!
//! - `serialport` opens a port in raw mode (`cfmakeraw`), exclusive
//!   (`TIOCEXCL` plus `flock`), DTR left alone; a read waits up to the
//!   port's timeout and then fails with `TimedOut`. Default features pull
//!   in libudev; this crate turns them off. `[V]` hardware reference §8,
//!   `[S-SERIALPORT]` src/posix/tty.rs.
//! - A pseudo-terminal has no baud timing: a byte written on one end is
//!   readable on the other at once. `[V]` §8 caveat 2.
//! - Modbus RTU frames are separated by at least 3.5 character times of
//!   silence; a character is 11 bits on the wire (start, 8 data, parity or
//!   a second stop bit, stop); above 19 200 baud the spec fixes the gap at
//!   1.75 ms (and t1.5 at 0.75 ms). `[T]` Modbus over Serial Line V1.02
//!   §2.5.1.1 as quoted by third parties; not in the hardware reference.
//!
//! Errors: a missing device node or missing permission is [`Error::Io`]
//! naming the path (fatal: fix the configuration or the unit's
//! `DeviceAllow=`); a device that does not answer in time is
//! [`Error::Protocol`] (transient).
//!
//! To extend: another transport (a TCP serial server, a USB CDC device
//! opened some other way) implements [`Transport`]; new framing helpers
//! take `&mut impl Transport` and an overall deadline, never a per-read
//! timeout alone.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serialport::{ClearBuffer, SerialPort, TTYPort};
pub use serialport::{DataBits, Parity, StopBits};

use crate::{Error, Result};

/// A port as [`open`] returns it.
pub type Port = Box<dyn SerialPort>;

/// How to open a serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Device node, e.g. `/dev/ttyUSB0`, `/dev/serial0`, `/dev/pts/3`.
    pub path: String,
    /// Baud rate.
    pub baud: u32,
    /// Data bits per character.
    pub data_bits: DataBits,
    /// Parity.
    pub parity: Parity,
    /// Stop bits.
    pub stop_bits: StopBits,
    /// How long one read waits for a byte (drivers set their own
    /// deadlines per request on top of this).
    pub timeout: Duration,
}

impl Config {
    /// `path` at `baud`, 8 data bits, no parity, 1 stop bit (8N1), a
    /// 1-second read timeout.
    pub fn new(path: impl Into<String>, baud: u32) -> Self {
        Config {
            path: path.into(),
            baud,
            data_bits: DataBits::Eight,
            parity: Parity::None,
            stop_bits: StopBits::One,
            timeout: Duration::from_secs(1),
        }
    }

    fn builder(&self) -> serialport::SerialPortBuilder {
        serialport::new(self.path.as_str(), self.baud)
            .data_bits(self.data_bits)
            .parity(self.parity)
            .stop_bits(self.stop_bits)
            .timeout(self.timeout)
    }
}

/// Opens the port `config` names.
pub fn open(config: &Config) -> Result<Port> {
    config
        .builder()
        .open()
        .map_err(|e| open_error(&config.path, e))
}

/// Opens the port `config` names as the concrete Unix type.
pub fn open_native(config: &Config) -> Result<TTYPort> {
    config
        .builder()
        .open_native()
        .map_err(|e| open_error(&config.path, e))
}

/// Maps a `serialport` error on `path` to [`Error`]: `NotFound` and
/// `PermissionDenied` stay what they are (fatal), a port that another
/// process holds is `ResourceBusy` (transient: getty on a serial console,
/// a second agent), bad settings are [`Error::Invalid`].
pub fn open_error(path: &str, e: serialport::Error) -> Error {
    use serialport::ErrorKind as K;
    let kind = match e.kind() {
        K::Io(kind) => kind,
        K::NoDevice => std::io::ErrorKind::ResourceBusy,
        K::InvalidInput => {
            return Error::Invalid {
                chip: "serial",
                detail: format!("{path}: {}", e.description),
            };
        }
        _ => std::io::ErrorKind::Other,
    };
    Error::Io {
        path: path.to_string(),
        kind,
        detail: e.description,
    }
}

/// A byte stream a serial driver owns.
pub trait Transport: Read + Write + Send {
    /// Sets how long one read waits for the first byte.
    fn set_timeout(&mut self, timeout: Duration) -> Result<()>;
    /// Discards bytes received and not yet read (a late reply to an
    /// earlier request, line noise).
    fn clear_input(&mut self) -> Result<()>;
    /// The port's name for messages (its path, or `serial port`).
    fn port_name(&self) -> String;
}

fn name_of(p: &dyn SerialPort) -> String {
    p.name().unwrap_or_else(|| "serial port".to_string())
}

fn setting_error(name: String, e: serialport::Error) -> Error {
    let kind = match e.kind() {
        serialport::ErrorKind::Io(kind) => kind,
        _ => std::io::ErrorKind::Other,
    };
    Error::Io {
        path: name,
        kind,
        detail: e.description,
    }
}

impl Transport for Box<dyn SerialPort> {
    fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        SerialPort::set_timeout(self.as_mut(), timeout)
            .map_err(|e| setting_error(name_of(self.as_ref()), e))
    }

    fn clear_input(&mut self) -> Result<()> {
        self.clear(ClearBuffer::Input)
            .map_err(|e| setting_error(name_of(self.as_ref()), e))
    }

    fn port_name(&self) -> String {
        name_of(self.as_ref())
    }
}

impl Transport for TTYPort {
    fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        SerialPort::set_timeout(self, timeout).map_err(|e| setting_error(name_of(self), e))
    }

    fn clear_input(&mut self) -> Result<()> {
        self.clear(ClearBuffer::Input)
            .map_err(|e| setting_error(name_of(self), e))
    }

    fn port_name(&self) -> String {
        name_of(self)
    }
}

/// Reads up to `buf.len()` bytes, waiting at most until `deadline` for
/// the first; `Ok(0)` when the deadline passed with nothing received.
fn read_some<T: Transport + ?Sized>(
    port: &mut T,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<usize> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(0);
        }
        // A zero timeout would make the poll return at once; keep at
        // least a millisecond so the last stretch is still waited for.
        port.set_timeout((deadline - now).max(Duration::from_millis(1)))?;
        match port.read(buf) {
            Ok(0) => {
                return Err(Error::Io {
                    path: port.port_name(),
                    kind: std::io::ErrorKind::UnexpectedEof,
                    detail: "the port hung up (end of file)".to_string(),
                });
            }
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(port.port_name(), &e)),
        }
    }
}

fn timed_out(chip: &'static str, port: &str, what: &str, got: &[u8]) -> Error {
    Error::Protocol {
        chip,
        detail: format!(
            "{port}: no complete {what} before the deadline ({} bytes received{})",
            got.len(),
            if got.is_empty() {
                String::new()
            } else {
                format!(": {}", hex(&got[..got.len().min(32)]))
            }
        ),
    }
}

/// Bytes as `01 03 a0` for messages.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Reads bytes until `terminator` (included in the result), at most
/// `max` bytes, all before `deadline`. Reads one byte at a time so that
/// nothing after the terminator is consumed. Past the deadline, or
/// `max` bytes without a terminator, is [`Error::Protocol`] for `chip`.
pub fn read_until<T: Transport + ?Sized>(
    port: &mut T,
    terminator: u8,
    max: usize,
    deadline: Instant,
    chip: &'static str,
) -> Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        if read_some(port, &mut b, deadline)? == 0 {
            return Err(timed_out(chip, &port.port_name(), "line", &line));
        }
        line.push(b[0]);
        if b[0] == terminator {
            return Ok(line);
        }
        if line.len() >= max {
            return Err(Error::Protocol {
                chip,
                detail: format!(
                    "{}: {max} bytes without a line end: {}",
                    port.port_name(),
                    hex(&line[..line.len().min(32)])
                ),
            });
        }
    }
}

/// Fills `buf` completely before `deadline`, or fails with
/// [`Error::Protocol`] for `chip` naming how much arrived.
pub fn read_exact_by<T: Transport + ?Sized>(
    port: &mut T,
    buf: &mut [u8],
    deadline: Instant,
    chip: &'static str,
) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = read_some(port, &mut buf[done..], deadline)?;
        if n == 0 {
            return Err(timed_out(chip, &port.port_name(), "reply", &buf[..done]));
        }
        done += n;
    }
    Ok(())
}

/// Writes all of `bytes` and flushes.
pub fn write_all<T: Transport + ?Sized>(port: &mut T, bytes: &[u8]) -> Result<()> {
    port.write_all(bytes)
        .and_then(|()| port.flush())
        .map_err(|e| Error::io(port.port_name(), &e))
}

/// Bits per Modbus RTU character: start, 8 data, parity (or a second
/// stop bit), stop.
pub const RTU_BITS_PER_CHAR: u32 = 11;

/// Modbus RTU inter-frame silence (t3.5) at `baud`: 3.5 characters of 11
/// bits, fixed at 1.75 ms above 19 200 baud. Baud 0 (a pty opened without
/// a rate) counts as fast.
pub fn rtu_silence(baud: u32) -> Duration {
    if baud == 0 || baud > 19_200 {
        Duration::from_micros(1_750)
    } else {
        // 3.5 × 11 bits = 38.5 bits; in ns: 38.5e9 / baud.
        Duration::from_nanos(38_500_000_000 / u64::from(baud))
    }
}

/// Modbus RTU inter-character timeout (t1.5) at `baud`: 1.5 characters of
/// 11 bits, fixed at 0.75 ms above 19 200 baud.
pub fn rtu_char_timeout(baud: u32) -> Duration {
    if baud == 0 || baud > 19_200 {
        Duration::from_micros(750)
    } else {
        Duration::from_nanos(16_500_000_000 / u64::from(baud))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_compute_rtu_silence_from_baud() {
        // 9600 baud: 38.5 bits / 9600 = 4.0104 ms.
        assert_eq!(rtu_silence(9600), Duration::from_nanos(4_010_416));
        // 19200: still computed, 2.005 ms.
        assert_eq!(rtu_silence(19_200), Duration::from_nanos(2_005_208));
        // Above 19200: fixed 1.75 ms.
        assert_eq!(rtu_silence(38_400), Duration::from_micros(1_750));
        assert_eq!(rtu_silence(115_200), Duration::from_micros(1_750));
        assert_eq!(rtu_char_timeout(9600), Duration::from_nanos(1_718_750));
        assert_eq!(rtu_char_timeout(57_600), Duration::from_micros(750));
    }

    #[test]
    fn can_format_hex() {
        assert_eq!(hex(&[0x01, 0x03, 0xa0]), "01 03 a0");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn can_map_open_errors() {
        let e = open_error(
            "/dev/ttyUSB9",
            serialport::Error::new(
                serialport::ErrorKind::Io(std::io::ErrorKind::NotFound),
                "No such file",
            ),
        );
        assert_eq!(e.kind(), crate::ErrorKind::Fatal);
        assert!(e.to_string().contains("/dev/ttyUSB9"), "{e}");
        let e = open_error(
            "/dev/ttyS0",
            serialport::Error::new(serialport::ErrorKind::NoDevice, "busy"),
        );
        assert_eq!(e.kind(), crate::ErrorKind::Transient);
        let e = open_error(
            "/dev/ttyS0",
            serialport::Error::new(serialport::ErrorKind::InvalidInput, "bad baud"),
        );
        assert_eq!(e.kind(), crate::ErrorKind::Fatal);
    }
}
