//! hwmon backend on generated sysfs trees: lookup by name, device path and
//! driver (never by index, and surviving renumbering), fans with
//! `pwmN_enable` re-asserted, temperatures, rails by label with "NC"
//! refused, and the error classes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use onprem_hal::ErrorKind;
use onprem_hal::devices::{Fan, PowerMonitor, TemperatureSensor};
use onprem_hal::sim::sysfs::{Device, HwmonSpec, SimHwmon, Tree};
use onprem_hal::sysfs::hwmon::{Hwmon, HwmonFan, HwmonRail, HwmonTemp, Selector};

fn tree() -> (tempfile::TempDir, Tree) {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(dir.path()).unwrap();
    (dir, t)
}

fn add_fan(t: &mut Tree, index: u32) -> SimHwmon {
    t.add_hwmon(
        HwmonSpec::new(
            "pwmfan",
            Device::new("devices/platform/cooling_fan").driver("bus/platform/drivers/pwm-fan"),
        )
        .index(index)
        .attr("pwm1", "0")
        .attr("pwm1_enable", "1")
        .attr("fan1_input", "0"),
    )
    .unwrap()
}

fn add_tmp(t: &mut Tree, dev: &str, index: u32) -> SimHwmon {
    t.add_hwmon(
        HwmonSpec::new(
            "tmp102",
            Device::new(&format!("devices/platform/soc/fe804000.i2c/i2c-1/{dev}"))
                .driver("bus/i2c/drivers/tmp102"),
        )
        .index(index)
        .attr("temp1_input", "0"),
    )
    .unwrap()
}

#[test]
fn can_find_hwmon_by_name() {
    let (_d, mut t) = tree();
    add_tmp(&mut t, "1-0048", 0);
    add_fan(&mut t, 1);
    let mut h = Hwmon::open(&t.sysfs(), Selector::name("pwmfan")).unwrap();
    assert_eq!(h.name().unwrap(), "pwmfan");
    assert!(
        h.dir().ends_with("cooling_fan/hwmon/hwmon1"),
        "{:?}",
        h.dir()
    );
}

#[test]
fn can_find_hwmon_by_device_path_absolute_or_suffix() {
    let (_d, mut t) = tree();
    let a = add_tmp(&mut t, "1-0048", 0);
    let b = add_tmp(&mut t, "1-0049", 1);
    a.set("temp1_input", "21000").unwrap();
    b.set("temp1_input", "35500").unwrap();
    // As a configuration written for /sys names it: through the bus link.
    let h = Hwmon::open(&t.sysfs(), Selector::device("/sys/bus/i2c/devices/1-0049")).unwrap();
    assert_eq!(HwmonTemp::new(h, 1).temperature_celsius().unwrap(), 35.5);
    // As a trailing part of the resolved device path.
    let h = Hwmon::open(&t.sysfs(), Selector::device("i2c-1/1-0048")).unwrap();
    assert_eq!(HwmonTemp::new(h, 1).temperature_celsius().unwrap(), 21.0);
}

#[test]
fn can_find_hwmon_by_driver() {
    let (_d, mut t) = tree();
    add_tmp(&mut t, "1-0048", 0);
    add_fan(&mut t, 1);
    let mut h = Hwmon::open(&t.sysfs(), Selector::driver("pwm-fan")).unwrap();
    assert_eq!(h.name().unwrap(), "pwmfan");
    let h = Hwmon::open(
        &t.sysfs(),
        Selector::driver("tmp102")
            .with_device("1-0048")
            .with_name("tmp102"),
    )
    .unwrap();
    assert!(h.device_path().unwrap().ends_with("1-0048"));
}

#[test]
fn can_find_hwmon_after_renumbering() {
    let (_d, mut t) = tree();
    let fan = add_fan(&mut t, 3);
    let mut open_before = HwmonFan::new(
        Hwmon::open(&t.sysfs(), Selector::name("pwmfan")).unwrap(),
        1,
    )
    .unwrap();
    assert!(open_before.hwmon().dir().ends_with("hwmon3"));

    // A reboot or driver rebind: hwmon3 becomes hwmon5.
    t.renumber_hwmon(&fan, 5).unwrap();
    assert_eq!(fan.index().unwrap(), 5);
    assert!(!t.path("class/hwmon/hwmon3").exists());

    // A fresh open finds hwmon5.
    let h = Hwmon::open(&t.sysfs(), Selector::name("pwmfan")).unwrap();
    assert!(h.dir().ends_with("hwmon5"), "{:?}", h.dir());

    // A handle opened before follows it.
    open_before.set_duty(100.0).unwrap();
    assert_eq!(fan.get_i64("pwm1").unwrap(), 255);
    assert!(open_before.hwmon().dir().ends_with("hwmon5"));
}

