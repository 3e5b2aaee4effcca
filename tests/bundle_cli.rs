//! The bundle commands as a user runs them: `onprem validate`, `onprem
//! explain` and `onprem bundle keygen|sign|verify`, through the binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn onprem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args(args)
        .output()
        .expect("running onprem")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn example() -> PathBuf {
    repo("bundles/examples/pi5-fan-curve.yaml")
}

/// A copy of the example bundle in `dir`, to sign and tamper with.
fn copy_example(dir: &Path) -> PathBuf {
    let to = dir.join("bundle.yaml");
    std::fs::copy(example(), &to).unwrap();
    to
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn validate_accepts_every_example() {
    let mut files: Vec<String> = std::fs::read_dir(repo("bundles/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.to_str().unwrap().to_owned())
        .collect();
    assert!(!files.is_empty());
    files.insert(0, "validate".into());
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let out = onprem(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), files.len() - 1, "{stdout}");
    assert!(
        stdout.contains("pi5-fan-curve.yaml: valid (bundle pi5-fan-curve version 1, digest "),
        "{stdout}"
    );
}

#[test]
fn validate_prints_every_error_with_its_path_and_fails() {
    let bad = repo("tests/fixtures/bundles/invalid/several-errors.yaml");
    let out = onprem(&["validate", s(&example()), s(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let prefix = format!("{}: ", bad.display());
    for want in [
        "metadata.name: \"my bundle\" must be",
        "spec.fans.zones[0].fans[0]: unknown fan \"fan2\"",
        "spec.fans.zones[0].sensors[0].name: unknown temperature sensor \"soc\"",
        "spec.fans.zones[0].controllers[0].points: give 1–32 points, not 0",
        "spec.fans.zones[0].minPercent: -5 is not within 0–100",
        "spec.power.switches[0].name: unknown switch \"relay\"",
        "spec.redfish.listen: \"localhost\" is not an address:port",
        "spec.tunnel.allowedPorts[1]: 22 is listed twice",
        "spec.telemetry.bufferBytes: 1024 is below the minimum",
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(want)),
            "{want:?} not in:\n{stderr}"
        );
    }
    // The good file is still reported as good.
    assert!(text(&out.stdout).contains("pi5-fan-curve.yaml: valid"));
}

#[test]
fn validate_prints_every_wrong_type_and_unknown_field_at_once_each_path_once() {
    let bad = repo("tests/fixtures/bundles/invalid/several-parse-errors.yaml");
    let out = onprem(&["validate", s(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let prefix = format!("{}: ", bad.display());
    let problems: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect();
    let paths: Vec<&str> = problems
        .iter()
        .map(|p| p.split(": ").next().unwrap_or_default())
        .collect();
    assert_eq!(
        paths,
        [
            "spec.fans.zones[0].minPercent",
            "spec.fans.zones[1].name",
            "spec.fans.zones[1].controllers[0].hysterisis",
            "spec.telemetry.bufferBytes",
        ],
        "{stderr}"
    );
    for (p, path) in problems.iter().zip(&paths) {
        assert_eq!(p.matches(path).count(), 1, "path repeated: {p}");
        assert!(p.contains(" at line "), "no line: {p}");
    }
}

#[test]
fn validate_names_a_missing_file() {
    let out = onprem(&["validate", "/nonexistent/bundle.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/bundle.yaml: cannot read the file: No such file"),
        "{stderr}"
    );
}

#[test]
fn signed_bundle_validates_and_one_changed_byte_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = copy_example(dir.path());
    let prefix = dir.path().join("signer");
    let out = onprem(&["bundle", "keygen", "--out", s(&prefix)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (key, public) = (dir.path().join("signer.key"), dir.path().join("signer.pub"));

    // Unsigned, but a signature is required.
    let validate = |extra: &[&str]| {
        let mut args = vec!["validate", "--trusted-key", s(&public)];
        args.extend_from_slice(extra);
        args.push(s(&bundle));
        onprem(&args)
    };
    let out = validate(&["--require-signature"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no signature"),
        "{}",
        text(&out.stderr)
    );

    let out = onprem(&["bundle", "sign", "--key", s(&key), s(&bundle)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = validate(&["--require-signature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(", signed by key "),
        "{}",
        text(&out.stdout)
    );
    let out = onprem(&["bundle", "verify", "--trusted-key", s(&public), s(&bundle)]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // One byte changed (in a comment: still a valid bundle).
    let mut bytes = std::fs::read(&bundle).unwrap();
    bytes[2] ^= 0x20;
    std::fs::write(&bundle, &bytes).unwrap();
    for out in [
        validate(&["--require-signature"]),
        validate(&[]),
        onprem(&["bundle", "verify", "--trusted-key", s(&public), s(&bundle)]),
    ] {
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("bad signature by key"), "{stderr}");
    }
}

#[test]
fn a_second_key_adds_a_line_and_either_key_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = copy_example(dir.path());
    for who in ["old", "new"] {
        let prefix = dir.path().join(who);
        assert!(
            onprem(&["bundle", "keygen", "--out", s(&prefix)])
                .status
                .success()
        );
        let key = dir.path().join(format!("{who}.key"));
        assert!(
            onprem(&["bundle", "sign", "--key", s(&key), s(&bundle)])
                .status
                .success()
        );
    }
    let sig = std::fs::read_to_string(dir.path().join("bundle.yaml.sig")).unwrap();
    assert_eq!(sig.lines().count(), 2, "{sig}");
    for who in ["old", "new"] {
        let public = dir.path().join(format!("{who}.pub"));
        let out = onprem(&[
            "validate",
            "--require-signature",
            "--trusted-key",
            s(&public),
            s(&bundle),
        ]);
        assert!(out.status.success(), "{who}: {}", text(&out.stderr));
    }
    // A key nobody signed with.
    let other = dir.path().join("other");
    assert!(
        onprem(&["bundle", "keygen", "--out", s(&other)])
            .status
            .success()
    );
    let public = dir.path().join("other.pub");
    let out = onprem(&["bundle", "verify", "--trusted-key", s(&public), s(&bundle)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown key(s)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn keygen_writes_a_private_secret_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("k");
    assert!(
        onprem(&["bundle", "keygen", "--out", s(&prefix)])
            .status
            .success()
    );
    let secret = dir.path().join("k.key");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(&secret)
            .unwrap()
            .starts_with("onprem-ed25519-secret ")
    );
    let public = std::fs::read_to_string(dir.path().join("k.pub")).unwrap();
    assert!(public.starts_with("onprem-ed25519-public "));
    let out = onprem(&["bundle", "keygen", "--out", s(&prefix)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    // An inline key works as well as a file.
    let bundle = copy_example(dir.path());
    assert!(
        onprem(&["bundle", "sign", "--key", s(&secret), s(&bundle)])
            .status
            .success()
    );
    let out = onprem(&[
        "bundle",
        "verify",
        "--trusted-key",
        public.trim(),
        s(&bundle),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn explain_prints_a_fields_doc() {
    let out = onprem(&["explain", "spec.fans.zones.controllers"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("spec.fans.zones.controllers"), "{stdout}");
    assert!(stdout.contains("maximum of their demands"), "{stdout}");
}

#[test]
fn explain_schema_prints_the_json_schema() {
    let out = onprem(&["explain", "--schema"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema["properties"]["spec"].is_object(), "{schema}");
}

#[test]
fn explain_of_an_unknown_path_fails() {
    let out = onprem(&["explain", "spec.fans.zonez"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("has no field \"zonez\""), "{stderr}");
}
