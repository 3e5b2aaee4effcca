//! Declares the cfg that `onprem-fake-nvml-old` sets, so that this crate,
//! which never sets it, compiles without `unexpected_cfgs` warnings.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(onprem_fake_nvml_old)");
    println!("cargo::rerun-if-changed=build.rs");
}
