//! Modbus RTU power meters and PDUs: a client over a serial
//! [`Transport`], register points from configuration, and the
//! [`SignalSource`] and [`PowerMonitor`] traits on top.
//!
//! The protocol (Modbus Application Protocol V1.1b3, Modbus over Serial
//! Line V1.02; not in the hardware reference, `[T]` as quoted by third
//! parties and as rmodbus implements it): a request is unit id (1–247),
//! function, start address and register count (big-endian), CRC-16
//! (polynomial 0xA001, initial 0xFFFF, sent low byte first). Read holding
//! registers is function 0x03, read input registers 0x04, at most 125
//! registers per request. A reply echoes unit and function, then a byte
//! count and the registers big-endian; an exception reply sets bit 7 of
//! the function and carries one exception code. Frames are separated by
//! 3.5 character times of silence ([`crate::serial::rtu_silence`]).
//! Frame generation, CRC and reply parsing are rmodbus's.
//!
//! What is a choice of ours, not the standard's: 32-bit values span two
//! registers, "big" word order means the register at the lower address
//! holds the high word (ABCD), "little" the low word (CDAB); bytes within
//! a register are always big-endian. A point's value is
//! `raw × scale + offset`.
//!
//! Errors: no reply, a CRC mismatch, a reply from the wrong unit and the
//! exceptions busy (0x06), acknowledge (0x05), negative acknowledge
//! (0x07), memory parity (0x08) and gateway target failed (0x0B) are
//! [`Error::Protocol`] (transient: the next poll may succeed). Illegal
//! function (0x01), illegal data address (0x02), illegal data value (0x03)
//! and gateway path unavailable (0x0A) mean that the register map in the
//! configuration does not fit the device: [`Error::WrongDevice`] (fatal).
//! Server device failure (0x04) is [`Error::Invalid`] (fatal).
//!
//! To extend: another register type is a [`Format`] variant with its
//! width in [`Format::registers`] and a case in [`decode`]; writes
//! (0x06/0x10, e.g. PDU outlet switching) go through
//! `rmodbus::client::ModbusRequest::generate_set_holding` in a new
//! `Client` method with the same reply handling.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmodbus::client::ModbusRequest;
use rmodbus::{ModbusProto, guess_response_frame_len};

use crate::devices::{PowerMonitor, SignalSource};
use crate::serial::{Transport, hex, read_exact_by, rtu_silence, write_all};
use crate::{Error, Result};

const CHIP: &str = "modbus";

/// Which register table a point lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Holding registers, read with function 0x03.
    Holding,
    /// Input registers, read with function 0x04.
    Input,
}

impl Table {
    /// The read function code.
    pub fn function(self) -> u8 {
        match self {
            Table::Holding => 0x03,
            Table::Input => 0x04,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Table::Holding => "holding",
            Table::Input => "input",
        }
    }
}

/// How a point's registers encode a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One register, unsigned.
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Two registers, IEEE 754 single precision.
    F32,
}

impl Format {
    /// How many registers a value takes.
    pub fn registers(self) -> u16 {
        match self {
            Format::U16 | Format::I16 => 1,
            Format::U32 | Format::I32 | Format::F32 => 2,
        }
    }
}

/// Which register of a 32-bit value comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordOrder {
    /// High word at the lower address (ABCD).
    Big,
    /// Low word at the lower address (CDAB, "word swapped").
    Little,
}

/// One value in a device's register map.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Unit (slave) id, 1–247.
    pub unit: u8,
    /// Holding (0x03) or input (0x04) registers.
    pub table: Table,
    /// Address of the first register (0-based, as on the wire).
    pub address: u16,
    /// Encoding.
    pub format: Format,
    /// Word order of 32-bit values (ignored for 16-bit ones).
    pub word_order: WordOrder,
    /// Multiplier from the raw number to the unit of the reading.
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
}

impl Point {
    /// A point with scale 1, offset 0 and big word order.
    pub fn new(unit: u8, table: Table, address: u16, format: Format) -> Self {
        Point {
            unit,
            table,
            address,
            format,
            word_order: WordOrder::Big,
            scale: 1.0,
            offset: 0.0,
        }
    }
}

