//! Control of the fake NVML library.
