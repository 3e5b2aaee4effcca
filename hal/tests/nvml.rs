//! The NVML backend against the fake libnvidia-ml: enumeration and full
//! telemetry, readings a GPU does not support (Jetson on JetPack 6),
//! permission and range errors on the power limit, a GPU that falls off the
//! bus, XID events, a missing library or driver, and an older driver that
//! lacks symbols. Each test installs its own copy of the library, so each
//! has its own GPUs.
#![cfg(all(feature = "nvml", feature = "sim"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use onprem_hal::devices::{Gpu as _, GpuEvent, GpuSample};
use onprem_hal::nvml::{Gpu, Nvml};
use onprem_hal::sim::nvml::{Driver, FakeGpu, FakeNvml, Fault};
use onprem_hal::{Error, ErrorKind};
use tempfile::TempDir;

/// A fake with the given GPUs, and NVML opened on it.
fn setup(driver: Driver, gpus: Vec<FakeGpu>) -> (TempDir, FakeNvml, Nvml) {
    let dir = tempfile::tempdir().unwrap();
    let mut fake = FakeNvml::install_driver(dir.path(), driver).unwrap();
    for g in gpus {
        fake.add_gpu(g).unwrap();
    }
    let nvml = Nvml::open(Some(fake.lib_path())).unwrap();
    (dir, fake, nvml)
}

fn gpus(nvml: &Nvml) -> Vec<Gpu> {
    let e = nvml.gpus().unwrap();
    assert!(e.failed.is_empty(), "{:?}", e.failed);
    e.gpus
}

fn two_gpus() -> Vec<FakeGpu> {
    let mut a = FakeGpu::datacenter("NVIDIA H100 80GB HBM3");
    a.temperature_celsius = Some(52);
    a.power_mw = Some(312_500);
    a.energy_mj = Some(7_250_000);
    a.utilization = Some((87, 41));
    a.memory = Some((85_899_345_920, 42_949_672_960));
    a.clocks_mhz = Some([1755, 1755, 2619, 1530]);
    a.enforced_power_limit_mw = Some(650_000);
    a.ecc_errors = Some((3, 1));
    a.throttle_reasons = Some(0x4);
    let mut b = FakeGpu::workstation("NVIDIA RTX 6000 Ada Generation");
    b.uuid = Some("GPU-5e1f7a2b-0000-4000-8000-000000000001".to_owned());
    b.fans = Some(vec![40, 45]);
    vec![a, b]
}

#[test]
fn can_enumerate_two_gpus_with_full_telemetry() {
    let (_dir, _fake, nvml) = setup(Driver::Current, two_gpus());
    assert!(nvml.is_present());
    assert_eq!(nvml.absent_reason(), None);
    assert_eq!(nvml.driver_version(), Some("550.54.15"));
    let mut gpus = gpus(&nvml);
    assert_eq!(gpus.len(), 2);

    let id = gpus[0].identity().clone();
    assert_eq!(id.index, 0);
    assert_eq!(id.name, "NVIDIA H100 80GB HBM3");
    assert!(id.uuid.starts_with("GPU-"), "{}", id.uuid);
    let s = gpus[0].sample().unwrap();
    assert_eq!(
        s,
        GpuSample {
            temperature_celsius: Some(52.0),
            power_watts: Some(312.5),
            energy_joules: Some(7250.0),
            utilization_percent: Some(87.0),
            memory_utilization_percent: Some(41.0),
            memory_used_bytes: Some(42_949_672_960.0),
            memory_total_bytes: Some(85_899_345_920.0),
            sm_clock_hz: Some(1755e6),
            memory_clock_hz: Some(2619e6),
            fan_percent: vec![],
            power_limit_watts: Some(650.0),
            ecc_corrected_total: Some(3.0),
            ecc_uncorrected_total: Some(1.0),
            throttle_reasons: Some(0x4),
        }
    );
    assert!(gpus[0].sample_errors().is_empty());
    assert_eq!(gpus[0].power_limit_range_watts().unwrap(), (200.0, 700.0));

    let id = gpus[1].identity().clone();
    assert_eq!(id.index, 1);
    assert_eq!(id.name, "NVIDIA RTX 6000 Ada Generation");
    assert_eq!(id.uuid, "GPU-5e1f7a2b-0000-4000-8000-000000000001");
    let s = gpus[1].sample().unwrap();
    assert_eq!(s.fan_percent, vec![40.0, 45.0]);
    assert_eq!(s.power_limit_watts, Some(300.0));
    // ECC off: no counts, and that is not an error.
    assert_eq!(s.ecc_corrected_total, None);
    assert_eq!(s.ecc_uncorrected_total, None);
    assert!(gpus[1].sample_errors().is_empty());
}

