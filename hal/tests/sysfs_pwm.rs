//! sysfs PWM backend on a generated Pi 5 tree (RP1 `pwmchip2`, 4
//! channels): export with the tree's export emulation, bounded wait,
//! period/duty/polarity/enable, and a fan in percent, inverted or not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use onprem_hal::ErrorKind;
use onprem_hal::devices::Fan;
use onprem_hal::sim::sysfs::Pi5;
use onprem_hal::sysfs::pwm::{FanConfig, Polarity, PwmChip, SysfsPwmFan};

fn pi5() -> (tempfile::TempDir, Pi5) {
    let dir = tempfile::tempdir().unwrap();
    let b = Pi5::build(dir.path()).unwrap();
    (dir, b)
}

#[test]
fn can_export_channel_once_kernel_creates_it() {
    let (_d, b) = pi5();
    let chip = PwmChip::open(&b.sysfs(), 2).unwrap();
    assert_eq!(chip.npwm().unwrap(), 4);
    chip.request_export(3).unwrap();
    assert_eq!(b.tree.read("class/pwm/pwmchip2/export").unwrap(), "3");
    assert!(!b.pwm.exported(3));
    // What the kernel does with the write.
    assert_eq!(b.pwm.service().unwrap(), vec![3]);
    let ch = chip.wait_exported(3, Duration::from_millis(200)).unwrap();
    assert_eq!(ch.index(), 3);
    assert_eq!(ch.period_ns().unwrap(), 0);
    assert!(!ch.is_enabled().unwrap());
}

#[test]
fn can_export_channel_that_is_already_exported_without_writing_export() {
    let (_d, b) = pi5();
    b.pwm.precreate(0).unwrap();
    let chip = PwmChip::open(&b.sysfs(), 2).unwrap();
    let ch = chip.export(0, Duration::from_millis(200)).unwrap();
    assert_eq!(ch.index(), 0);
    assert_eq!(b.tree.read("class/pwm/pwmchip2/export").unwrap(), "");
}

#[test]
fn returns_transient_timeout_when_export_never_appears() {
    let (_d, b) = pi5();
    let chip = PwmChip::open(&b.sysfs(), 2).unwrap();
    // Nobody services the export: the channel never appears.
    let e = chip.export(1, Duration::from_millis(30)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("pwmchip2/pwm1"), "{e}");
}

#[test]
fn returns_invalid_when_channel_is_beyond_npwm() {
    let (_d, b) = pi5();
    let chip = PwmChip::open(&b.sysfs(), 2).unwrap();
    let e = chip.request_export(4).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("npwm = 4"), "{e}");
}

#[test]
fn returns_not_found_when_chip_is_absent() {
    let (_d, b) = pi5();
    let e = PwmChip::open(&b.sysfs(), 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("pwmchip0"), "{e}");
}

#[test]
fn can_find_chip_by_device_whatever_its_number() {
    let (_d, b) = pi5();
    let chip = PwmChip::find_by_device(&b.sysfs(), "1f00098000.pwm").unwrap();
    assert!(chip.dir().ends_with("pwmchip2"));
    assert!(PwmChip::find_by_device(&b.sysfs(), "7e20c000.pwm").is_err());
}

#[test]
fn can_set_period_duty_polarity_and_enable() {
    let (_d, b) = pi5();
    b.pwm.precreate(2).unwrap();
    let ch = PwmChip::open(&b.sysfs(), 2).unwrap().channel(2).unwrap();
    ch.set_period_ns(40_000).unwrap();
    ch.set_duty_cycle_ns(10_000).unwrap();
    ch.set_polarity(Polarity::Inversed).unwrap();
    ch.set_enabled(true).unwrap();
    assert_eq!(b.pwm.period(2).unwrap(), 40_000);
    assert_eq!(b.pwm.duty_cycle(2).unwrap(), 10_000);
    assert_eq!(b.pwm.polarity(2).unwrap(), "inversed");
    assert!(b.pwm.enabled(2).unwrap());
    assert_eq!(ch.polarity().unwrap(), Polarity::Inversed);
    // A shorter period than the duty cycle: the duty is zeroed first.
    ch.configure_period_ns(5_000).unwrap();
    assert_eq!(b.pwm.duty_cycle(2).unwrap(), 0);
    assert_eq!(b.pwm.period(2).unwrap(), 5_000);
}

#[test]
fn can_drive_fan_in_percent_of_duty_cycle() {
    let (_d, b) = pi5();
    b.pwm.precreate(0).unwrap();
    let ch = PwmChip::open(&b.sysfs(), 2).unwrap().channel(0).unwrap();
    let mut fan = SysfsPwmFan::new(ch, FanConfig::default()).unwrap();
    assert_eq!(b.pwm.period(0).unwrap(), 40_000);
    assert!(b.pwm.enabled(0).unwrap());
    fan.set_duty(75.0).unwrap();
    assert_eq!(b.pwm.duty_cycle(0).unwrap(), 30_000);
    assert_eq!(fan.duty().unwrap(), 75.0);
    assert_eq!(fan.rpm().unwrap(), None);
    assert!(fan.set_duty(-1.0).is_err());
    assert_eq!(b.pwm.duty_cycle(0).unwrap(), 30_000);
}

#[test]
fn can_drive_inverted_fan_and_set_hardware_polarity() {
    let (_d, b) = pi5();
    b.pwm.precreate(1).unwrap();
    let ch = PwmChip::open(&b.sysfs(), 2).unwrap().channel(1).unwrap();
    let mut fan = SysfsPwmFan::new(
        ch,
        FanConfig {
            period_ns: 41_566,
            polarity: Some(Polarity::Normal),
            invert: true,
        },
    )
    .unwrap();
    fan.set_duty(100.0).unwrap();
    assert_eq!(b.pwm.duty_cycle(1).unwrap(), 0);
    fan.set_duty(25.0).unwrap();
    assert_eq!(b.pwm.duty_cycle(1).unwrap(), 31_175);
    assert!((fan.duty().unwrap() - 25.0).abs() < 0.01);
    assert_eq!(b.pwm.polarity(1).unwrap(), "normal");
}

#[test]
fn can_unexport_channel() {
    let (_d, b) = pi5();
    b.pwm.precreate(3).unwrap();
    let chip = PwmChip::open(&b.sysfs(), 2).unwrap();
    chip.unexport(3).unwrap();
    b.pwm.service().unwrap();
    assert!(!b.pwm.exported(3));
    assert_eq!(chip.channel(3).unwrap_err().kind(), ErrorKind::Fatal);
}
