//! A crash (SIGKILL) in the middle of storing a bundle never leaves a
//! corrupt or half-written current or previous bundle: after each kill,
//! each is exactly one of the complete versions written, with its own
//! signature and record, and parses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KILLS: u64 = 30;
/// Comment padding per bundle, so that one write takes a while.
const PADDING_BYTES: usize = 512 << 10;

struct Version {
    text: String,
    sig: String,
    number: u64,
}

fn onprem(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The example bundle as version `number`, padded with a comment of
/// `fill` characters, written to `dir` and signed.
fn version(dir: &Path, number: u64, fill: char, key: &Path) -> (PathBuf, Version) {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/bundles/examples/pi5-fan-curve.yaml"
    ))
    .unwrap();
    let mut text = example.replace("version: 1", &format!("version: {number}"));
    let line: String = std::iter::repeat_n(fill, 99).collect();
    while text.len() < PADDING_BYTES {
        text.push_str("# ");
        text.push_str(&line);
        text.push('\n');
    }
    let path = dir.join(format!("v{number}.yaml"));
    std::fs::write(&path, &text).unwrap();
    onprem(&[
        "bundle",
        "sign",
        "--key",
        key.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    let sig = std::fs::read_to_string(dir.join(format!("v{number}.yaml.sig"))).unwrap();
    (path, Version { text, sig, number })
}

/// Checks one slot (`current` or `previous`) against the versions
/// written; whether it exists.
fn check_slot(store: &Path, slot: &str, versions: &[Version], kill: u64) -> bool {
    let yaml = store.join(format!("{slot}.yaml"));
    let text = match std::fs::read_to_string(&yaml) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        Err(e) => panic!("kill {kill}: reading {}: {e}", yaml.display()),
    };
    let v = versions.iter().find(|v| v.text == text).unwrap_or_else(|| {
        panic!(
            "kill {kill}: {slot}.yaml ({} bytes) is none of the versions written",
            text.len()
        )
    });
    let bundle = onprem::bundle::parse(&text).unwrap();
    onprem::bundle::validate(&bundle, None).unwrap();
    let sig = std::fs::read_to_string(store.join(format!("{slot}.yaml.sig"))).unwrap();
    assert_eq!(
        sig, v.sig,
        "kill {kill}: {slot}.yaml.sig is not its bundle's"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join(format!("{slot}.json"))).unwrap())
            .unwrap();
    assert_eq!(
        record["version"], v.number,
        "kill {kill}: {slot}.json is not its bundle's"
    );
    true
}

/// What `current` points to (the store's generation), to see the child
/// get going.
fn generation(store: &Path) -> Option<PathBuf> {
    std::fs::read_link(store.join("current")).ok()
}

#[test]
fn a_kill_during_a_write_never_leaves_a_half_written_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("signer");
    onprem(&["bundle", "keygen", "--out", prefix.to_str().unwrap()]);
    let key = dir.path().join("signer.key");
    let (file1, v1) = version(dir.path(), 1, 'a', &key);
    let (file2, v2) = version(dir.path(), 2, 'b', &key);
    let versions = [v1, v2];
    let state = dir.path().join("state");
    let store = state.join("bundles");

    let mut interrupted = 0;
    for kill in 0..KILLS {
        let before = generation(&store);
        let mut child = Command::new(env!("CARGO_BIN_EXE_onprem"))
            .args(["bundle", "store-write", "--loop", "--state-dir"])
            .arg(&state)
            .arg("--file")
            .arg(&file1)
            .arg("--file")
            .arg(&file2)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child has stored a bundle (it is in its write
        // loop), then kill it a varying few milliseconds later.
        let deadline = Instant::now() + Duration::from_secs(60);
        while generation(&store) == before {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("kill {kill}: store-write exited on its own: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "kill {kill}: store-write wrote nothing in 60 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_micros((kill * 7919) % 20_000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let leftovers = std::fs::read_dir(&store)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        if leftovers > 0 {
            interrupted += 1;
        }
        assert!(
            check_slot(&store, "current", &versions, kill),
            "kill {kill}: no current bundle"
        );
        check_slot(&store, "previous", &versions, kill);
    }
    // The kills did land in the middle of writes, not only between them.
    assert!(interrupted > 0, "no kill interrupted a write");

    // Opening the store clears what the kills left behind.
    let s = onprem::bundle::store::Store::open(&state).unwrap();
    let current = s.current().unwrap().unwrap();
    assert!(versions.iter().any(|v| v.text == current.text));
    let names: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    assert!(
        names.iter().filter(|n| n.starts_with("gen-")).count() <= 2,
        "{names:?}"
    );
    eprintln!("{interrupted} of {KILLS} kills interrupted a write");
}
