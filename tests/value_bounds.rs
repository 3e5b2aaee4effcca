//! Values that parse but would hurt the node are refused by `onprem
//! validate` (and so by the agent and the control plane, which validate
//! the same way), each error naming the field and the allowed range:
//! names that are paths, a buffer as large as a disk, more rules than a
//! node can evaluate, simulated hardware beyond reason, and NaN or
//! infinity in any number of any section.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `onprem validate FILE…`: (exit code, stdout + stderr).
fn validate(files: &[PathBuf]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .arg("validate")
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A bundle on the `pi5-fan` profile with `metadata.name: name` and
/// `spec` lines appended (indented two spaces).
fn bundle(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: onprem/v1\nkind: Bundle\nmetadata: {{ name: {name:?} }}\nspec:\n  hardware:\n    profile: pi5-fan\n{spec}"
    )
}

/// Writes `text` as a bundle file and insists that `onprem validate`
/// refuses it with every one of `want` in its output.
fn refused(dir: &Path, file: &str, text: &str, want: &[&str]) {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    let (code, out) = validate(&[path]);
    assert_eq!(code, 1, "{file} was not refused:\n{out}");
    for w in want {
        assert!(out.contains(w), "{file}: no {w:?} in:\n{out}");
    }
}

fn accepted(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    let (code, out) = validate(&[path]);
    assert_eq!(code, 0, "{file} was refused:\n{out}");
}

const NAME_RULE: &str =
    "must be 1–63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";

#[test]
fn names_that_are_paths_or_dots_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["..", ".", "../etc", "a/b", ".hidden", "-x", &"n".repeat(64)]
        .iter()
        .enumerate()
    {
        let shown = format!("{name:?}");
        refused(
            dir.path(),
            &format!("name{i}.yaml"),
            &bundle(name, ""),
            &[&format!("metadata.name: {shown} {NAME_RULE}")],
        );
    }
    // Names inside the bundle follow the same rule.
    refused(
        dir.path(),
        "rule-name.yaml",
        &bundle(
            "ok",
            "  checks:\n    rules:\n      - { name: '..', metric: node_load1, op: '>', threshold: 1 }\n",
        ),
        &[&format!("spec.checks.rules[0].name: \"..\" {NAME_RULE}")],
    );
    accepted(dir.path(), "name-ok.yaml", &bundle("pi5.fan_curve-2", ""));
    accepted(dir.path(), "name-63.yaml", &bundle(&"n".repeat(63), ""));
}

#[test]
fn a_telemetry_buffer_beyond_a_gibibyte_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    refused(
        dir.path(),
        "max.yaml",
        &bundle(
            "buf",
            "  telemetry: { bufferBytes: 18446744073709551615 }\n",
        ),
        &[
            "spec.telemetry.bufferBytes: 18446744073709551615 is above the maximum of 1073741824 (1 GiB; 65536–1073741824)",
        ],
    );
    refused(
        dir.path(),
        "one-more.yaml",
        &bundle("buf", "  telemetry: { bufferBytes: 1073741825 }\n"),
        &["spec.telemetry.bufferBytes: 1073741825 is above the maximum"],
    );
    accepted(
        dir.path(),
        "gib.yaml",
        &bundle("buf", "  telemetry: { bufferBytes: 1073741824 }\n"),
    );
}

fn rules(n: usize) -> String {
    let mut s = String::from("  checks:\n    rules:\n");
    for i in 0..n {
        s.push_str(&format!(
            "      - {{ name: r{i}, metric: node_load1, op: '>', threshold: 1 }}\n"
        ));
    }
    s
}

