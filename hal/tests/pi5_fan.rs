//! Pi 5 fan on a generated Pi 5 tree: the governor overrides `pwm1`
//! until the fan is taken over; take-over by the user_space governor or
//! by disabling the zone; re-assertion; hand-back restores everything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use onprem_hal::ErrorKind;
use onprem_hal::devices::Fan;
use onprem_hal::drivers::pi5_fan::{Pi5Fan, TakeOver};
use onprem_hal::sim::sysfs::Pi5;

fn pi5() -> (tempfile::TempDir, Pi5) {
    let dir = tempfile::tempdir().unwrap();
    let b = Pi5::build(dir.path()).unwrap();
    (dir, b)
}

#[test]
fn can_open_fan_without_changing_anything() {
    let (_d, b) = pi5();
    b.set_fan_rpm(3150).unwrap();
    let mut fan = Pi5Fan::open(&b.sysfs()).unwrap();
    assert!(!fan.is_taken_over());
    assert_eq!(fan.zone().unwrap().kind(), "cpu-thermal");
    assert_eq!(fan.rpm().unwrap(), Some(3150.0));
    assert_eq!(fan.duty().unwrap(), 0.0);
    assert_eq!(fan.cooling_state().unwrap(), Some(0));
    drop(fan);
    assert_eq!(b.zone.policy().unwrap(), "step_wise");
}

#[test]
fn can_see_governor_override_pwm_written_without_take_over() {
    let (_d, b) = pi5();
    b.set_cpu_celsius(70.0).unwrap();
    // A bare write to pwm1, as a naive tool would do.
    b.fan.set("pwm1", "200").unwrap();
    assert!(b.governor_tick().unwrap());
    assert_eq!(b.pwm1().unwrap(), 175);
    assert_eq!(b.cooling.cur_state().unwrap(), 3);
}

#[test]
fn can_take_over_from_governor_and_hand_back() {
    let (_d, b) = pi5();
    b.set_cpu_celsius(55.0).unwrap();
    b.governor_tick().unwrap();
    assert_eq!(b.pwm1().unwrap(), 75);
    b.fan.set("pwm1_enable", "2").unwrap();

    let mut fan = Pi5Fan::open(&b.sysfs()).unwrap();
    fan.take_over(TakeOver::UserSpaceGovernor).unwrap();
    assert!(fan.is_taken_over());
    assert_eq!(b.zone.policy().unwrap(), "user_space");
    assert_eq!(b.zone.mode().unwrap(), "enabled");
    assert_eq!(b.pwm1_enable().unwrap(), 1);

    fan.set_duty(80.0).unwrap();
    assert_eq!(b.pwm1().unwrap(), 204);
    // The temperature crosses trips; the governor no longer acts.
    b.set_cpu_celsius(76.0).unwrap();
    assert!(!b.governor_tick().unwrap());
    assert_eq!(b.pwm1().unwrap(), 204);

    fan.hand_back().unwrap();
    assert!(!fan.is_taken_over());
    assert_eq!(b.zone.policy().unwrap(), "step_wise");
    assert_eq!(b.pwm1_enable().unwrap(), 2);
    assert_eq!(b.cooling.cur_state().unwrap(), 1);
    // The governor is back in charge.
    assert!(b.governor_tick().unwrap());
    assert_eq!(b.pwm1().unwrap(), 250);
}

#[test]
fn can_take_over_by_disabling_zone() {
    let (_d, b) = pi5();
    let mut fan = Pi5Fan::open(&b.sysfs()).unwrap();
    fan.take_over(TakeOver::DisableZone).unwrap();
    assert_eq!(b.zone.mode().unwrap(), "disabled");
    assert_eq!(b.zone.policy().unwrap(), "step_wise");
    fan.set_duty(50.0).unwrap();
    b.set_cpu_celsius(80.0).unwrap();
    assert!(!b.governor_tick().unwrap());
    assert_eq!(b.pwm1().unwrap(), 128);
    let _hwmon = fan.release().unwrap();
    assert_eq!(b.zone.mode().unwrap(), "enabled");
}

#[test]
fn can_take_over_implicitly_on_first_duty_and_hand_back_on_drop() {
    let (_d, b) = pi5();
    {
        let mut fan = Pi5Fan::open(&b.sysfs()).unwrap();
        fan.set_duty(100.0).unwrap();
        assert_eq!(b.pwm1().unwrap(), 255);
        assert_eq!(b.zone.policy().unwrap(), "user_space");
    }
    assert_eq!(b.zone.policy().unwrap(), "step_wise");
}

#[test]
fn can_reassert_take_over_after_another_tool_resets_policy() {
    let (_d, b) = pi5();
    let mut fan = Pi5Fan::open(&b.sysfs()).unwrap();
    fan.take_over(TakeOver::UserSpaceGovernor).unwrap();
    assert!(!fan.assert_manual().unwrap());
    b.zone.set_policy("step_wise").unwrap();
    b.fan.set("pwm1_enable", "0").unwrap();
    assert!(fan.assert_manual().unwrap());
    assert_eq!(b.zone.policy().unwrap(), "user_space");
    assert_eq!(b.pwm1_enable().unwrap(), 1);
    // Each duty re-asserts too.
    b.zone.set_policy("step_wise").unwrap();
    fan.set_duty(40.0).unwrap();
    assert_eq!(b.zone.policy().unwrap(), "user_space");
}

#[test]
fn returns_unsupported_when_user_space_governor_is_missing() {
    let (_d, b) = pi5();
    b.zone.set_available_policies("step_wise").unwrap();
    let mut fan = Pi5Fan::open(&b.sysfs()).unwrap();
    let e = fan.take_over(TakeOver::UserSpaceGovernor).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("user_space"), "{e}");
    assert!(!fan.is_taken_over());
    assert_eq!(b.zone.policy().unwrap(), "step_wise");
    // The duty is refused rather than written for the governor to undo.
    assert!(fan.set_duty(60.0).is_err());
    assert_eq!(b.pwm1().unwrap(), 0);
    // Disabling the zone still works.
    fan.take_over(TakeOver::DisableZone).unwrap();
    fan.set_duty(60.0).unwrap();
    assert_eq!(b.pwm1().unwrap(), 153);
}

#[test]
fn returns_not_found_when_board_has_no_fan() {
    let dir = tempfile::tempdir().unwrap();
    let t = onprem_hal::sim::sysfs::Tree::new(dir.path()).unwrap();
    let e = Pi5Fan::open(&t.sysfs()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("pwmfan"), "{e}");
}
