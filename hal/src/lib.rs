//! # onprem-hal: everything in onprem that touches hardware
//!
//! Buses (I²C, serial, GPIO/PWM, sysfs, NVML) sit behind embedded-hal 1.0
//! traits; drivers per chip are generic over those buses and expose
//! device-level traits; the rest of onprem sees only the device traits.
//! Chip facts come from the project's hardware reference.
//!
//! Layers, from the bottom:
//!
//! - buses: embedded-hal 1.0 [`embedded_hal::i2c::I2c`] ([`i2c`]: Linux
//!   `/dev/i2c-N` with repeated starts, rppal, and a bus scan), [`gpio`]
//!   (edges with kernel timestamps, relays), [`serial`], [`sysfs`] (hwmon,
//!   PWM, thermal), NVML ([`nvml`]), Jetson sysfs ([`jetson`]);
//! - [`drivers`]: one per chip, generic over its bus, which it owns;
//! - [`devices`]: the traits the rest of onprem sees ([`devices::Fan`],
//!   [`devices::TemperatureSensor`], [`devices::PowerMonitor`],
//!   [`devices::Battery`], [`devices::PowerSwitch`],
//!   [`devices::SignalSource`], [`devices::Gpu`], [`devices::Button`]);
//! - [`Error`] with [`Error::kind`]: retry, fail safe, or "not supported"
//!   (a normal absence);
//! - [`inventory`]: a hardware spec (serde, validated with field paths)
//!   built into device handles on real hardware or on the simulated world.
//!
//! Also here:
//!
//! - [`rpi`]: Raspberry Pi firmware state read from sysfs without
//!   `vcgencmd`: the `get_throttled` flags (under-voltage, frequency
//!   capping, throttling, soft temperature limit) and the `rpi_volt` hwmon
//!   under-voltage alarm.
//! - [`sim`]: register-level emulators on a simulated bus, serial devices
//!   on ptys, generated sysfs trees, a fake NVML library and a physical
//!   model, so that the real drivers run in tests and in `onprem demo`.
//!
//! Features (all on by default): `linux-i2c`, `rppal`, `serial`, `modbus`,
//! `nvml`, `sim`. Each can be left out of a build.
//!
//! ## For implementers
//!
//! To add a board facility: one module per facility, a pure `parse_*`
//! function that is unit-tested, and a `read_*` function that takes the
//! sysfs root as a parameter (never a hard-coded `/sys`), so that tests and
//! containers (`--path.sysfs`) point it at another tree.

pub mod devices;
pub mod drivers;
pub mod error;
pub mod gpio;
pub mod i2c;
pub mod inventory;
pub mod jetson;
#[cfg(feature = "nvml")]
pub mod nvml;
pub mod rpi;
#[cfg(feature = "serial")]
pub mod serial;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sysfs;

#[cfg(not(target_os = "linux"))]
compile_error!("onprem-hal supports Linux only (sysfs, /dev/i2c-N, ptys)");

pub use error::{Error, ErrorKind, Result};
