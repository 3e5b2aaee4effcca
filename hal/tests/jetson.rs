//! Jetson sysfs backends on generated Nano (JetPack 4) and Orin Nano
//! (JetPack 6) trees: the two fan generations, INA3221 rails through IIO
//! and hwmon with NC and sum channels skipped, the GPU, nvfancontrol
//! detection, and nvpmodel through a fake executable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use onprem_hal::ErrorKind;
use onprem_hal::devices::{Fan, Gpu, PowerMonitor};
use onprem_hal::jetson::{
    JetsonFan, JetsonGpu, Nvfancontrol, Nvpmodel, PowerMode, Rail, RailDriver, Reboot, SetOutcome,
    rails,
};
use onprem_hal::sim::sysfs::{JetsonNano, JetsonOrinNano};

fn nano() -> (tempfile::TempDir, JetsonNano) {
    let dir = tempfile::tempdir().unwrap();
    let b = JetsonNano::build(dir.path()).unwrap();
    (dir, b)
}

fn orin() -> (tempfile::TempDir, JetsonOrinNano) {
    let dir = tempfile::tempdir().unwrap();
    let b = JetsonOrinNano::build(dir.path()).unwrap();
    (dir, b)
}

// ---------------------------------------------------------------- fan

#[test]
fn can_drive_jp4_fan_through_target_pwm_and_hand_back_temp_control() {
    let (_d, b) = nano();
    let mut fan = JetsonFan::open(&b.sysfs()).unwrap();
    let JetsonFan::Jp4(jp4) = &fan else {
        panic!("expected the JetPack 4 fan, got {fan:?}");
    };
    assert!(jp4.dir().ends_with("devices/pwm-fan"));
    assert_eq!(b.temp_control().unwrap(), 1);
    fan.set_duty(40.0).unwrap();
    assert_eq!(b.target_pwm().unwrap(), 102);
    assert_eq!(b.temp_control().unwrap(), 0);
    b.set_fan_rpm(2900).unwrap();
    assert_eq!(fan.rpm().unwrap(), Some(2900.0));
    assert!((fan.duty().unwrap() - 40.0).abs() < 0.01);
    // The kernel curve is switched back on by something else.
    b.tree.write("devices/pwm-fan/temp_control", "1\n").unwrap();
    assert!(fan.assert_manual().unwrap());
    assert_eq!(b.temp_control().unwrap(), 0);
    let JetsonFan::Jp4(mut jp4) = fan else {
        unreachable!()
    };
    jp4.hand_back().unwrap();
    assert_eq!(b.temp_control().unwrap(), 1);
}

#[test]
fn can_cap_jp4_fan_at_pwm_cap() {
    let (_d, b) = nano();
    b.tree.write("devices/pwm-fan/pwm_cap", "200\n").unwrap();
    let mut fan = JetsonFan::open(&b.sysfs()).unwrap();
    fan.set_duty(100.0).unwrap();
    assert_eq!(b.target_pwm().unwrap(), 200);
    assert_eq!(b.temp_control().unwrap(), 0);
    // Dropping the fan gives it back to the kernel curve.
    drop(fan);
    assert_eq!(b.temp_control().unwrap(), 1);
}

#[test]
fn can_drive_jp6_fan_with_rpm_from_separate_tach() {
    let (_d, b) = orin();
    let mut fan = JetsonFan::open(&b.sysfs()).unwrap();
    assert!(matches!(fan, JetsonFan::Jp6(_)), "{fan:?}");
    fan.set_duty(60.0).unwrap();
    assert_eq!(b.pwm1().unwrap(), 153);
    b.set_fan_rpm(4100).unwrap();
    assert_eq!(fan.rpm().unwrap(), Some(4100.0));
    b.fan.set("pwm1_enable", "2").unwrap();
    assert!(fan.assert_manual().unwrap());
    assert_eq!(b.pwm1_enable().unwrap(), 1);
}

#[test]
fn returns_not_found_when_neither_fan_generation_exists() {
    let dir = tempfile::tempdir().unwrap();
    let t = onprem_hal::sim::sysfs::Tree::new(dir.path()).unwrap();
    let e = JetsonFan::open(&t.sysfs()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("pwmfan"), "{e}");
}