#[test]
fn can_follow_changing_telemetry() {
    let (_dir, mut fake, nvml) = setup(Driver::Current, two_gpus());
    let mut gpus = gpus(&nvml);
    fake.set_temperature(1, 81).unwrap();
    fake.set_power_mw(1, 287_000).unwrap();
    fake.set_utilization(1, 100, 73).unwrap();
    fake.set_memory_used(1, 1 << 30).unwrap();
    fake.set_energy_mj(1, 9_000).unwrap();
    fake.set_fans(1, vec![90, 95]).unwrap();
    fake.set_throttle_reasons(1, 0x20).unwrap();
    let s = gpus[1].sample().unwrap();
    assert_eq!(s.temperature_celsius, Some(81.0));
    assert_eq!(s.power_watts, Some(287.0));
    assert_eq!(s.utilization_percent, Some(100.0));
    assert_eq!(s.memory_utilization_percent, Some(73.0));
    assert_eq!(s.memory_used_bytes, Some((1u64 << 30) as f64));
    assert_eq!(s.energy_joules, Some(9.0));
    assert_eq!(s.fan_percent, vec![90.0, 95.0]);
    assert_eq!(s.throttle_reasons, Some(0x20));
    // The other GPU did not change.
    assert_eq!(gpus[0].sample().unwrap().temperature_celsius, Some(52.0));
}

#[test]
fn can_sample_a_gpu_that_supports_no_reading() {
    // Jetson on JetPack 6: enumerates, NotSupported for everything.
    let (_dir, _fake, nvml) = setup(Driver::Current, vec![FakeGpu::bare("Orin (nvgpu)")]);
    let mut gpus = gpus(&nvml);
    assert_eq!(gpus[0].identity().name, "Orin (nvgpu)");
    assert_eq!(gpus[0].sample().unwrap(), GpuSample::default());
    assert!(gpus[0].sample_errors().is_empty());
    let e = gpus[0].power_limit_range_watts().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    let e = gpus[0].set_power_limit_watts(15.0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}

#[test]
fn returns_none_when_one_reading_is_not_supported() {
    let (_dir, mut fake, nvml) = setup(Driver::Current, two_gpus());
    let mut gpus = gpus(&nvml);
    fake.inject("nvmlDeviceGetPowerUsage", Some(1), Fault::NotSupported)
        .unwrap();
    fake.inject("nvmlDeviceGetNumFans", Some(1), Fault::NotSupported)
        .unwrap();
    let s = gpus[1].sample().unwrap();
    assert_eq!(s.power_watts, None);
    assert!(s.fan_percent.is_empty());
    assert_eq!(s.temperature_celsius, Some(35.0));
    assert!(gpus[1].sample_errors().is_empty());
    assert_eq!(gpus[0].sample().unwrap().power_watts, Some(312.5));
}

#[test]
fn returns_none_and_records_the_error_when_a_reading_is_denied() {
    let (_dir, mut fake, nvml) = setup(Driver::Current, two_gpus());
    let mut gpus = gpus(&nvml);
    fake.inject("nvmlDeviceGetTemperature", None, Fault::NoPermission)
        .unwrap();
    let s = gpus[0].sample().unwrap();
    assert_eq!(s.temperature_celsius, None);
    assert_eq!(s.power_watts, Some(312.5));
    let errors = gpus[0].sample_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(matches!(errors[0], Error::Denied { .. }), "{:?}", errors[0]);
    assert!(errors[0].to_string().contains("nvmlDeviceGetTemperature"));
    fake.clear_fault("nvmlDeviceGetTemperature", None).unwrap();
    assert_eq!(gpus[0].sample().unwrap().temperature_celsius, Some(52.0));
    assert!(gpus[0].sample_errors().is_empty());
}

#[test]
fn returns_the_error_when_no_reading_succeeds() {
    let (_dir, mut fake, nvml) = setup(Driver::Current, vec![FakeGpu::bare("Orin (nvgpu)")]);
    let mut gpus = gpus(&nvml);
    fake.inject("nvmlDeviceGetTemperature", Some(0), Fault::Unknown)
        .unwrap();
    let e = gpus[0].sample().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains("nvmlDeviceGetTemperature"), "{e}");
}

