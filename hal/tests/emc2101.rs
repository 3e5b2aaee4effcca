//! EMC2101 driver: IDs, register order for shadowed reads, the 6-bit
//! setting, byte-exact; then a fan whose tach follows the drive, stalls,
//! seizes, and a diode that opens, in the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
use onprem_hal::ErrorKind;
use onprem_hal::devices::{Fan, TemperatureSensor};
use onprem_hal::drivers::emc2101::Emc2101;
use onprem_hal::sim::SimBus;
use onprem_hal::sim::chips::emc2101::{self as chip, Diode};

const ADDR: u8 = 0x4C;
const REG_EXT_MSB: u8 = 0x01;
const REG_CONFIG: u8 = 0x03;
const REG_EXT_LSB: u8 = 0x10;
const REG_TACH_LSB: u8 = 0x46;
const REG_TACH_MSB: u8 = 0x47;
const REG_FAN_CONFIG: u8 = 0x4A;
const REG_FAN_SETTING: u8 = 0x4C;
const REG_PRODUCT: u8 = 0xFD;
const REG_MAKER: u8 = 0xFE;

fn rd(reg: u8, v: u8) -> Transaction {
    Transaction::write_read(ADDR, vec![reg], vec![v])
}

#[test]
fn can_init_tach_input_and_manual_setting() {
    let mut d = Emc2101::new(
        Mock::new(&[
            rd(REG_PRODUCT, 0x16),
            rd(REG_MAKER, 0x5D),
            rd(REG_CONFIG, 0x00),
            Transaction::write(ADDR, vec![REG_CONFIG, 0x04]),
            rd(REG_FAN_CONFIG, 0x00),
            Transaction::write(ADDR, vec![REG_FAN_CONFIG, 0x20]),
        ]),
        ADDR,
    );
    d.init().unwrap();
    d.release().done();
}

#[test]
fn returns_wrong_device_when_ids_do_not_match() {
    let mut d = Emc2101::new(
        Mock::new(&[rd(REG_PRODUCT, 0x37), rd(REG_MAKER, 0x5D)]),
        ADDR,
    );
    let e = d.init().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("0x37"), "{e}");
    d.release().done();
}

#[test]
fn can_write_six_bit_setting_and_read_tach_lsb_first() {
    let mut d = Emc2101::new(
        Mock::new(&[
            Transaction::write(ADDR, vec![REG_FAN_SETTING, 32]),
            rd(REG_FAN_SETTING, 63),
            rd(REG_TACH_LSB, 0x08),
            rd(REG_TACH_MSB, 0x07), // 0x0708 = 1800 → 3000 RPM
        ]),
        ADDR,
    );
    d.set_duty(50.0).unwrap();
    assert_eq!(d.duty().unwrap(), 100.0);
    assert_eq!(d.rpm().unwrap(), Some(3000.0));
    d.release().done();
}

#[test]
fn returns_invalid_without_bus_traffic_when_duty_is_out_of_range() {
    let mut d = Emc2101::new(Mock::new(&[]), ADDR);
    assert_eq!(d.set_duty(101.0).unwrap_err().kind(), ErrorKind::Fatal);
    assert!(d.set_duty(f64::NAN).is_err());
    d.release().done();
}

#[test]
fn can_read_diode_msb_first() {
    let mut d = Emc2101::new(
        Mock::new(&[rd(REG_EXT_MSB, 0x2A), rd(REG_EXT_LSB, 0x60)]),
        ADDR,
    );
    assert_eq!(d.temperature_celsius().unwrap(), 42.375);
    d.release().done();
}

fn emulated() -> (SimBus, Emc2101<SimBus>) {
    let bus = SimBus::new();
    bus.attach(ADDR, chip::Emc2101::new(6000.0));
    let mut d = Emc2101::new(bus.clone(), ADDR);
    d.init().unwrap();
    (bus, d)
}

#[test]
fn can_drive_an_emulated_fan_whose_tach_follows_duty() {
    let (bus, mut d) = emulated();
    d.set_duty(100.0).unwrap();
    let full = d.rpm().unwrap().unwrap();
    assert!((full - 6000.0).abs() < 5.0, "{full}");
    d.set_duty(50.0).unwrap();
    assert_eq!(
        bus.with_chip(ADDR, |c: &mut chip::Emc2101| c.setting()),
        Some(32)
    );
    let half = d.rpm().unwrap().unwrap();
    assert!((half - 6000.0 * 32.0 / 63.0).abs() < 5.0, "{half}");
    d.set_duty(10.0).unwrap();
    assert_eq!(
        d.rpm().unwrap(),
        Some(0.0),
        "below the minimum drive the fan stalls"
    );
    d.set_duty(80.0).unwrap();
    bus.with_chip(ADDR, |c: &mut chip::Emc2101| c.set_stuck(true))
        .unwrap();
    assert_eq!(
        d.rpm().unwrap(),
        Some(0.0),
        "a seized rotor gives no tach pulses"
    );
}

#[test]
fn ignores_setting_until_lookup_table_is_off() {
    let bus = SimBus::new();
    bus.attach(ADDR, chip::Emc2101::new(6000.0).r_variant());
    let mut d = Emc2101::new(bus.clone(), ADDR);
    d.set_duty(100.0).unwrap();
    assert_eq!(
        d.duty().unwrap(),
        0.0,
        "the look-up table owns the setting at power-on"
    );
    d.init().unwrap();
    d.set_duty(100.0).unwrap();
    assert_eq!(d.duty().unwrap(), 100.0);
}

#[test]
fn returns_fatal_error_when_diode_opens_or_shorts() {
    let (bus, mut d) = emulated();
    bus.with_chip(ADDR, |c: &mut chip::Emc2101| {
        c.set_diode(Diode::Celsius(55.25))
    })
    .unwrap();
    assert_eq!(d.temperature_celsius().unwrap(), 55.25);
    bus.with_chip(ADDR, |c: &mut chip::Emc2101| c.set_diode(Diode::Open))
        .unwrap();
    let e = d.temperature_celsius().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("open"), "{e}");
    bus.with_chip(ADDR, |c: &mut chip::Emc2101| c.set_diode(Diode::Short))
        .unwrap();
    assert!(
        d.temperature_celsius()
            .unwrap_err()
            .to_string()
            .contains("short")
    );
    assert_eq!(d.internal_celsius().unwrap(), 35.0);
}
