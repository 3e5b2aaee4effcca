//! # onprem-hal: everything in onprem that touches hardware
//!
//! Buses (I²C, serial, GPIO/PWM, sysfs, NVML) sit behind embedded-hal 1.0
//! traits; drivers per chip are generic over those buses and expose
//! device-level traits; the rest of onprem sees only the device traits.
//! Chip facts come from the project's hardware reference.
//!
//! What is here today:
//!
//! - [`rpi`]: Raspberry Pi firmware state read from sysfs without
//!   `vcgencmd`: the `get_throttled` flags (under-voltage, frequency
//!   capping, throttling, soft temperature limit) and the `rpi_volt` hwmon
//!   under-voltage alarm.
//!
//! ## For implementers
//!
//! To add a board facility: one module per facility, a pure `parse_*`
//! function that is unit-tested, and a `read_*` function that takes the
//! sysfs root as a parameter (never a hard-coded `/sys`), so that tests and
//! containers (`--path.sysfs`) point it at another tree.

pub mod rpi;
