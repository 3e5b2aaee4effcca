//! The Modbus RTU power meter emulator (see the parent module): a
//! register map filled from physical values, request framing by silence,
//! an own CRC-16, and fault injection.

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
        let (Some(s), Some(v)) = (self.slots.get(&q).copied(), self.values.get(&q).copied()) else {
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
                word32(raw.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32 as u32).to_vec()
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
