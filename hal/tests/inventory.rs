//! The hardware spec: parsing with unknown fields rejected, validation
//! with field paths, and the same spec built on the simulated world with
//! the real drivers, following the physical model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use onprem_hal::inventory::{self, Handle, Hardware, Inventory, Spec};
use onprem_hal::sim::world::World;

fn parse(yaml: &str) -> Result<Spec, String> {
    let de = serde_yaml_ng::Deserializer::from_str(yaml);
    serde_path_to_error::deserialize(de).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

const CM4: &str = r#"
board: cm4-io
sim: { seed: 7, load: 0.8 }
devices:
  - { driver: emc230x, name: fan, bus: 10, fan: 1 }
  - { driver: emc2101, name: aux, bus: 10 }
  - { driver: lm75, name: board, bus: 1, address: 0x49, resolutionBits: 11 }
  - { driver: ina219, name: supply, bus: 1 }
  - { driver: ina3221, name: rail1, bus: 1, address: 0x41, channel: 1 }
  - { driver: ina3221, name: rail2, bus: 1, address: 0x41, channel: 2 }
  - { driver: ads1x15, name: adc, bus: 1, address: 0x4a, input: a0, fullScaleVolts: 4.096 }
"#;

#[test]
fn returns_field_path_when_a_field_is_unknown() {
    let e = parse("devices:\n  - { driver: lm75, name: a, adress: 0x48 }\n").unwrap_err();
    assert!(e.contains("devices[0]") && e.contains("adress"), "{e}");
    let e = parse("devices:\n  - { driver: lm76, name: a }\n").unwrap_err();
    assert!(e.contains("lm76"), "{e}");
}

#[test]
fn returns_field_path_when_a_field_is_in_snake_case() {
    let e = parse("devices:\n  - { driver: lm75, name: a, resolution_bits: 11 }\n").unwrap_err();
    assert!(
        e.contains("devices[0]") && e.contains("resolution_bits"),
        "{e}"
    );
    let e = parse("sim: { battery_wh: 5.0 }\ndevices: []\n").unwrap_err();
    assert!(e.contains("sim") && e.contains("battery_wh"), "{e}");
}

/// One device of every driver settings type, with every optional part.
const EVERY_FIELD: &str = r#"
provisional: true
sim: { seed: 3, ambientCelsius: 30, load: 0.5, boardWatts: [1, 2], batteryWh: 4, mainsOutages: [[1, 2]], gpuWatts: [3, 4], gpus: 1 }
devices:
  - { driver: lm75, name: a, resolutionBits: 11 }
  - { driver: tmp102, name: b }
  - { driver: ina219, name: c, shuntOhms: 0.1, maxAmps: 2 }
  - { driver: ina3221, name: d, channel: 1, shuntOhms: 0.1 }
  - { driver: emc230x, name: e, fan: 2 }
  - { driver: ads1x15, name: f, input: a0, fullScaleVolts: 4.096, rate: 4 }
  - { driver: argon-one, name: g, firmware: register }
  - { driver: argon-button, name: h, pin: 4 }
  - { driver: pi5-fan, name: i }
  - { driver: hwmon-fan, name: j, kernelDriver: emc2305 }
  - { driver: thermal-zone, name: k, type: cpu-thermal }
  - { driver: sysfs-pwm-fan, name: l, chip: 0, channel: 0, periodNs: 40000, inverted: true }
  - { driver: rpi-pwm-fan, name: m, channel: 0, frequencyHz: 25000 }
  - { driver: gpio-relay, name: n, pin: 5, activeLow: true }
  - { driver: jetson-gpu, name: o, powerRail: POM_5V_GPU }
  - { driver: nvml, name: p }
  - driver: modbus-meter
    name: q
    serial: { port: /dev/ttyUSB0, stopBits: 2, timeoutMs: 100 }
    unit: 1
    volts: { address: 0, type: f32, wordOrder: little }
    amps: { address: 2 }
    watts: { address: 4 }
  - driver: bitscope-bmc
    name: r
    serial: { port: /dev/serial0 }
    lineEnding: lf
    init: [{ send: UNLOCK }]
    supplyVolts: { send: V }
    supplyAmps: { send: A }
    nodeAmps: { send: N }
    temperature: { send: T }
    powerState: { send: P }
    powerOn: { send: "ON" }
    powerOff: { send: "OFF" }
  - { driver: gpio-counter, name: s, pin: 17, edge: both, bias: pull-down }
"#;

/// Every key a spec writes is camelCase, as bundles spell every field.
#[test]
fn can_write_every_field_in_camel_case() {
    fn keys(v: &serde_yaml_ng::Value, path: &str, out: &mut Vec<String>) {
        match v {
            serde_yaml_ng::Value::Mapping(m) => {
                for (k, v) in m {
                    let k = k.as_str().unwrap_or_default();
                    out.push(format!("{path}.{k}"));
                    keys(v, &format!("{path}.{k}"), out);
                }
            }
            serde_yaml_ng::Value::Sequence(s) => {
                for (i, v) in s.iter().enumerate() {
                    keys(v, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let spec = parse(EVERY_FIELD).unwrap();
    assert_eq!(inventory::validate(&spec), []);
    let value = serde_yaml_ng::to_value(&spec).unwrap();
    let mut all = Vec::new();
    keys(&value, "", &mut all);
    let snake: Vec<&String> = all
        .iter()
        .filter(|k| k.rsplit('.').next().is_some_and(|k| k.contains('_')))
        .collect();
    assert!(snake.is_empty(), "{snake:?}");
    assert!(
        all.iter().any(|k| k == ".devices[17].lineEnding"),
        "{all:?}"
    );
    // What it writes reads back the same.
    let text = serde_yaml_ng::to_string(&spec).unwrap();
    assert_eq!(parse(&text).unwrap(), spec);
}

#[test]
fn returns_every_problem_when_a_spec_is_invalid() {
    let spec = parse(
        r#"
sim: { load: 2, batteryWh: -1 }
devices:
  - { driver: lm75, name: a, address: 0x90 }
  - { driver: tmp102, name: a }
  - { driver: ina3221, name: r, channel: 4 }
  - { driver: hwmon-fan, name: h }
  - { driver: bitscope-bmc, name: b, serial: { port: /dev/serial0, stopBits: 3 }, lineEnding: cr-lf }
  - { driver: ina219, name: s, shuntOhms: 0 }
"#,
    )
    .unwrap();
    let errs: Vec<String> = inventory::validate(&spec)
        .iter()
        .map(ToString::to_string)
        .collect();
    for want in [
        "devices[0].address: 0x90",
        "devices[1].name: \"a\" is already the name of devices[0]",
        "devices[2].channel: 4 is not 1–3",
        "devices[3].chip: give chip, device or kernelDriver",
        "devices[4].driver: bitscope-bmc commands",
        "devices[4].serial.stopBits: 3 is not 1 or 2",
        "devices[4].lineEnding: \"cr-lf\" is not cr, lf or crlf",
        "devices[5].shuntOhms: 0 must be more than 0",
        "sim.load: 2 is not within 0–1",
        "sim.batteryWh: -1 is not within 0–100000",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "{want} not in {errs:#?}"
        );
    }
}

#[test]
fn refuses_simulated_values_that_would_hurt_the_node() {
    let spec = parse(
        r#"
sim:
  gpus: 100000000
  ambientCelsius: 1e300
  gpuWatts: [.nan, .inf]
  boardWatts: [10, 5]
  mainsOutages: [[0, 1e300]]
devices:
  - { driver: lm75, name: a }
"#,
    )
    .unwrap();
    let errs: Vec<String> = inventory::validate(&spec)
        .iter()
        .map(ToString::to_string)
        .collect();
    for want in [
        "sim.gpus: 100000000 is more than the maximum of 16 simulated GPUs",
        "sim.ambientCelsius: 1e300 is not within -40–85",
        "sim.gpuWatts[0]: NaN is not within 0–2000",
        "sim.gpuWatts[1]: inf is not within 0–2000",
        "sim.boardWatts: [10, 5]: idle is above full load",
        "sim.mainsOutages[0]: [0, 1e300] is not a span",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "{want} not in {errs:#?}"
        );
    }
    let ok = parse("sim: { gpus: 16, ambientCelsius: -40, gpuWatts: [0, 2000] }\ndevices: []\n")
        .unwrap();
    assert_eq!(inventory::validate(&ok), Vec::new());
}

#[test]
fn can_build_a_spec_on_the_simulated_world() {
    let spec = parse(CM4).unwrap();
    assert!(inventory::validate(&spec).is_empty());
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&spec, dir.path()).unwrap();
    let mut inv = Inventory::build(&spec, &Hardware::Sim(world.clone()));
    let names: Vec<&str> = inv.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "fan",
            "aux",
            "aux/temperature",
            "board",
            "supply",
            "rail1",
            "rail2",
            "adc"
        ]
    );
    for e in &mut inv.entries {
        let h = e
            .handle
            .as_mut()
            .unwrap_or_else(|err| panic!("{}: {err}", e.name));
        let line = inventory::probe(h).unwrap_or_else(|err| panic!("{}: {err}", e.name));
        assert!(!line.is_empty());
    }
    // The ADC reads the model's supply through its divider.
    let Handle::Signal(adc) = inv.get_mut("adc").unwrap().handle.as_mut().unwrap() else {
        panic!("adc is not a signal")
    };
    let mut v = None;
    while v.is_none() {
        v = adc.poll_sample().unwrap();
    }
    assert!((v.unwrap() - 2.55).abs() < 0.01, "{v:?}");
}

#[test]
fn can_cool_the_node_through_a_real_fan_driver() {
    let spec = parse(CM4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&spec, dir.path()).unwrap();
    let mut inv = Inventory::build(&spec, &Hardware::Sim(world.clone()));
    let temp = |inv: &mut Inventory| match inv.get_mut("aux/temperature").unwrap().handle {
        Ok(Handle::Temperature(ref mut t)) => t.temperature_celsius().unwrap(),
        _ => panic!("no sensor"),
    };
    let Ok(Handle::Fan(fan)) = &mut inv.get_mut("fan").unwrap().handle else {
        panic!("no fan")
    };
    fan.set_duty(0.0).unwrap();
    world.step(Duration::from_secs(1800));
    let hot = temp(&mut inv);
    let Ok(Handle::Fan(fan)) = &mut inv.get_mut("fan").unwrap().handle else {
        panic!("no fan")
    };
    fan.set_duty(100.0).unwrap();
    world.step(Duration::from_secs(1800));
    let cool = temp(&mut inv);
    assert!(hot > cool + 10.0, "{hot} → {cool}");
    assert!(world.with_model(|m| m.state().fan_rpm) > 4000.0);
}

#[test]
fn can_see_mains_loss_through_the_real_ups_driver() {
    let spec = parse(
        r#"
sim: { batteryWh: 5.0, load: 1.0, mainsOutages: [[10, 1000]] }
devices:
  - { driver: sixfab-ups, name: ups }
"#,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&spec, dir.path()).unwrap();
    let mut inv = Inventory::build(&spec, &Hardware::Sim(world.clone()));
    let Ok(Handle::Battery(b)) = &mut inv.get_mut("ups").unwrap().handle else {
        panic!("no battery")
    };
    assert!(b.on_mains().unwrap());
    assert_eq!(b.charge_percent().unwrap(), 100.0);
    world.step(Duration::from_secs(600));
    assert!(!b.on_mains().unwrap());
    let level = b.charge_percent().unwrap();
    // Seven watts for ten minutes out of 5 Wh: a quarter gone.
    assert!((70.0..=80.0).contains(&level), "{level}");
    let Ok(Handle::Power(input)) = &mut inv.get_mut("ups/input").unwrap().handle else {
        panic!("no input rail")
    };
    assert_eq!(input.bus_volts().unwrap(), 0.0);
}

/// What a bundle may refer to (`Device::parts`) is what the inventory
/// opens, for every profile shipped in `bundles/profiles/`.
#[test]
fn can_name_every_part_a_profile_opens_before_opening_it() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundles/profiles");
    let mut seen = 0;
    for f in std::fs::read_dir(&dir).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        seen += 1;
        let spec = parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let parts: Vec<(String, &str)> = spec.devices.iter().flat_map(|d| d.parts()).collect();
        let tmp = tempfile::tempdir().unwrap();
        let world = World::new(&spec, tmp.path()).unwrap();
        let inv = Inventory::build(&spec, &Hardware::Sim(world));
        for e in &inv.entries {
            let Ok(h) = &e.handle else { continue };
            let known = parts.iter().any(|(name, kind)| {
                let matches = match name.strip_suffix("/*") {
                    Some(dev) => e.name.starts_with(&format!("{dev}/")),
                    None => *name == e.name,
                };
                matches && *kind == h.kind()
            });
            assert!(
                known,
                "{}: {} ({}) not in {parts:?}",
                path.display(),
                e.name,
                h.kind()
            );
        }
    }
    assert!(seen > 0, "no profiles under {}", dir.display());
}
