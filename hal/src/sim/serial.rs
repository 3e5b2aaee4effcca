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
mod meter {
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::{Framing, Pty, Reply, Responder, lock};
    use crate::Result;
    use crate::drivers::modbus::{Format, Table, WordOrder};

    /// Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF); sent
    /// low byte first. Written here again, not taken from rmodbus, so the
    /// emulator checks the client independently.
    pub fn crc16(bytes: &[u8]) -> u16 {
        let mut crc: u16 = 0xFFFF;
        for b in bytes {
            crc ^= u16::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xA001
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    /// A physical quantity the meter measures.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Quantity {
        /// Voltage, V.
        Volts,
        /// Current, A.
        Amps,
        /// Active power, W.
        Watts,
    }

    /// A fault for the next requests addressed to the meter.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ModbusFault {
        /// Hear the request, never answer.
        NoReply,
        /// Answer with the CRC's bits inverted.
        CorruptCrc,
        /// Answer with this exception code.
        Exception(u8),
        /// Answer correctly after this delay.
        Slow(Duration),
    }

    #[derive(Debug, Clone, Copy)]
    struct Slot {
        table: Table,
        address: u16,
        format: Format,
        order: WordOrder,
        scale: f64,
    }

    fn table_code(t: Table) -> u8 {
        match t {
            Table::Holding => 0x03,
            Table::Input => 0x04,
        }
    }

    struct State {
        unit: u8,
        registers: BTreeMap<(u8, u16), u16>,
        slots: BTreeMap<Quantity, Slot>,
        values: BTreeMap<Quantity, f64>,
        faults: VecDeque<(ModbusFault, u32)>,
        requests: u64,
    }

    impl State {
        fn encode(&mut self, q: Quantity) {
            let (Some(s), Some(v)) = (self.slots.get(&q).copied(), self.values.get(&q).copied())
            else {
                return;
            };
            let raw = if s.scale == 0.0 { 0.0 } else { v / s.scale };
            let word32 = |w: u32| -> [u16; 2] {
                let (hi, lo) = ((w >> 16) as u16, w as u16);
                match s.order {
                    WordOrder::Big => [hi, lo],
                    WordOrder::Little => [lo, hi],
                }
            };
            let words: Vec<u16> = match s.format {
                Format::U16 => vec![raw.round().clamp(0.0, 65_535.0) as u16],
                Format::I16 => vec![raw.round().clamp(-32_768.0, 32_767.0) as i16 as u16],
                Format::U32 => word32(raw.round().clamp(0.0, u32::MAX as f64) as u32).to_vec(),
                Format::I32 => {
                    word32(raw.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32 as u32)
                        .to_vec()
                }
                Format::F32 => word32((raw as f32).to_bits()).to_vec(),
            };
            let t = table_code(s.table);
            for (i, w) in words.into_iter().enumerate() {
                self.registers
                    .insert((t, s.address.wrapping_add(i as u16)), w);
            }
        }

        fn next_fault(&mut self) -> Option<ModbusFault> {
            let (f, n) = self.faults.front_mut()?;
            let f = *f;
            *n -= 1;
            if *n == 0 {
                self.faults.pop_front();
            }
            Some(f)
        }

        fn frame(mut body: Vec<u8>, corrupt: bool) -> Vec<u8> {
            let mut crc = crc16(&body);
            if corrupt {
                crc = !crc;
            }
            body.extend_from_slice(&crc.to_le_bytes());
            body
        }

        fn respond(&mut self, req: &[u8]) -> Option<Reply> {
            if req.len() < 4 {
                return None;
            }
            let (body, crc) = req.split_at(req.len() - 2);
            if crc16(body) != u16::from_le_bytes([crc[0], crc[1]]) || body[0] != self.unit {
                return None;
            }
            self.requests += 1;
            let func = body[1];
            let exception = |code: u8| vec![body[0], func | 0x80, code];
            let fault = self.next_fault();
            let mut delay = Duration::ZERO;
            let mut corrupt = false;
            match fault {
                Some(ModbusFault::NoReply) => return None,
                Some(ModbusFault::Exception(code)) => {
                    return Some(Reply {
                        delay,
                        bytes: Self::frame(exception(code), false),
                    });
                }
                Some(ModbusFault::CorruptCrc) => corrupt = true,
                Some(ModbusFault::Slow(d)) => delay = d,
                None => {}
            }
            let out = if func != 0x03 && func != 0x04 {
                exception(0x01)
            } else if body.len() != 6 {
                exception(0x03)
            } else {
                let address = u16::from_be_bytes([body[2], body[3]]);
                let count = u16::from_be_bytes([body[4], body[5]]);
                if !(1..=125).contains(&count) {
                    exception(0x03)
                } else {
                    let regs: Option<Vec<u16>> = (0..count)
                        .map(|i| {
                            self.registers
                                .get(&(func, address.wrapping_add(i)))
                                .copied()
                        })
                        .collect();
                    match regs {
                        None => exception(0x02),
                        Some(regs) => {
                            let mut out = vec![body[0], func, (count * 2) as u8];
                            for r in regs {
                                out.extend_from_slice(&r.to_be_bytes());
                            }
                            out
                        }
                    }
                }
            };
            Some(Reply {
                delay,
                bytes: Self::frame(out, corrupt),
            })
        }
    }