#[test]
fn can_set_a_power_limit_within_range() {
    let (_dir, fake, nvml) = setup(Driver::Current, two_gpus());
    let mut gpus = gpus(&nvml);
    assert_eq!(fake.power_limit_set_mw(0).unwrap(), None);
    gpus[0].set_power_limit_watts(450.0).unwrap();
    assert_eq!(fake.power_limit_set_mw(0).unwrap(), Some(450_000));
    assert_eq!(gpus[0].sample().unwrap().power_limit_watts, Some(450.0));
    gpus[0].set_power_limit_watts(200.0).unwrap();
    assert_eq!(fake.power_limit_set_mw(0).unwrap(), Some(200_000));
    assert_eq!(fake.power_limit_set_mw(1).unwrap(), None);
}

#[test]
fn can_forget_power_limits_on_a_driver_reset() {
    let (_dir, mut fake, nvml) = setup(Driver::Current, two_gpus());
    let mut gpus = gpus(&nvml);
    let default = gpus[0].sample().unwrap().power_limit_watts;
    gpus[0].set_power_limit_watts(450.0).unwrap();
    gpus[1].set_power_limit_watts(300.0).unwrap();
    fake.driver_reset().unwrap();
    assert_eq!(fake.power_limit_set_mw(0).unwrap(), None);
    assert_eq!(gpus[0].sample().unwrap().power_limit_watts, default);
    assert_eq!(fake.power_limit_set_mw(1).unwrap(), None);
    // Set again after the reset: kept until the next one.
    gpus[0].set_power_limit_watts(400.0).unwrap();
    assert_eq!(gpus[0].sample().unwrap().power_limit_watts, Some(400.0));
    assert_eq!(fake.power_limit_set_mw(0).unwrap(), Some(400_000));
}