/// The raw number in `regs` (as many as `format` needs, in wire order).
/// `None` when there are too few registers, or an f32 is NaN or infinite.
pub fn decode(format: Format, order: WordOrder, regs: &[u16]) -> Option<f64> {
    let word32 = || -> Option<u32> {
        let (a, b) = (*regs.first()?, *regs.get(1)?);
        let (hi, lo) = match order {
            WordOrder::Big => (a, b),
            WordOrder::Little => (b, a),
        };
        Some(u32::from(hi) << 16 | u32::from(lo))
    };
    let v = match format {
        Format::U16 => f64::from(*regs.first()?),
        Format::I16 => f64::from(*regs.first()? as i16),
        Format::U32 => f64::from(word32()?),
        Format::I32 => f64::from(word32()? as i32),
        Format::F32 => f64::from(f32::from_bits(word32()?)),
    };
    v.is_finite().then_some(v)
}

/// What an exception code means for the caller.
fn exception(unit: u8, code: u8, what: &str) -> Error {
    let name = match code {
        0x01 => "illegal function",
        0x02 => "illegal data address",
        0x03 => "illegal data value",
        0x04 => "server device failure",
        0x05 => "acknowledge",
        0x06 => "server device busy",
        0x07 => "negative acknowledge",
        0x08 => "memory parity error",
        0x0A => "gateway path unavailable",
        0x0B => "gateway target device failed to respond",
        _ => "unknown exception",
    };
    let detail = format!("exception 0x{code:02x} ({name}) {what}");
    match code {
        0x01..=0x03 | 0x0A => Error::WrongDevice {
            chip: CHIP,
            addr: unit,
            detail: format!("{detail}: the register map does not fit the device"),
        },
        0x04 => Error::Invalid {
            chip: CHIP,
            detail: format!("unit {unit}: {detail}"),
        },
        _ => Error::Protocol {
            chip: CHIP,
            detail: format!("unit {unit}: {detail}"),
        },
    }
}

/// Something that can read points: a [`Client`] on its own port, or one
/// shared by several devices on the same RS-485 line
/// (`Arc<Mutex<Client<_>>>`).
pub trait Registers: Send {
    /// Reads `count` registers from `table` of `unit`, starting at
    /// `address`.
    fn read_registers(
        &mut self,
        unit: u8,
        table: Table,
        address: u16,
        count: u16,
    ) -> Result<Vec<u16>>;

    /// Reads and converts one point.
    fn read_point(&mut self, point: &Point) -> Result<f64> {
        let regs = self.read_registers(
            point.unit,
            point.table,
            point.address,
            point.format.registers(),
        )?;
        let raw = decode(point.format, point.word_order, &regs).ok_or_else(|| Error::Invalid {
            chip: CHIP,
            detail: format!(
                "unit {}: {} register {} holds no finite {:?}",
                point.unit,
                point.table.name(),
                point.address,
                point.format
            ),
        })?;
        Ok(raw * point.scale + point.offset)
    }
}

impl<R: Registers> Registers for Arc<Mutex<R>> {
    fn read_registers(
        &mut self,
        unit: u8,
        table: Table,
        address: u16,
        count: u16,
    ) -> Result<Vec<u16>> {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .read_registers(unit, table, address, count)
    }
}

/// A Modbus RTU client (master) on a serial port.
pub struct Client<T> {
    port: T,
    baud: u32,
    timeout: Duration,
    last_frame: Option<Instant>,
}

impl<T: Transport> Client<T> {
    /// A client on `port`, opened at `baud` (for the inter-frame gap),
    /// waiting 1 s for each reply.
    pub fn new(port: T, baud: u32) -> Self {
        Client {
            port,
            baud,
            timeout: Duration::from_secs(1),
            last_frame: None,
        }
    }

    /// Sets how long to wait for a reply.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Gives the port back.
    pub fn release(self) -> T {
        self.port
    }

    fn wait_for_silence(&self) {
        if let Some(t) = self.last_frame {
            let gap = rtu_silence(self.baud);
            let since = t.elapsed();
            if since < gap {
                std::thread::sleep(gap - since);
            }
        }
    }

