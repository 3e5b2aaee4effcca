//! Serial devices emulated on pty pairs.
//!
//! Each emulator runs in a thread on the master side of a
//! [`serialport::TTYPort::pair`]; the code under test opens the slave by
//! its path (`/dev/pts/N`, [`ModbusMeter::path`]) exactly as it would open
//! `/dev/ttyUSB0`. Facts from the hardware reference §8 (`[V]`
//! `[S-SERIALPORT]`): dropping the master deletes the slave, so the
//! thread owns the master until it is joined; the emulator also keeps a
//! slave handle open for its whole life, so the pts survives the code
//! under test closing and reopening it (§8 caveat 4); `pair()` is not
//! documented as thread-safe, so pair creation is serialised here (§8
//! caveat 3); a pty has no baud timing, so delays are the emulator's
//! own (§8 caveat 2). Modem control lines are not used (§8 caveat 7).
//!
//! Dropping an emulator stops its thread and joins it: within one read
//! timeout (20 ms), or after a slow-reply delay in progress (checked in
//! 10 ms steps).
//!
//! Two devices:
//!
//! - [`ModbusMeter`] (feature `modbus`): a Modbus RTU slave emulating a
//!   power meter: volts, amps and watts in holding or input registers as
//!   u16/i16/u32/i32/f32 with a scale, either word order; requests to
//!   other units and frames with a bad CRC are ignored (as on a shared
//!   RS-485 line); unmapped registers answer exception 0x02, other
//!   functions 0x01; faults: no reply, corrupt CRC, an exception code, a
//!   slow reply. Frames end at a gap of silence, as RTU frames do.
//! - [`LineResponder`]: a line-oriented device that answers configured
//!   request lines with configured reply lines. It stands in for the
//!   BitScope BMC **only** as "a device that answers the profile's
//!   commands": BitScope's real protocol is unknown (hardware reference
//!   §3) and nothing here emulates it.
//!
//! To add an emulator: a type holding an `Arc<Mutex<state>>` and a
//! [`Pty`] started with a [`Responder`] over the same state; setters and
//! getters lock the state.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serialport::{SerialPort, TTYPort};

use crate::{Error, Result};

/// How long the emulator thread waits for a byte before checking whether
/// it should stop.
const POLL: Duration = Duration::from_millis(20);

/// Serialises `TTYPort::pair()` (§8 caveat 3).
static PAIR: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How the emulator cuts its input into requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A request ends when the line is silent this long (Modbus RTU).
    Gap(Duration),
    /// A request ends with this byte (included in the frame).
    Line(u8),
}

/// An emulator's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Wait this long before sending.
    pub delay: Duration,
    /// What to send.
    pub bytes: Vec<u8>,
}

/// The protocol half of an emulator: one request in, at most one reply
/// out.
pub trait Responder: Send + 'static {
    /// The answer to `request`, or `None` to stay silent.
    fn respond(&mut self, request: &[u8]) -> Option<Reply>;
}

/// A pty pair with a thread answering on the master side.
pub struct Pty {
    path: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    // Declared last: dropped after the thread is joined (see Drop).
    _slave: TTYPort,
}

impl Pty {
    /// Opens a pair and starts `responder` on its master.
    pub fn spawn(framing: Framing, responder: impl Responder) -> Result<Pty> {
        let (master, slave) = {
            let _g = lock(&PAIR);
            TTYPort::pair().map_err(|e| crate::serial::open_error("/dev/ptmx", e))?
        };
        let path = slave.name().ok_or_else(|| Error::Io {
            path: "/dev/ptmx".to_string(),
            kind: std::io::ErrorKind::NotFound,
            detail: "the pty slave has no name".to_string(),
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("sim-serial {path}"))
            .spawn(move || run(master, framing, responder, &s))
            .map_err(|e| Error::io(&path, &e))?;
        Ok(Pty {
            path,
            stop,
            thread: Some(thread),
            _slave: slave,
        })
    }

    /// The slave's path, for the code under test to open.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(mut master: TTYPort, framing: Framing, mut responder: impl Responder, stop: &AtomicBool) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let timeout = match framing {
            Framing::Gap(gap) if !buf.is_empty() => gap,
            _ => POLL,
        };
        if master.set_timeout(timeout).is_err() {
            return;
        }
        let mut frames = Vec::new();
        match master.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Framing::Line(end) = framing {
                    while let Some(i) = buf.iter().position(|b| *b == end) {
                        frames.push(buf.drain(..=i).collect::<Vec<u8>>());
                    }
                }
                // Noise that never ends a frame: drop it.
                if buf.len() > 4096 {
                    buf.clear();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                if matches!(framing, Framing::Gap(_)) && !buf.is_empty() {
                    frames.push(std::mem::take(&mut buf));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // The pty is gone (it cannot be while `Pty` holds the slave).
            Err(_) => return,
        }
        for f in frames {
            let Some(reply) = responder.respond(&f) else {
                continue;
            };
            if !sleep_unless_stopped(reply.delay, stop) {
                return;
            }
            let _ = master.write_all(&reply.bytes).and_then(|()| master.flush());
        }
    }
}