#[test]
fn returns_denied_when_setting_a_limit_without_permission() {
    let (_dir, mut fake, nvml) = setup(Driver::Current, two_gpus());
    let mut gpus = gpus(&nvml);
    fake.inject(
        "nvmlDeviceSetPowerManagementLimit",
        Some(0),
        Fault::NoPermission,
    )
    .unwrap();
    let e = gpus[0].set_power_limit_watts(450.0).unwrap_err();
    assert!(matches!(e, Error::Denied { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert_eq!(fake.power_limit_set_mw(0).unwrap(), None);
}

#[test]
fn returns_invalid_when_the_limit_is_out_of_range() {
    let (_dir, mut fake, nvml) = setup(Driver::Current, two_gpus());
    let mut gpus = gpus(&nvml);
    for watts in [800.0, 199.9, -1.0, f64::NAN, f64::INFINITY] {
        let e = gpus[0].set_power_limit_watts(watts).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{watts}: {e:?}");
    }
    let e = gpus[0].set_power_limit_watts(800.0).unwrap_err();
    assert!(e.to_string().contains("200–700 W"), "{e}");
    // Without constraints to check against, NVML's own check answers.
    fake.inject(
        "nvmlDeviceGetPowerManagementLimitConstraints",
        Some(0),
        Fault::NotSupported,
    )
    .unwrap();
    let e = gpus[0].set_power_limit_watts(800.0).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    assert!(
        e.to_string().contains("nvmlDeviceSetPowerManagementLimit"),
        "{e}"
    );
    assert_eq!(fake.power_limit_set_mw(0).unwrap(), None);
}

#[test]
fn returns_gone_when_a_gpu_falls_off_the_bus() {
    let (_dir, mut fake, nvml) = setup(Driver::Current, two_gpus());
    let mut gpus = gpus(&nvml);
    fake.lose_gpu(0).unwrap();
    let e = gpus[0].sample().unwrap_err();
    assert!(matches!(e, Error::Gone { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Fatal);
    let e = gpus[0].set_power_limit_watts(450.0).unwrap_err();
    assert!(matches!(e, Error::Gone { .. }), "{e:?}");
    let e = gpus[0].events().unwrap_err();
    assert!(matches!(e, Error::Gone { .. }), "{e:?}");
    // The other GPU carries on.
    assert_eq!(gpus[1].sample().unwrap().temperature_celsius, Some(35.0));
    assert_eq!(gpus[1].events().unwrap(), vec![]);
}

#[test]
fn returns_gone_when_a_reading_finds_the_gpu_lost() {
    let (_dir, mut fake, nvml) = setup(Driver::Current, two_gpus());
    let mut gpus = gpus(&nvml);
    fake.inject("nvmlDeviceGetPowerUsage", Some(0), Fault::GpuLost)
        .unwrap();
    let e = gpus[0].sample().unwrap_err();
    assert!(matches!(e, Error::Gone { .. }), "{e:?}");
    assert!(e.to_string().contains("nvmlDeviceGetPowerUsage"), "{e}");
}

#[test]
fn can_list_a_lost_gpu_as_failed_at_enumeration() {
    let dir = tempfile::tempdir().unwrap();
    let mut fake = FakeNvml::install(dir.path()).unwrap();
    for g in two_gpus() {
        fake.add_gpu(g).unwrap();
    }
    fake.lose_gpu(1).unwrap();
    let nvml = Nvml::open(Some(fake.lib_path())).unwrap();
    let e = nvml.gpus().unwrap();
    assert_eq!(e.gpus.len(), 1);
    assert_eq!(e.gpus[0].identity().index, 0);
    assert_eq!(e.failed.len(), 1);
    assert_eq!(e.failed[0].0, 1);
    assert!(
        matches!(e.failed[0].1, Error::Gone { .. }),
        "{:?}",
        e.failed
    );
}

#[test]
fn can_deliver_xid_events() {
    let (_dir, mut fake, nvml) = setup(Driver::Current, two_gpus());
    let mut gpus = gpus(&nvml);
    fake.queue_xid(0, 79).unwrap();
    fake.queue_xid(1, 48).unwrap();
    fake.queue_xid(0, 999).unwrap();
    assert_eq!(
        gpus[0].events().unwrap(),
        vec![GpuEvent { xid: 79 }, GpuEvent { xid: 999 }]
    );
    assert_eq!(gpus[1].events().unwrap(), vec![GpuEvent { xid: 48 }]);
    // Delivered once.
    assert_eq!(gpus[0].events().unwrap(), vec![]);
    fake.queue_xid(0, 94).unwrap();
    assert_eq!(gpus[0].events().unwrap(), vec![GpuEvent { xid: 94 }]);
}

#[test]
fn returns_no_events_when_the_wait_times_out() {
    let (_dir, mut fake, nvml) = setup(Driver::Current, two_gpus());
    let mut gpus = gpus(&nvml);
    assert_eq!(gpus[0].events().unwrap(), vec![]);
    fake.queue_xid(0, 31).unwrap();
    fake.inject("nvmlEventSetWait_v2", None, Fault::Timeout)
        .unwrap();
    assert_eq!(gpus[0].events().unwrap(), vec![]);
    fake.clear_fault("nvmlEventSetWait_v2", None).unwrap();
    assert_eq!(gpus[0].events().unwrap(), vec![GpuEvent { xid: 31 }]);
}

#[test]
fn returns_unsupported_when_a_gpu_has_no_xid_events() {
    let mut g = FakeGpu::datacenter("NVIDIA A2");
    g.event_types = Some(0x4);
    let (_dir, _fake, nvml) = setup(Driver::Current, vec![g]);
    let mut gpus = gpus(&nvml);
    let e = gpus[0].events().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(gpus[0].sample().is_ok());
}

#[test]
fn returns_absent_when_the_library_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("libnvidia-ml.so.1");
    let nvml = Nvml::open(Some(&missing)).unwrap();
    assert!(!nvml.is_present());
    let reason = nvml.absent_reason().unwrap();
    assert!(reason.contains("libnvidia-ml.so.1"), "{reason}");
    let e = nvml.gpus().unwrap();
    assert!(e.gpus.is_empty() && e.failed.is_empty());
    assert_eq!(nvml.driver_version(), None);
}

#[test]
fn returns_absent_when_the_driver_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let mut fake = FakeNvml::install(dir.path()).unwrap();
    fake.add_gpu(FakeGpu::datacenter("NVIDIA H100")).unwrap();
    fake.inject("nvmlInit_v2", None, Fault::DriverNotLoaded)
        .unwrap();
    let nvml = Nvml::open(Some(fake.lib_path())).unwrap();
    assert!(!nvml.is_present());
    assert!(nvml.absent_reason().unwrap().contains("not loaded"));
    assert!(nvml.gpus().unwrap().gpus.is_empty());
}

#[test]
fn returns_denied_when_init_has_no_permission() {
    let dir = tempfile::tempdir().unwrap();
    let mut fake = FakeNvml::install(dir.path()).unwrap();
    fake.inject("nvmlInit_v2", None, Fault::NoPermission)
        .unwrap();
    let e = Nvml::open(Some(fake.lib_path())).unwrap_err();
    assert!(matches!(e, Error::Denied { .. }), "{e:?}");
}

#[test]
fn can_run_on_an_older_driver_that_lacks_symbols() {
    let (_dir, mut fake, nvml) = setup(Driver::Older, two_gpus());
    let mut gpus = gpus(&nvml);
    let s = gpus[0].sample().unwrap();
    // No nvmlDeviceGetTotalEnergyConsumption, nvmlDeviceGetMemoryInfo_v2,
    // nvmlDeviceGetNumFans: absent, not errors.
    assert_eq!(s.energy_joules, None);
    assert_eq!(s.memory_used_bytes, None);
    assert_eq!(s.memory_total_bytes, None);
    assert!(gpus[1].sample().unwrap().fan_percent.is_empty());
    assert!(gpus[0].sample_errors().is_empty());
    // What the old driver has still works.
    assert_eq!(s.temperature_celsius, Some(52.0));
    assert_eq!(s.power_watts, Some(312.5));
    gpus[0].set_power_limit_watts(450.0).unwrap();
    assert_eq!(fake.power_limit_set_mw(0).unwrap(), Some(450_000));
    // No events API.
    fake.queue_xid(0, 79).unwrap();
    let e = gpus[0].events().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    let e = gpus[1].set_fan_percent(0, 50.0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    // Dropping everything shuts NVML down without a panic.
    drop(gpus);
    drop(nvml);
}

#[test]
fn can_set_a_fan_and_give_it_back() {
    let (_dir, fake, nvml) = setup(Driver::Current, two_gpus());
    let mut gpus = gpus(&nvml);
    gpus[1].set_fan_percent(1, 60.0).unwrap();
    assert_eq!(fake.fan_manual_percent(1, 1).unwrap(), Some(60));
    assert_eq!(gpus[1].sample().unwrap().fan_percent, vec![40.0, 60.0]);
    gpus[1].restore_fan(1).unwrap();
    assert_eq!(fake.fan_manual_percent(1, 1).unwrap(), None);
    assert_eq!(gpus[1].sample().unwrap().fan_percent, vec![40.0, 45.0]);
    let e = gpus[1].set_fan_percent(0, 101.0).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    let e = gpus[1].set_fan_percent(2, 50.0).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    // Dropping the handle gives manual fans back to the driver.
    gpus[1].set_fan_percent(0, 80.0).unwrap();
    assert_eq!(fake.fan_manual_percent(1, 0).unwrap(), Some(80));
    drop(gpus);
    assert_eq!(fake.fan_manual_percent(1, 0).unwrap(), None);
}

#[test]
fn returns_error_when_installing_twice_in_one_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _fake = FakeNvml::install(dir.path()).unwrap();
    let e = FakeNvml::install(dir.path()).unwrap_err();
    assert!(
        matches!(&e, Error::Io { kind, .. } if *kind == std::io::ErrorKind::AlreadyExists),
        "{e:?}"
    );
}
