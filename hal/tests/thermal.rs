//! Thermal backend on generated trees: zones by type (not number),
//! temperature in m°C, governor policy and mode, cooling devices and the
//! zone they are bound to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use onprem_hal::ErrorKind;
use onprem_hal::devices::TemperatureSensor;
use onprem_hal::sim::sysfs::Tree;
use onprem_hal::sysfs::thermal::{CoolingDevice, Zone};

fn tree() -> (tempfile::TempDir, Tree) {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(dir.path()).unwrap();
    (dir, t)
}

#[test]
fn can_find_zone_by_type_and_read_temperature() {
    let (_d, mut t) = tree();
    t.add_zone("CPU-therm", 40.0).unwrap();
    let gpu = t.add_zone("GPU-therm", 38.5).unwrap();
    let mut z = Zone::open(&t.sysfs(), "GPU-therm").unwrap();
    assert_eq!(z.kind(), "GPU-therm");
    assert!(z.dir().ends_with("thermal_zone1"));
    assert_eq!(z.temperature_celsius().unwrap(), 38.5);
    gpu.set_celsius(-3.2).unwrap();
    assert_eq!(z.millicelsius().unwrap(), -3200);
}

#[test]
fn can_open_first_present_zone_of_several_types() {
    let (_d, mut t) = tree();
    t.add_zone("gpu-thermal", 50.0).unwrap();
    let z = Zone::open_any(&t.sysfs(), &["GPU-therm", "gpu-thermal"])
        .unwrap()
        .unwrap();
    assert_eq!(z.kind(), "gpu-thermal");
    assert!(Zone::open_any(&t.sysfs(), &["AO-therm"]).unwrap().is_none());
}

#[test]
fn returns_not_found_listing_types_when_zone_is_absent() {
    let (_d, mut t) = tree();
    t.add_zone("cpu-thermal", 40.0).unwrap();
    let e = Zone::open(&t.sysfs(), "gpu-thermal").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("cpu-thermal"), "{e}");
}

#[test]
fn returns_invalid_when_zone_type_is_ambiguous() {
    let (_d, mut t) = tree();
    t.add_zone("soc-thermal", 40.0).unwrap();
    t.add_zone("soc-thermal", 41.0).unwrap();
    let e = Zone::open(&t.sysfs(), "soc-thermal").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert_eq!(Zone::all(&t.sysfs()).unwrap().len(), 2);
}

#[test]
fn can_read_and_set_policy_and_mode() {
    let (_d, mut t) = tree();
    let sim = t.add_zone("cpu-thermal", 40.0).unwrap();
    let mut z = Zone::open(&t.sysfs(), "cpu-thermal").unwrap();
    assert_eq!(z.policy().unwrap(), "step_wise");
    assert_eq!(
        z.available_policies().unwrap(),
        vec!["step_wise".to_string(), "user_space".to_string()]
    );
    z.set_policy("user_space").unwrap();
    assert_eq!(sim.policy().unwrap(), "user_space");
    assert_eq!(z.mode().unwrap().as_deref(), Some("enabled"));
    z.set_mode("disabled").unwrap();
    assert_eq!(sim.mode().unwrap(), "disabled");
}

#[test]
fn returns_none_mode_on_kernels_without_it() {
    let (_d, mut t) = tree();
    let sim = t.add_zone("cpu-thermal", 40.0).unwrap();
    std::fs::remove_file(sim.dir().join("mode")).unwrap();
    let mut z = Zone::open(&t.sysfs(), "cpu-thermal").unwrap();
    assert_eq!(z.mode().unwrap(), None);
}

#[test]
fn can_read_cooling_devices_and_their_binding() {
    let (_d, mut t) = tree();
    let zone = t.add_zone("cpu-thermal", 40.0).unwrap();
    t.add_cooling_device("cpufreq-cpu0", 10).unwrap();
    let fan = t.add_cooling_device("pwm-fan", 4).unwrap();
    t.bind(&zone, &fan, 0).unwrap();
    let c = CoolingDevice::open(&t.sysfs(), "pwm-fan").unwrap();
    assert_eq!(c.max_state().unwrap(), 4);
    assert_eq!(c.cur_state().unwrap(), 0);
    c.set_cur_state(3).unwrap();
    assert_eq!(fan.cur_state().unwrap(), 3);
    assert_eq!(CoolingDevice::all(&t.sysfs()).unwrap().len(), 2);
    let mut z = Zone::open(&t.sysfs(), "cpu-thermal").unwrap();
    let bound = z.cooling_devices().unwrap();
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].kind(), "pwm-fan");
    assert_eq!(bound[0].dir(), c.dir());
}

#[test]
fn returns_transient_naming_path_when_zone_temp_cannot_be_read() {
    let (_d, mut t) = tree();
    let sim = t.add_zone("cpu-thermal", 40.0).unwrap();
    let mut z = Zone::open(&t.sysfs(), "cpu-thermal").unwrap();
    // A directory where the attribute should be: reading fails with EISDIR.
    std::fs::remove_file(sim.dir().join("temp")).unwrap();
    std::fs::create_dir(sim.dir().join("temp")).unwrap();
    let e = z.temperature_celsius().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("thermal_zone0/temp"), "{e}");
}