#[test]
fn can_detect_nvfancontrol_owning_the_fan() {
    let (_d, b) = orin();
    let root = b.tree.root().to_path_buf();
    let n = Nvfancontrol::detect(&root, &b.tree.procfs()).unwrap();
    assert!(n.installed && n.has_status && n.running);
    assert!(n.owns_fan());
    b.tree.set_nvfancontrol(true, false).unwrap();
    let n = Nvfancontrol::detect(&root, &b.tree.procfs()).unwrap();
    assert!(n.installed && !n.running && !n.owns_fan());
    let (_d2, nano) = nano();
    let n = Nvfancontrol::detect(nano.tree.root(), &nano.tree.procfs()).unwrap();
    assert_eq!(n, Nvfancontrol::default());
}

// ---------------------------------------------------------------- rails

#[test]
fn can_list_iio_rails_on_jp4() {
    let (_d, b) = nano();
    let r = rails(&b.sysfs()).unwrap();
    let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]);
    assert!(
        r.iter()
            .all(|r| r.driver == RailDriver::Iio && r.device == "6-0040")
    );
    assert_eq!(r[1].channel, 1);
}

#[test]
fn can_read_iio_rail_with_power_in_milliwatts() {
    let (_d, b) = nano();
    b.ina.set_rail("POM_5V_GPU", 5.0, 0.8).unwrap();
    let mut r = Rail::open(&b.sysfs(), "POM_5V_GPU").unwrap();
    assert_eq!(r.bus_volts().unwrap(), 5.0);
    assert_eq!(r.current_amps().unwrap(), 0.8);
    assert_eq!(r.power_watts().unwrap(), 4.0);
}

#[test]
fn can_list_hwmon_rails_skipping_nc_and_sum_on_jp6() {
    let (_d, mut b) = orin();
    // A second monitor as on AGX Orin: NC, VDDQ_VDD2_1V8AO, NC.
    b.tree
        .add_ina3221_hwmon(
            "devices/platform/bus@0/c240000.i2c/i2c-1",
            "1-0041",
            ["NC", "VDDQ_VDD2_1V8AO", "NC"],
        )
        .unwrap();
    let r = rails(&b.sysfs()).unwrap();
    let names: Vec<(&str, &str, u32)> = r
        .iter()
        .map(|r| (r.name.as_str(), r.device.as_str(), r.channel))
        .collect();
    assert_eq!(
        names,
        [
            ("VDD_IN", "1-0040", 1),
            ("VDD_CPU_GPU_CV", "1-0040", 2),
            ("VDD_SOC", "1-0040", 3),
            ("VDDQ_VDD2_1V8AO", "1-0041", 2),
        ]
    );
    assert!(r.iter().all(|r| r.driver == RailDriver::Hwmon));
    assert_eq!(
        Rail::open(&b.sysfs(), "NC").unwrap_err().kind(),
        ErrorKind::Fatal
    );
}

#[test]
fn can_read_hwmon_rail_with_power_from_volts_times_amps() {
    let (_d, b) = orin();
    b.ina.set_rail("VDD_IN", 5.08, 1.5).unwrap();
    let mut r = Rail::open(&b.sysfs(), "VDD_IN").unwrap();
    assert_eq!(r.bus_volts().unwrap(), 5.08);
    assert_eq!(r.current_amps().unwrap(), 1.5);
    assert!((r.power_watts().unwrap() - 7.62).abs() < 1e-9);
}

#[test]
fn returns_not_found_listing_rails_when_name_is_unknown() {
    let (_d, b) = orin();
    let e = Rail::open(&b.sysfs(), "POM_5V_IN").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("VDD_SOC"), "{e}");
}

// ---------------------------------------------------------------- GPU

#[test]
fn can_sample_nano_gpu_from_gpu0_load_devfreq_and_gpu_therm() {
    let (_d, b) = nano();
    b.gpu.set_load_permille(437).unwrap();
    b.gpu.set_freq_hz(640_000_000).unwrap();
    b.gpu_zone.set_celsius(51.5).unwrap();
    b.ina.set_rail("POM_5V_GPU", 5.0, 0.4).unwrap();
    let mut gpu = JetsonGpu::open(&b.sysfs(), Some("POM_5V_GPU")).unwrap();
    let id = gpu.identity().clone();
    assert_eq!(id.index, 0);
    assert_eq!(id.uuid, "57000000.gpu");
    assert_eq!(id.name, "Jetson GPU (gm20b)");
    let s = gpu.sample().unwrap();
    assert_eq!(s.utilization_percent, Some(43.7));
    assert_eq!(s.sm_clock_hz, Some(640_000_000.0));
    assert_eq!(s.temperature_celsius, Some(51.5));
    assert_eq!(s.power_watts, Some(2.0));
    assert_eq!(s.power_limit_watts, None);
    assert_eq!(gpu.freq_range_hz().unwrap(), (76_800_000, 921_600_000));
}

