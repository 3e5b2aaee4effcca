//! sixfab emulator.