#[test]
fn returns_not_found_naming_selector_when_no_hwmon_matches() {
    let (_d, mut t) = tree();
    add_fan(&mut t, 0);
    let e = Hwmon::open(&t.sysfs(), Selector::name("emc2305")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("name=emc2305"), "{e}");
    assert!(e.to_string().contains("class/hwmon"), "{e}");
}

#[test]
fn returns_invalid_when_selector_matches_several_devices() {
    let (_d, mut t) = tree();
    add_tmp(&mut t, "1-0048", 0);
    add_tmp(&mut t, "1-0049", 1);
    let e = Hwmon::open(&t.sysfs(), Selector::name("tmp102")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("2 hwmon devices"), "{e}");
    assert_eq!(
        Hwmon::find_all(&t.sysfs(), &Selector::name("tmp102"))
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn can_set_duty_and_read_rpm_on_hwmon_fan() {
    let (_d, mut t) = tree();
    let sim = add_fan(&mut t, 0);
    let mut fan = HwmonFan::new(
        Hwmon::open(&t.sysfs(), Selector::name("pwmfan")).unwrap(),
        1,
    )
    .unwrap();
    fan.set_duty(50.0).unwrap();
    assert_eq!(sim.get_i64("pwm1").unwrap(), 128);
    fan.set_duty(0.0).unwrap();
    assert_eq!(sim.get_i64("pwm1").unwrap(), 0);
    sim.set("pwm1", "51").unwrap();
    assert_eq!(fan.duty().unwrap(), 20.0);
    sim.set("fan1_input", "2480").unwrap();
    assert_eq!(fan.rpm().unwrap(), Some(2480.0));
}

#[test]
fn can_reassert_pwm_enable_after_something_sets_it_to_2() {
    let (_d, mut t) = tree();
    let sim = add_fan(&mut t, 0);
    let mut fan = HwmonFan::new(
        Hwmon::open(&t.sysfs(), Selector::name("pwmfan")).unwrap(),
        1,
    )
    .unwrap();
    assert!(!fan.assert_manual().unwrap());
    // Another tool hands the fan to automatic mode.
    sim.set("pwm1_enable", "2").unwrap();
    assert!(fan.assert_manual().unwrap());
    assert_eq!(sim.get_i64("pwm1_enable").unwrap(), 1);
    assert!(!fan.assert_manual().unwrap());
    // set_duty re-asserts too.
    sim.set("pwm1_enable", "2").unwrap();
    fan.set_duty(30.0).unwrap();
    assert_eq!(sim.get_i64("pwm1_enable").unwrap(), 1);
    assert_eq!(sim.get_i64("pwm1").unwrap(), 77);
}

#[test]
fn returns_none_rpm_and_keeps_manual_when_driver_lacks_tach_and_enable() {
    let (_d, mut t) = tree();
    let sim = add_fan(&mut t, 0);
    sim.remove("fan1_input").unwrap();
    sim.remove("pwm1_enable").unwrap();
    let mut fan = HwmonFan::new(
        Hwmon::open(&t.sysfs(), Selector::name("pwmfan")).unwrap(),
        1,
    )
    .unwrap();
    assert_eq!(fan.rpm().unwrap(), None);
    assert!(!fan.assert_manual().unwrap());
    fan.set_duty(100.0).unwrap();
    assert_eq!(sim.get_i64("pwm1").unwrap(), 255);
}

#[test]
fn returns_invalid_without_writing_when_duty_is_out_of_range() {
    let (_d, mut t) = tree();
    let sim = add_fan(&mut t, 0);
    sim.set("pwm1", "42").unwrap();
    let mut fan = HwmonFan::new(
        Hwmon::open(&t.sysfs(), Selector::name("pwmfan")).unwrap(),
        1,
    )
    .unwrap();
    assert_eq!(fan.set_duty(120.0).unwrap_err().kind(), ErrorKind::Fatal);
    assert!(fan.set_duty(f64::NAN).is_err());
    assert_eq!(sim.get_i64("pwm1").unwrap(), 42);
}

#[test]
fn returns_fatal_naming_path_when_fan_is_gone() {
    let (_d, mut t) = tree();
    let sim = add_fan(&mut t, 0);
    let mut fan = HwmonFan::new(
        Hwmon::open(&t.sysfs(), Selector::name("pwmfan")).unwrap(),
        1,
    )
    .unwrap();
    // The driver is unbound: the hwmon device disappears.
    let dir = sim.dir().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(t.path("class/hwmon/hwmon0")).unwrap();
    let e = fan.set_duty(50.0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("name=pwmfan"), "{e}");
}

#[test]
fn returns_invalid_when_attribute_holds_garbage() {
    let (_d, mut t) = tree();
    let sim = add_tmp(&mut t, "1-0048", 0);
    sim.set("temp1_input", "n/a").unwrap();
    let h = Hwmon::open(&t.sysfs(), Selector::name("tmp102")).unwrap();
    let e = HwmonTemp::new(h, 1).temperature_celsius().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("temp1_input"), "{e}");
}

#[test]
fn can_read_negative_temperature_by_label() {
    let (_d, mut t) = tree();
    t.add_hwmon(
        HwmonSpec::new(
            "cpu_thermal",
            Device::new("devices/virtual/thermal/thermal_zone0"),
        )
        .attr("temp1_input", "-5250")
        .attr("temp1_label", "cpu"),
    )
    .unwrap();
    let h = Hwmon::open(&t.sysfs(), Selector::name("cpu_thermal")).unwrap();
    let mut s = HwmonTemp::by_label(h, "cpu").unwrap();
    assert_eq!(s.temperature_celsius().unwrap(), -5.25);
}

fn add_ina(t: &mut Tree) -> SimHwmon {
    t.add_ina3221_hwmon(
        "devices/platform/bus@0/c240000.i2c/i2c-1",
        "1-0041",
        ["NC", "VDDQ_VDD2_1V8AO", "NC"],
    )
    .unwrap()
    .hwmon()
    .cloned()
    .unwrap()
}

#[test]
fn can_read_rail_by_label_with_power_from_volts_times_amps() {
    let (_d, mut t) = tree();
    let sim = add_ina(&mut t);
    sim.set("in2_input", "1800").unwrap();
    sim.set("curr2_input", "1250").unwrap();
    let h = Hwmon::open(&t.sysfs(), Selector::name("ina3221")).unwrap();
    let mut r = HwmonRail::by_label(h, "VDDQ_VDD2_1V8AO").unwrap();
    assert_eq!(r.index(), 2);
    assert_eq!(r.bus_volts().unwrap(), 1.8);
    assert_eq!(r.current_amps().unwrap(), 1.25);
    assert!((r.power_watts().unwrap() - 2.25).abs() < 1e-9);
}

#[test]
fn can_read_rail_power_from_power_input_when_driver_has_it() {
    let (_d, mut t) = tree();
    t.add_hwmon(
        HwmonSpec::new("ina219", Device::new("devices/platform/soc/i2c-1/1-0040"))
            .attr("in1_input", "5000")
            .attr("curr1_input", "1000")
            .attr("power1_input", "4900000"),
    )
    .unwrap();
    let h = Hwmon::open(&t.sysfs(), Selector::name("ina219")).unwrap();
    assert_eq!(HwmonRail::new(h, 1).power_watts().unwrap(), 4.9);
}

#[test]
fn returns_error_when_rail_label_is_nc_or_unknown() {
    let (_d, mut t) = tree();
    add_ina(&mut t);
    let mut h = Hwmon::open(&t.sysfs(), Selector::name("ina3221")).unwrap();
    let labels = h.labels("in").unwrap();
    assert_eq!(labels[0], (1, "NC".to_string()));
    assert_eq!(labels.last().unwrap().0, 7);
    let e = HwmonRail::by_label(h.clone(), "NC").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    let e = HwmonRail::by_label(h, "VDD_IN").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("VDDQ_VDD2_1V8AO"), "{e}");
}