/// Sleeps `d` in short steps; `false` when asked to stop meanwhile.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let step = Duration::from_millis(10);
    let mut left = d;
    while !left.is_zero() {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
    true
}

#[cfg(feature = "modbus")]
pub use meter::{ModbusFault, ModbusMeter, Quantity, crc16};

#[cfg(feature = "modbus")]
mod meter;

struct LineState {
    answers: BTreeMap<String, String>,
    actions: BTreeMap<String, (String, f64)>,
    values: BTreeMap<String, f64>,
    received: Vec<String>,
    unknown_reply: Option<String>,
    unsolicited: Vec<String>,
    silent: bool,
    echo: bool,
    reply_ending: String,
}

fn render(template: &str, values: &BTreeMap<String, f64>) -> String {
    let mut out = template.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), &v.to_string());
    }
    out
}

impl LineState {
    fn respond(&mut self, request: &[u8]) -> Option<Reply> {
        let line = String::from_utf8_lossy(request)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        self.received.push(line.clone());
        if let Some((name, v)) = self.actions.get(&line).cloned() {
            self.values.insert(name, v);
        }
        if self.silent {
            return None;
        }
        let mut out = String::new();
        if self.echo {
            out.push_str(&line);
            out.push_str(&self.reply_ending);
        }
        for l in self.unsolicited.drain(..) {
            out.push_str(&l);
            out.push_str(&self.reply_ending);
        }
        let reply = self
            .answers
            .get(&line)
            .or(self.unknown_reply.as_ref())
            .map(|t| render(t, &self.values));
        if let Some(r) = reply {
            out.push_str(&r);
            out.push_str(&self.reply_ending);
        }
        (!out.is_empty()).then(|| Reply {
            delay: Duration::ZERO,
            bytes: out.into_bytes(),
        })
    }
}

struct Lines(Arc<Mutex<LineState>>);

impl Responder for Lines {
    fn respond(&mut self, request: &[u8]) -> Option<Reply> {
        lock(&self.0).respond(request)
    }
}

/// A device that answers configured request lines with configured reply
/// lines, on a pty. Requests end with `\n` (a `\r` before it is
/// ignored); replies end with `\r\n`. A reply template's `{name}` is
/// replaced by the value set under `name`. It emulates nothing of
/// BitScope's (or anyone's) real protocol: only "a device that answers
/// the commands it was told to".
pub struct LineResponder {
    state: Arc<Mutex<LineState>>,
    pty: Pty,
}

impl LineResponder {
    /// A device that knows no requests yet (it hears everything and
    /// answers nothing).
    pub fn spawn() -> Result<Self> {
        let state = Arc::new(Mutex::new(LineState {
            answers: BTreeMap::new(),
            actions: BTreeMap::new(),
            values: BTreeMap::new(),
            received: Vec::new(),
            unknown_reply: None,
            unsolicited: Vec::new(),
            silent: false,
            echo: false,
            reply_ending: "\r\n".to_string(),
        }));
        let pty = Pty::spawn(Framing::Line(b'\n'), Lines(Arc::clone(&state)))?;
        Ok(LineResponder { state, pty })
    }

    /// The slave path to open.
    pub fn path(&self) -> &str {
        self.pty.path()
    }

    /// Answers `request` with `reply` (a template: `{name}` is the value
    /// set under `name`).
    pub fn answer(&self, request: &str, reply: &str) {
        lock(&self.state)
            .answers
            .insert(request.to_string(), reply.to_string());
    }

    /// When `request` arrives, sets `name` to `value` (before answering),
    /// as a power command changes the power state.
    pub fn act(&self, request: &str, name: &str, value: f64) {
        lock(&self.state)
            .actions
            .insert(request.to_string(), (name.to_string(), value));
    }

    /// Sets the value `{name}` stands for.
    pub fn set_value(&self, name: &str, value: f64) {
        lock(&self.state).values.insert(name.to_string(), value);
    }

    /// The value set under `name`.
    pub fn value(&self, name: &str) -> Option<f64> {
        lock(&self.state).values.get(name).copied()
    }

    /// The reply to requests it does not know (`None`: silence).
    pub fn set_unknown_reply(&self, reply: Option<&str>) {
        lock(&self.state).unknown_reply = reply.map(str::to_string);
    }

    /// Fault: hear requests (and act on them) but answer nothing.
    pub fn set_silent(&self, silent: bool) {
        lock(&self.state).silent = silent;
    }

    /// Echo each request line back before the reply, as a console does.
    pub fn set_echo(&self, echo: bool) {
        lock(&self.state).echo = echo;
    }

    /// Sends `line` before the next reply (log output the host did not
    /// ask for).
    pub fn push_unsolicited(&self, line: &str) {
        lock(&self.state).unsolicited.push(line.to_string());
    }

    /// Every request line received so far, without line endings.
    pub fn received(&self) -> Vec<String> {
        lock(&self.state).received.clone()
    }
}
