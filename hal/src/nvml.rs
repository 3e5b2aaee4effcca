//! NVIDIA GPUs through NVML (nvml-wrapper), loaded at run time.
