//! Every file of `bundles/` loads, and every invalid bundle of
//! `tests/fixtures/bundles/invalid/` fails for the reasons its `# expect:`
//! lines name. Each walk fails if it saw no file at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn yaml_files(rel: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .yaml files in {}", dir.display());
    files
}

/// The `# expect: …` lines of a fixture's leading comment block.
fn expectations(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# expect:"))
        .map(|e| e.trim().to_owned())
        .collect()
}

#[test]
fn every_invalid_bundle_fails_with_its_expected_errors() {
    let files = yaml_files("tests/fixtures/bundles/invalid");
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy();
        let text = std::fs::read_to_string(path).unwrap();
        let expected = expectations(&text);
        if expected.is_empty() {
            failures.push(format!(
                "{name}: no `# expect:` line in its leading comment"
            ));
            continue;
        }
        let errors: Vec<String> = match onprem::bundle::load(path) {
            Ok(_) => {
                failures.push(format!("{name}: accepted, expected {expected:?}"));
                continue;
            }
            Err(e) => e.field_errors().iter().map(|e| e.to_string()).collect(),
        };
        for e in &errors {
            // `spec.fans.period: spec.fans: …`: a parser's own (coarser)
            // path leaked into the message.
            let mut parts = e.splitn(3, ": ");
            if let (Some(path), Some(head), Some(_)) = (parts.next(), parts.next(), parts.next()) {
                if !path.is_empty() && !head.is_empty() && path.starts_with(head) {
                    failures.push(format!("{name}: the path is repeated in {e:?}"));
                }
            }
        }
        for want in &expected {
            if !errors.iter().any(|e| e.contains(want.as_str())) {
                failures.push(format!(
                    "{name}: no error contains {want:?}; errors:\n    {}",
                    errors.join("\n    ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(files.len() >= 20, "only {} invalid fixtures", files.len());
}

#[test]
fn every_profile_loads_as_a_hardware_spec() {
    let files = yaml_files("bundles/profiles");
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let spec = onprem::hw::load_spec(&text, &path.display().to_string())
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!spec.devices.is_empty(), "{}: no devices", path.display());
    }
}

#[test]
fn every_example_bundle_is_valid() {
    let files = yaml_files("bundles/examples");
    for path in &files {
        if let Err(e) = onprem::bundle::load(path) {
            panic!("{}:\n{e}", path.display());
        }
    }
}
