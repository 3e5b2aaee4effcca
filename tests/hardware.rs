//! The hardware layer from the outside: every built-in profile probed in
//! the simulated world by the real binary, a simulated GPU server's devices
//! on `/metrics` (checked by promtool), a device that cannot be read
//! counted without breaking the scrape, `i2cdetect` skipping the Argon MCU,
//! and a bad hardware spec refused with its field path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Agent, require, samples, value};

/// The value of the first sample whose line starts with `prefix` (a name
/// and the first labels).
fn first(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn onprem(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn can_probe_every_profile_in_sim() {
    // Every file of bundles/profiles is compiled in.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/profiles");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .map(|n| n.trim_end_matches(".yaml").to_string())
        .collect();
    files.sort();
    let mut builtin: Vec<String> = onprem::hw::profiles::BUILTIN
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    builtin.sort();
    assert_eq!(
        files, builtin,
        "bundles/profiles and the built-in list differ"
    );

    for (name, text) in onprem::hw::profiles::BUILTIN {
        let spec = onprem::hw::load_spec(text, name).unwrap();
        let (code, out, err) = onprem(&["hw", "probe", "--profile", name, "--hardware", "sim"]);
        assert_eq!(code, 0, "{name}:\n{out}{err}");
        assert!(!out.contains("ERROR"), "{name}:\n{out}");
        // Every device of the spec has at least one line with a reading.
        for dev in &spec.devices {
            let n = dev.name();
            let lines: Vec<&str> = out
                .lines()
                .filter(|l| {
                    let first = l.split_whitespace().next().unwrap_or_default();
                    first == n || first.starts_with(&format!("{n}/"))
                })
                .collect();
            assert!(!lines.is_empty(), "{name}: no line for {n}:\n{out}");
            for l in lines {
                assert!(
                    l.contains(dev.driver()) && !l.contains("not present"),
                    "{name}: {l}"
                );
            }
        }
        if spec.provisional {
            assert!(out.contains("PROVISIONAL"), "{name}:\n{out}");
        }
    }
}

#[test]
fn can_serve_a_simulated_gpu_servers_devices() {
    let agent = Agent::start(&[
        "--hardware=sim".into(),
        "--hardware.profile=gpu-server".into(),
        "--collector.disable-defaults".into(),
        "--collector.devices".into(),
    ]);
    let text = agent.scrape();
    let temps = samples(&text, "onprem_gpu_temperature_celsius");
    assert_eq!(temps.len(), 2, "{text}");
    for uuid in [
        "GPU-00000000-0000-4000-8000-000000000001",
        "GPU-00000000-0000-4000-8000-000000000002",
    ] {
        assert!(
            temps
                .iter()
                .any(|l| l.contains(uuid) && l.contains("name=\"NVIDIA H100 80GB HBM3\"")),
            "{temps:?}"
        );
    }
    let watts = value(&text, "onprem_rail_power_watts{device=\"pdu\"}").unwrap();
    assert!(watts > 100.0, "{watts}");
    let ups = samples(&text, "onprem_device_up");
    assert_eq!(ups.len(), 5, "cpu, gpu/0, gpu/1, chassis, pdu: {ups:?}");
    assert!(ups.iter().all(|l| l.ends_with(" 1")), "{ups:?}");
    assert!(first(&text, "onprem_gpu_power_limit_watts{device=\"gpu/0\"").is_some());

    let promtool = require("promtool", "Debian's prometheus package");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool:\n{report}");
}

#[test]
fn returns_device_down_when_it_cannot_be_read_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("hw.yaml");
    std::fs::write(
        &spec,
        "devices:\n  - { driver: lm75, name: missing, bus: 99 }\n  - { driver: thermal-zone, name: nozone, type: no-such-zone }\n",
    )
    .unwrap();
    let agent = Agent::start(&[
        format!("--hardware.profile={}", spec.display()),
        "--collector.disable-defaults".into(),
        "--collector.devices".into(),
        "--collector.loadavg".into(),
    ]);
    let text = agent.scrape();
    for dev in ["missing", "nozone"] {
        let up = samples(&text, "onprem_device_up");
        assert!(
            up.iter()
                .any(|l| l.contains(&format!("device=\"{dev}\"")) && l.ends_with(" 0")),
            "{up:?}"
        );
        let errs = first(
            &text,
            &format!("onprem_device_errors_total{{device=\"{dev}\""),
        )
        .unwrap();
        assert!(errs >= 1.0, "{dev}: {errs}");
    }
    assert!(value(&text, "node_load1").is_some(), "{text}");
    assert_eq!(
        value(
            &text,
            "node_scrape_collector_success{collector=\"devices\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn returns_field_path_when_a_hardware_spec_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("hw.yaml");
    std::fs::write(
        &spec,
        "devices:\n  - { driver: lm75, name: a }\n  - { driver: ina3221, name: b, channel: 7 }\n",
    )
    .unwrap();
    let (code, out, err) = onprem(&[
        "agent",
        "--check-config",
        "--config=/dev/null",
        &format!("--hardware.profile={}", spec.display()),
    ]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("--hardware.profile") && err.contains("devices[1].channel: 7 is not 1–3"),
        "{err}"
    );

    std::fs::write(
        &spec,
        "devices:\n  - { driver: lm75, name: a, adress: 0x48 }\n",
    )
    .unwrap();
    let (code, _, err) = onprem(&["hw", "probe", "--profile", spec.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("devices[0]") && err.contains("adress"),
        "{err}"
    );
}

#[test]
fn can_scan_a_simulated_bus_skipping_the_argon_mcu() {
    let (code, out, err) = onprem(&[
        "i2cdetect",
        "--hardware",
        "sim",
        "--profile",
        "pi-sixfab-ups",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    let row40 = out.lines().find(|l| l.starts_with("40:")).unwrap();
    assert!(row40.contains(" 41 ") && row40.contains(" 48 "), "{out}");
    let row10 = out.lines().find(|l| l.starts_with("10:")).unwrap();
    assert!(row10.contains("SS"), "{out}");
    assert!(out.contains("SS at 0x1a"), "{out}");

    let (code, out, _) = onprem(&[
        "i2cdetect",
        "--hardware",
        "sim",
        "--profile",
        "pi4-argon-one-v2",
        "--force",
        "1",
    ]);
    assert_eq!(code, 0);
    let row10 = out.lines().find(|l| l.starts_with("10:")).unwrap();
    assert!(row10.contains(" 1a"), "{out}");
}

/// Runs `onprem ARGS` with `stdin` as its standard input.
fn onprem_with_input(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A process that exits before reading leaves a closed pipe: fine.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn i2cdetect_checks_the_bus_before_it_asks() {
    let dev = tempfile::tempdir().unwrap();
    let dev_flag = format!("--dev={}", dev.path().display());
    let (code, out, err) = onprem_with_input(&["i2cdetect", &dev_flag, "7"], "y\n");
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        !err.contains("WARNING") && !err.contains("Continue?"),
        "{err}"
    );
    assert!(
        err.contains("no I²C bus 7") && err.contains("i2c-7"),
        "{err}"
    );
    assert!(err.contains("i2cdetect -l"), "{err}");
    assert!(out.is_empty(), "{out}");

    // The same on the machine's own /dev (no bus 4095 anywhere).
    let (code, _, err) = onprem_with_input(&["i2cdetect", "4095"], "y\n");
    assert_ne!(code, 0);
    assert!(!err.contains("WARNING"), "{err}");
    assert!(err.contains("/dev/i2c-4095"), "{err}");

    // A simulated world has the buses its profile's devices sit on.
    let (code, _, err) = onprem(&[
        "i2cdetect",
        "--hardware",
        "sim",
        "--profile",
        "pi-sixfab-ups",
        "3",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no I²C bus 3") && err.contains("i2c-1"),
        "{err}"
    );
}

#[test]
fn i2cdetect_takes_the_end_of_input_or_a_no_as_no() {
    // A bus node that opens (a plain file): the prompt comes, and no
    // scan runs after a no.
    let dev = tempfile::tempdir().unwrap();
    std::fs::write(dev.path().join("i2c-7"), "").unwrap();
    let dev_flag = format!("--dev={}", dev.path().display());
    for answer in ["", "n\n", "no\n", "maybe\n"] {
        let (code, out, err) = onprem_with_input(&["i2cdetect", &dev_flag, "7"], answer);
        // i2c-tools exits 0 when the user declines.
        assert_eq!(code, 0, "{answer:?}: {out}{err}");
        assert!(err.contains("Continue? [Y/n]"), "{answer:?}: {err}");
        assert!(
            err.contains(&format!(
                "I will probe file {}",
                dev.path().join("i2c-7").display()
            )),
            "{err}"
        );
        assert!(
            err.contains("Aborting on user request."),
            "{answer:?}: {err}"
        );
        assert!(out.is_empty(), "{answer:?}: scanned after a no:\n{out}");
    }
}

#[test]
fn i2cdetect_lists_the_buses_as_i2c_tools_does() {
    let sys = tempfile::tempdir().unwrap();
    let class = sys.path().join("class/i2c-dev");
    for (bus, file, name) in [
        ("i2c-20", "name", "fef04500.i2c"),
        ("i2c-1", "name", "bcm2835 (i2c@7e804000)"),
        ("i2c-3", "device/name", "ISA main adapter"),
    ] {
        let f = class.join(bus).join(file);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, format!("{name}\n")).unwrap();
    }
    // Named only under bus/i2c/devices.
    std::fs::create_dir_all(class.join("i2c-11")).unwrap();
    let dev = sys.path().join("bus/i2c/devices/i2c-11");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(dev.join("name"), "i2c-11-mux (chan_id 0)\n").unwrap();
    let sysfs = format!("--sysfs={}", sys.path().display());
    let (code, out, err) = onprem(&["i2cdetect", "-l", &sysfs]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "i2c-1\ti2c       \tbcm2835 (i2c@7e804000)          \tI2C adapter\n\
         i2c-3\tisa       \tISA main adapter                \tISA bus\n\
         i2c-11\ti2c       \ti2c-11-mux (chan_id 0)          \tI2C adapter\n\
         i2c-20\ti2c       \tfef04500.i2c                    \tI2C adapter\n"
    );
    assert!(err.is_empty(), "{err}");

    let (code, out, err) = onprem(&[
        "i2cdetect",
        "-l",
        "--hardware",
        "sim",
        "--profile",
        "pi-sixfab-ups",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("i2c-1\ti2c       \t"), "{out}");
    assert!(out.trim_end().ends_with("\tI2C adapter"), "{out}");
}
