//! BitScope Cluster Blade BMC over the Pi's UART: PROVISIONAL.
//!
//! **BitScope's command set is not public in our sources.** Nothing in
//! this module is BitScope's real syntax: every command string, every
//! reply prefix, which number of a reply to take and its scale come from
//! a [`Profile`] in the configuration, and this driver only carries them
//! over a line-oriented request/reply link. With an empty profile every
//! reading and control is [`Error::Unsupported`].
//!
//! What is known (`[V]` hardware reference §3, `[S-BSCB]`, `[S-BSCP]`): the
//! Cluster Blade (CB04B) has a BMC that monitors supply voltage and
//! current, per-node current and temperature, and offers node power
//! control; each node's host Pi reaches it through the primary UART on
//! GPIO 14/15 (`/dev/serial0`), which must be enabled with the Linux
//! serial console disabled. The BMC is locked by default.
//!
//! **Unknown** (§3): the baud rate and framing, the command syntax, the
//! unlock sequence, and the names and units of the telemetry fields. An
//! operator must take from BitScope's control-plane documentation
//! (docs.bitscope.com, "control plane") and fill in:
//!
//! - the port settings ([`crate::serial::Config`]: baud, parity, stop
//!   bits) and the [`Profile::line_ending`] the BMC expects;
//! - the unlock sequence, as [`Profile::init`] commands;
//! - for each reading (supply volts, supply amps, node amps, temperature,
//!   node power state): the request line, the prefix of its reply, the
//!   position of the number in the reply and the factor to SI units;
//! - the node power on and off commands, and what the BMC answers to
//!   them.
//!
//! The link: each request is one line (`send` with `{node}` replaced by
//! the node number the driver was built for — that placeholder is ours,
//! not BitScope's — then [`Profile::line_ending`]). Input waiting before
//! a request is discarded. Reply lines end with `\n` (a `\r` before it is
//! dropped); empty lines and an echo of the request are skipped; with an
//! `expect` prefix, lines without it (log output) are skipped until one
//! has it or the deadline passes. The numbers of a reply are its decimal
//! numbers after the prefix, in order (`-` directly before a digit is a
//! sign); the reading is `number × scale + offset`.
//!
//! Errors: no configured command is [`Error::Unsupported`] naming the
//! reading; no reply in time, a reply without the expected prefix or
//! without the requested number is [`Error::Protocol`] (transient).
//!
//! To extend: once BitScope's reference is at hand, a real driver should
//! replace the profile with the actual commands (and its emulator with one
//! of the real protocol); until then, new readings are new
//! `Option<Reading>` fields of [`Profile`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::devices::{PowerMonitor, PowerSwitch, TemperatureSensor};
use crate::serial::{Transport, read_until, write_all};
use crate::{Error, Result};

const CHIP: &str = "bitscope";
const MAX_LINE: usize = 256;

/// A request whose reply carries a number.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The request line, without line ending; `{node}` is replaced by the
    /// node number.
    pub send: String,
    /// The prefix of the reply line; `None`: the first line that is not
    /// empty and not an echo of the request.
    pub expect: Option<String>,
    /// Which number of the reply (after the prefix) to take, from 0.
    pub field: usize,
    /// Factor to SI units (V, A, °C; 1 for a power state).
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
}

impl Reading {
    /// `send`, the first number of the first reply line, unscaled.
    pub fn new(send: impl Into<String>) -> Self {
        Reading {
            send: send.into(),
            expect: None,
            field: 0,
            scale: 1.0,
            offset: 0.0,
        }
    }
}

/// A request that changes something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The request line, without line ending; `{node}` is replaced by the
    /// node number.
    pub send: String,
    /// The prefix of the reply that confirms it; `None`: no reply is
    /// awaited.
    pub expect: Option<String>,
}

/// Everything the driver sends and expects, from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Appended to every request line (`"\r\n"`, `"\n"`, `"\r"`).
    pub line_ending: String,
    /// How long to wait for each reply.
    pub timeout: Duration,
    /// Sent in order by [`Bmc::init`] (the unlock sequence).
    pub init: Vec<Command>,
    /// Blade supply voltage, V.
    pub supply_volts: Option<Reading>,
    /// Blade supply current, A.
    pub supply_amps: Option<Reading>,
    /// This node's current, A.
    pub node_amps: Option<Reading>,
    /// Temperature, °C.
    pub temperature: Option<Reading>,
    /// This node's power state (non-zero: on).
    pub power_state: Option<Reading>,
    /// Switches this node on.
    pub power_on: Option<Command>,
    /// Switches this node off.
    pub power_off: Option<Command>,
}

