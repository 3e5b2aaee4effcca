//! LM75 driver: byte-exact against a scripted bus (register map typed in
//! again from the datasheet), then against the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
use onprem_hal::devices::TemperatureSensor;
use onprem_hal::drivers::lm75::{Lm75, Resolution};
use onprem_hal::sim::{Fault, SimBus, chips};

const ADDR: u8 = 0x48;
const REG_TEMP: u8 = 0x00;
const REG_CONF: u8 = 0x01;
const REG_THYST: u8 = 0x02;
const REG_TOS: u8 = 0x03;

macro_rules! reads_temperature {
    ($($name:ident: $res:expr, [$msb:expr, $lsb:expr] => $want:expr,)*) => {$(
        #[test]
        fn $name() {
            let mut d = Lm75::new(Mock::new(&[Transaction::write_read(ADDR, vec![REG_TEMP], vec![$msb, $lsb])]), ADDR, $res);
            assert_eq!(d.temperature_celsius().unwrap(), $want);
            d.release().done();
        }
    )*};
}

reads_temperature! {
    can_read_positive_half_degree_9bit: Resolution::Bits9, [0x19, 0x80] => 25.5,
    can_read_negative_half_degree_9bit: Resolution::Bits9, [0xFF, 0x80] => -0.5,
    can_read_eighth_degree_11bit: Resolution::Bits11, [0x19, 0x60] => 25.375,
    can_read_negative_11bit: Resolution::Bits11, [0xE7, 0x00] => -25.0,
    can_read_max_11bit: Resolution::Bits11, [0x7F, 0xE0] => 127.875,
}

#[test]
fn can_shut_down_keeping_other_bits() {
    let mut d = Lm75::new(
        Mock::new(&[
            Transaction::write_read(ADDR, vec![REG_CONF], vec![0x02]),
            Transaction::write(ADDR, vec![REG_CONF, 0x03]),
            Transaction::write_read(ADDR, vec![REG_CONF], vec![0x03]),
            Transaction::write(ADDR, vec![REG_CONF, 0x02]),
        ]),
        ADDR,
        Resolution::Bits9,
    );
    d.set_shutdown(true).unwrap();
    d.set_shutdown(false).unwrap();
    d.release().done();
}

#[test]
fn can_read_power_on_thresholds() {
    let mut d = Lm75::new(
        Mock::new(&[
            Transaction::write_read(ADDR, vec![REG_THYST], vec![75, 0x00]),
            Transaction::write_read(ADDR, vec![REG_TOS], vec![80, 0x00]),
        ]),
        ADDR,
        Resolution::Bits9,
    );
    assert_eq!(d.thresholds_celsius().unwrap(), (75.0, 80.0));
    d.release().done();
}

#[test]
fn returns_transient_error_when_address_is_not_acknowledged() {
    let mut d = Lm75::new(
        Mock::new(&[Transaction::write_read(ADDR, vec![REG_TEMP], vec![0, 0])
            .with_error(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address))]),
        ADDR,
        Resolution::Bits11,
    );
    let e = d.temperature_celsius().unwrap_err();
    assert_eq!(e.kind(), onprem_hal::ErrorKind::Transient);
    assert!(
        e.to_string().contains("no acknowledge of the address"),
        "{e}"
    );
    d.release().done();
}

#[test]
fn can_follow_emulated_temperature_and_hold_it_while_shut_down() {
    let bus = SimBus::new();
    bus.attach(ADDR, chips::lm75::Lm75::new(11, 41.3));
    let mut d = Lm75::new(bus.clone(), ADDR, Resolution::Bits11);
    assert_eq!(d.temperature_celsius().unwrap(), 41.25);
    bus.with_chip(ADDR, |c: &mut chips::lm75::Lm75| c.set_temperature(-10.2))
        .unwrap();
    assert_eq!(d.temperature_celsius().unwrap(), -10.25);
    d.set_shutdown(true).unwrap();
    assert_eq!(
        bus.with_chip(ADDR, |c: &mut chips::lm75::Lm75| c.is_shut_down()),
        Some(true)
    );
    bus.with_chip(ADDR, |c: &mut chips::lm75::Lm75| c.set_temperature(60.0))
        .unwrap();
    assert_eq!(
        d.temperature_celsius().unwrap(),
        -10.25,
        "a shut-down converter keeps its last result"
    );
    d.set_shutdown(false).unwrap();
    assert_eq!(d.temperature_celsius().unwrap(), 60.0);
}

#[test]
fn returns_transient_error_while_device_is_gone() {
    let bus = SimBus::new();
    bus.attach(ADDR, chips::lm75::Lm75::new(9, 30.0));
    let mut d = Lm75::new(bus.clone(), ADDR, Resolution::Bits9);
    bus.inject(ADDR, Fault::Nack);
    assert_eq!(
        d.temperature_celsius().unwrap_err().kind(),
        onprem_hal::ErrorKind::Transient
    );
    assert!(bus.addresses().is_empty());
    bus.clear(ADDR);
    assert_eq!(d.temperature_celsius().unwrap(), 30.0);
    bus.detach(ADDR);
    assert!(d.temperature_celsius().is_err());
}
