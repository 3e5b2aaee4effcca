//! Chip drivers: one module per chip, each generic over an embedded-hal
//! bus it owns (`new(bus, addr)`, `release()` gives the bus back), with
//! register constants from the datasheet, pure conversion functions that
//! unit tests call, and implementations of the device traits in
//! [`crate::devices`].
//!
//! To add a driver: `drivers/<chip>.rs` (a folder when it grows:
//! `mod.rs`, `registers.rs`, `conversion.rs`), its emulator in
//! `sim/chips/<chip>.rs`, and `tests/<chip>.rs` with byte-exact mock tests
//! (register map typed in again from the datasheet, every expectation used
//! up) and emulator tests.
//!
//! ## Troubleshooting
//!
//! - `Permission denied` on `/dev/i2c-1`: the agent's user needs the `i2c`
//!   group, or the unit's `DeviceAllow=char-i2c rw`.
//! - `no acknowledge of the address`: nothing answers at that address. Is
//!   the bus enabled (`dtparam=i2c_arm=on` on a Pi), the address right
//!   (`onprem i2cdetect -y 1`), the device powered?
//! - `WrongDevice`: something answers, but not this chip: check the
//!   hardware section's chip type.

pub mod ads1x15;
pub mod argon_button;
pub mod argon_fan_hat;
pub mod argon_one;
#[cfg(feature = "serial")]
pub mod bitscope;
pub mod emc2101;
pub mod emc230x;
pub mod gpio_counter;
pub mod ina219;
pub mod ina3221;
pub mod lm75;
#[cfg(feature = "modbus")]
pub mod modbus;
pub mod pi5_fan;
mod regs;
pub mod sixfab;
pub mod tmp102;
