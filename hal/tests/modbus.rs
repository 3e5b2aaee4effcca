//! Modbus RTU client: byte-exact frames against a scripted port (frames
//! typed in from the Modbus spec's examples), then a meter emulated on a
//! real pty pair, opened by its /dev/pts path: float and scaled points,
//! volts/amps/watts, exceptions, CRC corruption and recovery, silence,
//! a wrong unit id, a slow reply, a client shared by two devices.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support_serial;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onprem_hal::devices::{PowerMonitor, SignalSource};
use onprem_hal::drivers::modbus::{
    Client, Format, Meter, MeterConfig, Point, Registers, Signal, Table, WordOrder,
};
use onprem_hal::serial::{self, Config, Port};
use onprem_hal::sim::serial::{ModbusFault, ModbusMeter, Quantity};
use onprem_hal::{Error, ErrorKind};
use support_serial::{Script, Step};

const BAUD: u32 = 9600;

fn point(unit: u8, table: Table, address: u16, format: Format) -> Point {
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

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

// ---- byte-exact ----------------------------------------------------------

#[test]
fn can_read_holding_registers_byte_exact() {
    // Spec example: unit 0x11 reads holding registers 0x006B..+3.
    let mut c = Client::new(
        Script::new([
            Step::Clear,
            Step::Write(vec![0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87]),
            Step::Read(vec![
                0x11, 0x03, 0x06, 0xAE, 0x41, 0x56, 0x52, 0x43, 0x40, 0x49, 0xAD,
            ]),
        ]),
        BAUD,
    );
    let regs = c.read_registers(0x11, Table::Holding, 0x006B, 3).unwrap();
    assert_eq!(regs, vec![0xAE41, 0x5652, 0x4340]);
    c.release().done();
}

#[test]
fn can_read_scaled_input_point_byte_exact() {
    let mut p = point(0x11, Table::Input, 0x0008, Format::U16);
    p.scale = 0.1;
    p.offset = -1.0;
    let mut s = Signal::new(
        Client::new(
            Script::new([
                Step::Clear,
                Step::Write(vec![0x11, 0x04, 0x00, 0x08, 0x00, 0x01, 0xB2, 0x98]),
                Step::Read(vec![0x11, 0x04, 0x02, 0x00, 0x0A, 0xF8, 0xF4]),
            ]),
            BAUD,
        ),
        p,
    );
    // 10 × 0.1 − 1 = 0.
    assert!(close(s.poll_sample().unwrap().unwrap(), 0.0));
    s.release().release().done();
}

#[test]
fn returns_wrong_device_when_exception_is_illegal_address_byte_exact() {
    let mut c = Client::new(
        Script::new([
            Step::Clear,
            Step::Write(vec![0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87]),
            Step::Read(vec![0x11, 0x83, 0x02, 0xC1, 0x34]),
        ]),
        BAUD,
    );
    let e = c
        .read_registers(0x11, Table::Holding, 0x006B, 3)
        .unwrap_err();
    assert!(matches!(e, Error::WrongDevice { addr: 0x11, .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("0x02"), "{e}");
    c.release().done();
}

#[test]
fn returns_protocol_error_when_reply_is_silent_byte_exact() {
    let mut c = Client::new(
        Script::new([
            Step::Clear,
            Step::Write(vec![0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87]),
            Step::Silence,
            // The next request discards whatever came late.
            Step::Clear,
            Step::Write(vec![0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87]),
            Step::Read(vec![
                0x11, 0x03, 0x06, 0xAE, 0x41, 0x56, 0x52, 0x43, 0x40, 0x49, 0xAD,
            ]),
        ]),
        BAUD,
    )
    .with_timeout(Duration::from_millis(30));
    let e = c
        .read_registers(0x11, Table::Holding, 0x006B, 3)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(c.read_registers(0x11, Table::Holding, 0x006B, 3).is_ok());
    c.release().done();
}

#[test]
fn returns_invalid_without_traffic_when_unit_or_count_is_out_of_range() {
    let mut c = Client::new(Script::new([]), BAUD);
    for (unit, count) in [(0, 1), (248, 1), (1, 0), (1, 126)] {
        let e = c.read_registers(unit, Table::Input, 0, count).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Fatal, "{e}");
    }
    c.release().done();
}

// ---- emulated meter on a pty ---------------------------------------------

fn open(m: &ModbusMeter) -> Client<Port> {
    let port = serial::open(&Config::new(m.path(), BAUD)).unwrap();
    Client::new(port, BAUD).with_timeout(Duration::from_millis(300))
}

#[test]
fn can_read_float_point_over_pty() {
    let m = ModbusMeter::spawn(1).unwrap();
    m.map(
        Quantity::Volts,
        Table::Input,
        0x0000,
        Format::F32,
        WordOrder::Big,
        1.0,
    );
    m.set_volts(230.5);
    assert_eq!(m.register(Table::Input, 0), Some(0x4366));
    assert_eq!(m.register(Table::Input, 1), Some(0x8000));
    let mut s = Signal::new(open(&m), point(1, Table::Input, 0, Format::F32));
    assert_eq!(s.poll_sample().unwrap(), Some(230.5));
    m.set_volts(229.0);
    assert_eq!(s.poll_sample().unwrap(), Some(229.0));
    assert_eq!(m.requests(), 2);
}

#[test]
fn can_read_scaled_u16_point_over_pty() {
    let m = ModbusMeter::spawn(7).unwrap();
    m.map(
        Quantity::Amps,
        Table::Holding,
        0x0010,
        Format::U16,
        WordOrder::Big,
        0.01,
    );
    m.set_amps(2.34);
    assert_eq!(m.register(Table::Holding, 0x0010), Some(234));
    let mut p = point(7, Table::Holding, 0x0010, Format::U16);
    p.scale = 0.01;
    let mut s = Signal::new(open(&m), p);
    assert!(close(s.poll_sample().unwrap().unwrap(), 2.34));
}

fn meter_config(watts: bool) -> MeterConfig {
    let mut volts = point(3, Table::Input, 0x0000, Format::U16);
    volts.scale = 0.1;
    let mut amps = point(3, Table::Input, 0x0002, Format::I16);
    amps.scale = 0.001;
    let mut w = point(3, Table::Holding, 0x0100, Format::U32);
    w.word_order = WordOrder::Little;
    w.scale = 0.5;
    MeterConfig {
        volts,
        amps,
        watts: watts.then_some(w),
    }
}

fn meter_emulator() -> ModbusMeter {
    let m = ModbusMeter::spawn(3).unwrap();
    m.map(
        Quantity::Volts,
        Table::Input,
        0x0000,
        Format::U16,
        WordOrder::Big,
        0.1,
    );
    m.map(
        Quantity::Amps,
        Table::Input,
        0x0002,
        Format::I16,
        WordOrder::Big,
        0.001,
    );
    m.map(
        Quantity::Watts,
        Table::Holding,
        0x0100,
        Format::U32,
        WordOrder::Little,
        0.5,
    );
    m
}

#[test]
fn can_read_volts_amps_watts_over_pty() {
    let m = meter_emulator();
    m.set_volts(231.4);
    m.set_amps(-1.25);
    m.set_watts(70_000.5);
    // 140001 half-watts = 0x000222E1, low word first.
    assert_eq!(m.register(Table::Holding, 0x0100), Some(0x22E1));
    assert_eq!(m.register(Table::Holding, 0x0101), Some(0x0002));
    let mut pm = Meter::new(open(&m), meter_config(true));
    assert!(close(pm.bus_volts().unwrap(), 231.4));
    assert!(close(pm.current_amps().unwrap(), -1.25));
    assert!(close(pm.power_watts().unwrap(), 70_000.5));
}

#[test]
fn can_compute_watts_from_volts_and_amps_when_not_mapped() {
    let m = meter_emulator();
    m.set_volts(230.0);
    m.set_amps(2.0);
    m.set_watts(1.0); // not read
    let mut pm = Meter::new(open(&m), meter_config(false));
    assert!(close(pm.power_watts().unwrap(), 460.0));
    assert_eq!(m.requests(), 2);
}

#[test]
fn returns_wrong_device_when_register_is_not_mapped() {
    let m = meter_emulator();
    let mut s = Signal::new(open(&m), point(3, Table::Input, 0x0050, Format::U16));
    let e = s.poll_sample().unwrap_err();
    assert!(matches!(e, Error::WrongDevice { addr: 3, .. }), "{e:?}");
    assert!(e.to_string().contains("exception 0x02"), "{e}");
    assert_eq!(e.kind(), ErrorKind::Fatal);
}

#[test]
fn returns_transient_error_when_device_is_busy() {
    let m = meter_emulator();
    m.set_volts(12.0);
    m.inject(ModbusFault::Exception(0x06), 1);
    let mut pm = Meter::new(open(&m), meter_config(true));
    let e = pm.bus_volts().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains("0x06"), "{e}");
    assert!(close(pm.bus_volts().unwrap(), 12.0));
}

#[test]
fn returns_transient_error_when_crc_is_corrupt_then_recovers() {
    let m = meter_emulator();
    m.set_volts(120.0);
    m.inject(ModbusFault::CorruptCrc, 1);
    let mut pm = Meter::new(open(&m), meter_config(true));
    let e = pm.bus_volts().unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("CRC"), "{e}");
    assert!(close(pm.bus_volts().unwrap(), 120.0));
}