impl Default for Profile {
    /// Nothing configured: `\n` line ending, 1 s timeout.
    fn default() -> Self {
        Profile {
            line_ending: "\n".to_string(),
            timeout: Duration::from_secs(1),
            init: Vec::new(),
            supply_volts: None,
            supply_amps: None,
            node_amps: None,
            temperature: None,
            power_state: None,
            power_on: None,
            power_off: None,
        }
    }
}

/// The decimal numbers in `s`, in order: digits with an optional
/// fraction (`12`, `0.5`, `.5`), a `-` or `+` directly before them taken
/// as the sign.
pub fn numbers(s: &str) -> Vec<f64> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let digit_at = |j: usize| b.get(j).is_some_and(u8::is_ascii_digit);
        let starts = digit_at(i) || (b[i] == b'.' && digit_at(i + 1));
        let signed = (b[i] == b'-' || b[i] == b'+')
            && (digit_at(i + 1) || (b.get(i + 1) == Some(&b'.') && digit_at(i + 2)));
        if !starts && !signed {
            i += 1;
            continue;
        }
        let start = i;
        if signed {
            i += 1;
        }
        while digit_at(i) {
            i += 1;
        }
        if b.get(i) == Some(&b'.') && digit_at(i + 1) {
            i += 1;
            while digit_at(i) {
                i += 1;
            }
        }
        // The slice is ASCII digits, sign and dot: it always parses.
        if let Ok(v) = s[start..i].parse::<f64>() {
            out.push(v);
        }
    }
    out
}

/// The BMC link of one node.
pub struct Bmc<T> {
    port: T,
    profile: Profile,
    node: u32,
}

impl<T: Transport> Bmc<T> {
    /// The BMC behind `port`, speaking `profile`, for node `node` (the
    /// number `{node}` becomes in commands).
    pub fn new(port: T, profile: Profile, node: u32) -> Self {
        Bmc {
            port,
            profile,
            node,
        }
    }

    /// Gives the port back.
    pub fn release(self) -> T {
        self.port
    }

    /// Sends [`Profile::init`] in order (the unlock sequence), stopping at
    /// the first that fails.
    pub fn init(&mut self) -> Result<()> {
        for c in self.profile.init.clone() {
            self.command(&c, "init")?;
        }
        Ok(())
    }

    /// This node's current in amperes.
    pub fn node_amps(&mut self) -> Result<f64> {
        let r = self.profile.node_amps.clone();
        self.read(r.as_ref(), "nodeAmps")
    }

    fn line(&self, send: &str) -> String {
        send.replace("{node}", &self.node.to_string())
    }

    fn send(&mut self, line: &str) -> Result<()> {
        self.port.clear_input()?;
        let mut bytes = line.as_bytes().to_vec();
        bytes.extend_from_slice(self.profile.line_ending.as_bytes());
        write_all(&mut self.port, &bytes)
    }

    /// The reply line to `sent`: the first non-empty, non-echo line that
    /// starts with `expect` (any, without one), prefix removed.
    fn reply(&mut self, sent: &str, expect: Option<&str>, what: &str) -> Result<String> {
        let deadline = Instant::now() + self.profile.timeout;
        let mut skipped: Option<String> = None;
        loop {
            let raw = match read_until(&mut self.port, b'\n', MAX_LINE, deadline, CHIP) {
                Ok(raw) => raw,
                Err(Error::Protocol { chip, detail }) => {
                    let wanted = match (expect, &skipped) {
                        (Some(p), Some(l)) => format!(" starting {p:?} (last other line {l:?})"),
                        (Some(p), None) => format!(" starting {p:?}"),
                        _ => String::new(),
                    };
                    return Err(Error::Protocol {
                        chip,
                        detail: format!("{what}: no reply to {sent:?}{wanted}: {detail}"),
                    });
                }
                Err(e) => return Err(e),
            };
            let text = String::from_utf8_lossy(&raw);
            let text = text.trim_end_matches(['\n', '\r']).trim();
            if text.is_empty() || text == sent {
                continue;
            }
            match expect {
                None => return Ok(text.to_string()),
                Some(p) => match text.strip_prefix(p) {
                    Some(rest) => return Ok(rest.to_string()),
                    None => skipped = Some(text.to_string()),
                },
            }
        }
    }

