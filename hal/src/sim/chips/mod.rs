//! Register-level emulators, one per supported chip. Register maps and
//! power-on values come from the hardware reference (its verified lines), the
//! same facts the drivers use, typed in separately.

pub mod ads1x15;
pub mod argon_fan_hat;
pub mod argon_one;
pub mod emc2101;
pub mod emc230x;
pub mod ina219;
pub mod ina3221;
pub mod lm75;
pub mod sixfab;
pub mod tmp102;
