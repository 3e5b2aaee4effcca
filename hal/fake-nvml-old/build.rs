//! Builds the shared fake source as an older driver: the cfg below drops
//! the symbols such a driver lacks.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(onprem_fake_nvml_old)");
    println!("cargo::rustc-cfg=onprem_fake_nvml_old");
    println!("cargo::rerun-if-changed=build.rs");
}
