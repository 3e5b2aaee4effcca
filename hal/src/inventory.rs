//! The hardware spec and the device handles built from it.
