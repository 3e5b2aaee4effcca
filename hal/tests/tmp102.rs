//! TMP102 driver: identity check and extended mode, byte-exact and against
//! the emulator (including the stale reading right after a mode change).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
use onprem_hal::devices::TemperatureSensor;
use onprem_hal::drivers::tmp102::Tmp102;
use onprem_hal::sim::{SimBus, chips};

const ADDR: u8 = 0x49;
const REG_TEMP: u8 = 0x00;
const REG_CONF: u8 = 0x01;

#[test]
fn can_init_extended_mode_from_power_on_config() {
    // Power-on 0x60A0; EM is bit 4 (0x0010) → 0x60B0.
    let mut d = Tmp102::new(
        Mock::new(&[
            Transaction::write_read(ADDR, vec![REG_CONF], vec![0x60, 0xA0]),
            Transaction::write(ADDR, vec![REG_CONF, 0x60, 0xB0]),
            Transaction::write_read(ADDR, vec![REG_TEMP], vec![0x0C, 0x81]),
        ]),
        ADDR,
    );
    d.init().unwrap();
    assert_eq!(d.temperature_celsius().unwrap(), 25.0);
    d.release().done();
}

#[test]
fn can_skip_the_write_when_already_configured() {
    let mut d = Tmp102::new(
        Mock::new(&[Transaction::write_read(
            ADDR,
            vec![REG_CONF],
            vec![0x60, 0xB0],
        )]),
        ADDR,
    );
    d.init().unwrap();
    d.release().done();
}

#[test]
fn returns_wrong_device_when_resolution_bits_are_clear() {
    let mut d = Tmp102::new(
        Mock::new(&[Transaction::write_read(
            ADDR,
            vec![REG_CONF],
            vec![0x00, 0x00],
        )]),
        ADDR,
    );
    let e = d.init().unwrap_err();
    assert_eq!(e.kind(), onprem_hal::ErrorKind::Fatal);
    assert!(e.to_string().contains("0x49"), "{e}");
    d.release().done();
}

#[test]
fn can_read_above_128_degrees_after_init_in_emulator() {
    let bus = SimBus::new();
    bus.attach(ADDR, chips::tmp102::Tmp102::new(25.0));
    let mut d = Tmp102::new(bus.clone(), ADDR);
    d.init().unwrap();
    assert_eq!(
        bus.with_chip(ADDR, |c: &mut chips::tmp102::Tmp102| c.config()),
        Some(0x60B0)
    );
    // Before the next conversion the register still holds a normal-mode
    // value; the driver decodes it by its format flag.
    assert_eq!(d.temperature_celsius().unwrap(), 25.0);
    bus.with_chip(ADDR, |c: &mut chips::tmp102::Tmp102| {
        c.set_temperature(140.5)
    })
    .unwrap();
    assert_eq!(d.temperature_celsius().unwrap(), 140.5);
    bus.with_chip(ADDR, |c: &mut chips::tmp102::Tmp102| {
        c.set_temperature(-40.0)
    })
    .unwrap();
    assert_eq!(d.temperature_celsius().unwrap(), -40.0);
}

#[test]
fn returns_wrong_device_when_another_chip_answers() {
    // An LM75 at the TMP102's address: its 8-bit config reads back as 0x0000.
    let bus = SimBus::new();
    bus.attach(ADDR, chips::lm75::Lm75::new(9, 25.0));
    let mut d = Tmp102::new(bus, ADDR);
    assert_eq!(d.init().unwrap_err().kind(), onprem_hal::ErrorKind::Fatal);
}
