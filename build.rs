//! Compiles the gRPC contract in `proto/` with protox (a pure-Rust
//! protobuf compiler), so that no system `protoc` is needed, and records
//! the commit this binary is built from (`onprem version`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/onprem/v1/agent.proto", "proto/onprem/v1/fleet.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rustc-env=ONPREM_GIT_COMMIT={}", git_commit());
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Clients run over our own channel (`dialhome::connect`), not
        // tonic's.
        .build_transport(false)
        // Small initial buffers per call (`proto::Codec`).
        .codec_path("crate::proto::Codec")
        // A tunnel frame's bytes are a slice of the received buffer, not
        // a copy of it.
        .bytes(".onprem.v1.TunnelFrame.data")
        .compile_fds(fds)?;
    Ok(())
}

/// The commit this build is from, never an error: `$ONPREM_GIT_COMMIT`
/// when set (packagers, builds from a tarball), else `git rev-parse
/// --short=12 HEAD` with `-dirty` when tracked files differ from it (only
/// in a git checkout of this package, with git installed), else
/// `unknown`.
///
/// The script runs again when the environment variable or the commit
/// (HEAD, the branch it names) changes, not on every edit: `-dirty` is as
/// of the last commit or checkout, or change of this script or the
/// protos. It never writes to the repository (`--no-optional-locks`), so
/// it does not make itself run again.
fn git_commit() -> String {
    println!("cargo:rerun-if-env-changed=ONPREM_GIT_COMMIT");
    if let Ok(c) = std::env::var("ONPREM_GIT_COMMIT") {
        let c = c.trim();
        if !c.is_empty() && c.chars().all(|ch| ch.is_ascii_graphic()) {
            return c.to_owned();
        }
    }
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    // Only this package's own checkout: a tarball unpacked inside some
    // other repository must not take that repository's commit.
    if !dir.join(".git").exists() {
        return "unknown".into();
    }
    let Some(head) = git(&dir, &["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".into();
    };
    if !head.chars().all(|c| c.is_ascii_hexdigit()) {
        return "unknown".into();
    }
    for what in ["HEAD", "packed-refs"] {
        watch(&dir, what);
    }
    if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch(&dir, &branch);
    }
    let dirty = git(&dir, &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    if dirty { format!("{head}-dirty") } else { head }
}

/// Asks cargo to run this script again when the git file `name` (a path
/// under the git directory, as `git rev-parse --git-path` resolves it)
/// changes.
fn watch(dir: &Path, name: &str) {
    if let Some(p) = git(dir, &["rev-parse", "--git-path", name]) {
        let p = dir.join(p);
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}

/// `git ARGS` in `dir`: its trimmed standard output when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("--no-optional-locks")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}