    fn transact(&mut self, unit: u8, table: Table, address: u16, count: u16) -> Result<Vec<u16>> {
        let what = format!(
            "reading {count} {} register(s) from address {address} on {}",
            table.name(),
            self.port.port_name()
        );
        if !(1..=247).contains(&unit) {
            return Err(Error::Invalid {
                chip: CHIP,
                detail: format!("unit id {unit} is not 1–247 ({what})"),
            });
        }
        if !(1..=125).contains(&count) {
            return Err(Error::Invalid {
                chip: CHIP,
                detail: format!("count {count} is not 1–125 ({what})"),
            });
        }
        let mut req = ModbusRequest::new(unit, ModbusProto::Rtu);
        let mut frame = Vec::with_capacity(8);
        match table {
            Table::Holding => req.generate_get_holdings(address, count, &mut frame),
            Table::Input => req.generate_get_inputs(address, count, &mut frame),
        }
        .map_err(|e| Error::Invalid {
            chip: CHIP,
            detail: format!("unit {unit}: cannot build request: {e} ({what})"),
        })?;

        self.wait_for_silence();
        self.port.clear_input()?;
        let sent = write_all(&mut self.port, &frame);
        self.last_frame = Some(Instant::now());
        sent?;

        let deadline = Instant::now() + self.timeout;
        let reply = self.read_reply(deadline);
        self.last_frame = Some(Instant::now());
        let reply = reply.map_err(|e| match e {
            Error::Protocol { chip, detail } => Error::Protocol {
                chip,
                detail: format!("unit {unit}: {detail} ({what})"),
            },
            e => e,
        })?;
        self.parse(&req, unit, count, &reply, &what)
    }

    /// Reads one reply frame: header, then as many bytes as it announces.
    fn read_reply(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; 3];
        read_exact_by(&mut self.port, &mut buf, deadline, CHIP)?;
        let len =
            guess_response_frame_len(&buf, ModbusProto::Rtu).map_err(|e| Error::Protocol {
                chip: CHIP,
                detail: format!("reply starts {}: {e}", hex(&buf)),
            })?;
        let len = usize::from(len);
        if len > buf.len() {
            let start = buf.len();
            buf.resize(len, 0);
            read_exact_by(&mut self.port, &mut buf[start..], deadline, CHIP)?;
        }
        Ok(buf)
    }

    fn parse(
        &self,
        req: &ModbusRequest,
        unit: u8,
        count: u16,
        reply: &[u8],
        what: &str,
    ) -> Result<Vec<u16>> {
        let protocol = |detail: String| Error::Protocol {
            chip: CHIP,
            detail: format!("unit {unit}: {detail} ({what}): {}", hex(reply)),
        };
        // rmodbus checks the CRC first; so do we, for the message.
        if let Err(rmodbus::ErrorKind::FrameCRCError) = req.parse_ok(reply) {
            return Err(protocol("CRC mismatch".to_string()));
        }
        let (got_unit, func) = (reply[0], reply[1]);
        if got_unit != unit {
            return Err(protocol(format!("reply from unit {got_unit}")));
        }
        if func == req.func.byte() | 0x80 {
            return Err(exception(unit, reply[2], what));
        }
        if func != req.func.byte() {
            return Err(protocol(format!("reply with function 0x{func:02x}")));
        }
        if usize::from(reply[2]) != 2 * usize::from(count)
            || reply.len() != 5 + 2 * usize::from(count)
        {
            return Err(protocol(format!(
                "reply carries {} bytes, want {}",
                reply[2],
                2 * count
            )));
        }
        let mut regs = Vec::with_capacity(usize::from(count));
        req.parse_u16(reply, &mut regs)
            .map_err(|e| protocol(e.to_string()))?;
        Ok(regs)
    }
}

impl<T: Transport> Registers for Client<T> {
    fn read_registers(
        &mut self,
        unit: u8,
        table: Table,
        address: u16,
        count: u16,
    ) -> Result<Vec<u16>> {
        self.transact(unit, table, address, count)
    }
}

/// One point as a [`SignalSource`]: every poll reads it (a Modbus read is
/// a blocking round trip, so there is never a conversion pending).
pub struct Signal<R> {
    regs: R,
    point: Point,
}

