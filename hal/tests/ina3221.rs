//! INA3221 driver: IDs, per-channel registers, disabled channels,
//! byte-exact; then three emulated Jetson-style rails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
use onprem_hal::ErrorKind;
use onprem_hal::drivers::ina3221::Ina3221;
use onprem_hal::sim::SimBus;
use onprem_hal::sim::chips::ina3221 as chip;

const ADDR: u8 = 0x40;
const REG_CONFIG: u8 = 0x00;
const REG_CH2_SHUNT: u8 = 0x03;
const REG_CH2_BUS: u8 = 0x04;
const REG_MANUFACTURER: u8 = 0xFE;
const REG_DIE: u8 = 0xFF;

fn rd(reg: u8, v: u16) -> Transaction {
    Transaction::write_read(ADDR, vec![reg], v.to_be_bytes().to_vec())
}

#[test]
fn can_check_ids() {
    let mut d = Ina3221::new(
        Mock::new(&[rd(REG_MANUFACTURER, 0x5449), rd(REG_DIE, 0x3220)]),
        ADDR,
        [0.005; 3],
    );
    d.init().unwrap();
    d.release().done();
}

#[test]
fn returns_wrong_device_when_die_differs() {
    // An INA219 at 0x40 answers 0x0000 for both.
    let mut d = Ina3221::new(
        Mock::new(&[rd(REG_MANUFACTURER, 0x0000), rd(REG_DIE, 0x0000)]),
        ADDR,
        [0.005; 3],
    );
    assert_eq!(d.init().unwrap_err().kind(), ErrorKind::Fatal);
    d.release().done();
}

#[test]
fn can_read_channel_two() {
    // 5 mΩ shunt: 250 counts × 40 µV = 10 mV → 2 A; bus 625 counts × 8 mV = 5 V.
    let mut d = Ina3221::new(
        Mock::new(&[
            rd(REG_CONFIG, 0x7127),
            rd(REG_CH2_SHUNT, 250 << 3),
            rd(REG_CONFIG, 0x7127),
            rd(REG_CH2_BUS, 625 << 3),
        ]),
        ADDR,
        [0.005; 3],
    );
    assert!((d.current_amps(2).unwrap() - 2.0).abs() < 1e-9);
    assert!((d.bus_volts(2).unwrap() - 5.0).abs() < 1e-9);
    d.release().done();
}

#[test]
fn returns_invalid_when_channel_is_disabled() {
    // Channel 2 enable is bit 13: 0x5127 has it clear.
    let mut d = Ina3221::new(Mock::new(&[rd(REG_CONFIG, 0x5127)]), ADDR, [0.005; 3]);
    let e = d.bus_volts(2).unwrap_err();
    assert!(e.to_string().contains("channel 2 is disabled"), "{e}");
    d.release().done();
}

#[test]
fn can_measure_three_emulated_rails() {
    let bus = SimBus::new();
    bus.attach(ADDR, chip::Ina3221::new([0.005, 0.005, 0.01]));
    let mut d = Ina3221::new(bus.clone(), ADDR, [0.005, 0.005, 0.01]);
    d.init().unwrap();
    bus.with_chip(ADDR, |c: &mut chip::Ina3221| {
        c.set_rail(1, 1.2, 5.08); // VDD_IN
        c.set_rail(2, 0.6, 5.04); // VDD_CPU_GPU_CV
        c.set_rail(3, 0.3, 5.0); // VDD_SOC
    })
    .unwrap();
    let p1 = d.power_watts(1).unwrap();
    assert!((p1 - 1.2 * 5.08).abs() < 0.05, "{p1}");
    assert!((d.current_amps(2).unwrap() - 0.6).abs() < 0.01);
    assert!((d.current_amps(3).unwrap() - 0.3).abs() < 0.005);
    assert!(d.conversion_ready().unwrap());
    assert!(d.bus_volts(4).is_err());
    // Beyond ±163.8 mV the shunt reading saturates.
    bus.with_chip(ADDR, |c: &mut chip::Ina3221| c.set_rail(1, 50.0, 5.0))
        .unwrap();
    assert!((d.shunt_volts(1).unwrap() - 4095.0 * 40e-6).abs() < 1e-9);
}
