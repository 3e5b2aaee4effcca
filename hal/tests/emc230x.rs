//! EMC230x driver: IDs and fan count, per-fan register blocks, the 13-bit
//! tach split, byte-exact; then emulated fans that start at full speed,
//! follow the drive, stall and report drive failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
use onprem_hal::ErrorKind;
use onprem_hal::devices::Fan;
use onprem_hal::drivers::emc230x::Emc230x;
use onprem_hal::sim::SimBus;
use onprem_hal::sim::chips::emc230x as chip;

const ADDR: u8 = 0x2F;
const REG_PRODUCT: u8 = 0xFD;
const REG_MAKER: u8 = 0xFE;
const FAN1_SETTING: u8 = 0x30;
const FAN2_SETTING: u8 = 0x40;
const FAN2_TACH_HIGH: u8 = 0x4E;
const FAN2_TACH_LOW: u8 = 0x4F;
const DRIVE_FAIL: u8 = 0x27;

fn rd(reg: u8, v: u8) -> Transaction {
    Transaction::write_read(ADDR, vec![reg], vec![v])
}

#[test]
fn can_identify_an_emc2301() {
    let mut d = Emc230x::new(
        Mock::new(&[rd(REG_PRODUCT, 0x37), rd(REG_MAKER, 0x5D)]),
        ADDR,
        1,
    );
    assert_eq!(d.init().unwrap(), "EMC2301");
    d.release().done();
}

#[test]
fn returns_wrong_device_when_fan_exceeds_model() {
    let mut d = Emc230x::new(
        Mock::new(&[rd(REG_PRODUCT, 0x37), rd(REG_MAKER, 0x5D)]),
        ADDR,
        2,
    );
    let e = d.init().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("EMC2301 has 1 fan"), "{e}");
    d.release().done();
}

#[test]
fn can_drive_second_fan_through_its_register_block() {
    // 50 % → 128; tach 0x1F:0x40 → count 1000 → 7864.32 RPM.
    let mut d = Emc230x::new(
        Mock::new(&[
            Transaction::write(ADDR, vec![FAN2_SETTING, 128]),
            rd(FAN2_TACH_HIGH, 0x1F),
            rd(FAN2_TACH_LOW, 0x40),
            rd(DRIVE_FAIL, 0b10),
        ]),
        ADDR,
        2,
    );
    d.set_duty(50.0).unwrap();
    assert_eq!(d.rpm().unwrap(), Some(7864.32));
    assert!(d.drive_failed().unwrap());
    d.release().done();
}

#[test]
fn can_read_full_drive_as_100_percent() {
    let mut d = Emc230x::new(Mock::new(&[rd(FAN1_SETTING, 0xFF)]), ADDR, 1);
    assert_eq!(d.duty().unwrap(), 100.0);
    d.release().done();
}

#[test]
fn can_control_emulated_fans_and_see_stalls() {
    let bus = SimBus::new();
    bus.attach(ADDR, chip::Emc230x::new(0x36, 5000.0)); // EMC2302
    let mut f1 = Emc230x::new(bus.clone(), ADDR, 1);
    let mut f2 = Emc230x::new(bus.clone(), ADDR, 2);
    assert_eq!(f1.init().unwrap(), "EMC2302");
    f2.init().unwrap();
    // Power-on: full drive until the host takes over.
    assert_eq!(f1.duty().unwrap(), 100.0);
    assert!((f1.rpm().unwrap().unwrap() - 5000.0).abs() < 10.0);
    f1.set_duty(60.0).unwrap();
    let r = f1.rpm().unwrap().unwrap();
    assert!((r - 5000.0 * 153.0 / 255.0).abs() < 10.0, "{r}");
    assert_eq!(
        bus.with_chip(ADDR, |c: &mut chip::Emc230x| c.setting(2)),
        Some(Some(0xFF)),
        "fan 2 untouched"
    );
    f2.set_duty(5.0).unwrap();
    assert_eq!(f2.rpm().unwrap(), Some(0.0));
    assert!(
        !f2.drive_failed().unwrap(),
        "a fan below its minimum drive is stopped, not failing"
    );
    bus.with_chip(ADDR, |c: &mut chip::Emc230x| c.set_stuck(1, true))
        .unwrap();
    assert_eq!(f1.rpm().unwrap(), Some(0.0));
    assert!(f1.drive_failed().unwrap());
}
