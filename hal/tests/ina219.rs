//! INA219 driver: calibration arithmetic, byte-exact transfers, and the
//! emulator's lost calibration after a brown-out, which the driver must
//! notice and repair.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
use onprem_hal::devices::PowerMonitor;
use onprem_hal::drivers::ina219::Ina219;
use onprem_hal::sim::{Fault, SimBus, chips};

const ADDR: u8 = 0x40;
const REG_CONF: u8 = 0x00;
const REG_BUS: u8 = 0x02;
const REG_POWER: u8 = 0x03;
const REG_CURRENT: u8 = 0x04;
const REG_CAL: u8 = 0x05;

/// 0.1 Ω, 3.2 A: Current_LSB = 3.2 / 32768 A, Cal = 4194 = 0x1062.
fn driver(t: &[Transaction]) -> Ina219<Mock> {
    Ina219::new(Mock::new(t), ADDR, 0.1, 3.2)
}

#[test]
fn can_init_with_power_on_config_and_calibration() {
    let mut d = driver(&[
        Transaction::write(ADDR, vec![REG_CONF, 0x39, 0x9F]),
        Transaction::write(ADDR, vec![REG_CAL, 0x10, 0x62]),
    ]);
    d.init().unwrap();
    d.release().done();
}

#[test]
fn can_read_bus_current_and_power() {
    // Bus 12.0 V = 3000 counts << 3 | CNVR = 0x5DC2. Current 10240 counts,
    // power 3000 × 10240 / 5000 = 6144 counts.
    let mut d = driver(&[
        Transaction::write_read(ADDR, vec![REG_BUS], vec![0x5D, 0xC2]),
        Transaction::write_read(ADDR, vec![REG_BUS], vec![0x5D, 0xC2]),
        Transaction::write_read(ADDR, vec![REG_CURRENT], vec![0x28, 0x00]),
        Transaction::write_read(ADDR, vec![REG_BUS], vec![0x5D, 0xC2]),
        Transaction::write_read(ADDR, vec![REG_POWER], vec![0x18, 0x00]),
    ]);
    assert!((d.bus_volts().unwrap() - 12.0).abs() < 1e-9);
    assert!((d.current_amps().unwrap() - 10240.0 * 3.2 / 32768.0).abs() < 1e-9);
    assert!((d.power_watts().unwrap() - 6144.0 * 20.0 * 3.2 / 32768.0).abs() < 1e-9);
    d.release().done();
}

#[test]
fn returns_invalid_when_chip_reports_overflow() {
    let mut d = driver(&[Transaction::write_read(
        ADDR,
        vec![REG_BUS],
        vec![0x5D, 0xC3],
    )]);
    assert_eq!(
        d.current_amps().unwrap_err().kind(),
        onprem_hal::ErrorKind::Fatal
    );
    d.release().done();
}

#[test]
fn can_reinitialise_when_calibration_reads_back_zero() {
    let mut d = driver(&[
        Transaction::write_read(ADDR, vec![REG_BUS], vec![0x5D, 0xC2]),
        Transaction::write_read(ADDR, vec![REG_CURRENT], vec![0x00, 0x00]),
        Transaction::write_read(ADDR, vec![REG_CAL], vec![0x00, 0x00]),
        Transaction::write(ADDR, vec![REG_CONF, 0x39, 0x9F]),
        Transaction::write(ADDR, vec![REG_CAL, 0x10, 0x62]),
    ]);
    let e = d.current_amps().unwrap_err();
    assert_eq!(e.kind(), onprem_hal::ErrorKind::Transient);
    assert_eq!(d.reinitialisations(), 1);
    d.release().done();
}

#[test]
fn can_read_zero_current_when_calibration_is_intact() {
    let mut d = driver(&[
        Transaction::write_read(ADDR, vec![REG_BUS], vec![0x5D, 0xC2]),
        Transaction::write_read(ADDR, vec![REG_CURRENT], vec![0x00, 0x00]),
        Transaction::write_read(ADDR, vec![REG_CAL], vec![0x10, 0x62]),
    ]);
    assert_eq!(d.current_amps().unwrap(), 0.0);
    assert_eq!(d.reinitialisations(), 0);
    d.release().done();
}

#[test]
fn can_measure_a_load_and_recover_from_brown_out_in_emulator() {
    let bus = SimBus::new();
    bus.attach(ADDR, chips::ina219::Ina219::new(0.1));
    bus.with_chip(ADDR, |c: &mut chips::ina219::Ina219| c.set_load(1.5, 5.1))
        .unwrap();
    let mut d = Ina219::new(bus.clone(), ADDR, 0.1, 3.2);
    // Before init the calibration is 0: the driver notices and repairs it.
    assert!(d.current_amps().is_err());
    assert_eq!(d.reinitialisations(), 1);
    let amps = d.current_amps().unwrap();
    assert!((amps - 1.5).abs() < 0.001, "{amps}");
    assert!((d.bus_volts().unwrap() - 5.1).abs() < 0.004);
    let w = d.power_watts().unwrap();
    assert!((w - 1.5 * 5.1).abs() < 0.01, "{w}");

    bus.with_chip(ADDR, |c: &mut chips::ina219::Ina219| c.brown_out())
        .unwrap();
    assert_eq!(
        d.power_watts().unwrap_err().kind(),
        onprem_hal::ErrorKind::Transient
    );
    assert_eq!(d.reinitialisations(), 2);
    assert_eq!(
        bus.with_chip(ADDR, |c: &mut chips::ina219::Ina219| c.calibration()),
        Some(4194)
    );
    assert!((d.current_amps().unwrap() - 1.5).abs() < 0.001);
}

#[test]
fn can_read_negative_current_and_saturate_beyond_pga_range() {
    let bus = SimBus::new();
    bus.attach(ADDR, chips::ina219::Ina219::new(0.1));
    let mut d = Ina219::new(bus.clone(), ADDR, 0.1, 3.2);
    d.init().unwrap();
    bus.with_chip(ADDR, |c: &mut chips::ina219::Ina219| {
        c.set_load(-0.75, 12.0)
    })
    .unwrap();
    assert!((d.current_amps().unwrap() + 0.75).abs() < 0.001);
    // 5 A through 0.1 Ω is 500 mV, beyond the ±320 mV range: 3.2 A at most.
    bus.with_chip(ADDR, |c: &mut chips::ina219::Ina219| c.set_load(5.0, 12.0))
        .unwrap();
    assert!((d.shunt_volts().unwrap() - 0.32).abs() < 1e-9);
    assert!(d.current_amps().unwrap() <= 3.2);
}

#[test]
fn returns_transient_error_on_arbitration_loss_then_recovers() {
    let bus = SimBus::new();
    bus.attach(ADDR, chips::ina219::Ina219::new(0.1));
    let mut d = Ina219::new(bus.clone(), ADDR, 0.1, 3.2);
    d.init().unwrap();
    bus.inject(ADDR, Fault::ArbitrationLoss(1));
    assert_eq!(
        d.bus_volts().unwrap_err().kind(),
        onprem_hal::ErrorKind::Transient
    );
    assert!(d.bus_volts().is_ok());
}
