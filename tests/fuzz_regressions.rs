//! Every input kept for the fuzz targets (`fuzz/corpus/<target>/`, the
//! seeds, and `fuzz/regressions/<target>/`, each a crash, hang or
//! runaway allocation the fuzzer once found) through the same entry
//! functions the targets call ([`onprem::fuzzing`]), without the fuzzer:
//! a finding that comes back fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

const DIRS: &[&str] = &["fuzz/corpus", "fuzz/regressions"];

/// The files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn run_target(name: &str, f: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for d in DIRS {
        for path in files(&root.join(d).join(name)) {
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| f(&data));
            assert!(r.is_ok(), "{name}: {} fails again", path.display());
            n += 1;
        }
    }
    n
}

#[test]
fn every_kept_input_of_every_target_passes() {
    let mut counts = Vec::new();
    for (name, f) in onprem::fuzzing::TARGETS {
        counts.push((name, run_target(name, *f)));
    }
    onprem::fuzzing::remove_scratch();
    for (name, n) in counts {
        assert!(n > 0, "{name}: no corpus in fuzz/corpus/{name}");
    }
}

#[test]
fn every_target_has_a_fuzz_target_file_and_every_kept_directory_a_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let names: Vec<&str> = onprem::fuzzing::TARGETS.iter().map(|t| t.0).collect();
    for n in &names {
        let file = root.join("fuzz/fuzz_targets").join(format!("{n}.rs"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(&format!("onprem::fuzzing::{n}(")),
            "{} does not call onprem::fuzzing::{n}",
            file.display()
        );
    }
    let cargo = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap();
    for n in &names {
        assert!(
            cargo.contains(&format!("name = \"{n}\"")),
            "fuzz/Cargo.toml has no [[bin]] {n}"
        );
    }
    for d in DIRS {
        let Ok(rd) = std::fs::read_dir(root.join(d)) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap().file_name().into_string().unwrap();
            assert!(names.contains(&e.as_str()), "{d}/{e} is no target's");
        }
    }
}
