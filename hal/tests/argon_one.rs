//! Argon ONE driver: firmware detection (with its restore and pauses),
//! both duty protocols and both power-cut commands byte-exact; then
//! detection, arming and the power cut, and the "MCU left the bus after a
//! dump" failure in the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use embedded_hal::i2c::{ErrorKind as BusErrorKind, I2c, NoAcknowledgeSource};
use embedded_hal_mock::eh1::delay::{CheckedDelay, NoopDelay, Transaction as Delay};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
use onprem_hal::ErrorKind;
use onprem_hal::devices::Fan;
use onprem_hal::drivers::argon_one::{ArgonOne, Firmware, detect_firmware};
use onprem_hal::sim::SimBus;
use onprem_hal::sim::chips::argon_one as chip;

// Typed in from the hardware reference §1.2.
const ADDR: u8 = 0x1A;
const REG_DUTY: u8 = 0x80;
const REG_CTRL: u8 = 0x86;

fn read_duty(v: u8) -> Transaction {
    Transaction::write_read(ADDR, vec![REG_DUTY], vec![v])
}

fn write_duty(v: u8) -> Transaction {
    Transaction::write(ADDR, vec![REG_DUTY, v])
}

fn one_second() -> Delay {
    Delay::delay_ms(1000)
}

#[test]
fn can_detect_register_firmware_and_restore_the_duty() {
    let mut bus = Mock::new(&[read_duty(40), write_duty(41), read_duty(41), write_duty(40)]);
    let mut delay = CheckedDelay::new(&[one_second(), one_second()]);
    assert_eq!(
        detect_firmware(&mut bus, ADDR, &mut delay).unwrap(),
        Firmware::Register
    );
    delay.done();
    bus.done();
}

#[test]
fn can_probe_with_98_when_the_duty_is_near_full() {
    let bus = Mock::new(&[read_duty(99), write_duty(98), read_duty(98), write_duty(99)]);
    let d = ArgonOne::detect(bus, ADDR, &mut NoopDelay::new()).unwrap();
    assert_eq!(d.firmware(), Firmware::Register);
    d.release().done();
}

#[test]
fn can_fall_back_to_legacy_when_the_read_back_is_unchanged() {
    let bus = Mock::new(&[read_duty(0), write_duty(1), read_duty(0)]);
    let mut delay = CheckedDelay::new(&[one_second()]);
    let d = ArgonOne::detect(bus, ADDR, &mut delay).unwrap();
    assert_eq!(d.firmware(), Firmware::Legacy);
    delay.done();
    d.release().done();
}

#[test]
fn returns_i2c_error_when_detection_read_is_not_acknowledged() {
    let mut bus = Mock::new(&[
        read_duty(0).with_error(BusErrorKind::NoAcknowledge(NoAcknowledgeSource::Address))
    ]);
    let e = detect_firmware(&mut bus, ADDR, &mut NoopDelay::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("acknowledge"), "{e}");
    bus.done();
}

#[test]
fn returns_i2c_error_when_the_probe_write_fails() {
    let mut bus = Mock::new(&[read_duty(20), write_duty(21).with_error(BusErrorKind::Bus)]);
    let e = detect_firmware(&mut bus, ADDR, &mut NoopDelay::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    bus.done();
}

#[test]
fn can_set_legacy_duty_with_send_byte_and_remember_it() {
    let mut d = ArgonOne::legacy(
        Mock::new(&[
            Transaction::write(ADDR, vec![55]),
            Transaction::write(ADDR, vec![0]),
        ]),
        ADDR,
    );
    assert_eq!(d.duty().unwrap_err().kind(), ErrorKind::Transient);
    d.set_duty(54.6).unwrap();
    assert_eq!(d.duty().unwrap(), 55.0, "legacy duty is the last commanded");
    d.set_duty(0.0).unwrap();
    assert_eq!(d.duty().unwrap(), 0.0);
    assert_eq!(d.rpm().unwrap(), None);
    d.release().done();
}

#[test]
fn can_arm_power_cut_on_legacy_with_0xff() {
    let mut d = ArgonOne::legacy(Mock::new(&[Transaction::write(ADDR, vec![0xFF])]), ADDR);
    d.arm_power_cut().unwrap();
    d.release().done();
}

#[test]
fn can_set_and_read_register_duty() {
    let mut d = ArgonOne::register(
        Mock::new(&[write_duty(30), read_duty(30), read_duty(101)]),
        ADDR,
    );
    d.set_duty(30.0).unwrap();
    assert_eq!(d.duty().unwrap(), 30.0);
    let e = d.duty().unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Fatal,
        "a duty above 100 % is impossible"
    );
    d.release().done();
}

