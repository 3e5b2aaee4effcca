//! Builds the fake NVML library (`fake-nvml/src/lib.rs`) as a cdylib for
//! the target, when the `sim` and `nvml` features are on, so that
//! `sim::nvml` embeds its bytes: a simulated GPU server then needs nothing
//! but the `onprem` binary (no `target/` directory, no second crate
//! built), and still loads the library through the real NVML code.
//!
//! The library is compiled by the same `rustc` cargo uses (`RUSTC`), for
//! `TARGET`, with the target's linker (`RUSTC_LINKER`, which cargo sets
//! from `target.<triple>.linker` / `CARGO_TARGET_<TRIPLE>_LINKER`) and the
//! target's `RUSTFLAGS` (`CARGO_ENCODED_RUSTFLAGS`), at the profile's
//! `OPT_LEVEL` (optimised profiles add fat LTO and strip symbols: the
//! C functions stay exported in the dynamic symbol table). No nested
//! cargo: the file needs only the standard library.
//!
//! A target that links statically (`crt-static`, e.g. musl) can neither
//! build a cdylib nor dlopen one: an empty file is embedded and
//! `FakeNvml::install` says so.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The fake library's source, relative to this package.
const SOURCE: &str = "fake-nvml/src/lib.rs";
/// The file in `OUT_DIR` that `sim::nvml` includes.
const OUTPUT: &str = "libonprem_fake_nvml.so";

fn main() -> Result<(), String> {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed={SOURCE}");
    let on = |feature: &str| std::env::var_os(format!("CARGO_FEATURE_{feature}")).is_some();
    if !(on("SIM") && on("NVML")) {
        return Ok(());
    }
    let out_dir = PathBuf::from(env("OUT_DIR")?);
    let output = out_dir.join(OUTPUT);
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if features.split(',').any(|f| f == "crt-static") {
        return std::fs::write(&output, b"")
            .map_err(|e| format!("writing {}: {e}", output.display()));
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env("TARGET")?;
    let opt_level = env("OPT_LEVEL")?;
    let mut cmd = Command::new(&rustc);
    cmd.args(["--crate-name", "onprem_fake_nvml", "--crate-type", "cdylib"])
        .args(["--edition", "2024", "--target", &target])
        .arg(format!("-Copt-level={opt_level}"))
        // A panic cannot cross the C API anyway (extern "C" aborts).
        .arg("-Cpanic=abort")
        // Its lints are checked where it builds as a package.
        .args(["--cap-lints", "allow"]);
    if opt_level == "0" {
        cmd.arg("-Cstrip=debuginfo");
    } else {
        cmd.args(["-Clto=fat", "-Ccodegen-units=1", "-Cstrip=symbols"]);
    }
    if let Some(linker) = std::env::var_os("RUSTC_LINKER") {
        let mut arg = std::ffi::OsString::from("-Clinker=");
        arg.push(linker);
        cmd.arg(arg);
    }
    if let Ok(flags) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    }
    let source = Path::new(&env("CARGO_MANIFEST_DIR")?).join(SOURCE);
    cmd.arg("-o").arg(&output).arg(source);
    let result = cmd
        .output()
        .map_err(|e| format!("running {}: {e}", Path::new(&rustc).display()))?;
    if !result.status.success() || !output.is_file() {
        return Err(format!(
            "building the fake NVML library ({cmd:?}) failed ({}):\n{}\n\
             (a build without the simulated world: --no-default-features)",
            result.status,
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    Ok(())
}

/// An environment variable cargo sets for build scripts.
fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|e| format!("{name}: {e}"))
}
