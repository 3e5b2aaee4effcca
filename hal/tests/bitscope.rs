//! BitScope BMC link (provisional): every command below is made up for
//! the test, as the driver requires them to come from a profile; none is
//! BitScope's. Byte-exact against a scripted port, then against a line
//! responder on a real pty.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support_serial;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use onprem_hal::devices::{PowerMonitor, PowerSwitch, TemperatureSensor};
use onprem_hal::drivers::bitscope::{Bmc, Command, Profile, Reading};
use onprem_hal::serial::{self, Config, Port};
use onprem_hal::sim::serial::LineResponder;
use onprem_hal::{Error, ErrorKind};
use support_serial::{Script, Step};

fn reading(send: &str, expect: Option<&str>, field: usize, scale: f64) -> Reading {
    Reading {
        send: send.to_string(),
        expect: expect.map(str::to_string),
        field,
        scale,
        offset: 0.0,
    }
}

fn command(send: &str, expect: Option<&str>) -> Command {
    Command {
        send: send.to_string(),
        expect: expect.map(str::to_string),
    }
}

/// A test profile: invented commands.
fn profile() -> Profile {
    Profile {
        line_ending: "\r\n".to_string(),
        timeout: Duration::from_millis(300),
        init: vec![command("UNLOCK test", Some("OK"))],
        supply_volts: Some(reading("SUPPLY V?", Some("V="), 0, 0.001)),
        supply_amps: Some(reading("SUPPLY A?", Some("A="), 0, 1.0)),
        node_amps: Some(reading("NODE {node} A?", Some("N"), 1, 1.0)),
        temperature: Some(reading("TEMP?", None, 0, 0.1)),
        power_state: Some(reading("PWR {node}?", Some("P"), 1, 1.0)),
        power_on: Some(command("PWR {node} ON", Some("OK"))),
        power_off: Some(command("PWR {node} OFF", None)),
    }
}

fn responder() -> LineResponder {
    let r = LineResponder::spawn().unwrap();
    r.answer("UNLOCK test", "OK");
    r.answer("SUPPLY V?", "V={mv} mV");
    r.answer("SUPPLY A?", "A={a}");
    r.answer("NODE 2 A?", "N2 {node_a}A");
    r.answer("TEMP?", "{t10}");
    r.answer("PWR 2?", "P2 {on}");
    r.answer("PWR 2 ON", "OK");
    r.act("PWR 2 ON", "on", 1.0);
    r.act("PWR 2 OFF", "on", 0.0);
    r.set_value("mv", 12_100.0);
    r.set_value("a", 1.5);
    r.set_value("node_a", 0.82);
    r.set_value("t10", 415.0);
    r.set_value("on", 0.0);
    r
}

fn open(r: &LineResponder, p: Profile) -> Bmc<Port> {
    let port = serial::open(&Config::new(r.path(), 115_200)).unwrap();
    Bmc::new(port, p, 2)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

// ---- byte-exact ----------------------------------------------------------

#[test]
fn can_send_init_and_reading_byte_exact() {
    let mut b = Bmc::new(
        Script::new([
            Step::Clear,
            Step::Write(b"UNLOCK test\r\n".to_vec()),
            Step::Read(b"OK\r\n".to_vec()),
            Step::Clear,
            Step::Write(b"NODE 2 A?\r\n".to_vec()),
            Step::Read(b"NODE 2 A?\r\n\r\nN2 0.82A\r\n".to_vec()),
        ]),
        profile(),
        2,
    );
    b.init().unwrap();
    assert!(close(b.node_amps().unwrap(), 0.82));
    b.release().done();
}

#[test]
fn can_send_power_commands_byte_exact() {
    let mut b = Bmc::new(
        Script::new([
            Step::Clear,
            Step::Write(b"PWR 1 ON\r\n".to_vec()),
            Step::Read(b"OK\r\n".to_vec()),
            Step::Clear,
            Step::Write(b"PWR 1 OFF\r\n".to_vec()),
        ]),
        profile(),
        1,
    );
    b.set_on(true).unwrap();
    b.set_on(false).unwrap();
    b.release().done();
}

#[test]
fn returns_unsupported_without_traffic_when_command_is_not_configured() {
    let mut b = Bmc::new(Script::new([]), Profile::default(), 0);
    for (e, what) in [
        (b.bus_volts().unwrap_err(), "supplyVolts"),
        (b.current_amps().unwrap_err(), "supplyAmps"),
        (b.power_watts().unwrap_err(), "supplyVolts"),
        (b.node_amps().unwrap_err(), "nodeAmps"),
        (b.temperature_celsius().unwrap_err(), "temperature"),
        (b.set_on(true).unwrap_err(), "powerOn"),
        (b.set_on(false).unwrap_err(), "powerOff"),
    ] {
        assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains(what), "{e}");
    }
    assert_eq!(b.is_on().unwrap(), None);
    b.init().unwrap();
    b.release().done();
}