#[test]
fn can_arm_power_cut_on_register_firmware_with_ctrl() {
    let mut d = ArgonOne::register(
        Mock::new(&[Transaction::write(ADDR, vec![REG_CTRL, 1])]),
        ADDR,
    );
    d.arm_power_cut().unwrap();
    d.release().done();
}

#[test]
fn returns_i2c_error_per_transaction_and_keeps_the_last_good_duty() {
    let mut d = ArgonOne::legacy(
        Mock::new(&[
            Transaction::write(ADDR, vec![40]),
            Transaction::write(ADDR, vec![80]).with_error(BusErrorKind::Other),
            Transaction::write(ADDR, vec![0xFF]).with_error(BusErrorKind::ArbitrationLoss),
        ]),
        ADDR,
    );
    d.set_duty(40.0).unwrap();
    assert_eq!(d.set_duty(80.0).unwrap_err().kind(), ErrorKind::Transient);
    assert_eq!(d.duty().unwrap(), 40.0);
    assert!(d.arm_power_cut().is_err());
    d.release().done();
}

#[test]
fn returns_invalid_without_bus_traffic_when_duty_is_out_of_range() {
    let mut d = ArgonOne::register(Mock::new(&[]), ADDR);
    assert_eq!(d.set_duty(100.5).unwrap_err().kind(), ErrorKind::Fatal);
    assert!(d.set_duty(f64::INFINITY).is_err());
    d.release().done();
}

#[test]
fn can_spin_up_before_a_lower_target_only() {
    let mut d = ArgonOne::legacy(
        Mock::new(&[
            Transaction::write(ADDR, vec![100]),
            Transaction::write(ADDR, vec![30]),
            // Same target again: one write, no spin-up.
            Transaction::write(ADDR, vec![30]),
            // Off: no spin-up.
            Transaction::write(ADDR, vec![0]),
            // Full: no spin-up.
            Transaction::write(ADDR, vec![100]),
        ]),
        ADDR,
    );
    let mut delay = CheckedDelay::new(&[one_second()]);
    d.set_duty_with_spin_up(30.0, &mut delay).unwrap();
    d.set_duty_with_spin_up(30.0, &mut delay).unwrap();
    d.set_duty_with_spin_up(0.0, &mut delay).unwrap();
    d.set_duty_with_spin_up(100.0, &mut delay).unwrap();
    delay.done();
    d.release().done();
}

// ---- emulator ----

fn bus_with(mcu: chip::ArgonOne) -> SimBus {
    let bus = SimBus::new();
    bus.attach(ADDR, mcu);
    bus
}

fn mcu<R>(bus: &SimBus, f: impl FnOnce(&mut chip::ArgonOne) -> R) -> R {
    bus.with_chip(ADDR, f).unwrap()
}

#[test]
fn can_detect_register_firmware_on_the_emulator_and_leave_duty_as_found() {
    let bus = bus_with(chip::ArgonOne::register());
    let mut d = ArgonOne::register(bus.clone(), ADDR);
    d.set_duty(45.0).unwrap();
    let d = ArgonOne::detect(bus.clone(), ADDR, &mut NoopDelay::new()).unwrap();
    assert_eq!(d.firmware(), Firmware::Register);
    assert_eq!(mcu(&bus, |c| c.duty()), 45);
    assert!(!mcu(&bus, |c| c.vanished()));
}

#[test]
fn can_detect_legacy_firmware_on_the_emulator() {
    let bus = bus_with(chip::ArgonOne::legacy());
    let mut d = ArgonOne::detect(bus.clone(), ADDR, &mut NoopDelay::new()).unwrap();
    assert_eq!(d.firmware(), Firmware::Legacy);
    assert!(!mcu(&bus, |c| c.vanished()), "detection reads only 0x80");
    d.set_duty(70.0).unwrap();
    assert_eq!(mcu(&bus, |c| c.duty()), 70);
    assert_eq!(d.duty().unwrap(), 70.0);
}

#[test]
fn can_drive_register_duty_and_read_it_back_on_the_emulator() {
    let bus = bus_with(chip::ArgonOne::register());
    let mut d = ArgonOne::register(bus.clone(), ADDR);
    d.set_duty(30.0).unwrap();
    assert_eq!(mcu(&bus, |c| c.duty()), 30);
    assert_eq!(d.duty().unwrap(), 30.0);
    assert_eq!(mcu(&bus, |c| c.reads()), 1);
}