    struct Meter(Arc<Mutex<State>>);

    impl Responder for Meter {
        fn respond(&mut self, request: &[u8]) -> Option<Reply> {
            lock(&self.0).respond(request)
        }
    }

    /// An emulated Modbus RTU power meter on a pty.
    pub struct ModbusMeter {
        state: Arc<Mutex<State>>,
        pty: Pty,
    }

    impl ModbusMeter {
        /// A meter answering as `unit`, with no registers mapped yet and
        /// reading 0 V, 0 A, 0 W.
        pub fn spawn(unit: u8) -> Result<Self> {
            let state = Arc::new(Mutex::new(State {
                unit,
                registers: BTreeMap::new(),
                slots: BTreeMap::new(),
                values: [
                    (Quantity::Volts, 0.0),
                    (Quantity::Amps, 0.0),
                    (Quantity::Watts, 0.0),
                ]
                .into_iter()
                .collect(),
                faults: VecDeque::new(),
                requests: 0,
            }));
            // Frames end after a gap of silence; on a pty a frame arrives
            // at once, so 5 ms is ample and keeps round trips short.
            let pty = Pty::spawn(
                Framing::Gap(Duration::from_millis(5)),
                Meter(Arc::clone(&state)),
            )?;
            Ok(ModbusMeter { state, pty })
        }

        /// The slave path to open.
        pub fn path(&self) -> &str {
            self.pty.path()
        }

        /// Puts `q` into `table` at `address` as `format` in `order`;
        /// the raw number is the value divided by `scale`.
        pub fn map(
            &self,
            q: Quantity,
            table: Table,
            address: u16,
            format: Format,
            order: WordOrder,
            scale: f64,
        ) {
            let mut s = lock(&self.state);
            s.slots.insert(
                q,
                Slot {
                    table,
                    address,
                    format,
                    order,
                    scale,
                },
            );
            s.encode(q);
        }

        /// Sets a measured value (V, A or W).
        pub fn set(&self, q: Quantity, value: f64) {
            let mut s = lock(&self.state);
            s.values.insert(q, value);
            s.encode(q);
        }

        /// Sets the voltage, V.
        pub fn set_volts(&self, v: f64) {
            self.set(Quantity::Volts, v);
        }

        /// Sets the current, A.
        pub fn set_amps(&self, a: f64) {
            self.set(Quantity::Amps, a);
        }

        /// Sets the active power, W.
        pub fn set_watts(&self, w: f64) {
            self.set(Quantity::Watts, w);
        }

        /// Writes one raw register (0x03 holding, 0x04 input table).
        pub fn set_register(&self, table: Table, address: u16, value: u16) {
            lock(&self.state)
                .registers
                .insert((table_code(table), address), value);
        }

        /// A raw register, `None` when unmapped.
        pub fn register(&self, table: Table, address: u16) -> Option<u16> {
            lock(&self.state)
                .registers
                .get(&(table_code(table), address))
                .copied()
        }

        /// Applies `fault` to the next `times` requests addressed to
        /// this meter (after faults injected earlier).
        pub fn inject(&self, fault: ModbusFault, times: u32) {
            if times > 0 {
                lock(&self.state).faults.push_back((fault, times));
            }
        }

        /// Removes pending faults.
        pub fn clear_faults(&self) {
            lock(&self.state).faults.clear();
        }

        /// Requests with a good CRC addressed to this meter so far.
        pub fn requests(&self) -> u64 {
            lock(&self.state).requests
        }
    }
}

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
