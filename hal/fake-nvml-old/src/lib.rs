//! The fake NVML library of `onprem-fake-nvml` as an **older driver**: the
//! same source, built with `cfg(onprem_fake_nvml_old)` (set by this
//! package's build script), which leaves out the symbols an older
//! `libnvidia-ml.so` does not have:
//! `nvmlDeviceGetTotalEnergyConsumption`, `nvmlDeviceGetMemoryInfo_v2`,
//! `nvmlDeviceGetNumFans`, `nvmlDeviceGetFanSpeed_v2`,
//! `nvmlDeviceSetFanSpeed_v2`, `nvmlDeviceSetDefaultFanSpeed_v2` and the
//! whole events API (`nvmlEventSetCreate`, `nvmlDeviceRegisterEvents`,
//! `nvmlDeviceGetSupportedEventTypes`, `nvmlEventSetWait_v2`,
//! `nvmlEventSetFree`). nvml-wrapper loads every symbol lazily, so calling
//! one of those gives `NvmlError::FailedToLoadSymbol` (hardware reference
//! §7.1, §7.4).
//!
//! The control file and everything else are as in `onprem-fake-nvml`.
//!
//! To extend: mark another function in `hal/fake-nvml/src/lib.rs` with
//! `#[cfg(not(onprem_fake_nvml_old))]`.

#![allow(unsafe_code)]

// The older driver leaves out functions, so some shared helpers and
// fields go unused here.
#[allow(dead_code)]
#[path = "../../fake-nvml/src/lib.rs"]
mod fake;