impl<R: Registers> Signal<R> {
    /// `point` read through `regs`.
    pub fn new(regs: R, point: Point) -> Self {
        Signal { regs, point }
    }

    /// Gives the client back.
    pub fn release(self) -> R {
        self.regs
    }
}

impl<R: Registers> SignalSource for Signal<R> {
    fn poll_sample(&mut self) -> Result<Option<f64>> {
        self.regs.read_point(&self.point).map(Some)
    }
}

/// Where a meter keeps its readings.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterConfig {
    /// Voltage, scaled to volts.
    pub volts: Point,
    /// Current, scaled to amperes.
    pub amps: Point,
    /// Active power, scaled to watts; `None`: volts × amps (two reads).
    pub watts: Option<Point>,
}

/// A power meter or PDU channel as a [`PowerMonitor`].
pub struct Meter<R> {
    regs: R,
    config: MeterConfig,
}

impl<R: Registers> Meter<R> {
    /// A meter whose readings `config` locates, read through `regs`.
    pub fn new(regs: R, config: MeterConfig) -> Self {
        Meter { regs, config }
    }

    /// Gives the client back.
    pub fn release(self) -> R {
        self.regs
    }
}

impl<R: Registers> PowerMonitor for Meter<R> {
    fn bus_volts(&mut self) -> Result<f64> {
        self.regs.read_point(&self.config.volts)
    }

    fn current_amps(&mut self) -> Result<f64> {
        self.regs.read_point(&self.config.amps)
    }

    fn power_watts(&mut self) -> Result<f64> {
        match &self.config.watts {
            Some(p) => self.regs.read_point(p),
            None => Ok(self.bus_volts()? * self.current_amps()?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn can_decode_each_format_and_word_order() {
        assert_eq!(
            decode(Format::U16, WordOrder::Big, &[0xFFFE]),
            Some(65534.0)
        );
        assert_eq!(decode(Format::I16, WordOrder::Big, &[0xFFFE]), Some(-2.0));
        assert_eq!(
            decode(Format::U32, WordOrder::Big, &[0x0001, 0x0002]),
            Some(65538.0)
        );
        assert_eq!(
            decode(Format::U32, WordOrder::Little, &[0x0002, 0x0001]),
            Some(65538.0)
        );
        assert_eq!(
            decode(Format::I32, WordOrder::Big, &[0xFFFF, 0xFFFF]),
            Some(-1.0)
        );
        // 230.5 as f32 is 0x43668000.
        assert_eq!(
            decode(Format::F32, WordOrder::Big, &[0x4366, 0x8000]),
            Some(230.5)
        );
        assert_eq!(
            decode(Format::F32, WordOrder::Little, &[0x8000, 0x4366]),
            Some(230.5)
        );
    }

    #[test]
    fn returns_none_when_registers_are_missing_or_not_finite() {
        assert_eq!(decode(Format::U32, WordOrder::Big, &[1]), None);
        assert_eq!(decode(Format::U16, WordOrder::Big, &[]), None);
        // 0x7FC00000 is a quiet NaN.
        assert_eq!(decode(Format::F32, WordOrder::Big, &[0x7FC0, 0]), None);
    }

    #[test]
    fn can_classify_exceptions() {
        assert_eq!(exception(1, 0x02, "x").kind(), ErrorKind::Fatal);
        assert_eq!(exception(1, 0x01, "x").kind(), ErrorKind::Fatal);
        assert_eq!(exception(1, 0x04, "x").kind(), ErrorKind::Fatal);
        assert_eq!(exception(1, 0x06, "x").kind(), ErrorKind::Transient);
        assert_eq!(exception(1, 0x0B, "x").kind(), ErrorKind::Transient);
        assert!(exception(1, 0x06, "x").to_string().contains("0x06"));
    }

    #[test]
    fn can_generate_spec_example_request() {
        // Modbus application protocol spec example: read holding registers
        // 108–110 (address 0x006B, 3 registers) of unit 0x11; CRC 0x8776
        // low byte first.
        let mut req = ModbusRequest::new(0x11, ModbusProto::Rtu);
        let mut f = Vec::new();
        req.generate_get_holdings(0x006B, 3, &mut f).unwrap();
        assert_eq!(f, [0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87]);
    }
}