#[test]
fn returns_timeout_when_device_does_not_answer() {
    let m = meter_emulator();
    m.inject(ModbusFault::NoReply, 1);
    let mut pm = Meter::new(open(&m), meter_config(true));
    let t = Instant::now();
    let e = pm.bus_volts().unwrap_err();
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("no complete reply"), "{e}");
    assert_eq!(m.requests(), 1);
    assert!(pm.bus_volts().is_ok());
}

#[test]
fn returns_timeout_when_unit_id_is_wrong() {
    let m = meter_emulator();
    let mut s = Signal::new(open(&m), point(4, Table::Input, 0, Format::U16));
    let e = s.poll_sample().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("unit 4"), "{e}");
    assert_eq!(m.requests(), 0);
}

#[test]
fn can_wait_for_slow_reply() {
    let m = meter_emulator();
    m.set_volts(48.0);
    m.inject(ModbusFault::Slow(Duration::from_millis(120)), 1);
    let mut pm = Meter::new(open(&m), meter_config(true));
    let t = Instant::now();
    assert!(close(pm.bus_volts().unwrap(), 48.0));
    assert!(t.elapsed() >= Duration::from_millis(120));
}

#[test]
fn can_share_one_client_between_devices() {
    let m = meter_emulator();
    m.set_volts(24.0);
    m.set_amps(0.5);
    let shared = Arc::new(Mutex::new(open(&m)));
    let mut volts = Signal::new(Arc::clone(&shared), meter_config(true).volts);
    let mut pm = Meter::new(Arc::clone(&shared), meter_config(true));
    assert!(close(volts.poll_sample().unwrap().unwrap(), 24.0));
    assert!(close(pm.current_amps().unwrap(), 0.5));
    assert_eq!(m.requests(), 2);
}

#[test]
fn can_reopen_port_after_release() {
    let m = meter_emulator();
    m.set_volts(5.0);
    let mut pm = Meter::new(open(&m), meter_config(true));
    assert!(close(pm.bus_volts().unwrap(), 5.0));
    drop(pm.release().release());
    let mut pm = Meter::new(open(&m), meter_config(true));
    assert!(close(pm.bus_volts().unwrap(), 5.0));
}