#[test]
fn more_check_rules_than_the_maximum_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    refused(
        dir.path(),
        "rules.yaml",
        &bundle("rules", &rules(1001)),
        &["spec.checks.rules: 1001 entries is more than the maximum of 1000"],
    );
    let (code, out) = validate(&[dir.path().join("rules.yaml")]);
    assert_eq!(code, 1);
    // The rules are not checked one by one once there are too many.
    assert_eq!(
        out.lines().filter(|l| l.contains("spec.checks")).count(),
        1,
        "{out}"
    );
    accepted(
        dir.path(),
        "rules-1000.yaml",
        &bundle("rules", &rules(1000)),
    );
    // Other lists that multiply work are bounded too.
    let zone = |sensors: usize| {
        let s: Vec<String> = (0..sensors).map(|_| "{ name: cpu }".to_owned()).collect();
        format!(
            "  fans:\n    zones:\n      - name: z\n        fans: [fan]\n        sensors: [{}]\n        controllers: [{{ type: curve, points: [[40, 20]] }}]\n",
            s.join(", ")
        )
    };
    refused(
        dir.path(),
        "sensors.yaml",
        &bundle("zone", &zone(33)),
        &["spec.fans.zones[0].sensors: 33 entries is more than the maximum of 32"],
    );
    let signals: Vec<String> = (0..65)
        .map(|i| format!("{{ name: s{i}, device: x }}"))
        .collect();
    refused(
        dir.path(),
        "signals.yaml",
        &bundle(
            "signals",
            &format!("  signals:\n    sources: [{}]\n", signals.join(", ")),
        ),
        &["spec.signals.sources: 65 entries is more than the maximum of 64"],
    );
}

#[test]
fn simulated_hardware_beyond_reason_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    refused(
        dir.path(),
        "sim.yaml",
        &bundle(
            "sim",
            "    sim: { gpus: 100000000, ambientCelsius: 1e300, gpuWatts: [.nan, .inf], boardWatts: [1, 1e9] }\n",
        ),
        &[
            "spec.hardware.sim.gpus: 100000000 is more than the maximum of 16 simulated GPUs",
            "spec.hardware.sim.ambientCelsius: 1e300 is not within -40–85",
            "spec.hardware.sim.gpuWatts[0]: NaN is not a number",
            "spec.hardware.sim.gpuWatts[1]: inf is not a finite number",
            "spec.hardware.sim.boardWatts[1]: 1000000000 is not within 0–5000",
        ],
    );
    // `1e8` is a float: not a count of GPUs at all.
    refused(
        dir.path(),
        "sim-float.yaml",
        &bundle("sim", "    sim: { gpus: 1e8 }\n"),
        &["spec.hardware.sim.gpus: invalid type: floating point"],
    );
    accepted(
        dir.path(),
        "sim-ok.yaml",
        &bundle(
            "sim",
            "    sim: { gpus: 8, ambientCelsius: 45, gpuWatts: [70, 700] }\n",
        ),
    );
}

#[test]
fn nan_and_infinity_are_refused_in_every_section() {
    let dir = tempfile::tempdir().unwrap();
    // Fields no rule of their own bounds: a Modbus point's offset and
    // scale, in the bundle and in a profile file.
    std::fs::write(
        dir.path().join("profile.yaml"),
        "devices:\n  - { driver: modbus-meter, name: pm, serial: { port: /dev/ttyUSB1 }, unit: 2, volts: { address: 0, offset: .nan }, amps: { address: 2 } }\n",
    )
    .unwrap();
    refused(
        dir.path(),
        "nan.yaml",
        "apiVersion: onprem/v1
kind: Bundle
metadata: { name: nan }
spec:
  hardware:
    profile: profile.yaml
    devices:
      - driver: modbus-meter
        name: meter
        serial: { port: /dev/ttyUSB0 }
        unit: 1
        volts: { address: 0, offset: .inf }
        amps: { address: 2, scale: -.inf }
  checks:
    rules:
      - { name: hot, metric: node_load1, op: '>', threshold: .nan }
",
        &[
            "spec.hardware.devices[0].volts.offset: inf is not a finite number",
            "spec.hardware.devices[0].amps.scale: -inf is not a finite number",
            "spec.hardware.profile(profile.yaml).devices[0].volts.offset: NaN is not a number",
            "spec.checks.rules[0].threshold: NaN is not a number",
        ],
    );
    // One error per number, not one from each check that reads it.
    refused(
        dir.path(),
        "shunt.yaml",
        &bundle(
            "shunt",
            "    devices:\n      - { driver: ina219, name: vin, bus: 1, address: 0x40, shuntOhms: .nan }\n",
        ),
        &["spec.hardware.devices[0].shuntOhms: NaN is not a number"],
    );
    let (_, out) = validate(&[dir.path().join("shunt.yaml")]);
    assert_eq!(
        out.lines().filter(|l| l.contains("shuntOhms")).count(),
        1,
        "{out}"
    );
}

#[test]
fn every_example_bundle_and_profile_still_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("bundles/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let (code, out) = validate(&files);
    assert_eq!(code, 0, "{out}");
}
