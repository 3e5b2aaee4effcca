//! Argon Fan HAT driver: exactly one write per duty and never a read,
//! byte-exact; then, in the emulator, that a read would stop the fan and
//! that the driver never causes one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use embedded_hal::i2c::{ErrorKind as BusErrorKind, I2c, NoAcknowledgeSource};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
use onprem_hal::ErrorKind;
use onprem_hal::devices::Fan;
use onprem_hal::drivers::argon_fan_hat::ArgonFanHat;
use onprem_hal::sim::SimBus;
use onprem_hal::sim::chips::argon_fan_hat as chip;

// Typed in from the hardware reference §1.4.
const ADDR: u8 = 0x1A;
const REG_DUTY: u8 = 0x80;

#[test]
fn can_set_duty_with_exactly_one_write_and_no_reads() {
    let mut d = ArgonFanHat::new(
        Mock::new(&[Transaction::write(ADDR, vec![REG_DUTY, 55])]),
        ADDR,
    );
    d.set_duty(55.0).unwrap();
    assert_eq!(d.duty().unwrap(), 55.0, "answered from memory");
    assert_eq!(d.duty().unwrap(), 55.0);
    assert_eq!(d.rpm().unwrap(), None);
    d.release().done();
}

#[test]
fn returns_not_ready_without_bus_traffic_before_the_first_write() {
    let mut d = ArgonFanHat::new(Mock::new(&[]), ADDR);
    let e = d.duty().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("argon_fan_hat"), "{e}");
    d.release().done();
}

#[test]
fn returns_i2c_error_per_transaction_and_keeps_the_last_good_duty() {
    let mut d = ArgonFanHat::new(
        Mock::new(&[
            Transaction::write(ADDR, vec![REG_DUTY, 30]),
            Transaction::write(ADDR, vec![REG_DUTY, 100])
                .with_error(BusErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)),
            Transaction::write(ADDR, vec![REG_DUTY, 100]),
        ]),
        ADDR,
    );
    d.set_duty(30.0).unwrap();
    let e = d.set_duty(100.0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert_eq!(d.duty().unwrap(), 30.0, "a failed write is not remembered");
    d.set_duty(100.0).unwrap();
    assert_eq!(d.duty().unwrap(), 100.0);
    d.release().done();
}

#[test]
fn returns_invalid_without_bus_traffic_when_duty_is_out_of_range() {
    let mut d = ArgonFanHat::new(Mock::new(&[]), ADDR);
    assert_eq!(d.set_duty(-0.5).unwrap_err().kind(), ErrorKind::Fatal);
    assert!(d.set_duty(f64::NAN).is_err());
    d.release().done();
}

#[test]
fn can_stop_the_emulated_fan_with_any_read() {
    let mut bus = SimBus::new();
    bus.attach(ADDR, chip::ArgonFanHat::running(80));
    let mut b = [0xAAu8; 1];
    bus.write_read(ADDR, &[REG_DUTY], &mut b).unwrap();
    let duty = bus.with_chip(ADDR, |c: &mut chip::ArgonFanHat| c.duty());
    assert_eq!(duty, Some(0), "a read of the duty register stops the fan");

    bus.write(ADDR, &[REG_DUTY, 60]).unwrap();
    bus.read(ADDR, &mut b).unwrap();
    let duty = bus.with_chip(ADDR, |c: &mut chip::ArgonFanHat| c.duty());
    assert_eq!(duty, Some(0), "so does a plain read");
}

#[test]
fn can_drive_the_emulated_fan_without_ever_reading() {
    let bus = SimBus::new();
    bus.attach(ADDR, chip::ArgonFanHat::new());
    let mut d = ArgonFanHat::new(bus.clone(), ADDR);
    for p in [0.0, 35.0, 100.0, 62.4] {
        d.set_duty(p).unwrap();
        assert_eq!(d.duty().unwrap(), p.round());
        assert_eq!(d.rpm().unwrap(), None);
    }
    let (duty, reads, writes) = bus
        .with_chip(ADDR, |c: &mut chip::ArgonFanHat| {
            (c.duty(), c.reads(), c.writes())
        })
        .unwrap();
    assert_eq!(duty, 62);
    assert_eq!(reads, 0, "the driver never reads");
    assert_eq!(writes, 4);
}
