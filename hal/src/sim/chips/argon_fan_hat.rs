//! argon_fan_hat emulator.
