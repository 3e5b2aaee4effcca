//! DESIGN.md's rules between layers, checked on the source: the node side
//! (agent, dial-home, Redfish, exporter) and what both sides share (bundles,
//! PKI, the TLS server loop and its limits, the clock, state directories,
//! the tunnel's byte pump) never name the control plane.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn rust_files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            rust_files(&e.unwrap().path(), out);
        }
    } else if p.extension().is_some_and(|e| e == "rs") {
        out.push(p.to_owned());
    }
}

/// Lines of code (not comments) in `paths` that name any of `names`.
fn naming(paths: &[&str], names: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for p in paths {
        let p = root.join(p);
        assert!(p.exists(), "{} is gone: update this test", p.display());
        rust_files(&p, &mut files);
    }
    let mut found = Vec::new();
    for f in files {
        for (i, line) in std::fs::read_to_string(&f).unwrap().lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if names.iter().any(|n| code.contains(n)) {
                found.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_node_side_and_the_shared_layer_never_name_the_control_plane() {
    let found = naming(
        &[
            "agent",
            "dialhome",
            "redfish",
            "exporter",
            "bundle",
            "tunnel",
            "pki.rs",
            "tlsserver.rs",
            "serverlimits.rs",
            "clock.rs",
            "statedir.rs",
        ],
        &["crate::controlplane", "onprem::controlplane"],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_check_finds_what_it_looks_for() {
    // The same scan over the control plane finds its own name: the test
    // above cannot pass by reading nothing.
    assert!(!naming(&["controlplane"], &["super::"]).is_empty());
}
