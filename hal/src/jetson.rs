//! NVIDIA Jetson through sysfs: fan, power rails, GPU load and frequency,
//! GPU thermal zone, nvpmodel.