// ---- line responder on a pty ---------------------------------------------

#[test]
fn can_read_configured_readings_over_pty() {
    let r = responder();
    let mut b = open(&r, profile());
    b.init().unwrap();
    assert!(close(b.bus_volts().unwrap(), 12.1));
    assert!(close(b.current_amps().unwrap(), 1.5));
    assert!(close(b.power_watts().unwrap(), 18.15));
    assert!(close(b.node_amps().unwrap(), 0.82));
    assert!(close(b.temperature_celsius().unwrap(), 41.5));
    r.set_value("t10", 502.0);
    assert!(close(b.temperature_celsius().unwrap(), 50.2));
}

#[test]
fn returns_unsupported_when_command_is_not_configured_over_pty() {
    let r = responder();
    let mut p = profile();
    p.supply_volts = None;
    let mut b = open(&r, p);
    let e = b.bus_volts().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("supplyVolts"), "{e}");
    // A configured request after it: the only one the device heard.
    assert!(close(b.current_amps().unwrap(), 1.5));
    assert_eq!(r.received(), vec!["SUPPLY A?"]);
}

#[test]
fn can_switch_node_power_as_configured_over_pty() {
    let r = responder();
    let mut b = open(&r, profile());
    assert_eq!(b.is_on().unwrap(), Some(false));
    b.set_on(true).unwrap();
    assert_eq!(r.value("on"), Some(1.0));
    assert_eq!(b.is_on().unwrap(), Some(true));
    b.set_on(false).unwrap();
    // The off command awaits no reply; the next request is answered
    // after the device has handled it.
    assert_eq!(b.is_on().unwrap(), Some(false));
    assert_eq!(
        r.received(),
        vec!["PWR 2?", "PWR 2 ON", "PWR 2?", "PWR 2 OFF", "PWR 2?"]
    );
}

#[test]
fn returns_protocol_error_when_bmc_is_silent() {
    let r = responder();
    r.set_silent(true);
    let mut b = open(&r, profile());
    let e = b.bus_volts().unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("SUPPLY V?"), "{e}");
    r.set_silent(false);
    assert!(close(b.bus_volts().unwrap(), 12.1));
}

#[test]
fn can_skip_echo_and_log_lines() {
    let r = responder();
    r.set_echo(true);
    r.push_unsolicited("LOG fan 3 ok");
    let mut b = open(&r, profile());
    assert!(close(b.bus_volts().unwrap(), 12.1));
}

#[test]
fn returns_protocol_error_when_reply_has_no_such_number() {
    let r = responder();
    r.answer("SUPPLY A?", "A=none");
    let mut b = open(&r, profile());
    let e = b.current_amps().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("\"none\""), "{e}");
}

#[test]
fn returns_protocol_error_when_reply_prefix_never_comes() {
    let r = responder();
    r.answer("SUPPLY V?", "ERR locked");
    let mut b = open(&r, profile());
    let e = b.bus_volts().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("ERR locked"), "{e}");
}

#[test]
fn can_share_one_bmc_between_device_handles() {
    let r = responder();
    let shared = Arc::new(Mutex::new(open(&r, profile())));
    let mut supply: Box<dyn PowerMonitor> = Box::new(Arc::clone(&shared));
    let mut temp: Box<dyn TemperatureSensor> = Box::new(Arc::clone(&shared));
    let mut power: Box<dyn PowerSwitch> = Box::new(Arc::clone(&shared));
    assert!(close(supply.bus_volts().unwrap(), 12.1));
    assert!(close(temp.temperature_celsius().unwrap(), 41.5));
    power.set_on(true).unwrap();
    assert_eq!(power.is_on().unwrap(), Some(true));
}
