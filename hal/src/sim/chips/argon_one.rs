//! argon_one emulator.