#[test]
fn can_cut_power_after_arming_when_uart_tx_drops() {
    for (mcu_fw, fw) in [
        (chip::ArgonOne::legacy(), Firmware::Legacy),
        (chip::ArgonOne::register(), Firmware::Register),
    ] {
        let bus = bus_with(mcu_fw);
        let mut d = ArgonOne::new(bus.clone(), ADDR, fw);
        d.set_duty(60.0).unwrap();
        mcu(&bus, |c| c.uart_tx_low());
        assert!(
            mcu(&bus, |c| c.powered()),
            "{fw:?}: not armed, TX low is traffic"
        );
        d.arm_power_cut().unwrap();
        assert!(mcu(&bus, |c| c.armed()), "{fw:?}");
        assert!(mcu(&bus, |c| c.powered()), "{fw:?}: armed, still running");
        mcu(&bus, |c| c.uart_tx_low());
        assert!(!mcu(&bus, |c| c.powered()), "{fw:?}: power cut");
        assert_eq!(mcu(&bus, |c| c.duty()), 0, "{fw:?}");
        assert!(d.set_duty(50.0).is_err(), "{fw:?}: nobody home");
        mcu(&bus, |c| c.press_power());
        assert!(mcu(&bus, |c| c.powered()));
        assert!(!mcu(&bus, |c| c.armed()), "a new boot starts disarmed");
    }
}

#[test]
fn returns_nack_after_a_dump_until_power_cycle() {
    let bus = bus_with(chip::ArgonOne::register());
    let mut d = ArgonOne::register(bus.clone(), ADDR);
    d.set_duty(30.0).unwrap();

    // What i2cdump does: read register 0x00 (and on).
    let mut raw = bus.clone();
    let mut b = [0u8; 1];
    assert!(raw.write_read(ADDR, &[0x00], &mut b).is_err());
    assert!(mcu(&bus, |c| c.vanished()));
    assert_eq!(mcu(&bus, |c| c.duty()), 100, "the fan sticks at full");

    let e = d.set_duty(20.0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("address"), "{e}");
    assert!(d.duty().is_err());
    assert_eq!(mcu(&bus, |c| c.duty()), 100);
    assert!(
        !bus.addresses().contains(&ADDR),
        "a scan no longer finds it"
    );

    mcu(&bus, |c| c.power_cycle());
    assert!(bus.addresses().contains(&ADDR));
    d.set_duty(20.0).unwrap();
    assert_eq!(d.duty().unwrap(), 20.0);
}

#[test]
fn can_make_the_emulator_vanish_by_any_read_but_0x80() {
    type Provoke = fn(&mut SimBus) -> bool;
    let cases: [(&str, Provoke); 4] = [
        ("firmware version 0x81", |b| {
            b.write_read(ADDR, &[0x81], &mut [0u8; 1]).is_err()
        }),
        ("two bytes from 0x80", |b| {
            b.write_read(ADDR, &[REG_DUTY], &mut [0u8; 2]).is_err()
        }),
        ("read without a pointer", |b| {
            b.read(ADDR, &mut [0u8; 1]).is_err()
        }),
        ("pointer used up", |b| {
            b.write_read(ADDR, &[REG_DUTY], &mut [0u8; 1]).unwrap();
            b.read(ADDR, &mut [0u8; 1]).is_err()
        }),
    ];
    for fw in [chip::ArgonOne::legacy(), chip::ArgonOne::register()] {
        for (what, provoke) in cases {
            let mut bus = bus_with(fw.clone());
            assert!(provoke(&mut bus), "{what}");
            assert!(mcu(&bus, |c| c.vanished()), "{:?}: {what}", fw.firmware());
            assert!(bus.write(ADDR, &[50]).is_err(), "{what}: off the bus");
        }
    }
}

#[test]
fn can_ignore_register_writes_on_legacy_firmware() {
    let bus = bus_with(chip::ArgonOne::legacy());
    let mut d = ArgonOne::register(bus.clone(), ADDR);
    d.set_duty(80.0).unwrap();
    assert_eq!(
        mcu(&bus, |c| c.duty()),
        0,
        "write byte data changes nothing"
    );
    d.arm_power_cut().unwrap();
    assert!(!mcu(&bus, |c| c.armed()));
}