#[test]
fn can_sample_orin_gpu_from_platform_gpu0_load_without_rail() {
    let (_d, b) = orin();
    b.gpu.set_load_permille(1000).unwrap();
    b.gpu_zone.set_celsius(60.0).unwrap();
    let mut gpu = JetsonGpu::open(&b.sysfs(), None).unwrap();
    assert_eq!(gpu.identity().uuid, "17000000.gpu");
    assert_eq!(gpu.identity().name, "Jetson GPU (ga10b)");
    let s = gpu.sample().unwrap();
    assert_eq!(s.utilization_percent, Some(100.0));
    assert_eq!(s.sm_clock_hz, Some(1_020_000_000.0));
    assert_eq!(s.temperature_celsius, Some(60.0));
    assert_eq!(s.power_watts, None);
    assert!(gpu.events().unwrap().is_empty());
}

#[test]
fn returns_unsupported_for_gpu_power_limit() {
    let (_d, b) = orin();
    let mut gpu = JetsonGpu::open(&b.sysfs(), None).unwrap();
    let e = gpu.power_limit_range_watts().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("nvpmodel"), "{e}");
    assert_eq!(
        gpu.set_power_limit_watts(10.0).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

#[test]
fn returns_not_found_when_no_devfreq_node_is_a_gpu() {
    let (_d, b) = orin();
    std::fs::write(
        b.tree
            .path("firmware/devicetree/base/bus@0/gpu@17000000/name"),
        "host1x\0",
    )
    .unwrap();
    let e = JetsonGpu::open(&b.sysfs(), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("devfreq"), "{e}");
}

// ---------------------------------------------------------------- nvpmodel

#[test]
fn can_query_nvpmodel() {
    let (_d, b) = nano();
    let nvp = Nvpmodel::new(b.nvpmodel.exe());
    assert_eq!(
        nvp.query().unwrap(),
        PowerMode {
            id: 0,
            name: "MAXN".into()
        }
    );
    let (modes, default) = nvp.modes().unwrap();
    assert_eq!(modes.len(), 2);
    assert_eq!(modes[1].name, "5W");
    assert_eq!(default, Some(0));
}

#[test]
fn can_set_nvpmodel_without_reboot() {
    let (_d, b) = nano();
    let nvp = Nvpmodel::new(b.nvpmodel.exe());
    assert_eq!(nvp.set(1, Reboot::Refuse).unwrap(), SetOutcome::Applied);
    assert_eq!(b.nvpmodel.mode().unwrap(), 1);
    assert_eq!(nvp.query().unwrap().name, "5W");
}

#[test]
fn can_refuse_nvpmodel_reboot_and_keep_mode() {
    let (_d, b) = orin();
    let nvp = Nvpmodel::new(b.nvpmodel.exe());
    assert_eq!(
        nvp.set(2, Reboot::Refuse).unwrap(),
        SetOutcome::RebootRequired
    );
    assert_eq!(b.nvpmodel.mode().unwrap(), 1);
    assert!(b.nvpmodel.reboots().unwrap().is_empty());
}

#[test]
fn can_confirm_nvpmodel_reboot_with_yes() {
    let (_d, b) = orin();
    let nvp = Nvpmodel::new(b.nvpmodel.exe());
    assert_eq!(nvp.set(2, Reboot::Allow).unwrap(), SetOutcome::Rebooting);
    assert_eq!(b.nvpmodel.mode().unwrap(), 2);
    assert_eq!(b.nvpmodel.reboots().unwrap(), vec![2]);
    assert_eq!(nvp.query().unwrap().name, "MAXN_SUPER");
}

#[test]
fn returns_invalid_when_nvpmodel_prints_error() {
    let (_d, b) = orin();
    let nvp = Nvpmodel::new(b.nvpmodel.exe());
    let e = nvp.set(9, Reboot::Allow).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("NVPM ERROR"), "{e}");
    assert_eq!(b.nvpmodel.mode().unwrap(), 1);
}

#[test]
fn returns_unsupported_when_nvpmodel_is_absent() {
    let (_d, b) = orin();
    let nvp = Nvpmodel::new(b.tree.root().join("bin/no-such-nvpmodel"));
    assert_eq!(nvp.query().unwrap_err().kind(), ErrorKind::Unsupported);
}