    fn read(&mut self, reading: Option<&Reading>, what: &str) -> Result<f64> {
        let r = reading.ok_or_else(|| unsupported(what))?;
        let sent = self.line(&r.send);
        self.send(&sent)?;
        let reply = self.reply(&sent, r.expect.as_deref(), what)?;
        let n = numbers(&reply);
        let v = n.get(r.field).ok_or_else(|| Error::Protocol {
            chip: CHIP,
            detail: format!(
                "{what}: reply {reply:?} to {sent:?} has {} numbers, the profile takes number {}",
                n.len(),
                r.field
            ),
        })?;
        Ok(v * r.scale + r.offset)
    }

    fn command(&mut self, c: &Command, what: &str) -> Result<()> {
        let sent = self.line(&c.send);
        self.send(&sent)?;
        if let Some(p) = &c.expect {
            self.reply(&sent, Some(p), what)?;
        }
        Ok(())
    }
}

fn unsupported(what: &str) -> Error {
    Error::Unsupported {
        chip: CHIP,
        what: format!("{what} (no command for it in the BMC profile)"),
    }
}

impl<T: Transport> PowerMonitor for Bmc<T> {
    /// Blade supply voltage.
    fn bus_volts(&mut self) -> Result<f64> {
        let r = self.profile.supply_volts.clone();
        self.read(r.as_ref(), "supplyVolts")
    }

    /// Blade supply current.
    fn current_amps(&mut self) -> Result<f64> {
        let r = self.profile.supply_amps.clone();
        self.read(r.as_ref(), "supplyAmps")
    }

    /// Supply volts × supply amps.
    fn power_watts(&mut self) -> Result<f64> {
        Ok(self.bus_volts()? * self.current_amps()?)
    }
}

impl<T: Transport> TemperatureSensor for Bmc<T> {
    fn temperature_celsius(&mut self) -> Result<f64> {
        let r = self.profile.temperature.clone();
        self.read(r.as_ref(), "temperature")
    }
}

impl<T: Transport> PowerSwitch for Bmc<T> {
    fn set_on(&mut self, on: bool) -> Result<()> {
        let (c, what) = if on {
            (self.profile.power_on.clone(), "powerOn")
        } else {
            (self.profile.power_off.clone(), "powerOff")
        };
        let c = c.ok_or_else(|| unsupported(what))?;
        self.command(&c, what)
    }

    /// `None` without a `power_state` reading in the profile.
    fn is_on(&mut self) -> Result<Option<bool>> {
        match self.profile.power_state.clone() {
            None => Ok(None),
            Some(r) => Ok(Some(self.read(Some(&r), "powerState")? != 0.0)),
        }
    }
}

// One BMC, several device handles (supply monitor, temperature, node
// power): share it as `Arc<Mutex<Bmc<_>>>`.

fn locked<T, R>(b: &Arc<Mutex<Bmc<T>>>, f: impl FnOnce(&mut Bmc<T>) -> R) -> R {
    f(&mut b.lock().unwrap_or_else(|e| e.into_inner()))
}

impl<T: Transport> PowerMonitor for Arc<Mutex<Bmc<T>>> {
    fn bus_volts(&mut self) -> Result<f64> {
        locked(self, |b| b.bus_volts())
    }

    fn current_amps(&mut self) -> Result<f64> {
        locked(self, |b| b.current_amps())
    }

    fn power_watts(&mut self) -> Result<f64> {
        locked(self, |b| b.power_watts())
    }
}

impl<T: Transport> TemperatureSensor for Arc<Mutex<Bmc<T>>> {
    fn temperature_celsius(&mut self) -> Result<f64> {
        locked(self, |b| b.temperature_celsius())
    }
}

impl<T: Transport> PowerSwitch for Arc<Mutex<Bmc<T>>> {
    fn set_on(&mut self, on: bool) -> Result<()> {
        locked(self, |b| b.set_on(on))
    }

    fn is_on(&mut self) -> Result<Option<bool>> {
        locked(self, |b| b.is_on())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_find_numbers_in_a_reply() {
        assert_eq!(numbers("V=12.10 A=-0.5"), vec![12.1, -0.5]);
        assert_eq!(numbers("node2 temp 45C"), vec![2.0, 45.0]);
        assert_eq!(numbers(".5 +3 x-y 7."), vec![0.5, 3.0, 7.0]);
        assert_eq!(numbers("12.0.3"), vec![12.0, 0.3]);
        assert!(numbers("OK").is_empty());
        assert!(numbers("- + .").is_empty());
    }
}
