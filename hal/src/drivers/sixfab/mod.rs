//! Sixfab Raspberry Pi UPS HAT (v2) / Power Management & UPS HAT: an MCU
//! at 0x41 that speaks framed requests over I²C (hardware reference §2).
//!
//! The device: an ATSAMD microcontroller (\[T\]) measuring the adapter input,
//! the rail feeding the Pi, the battery, a fan and the board temperature,
//! with a watchdog, an RTC and power-outage scheduling. Facts used here,
//! all \[V\] from the official `sixfab-power-python-api` (`[S-SIXCMD]`,
//! `[S-SIXAPI]`) unless tagged:
//!
//! - **Request**: one SMBus "write I²C block data" with command byte
//!   0x01. Linux emulates that protocol (`i2c_smbus_xfer_emulated`,
//!   `I2C_SMBUS_I2C_BLOCK_DATA` write) as a single I²C write message of
//!   `command, data…` with **no count byte** (unlike SMBus "block write",
//!   which inserts the count); smbus2's `write_i2c_block_data` uses that
//!   protocol. So the wire carries `addr+W, 0x01, CD cmd 01 len_hi len_lo
//!   data… crc_hi crc_lo, STOP`, which this driver sends as one
//!   [`I2c::write`]. The frame must fit one SMBus block (32 bytes).
//! - **Reply**: read as N SMBus "receive byte" transactions (a plain
//!   one-byte read, `addr+R, byte, STOP`), N fixed by the payload type
//!   (8 for u8, 9 for u16, 11 for u32/i32, 15 for the firmware version).
//!   The host skips bytes until 0xDC, resets when the length field is over
//!   32, checks CRC-16/XMODEM over header and data, and ignores the type
//!   byte ([`frame`]). This driver also checks that the reply answers the
//!   command it sent and carries the expected number of data bytes (a
//!   choice: the official API does not).
//! - **Timing**: write, wait [`RESPONSE_DELAY`] (10 ms; 50 ms for input
//!   power, system current and system power), read. Up to 10 attempts
//!   100 ms apart ([`Retry`]); reset-MCU sends without reading.
//! - **Scaling**: big-endian integers; volts, amps and watts ×1000,
//!   temperatures ×100. Battery current and power are signed; which sign
//!   means discharge is \[U\]. Temperatures are decoded as signed here (the
//!   official API decodes them unsigned; identical above 0 °C, a choice).
//! - **Watchdog**: enable with command 17, interval 4–180 min (52), kick
//!   (39) more often than the interval or the MCU takes "recovery
//!   actions" (which ones is \[U\]).
//! - A battery temperature sensor at 0x48 (LM75B-style, 11 bit) is a
//!   separate chip: [`battery_sensor`] returns the [`Lm75`] driver for it.
//!
//! Errors: an exchange that found no valid reply after every attempt is
//! [`Error::Protocol`] (transient) naming the command and the last
//! failure; a reply value that cannot be (a level over 100 %, an unknown
//! working mode) is [`Error::Invalid`]; a value the caller passes outside
//! the documented range is [`Error::Invalid`] before anything is sent; an
//! MCU that answers SET_FAILED is [`Error::Protocol`].
//!
//! To extend: add the command to [`Command`], then a method that calls
//! the matching `get_*`/`set_*` helper with the payload size from the
//! hardware reference's table; add the command to the emulator
//! (`sim::chips::sixfab`) and a byte-exact test with the frame typed in.
//!
//! ## Troubleshooting
//!
//! - Every command fails with "no reply start byte 0xdc": the MCU answers
//!   slowly; raise [`Retry::attempts`]. On a Pi, clock stretching by the
//!   MCU can corrupt bytes (hardware reference §0): use the `i2c-gpio`
//!   overlay.
//! - "CRC check failed" now and then is normal on a busy bus; the retry
//!   absorbs it.

mod command;
pub mod frame;

pub use command::Command;

use std::time::Duration;

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::devices::{Battery, PowerMonitor, TemperatureSensor};
use crate::drivers::lm75::{Lm75, Resolution};
use crate::{Error, Result};

/// The MCU's address.
pub const ADDRESS: u8 = 0x41;
/// The battery temperature sensor's address (LM75B-style).
pub const BATTERY_SENSOR_ADDRESS: u8 = 0x48;
/// The SMBus command byte in front of every request frame.
pub const WRITE_COMMAND: u8 = 0x01;
/// Default wait between the request and reading the reply.
pub const RESPONSE_DELAY: Duration = Duration::from_millis(10);
/// Wait for the commands the MCU needs longer for.
pub const SLOW_RESPONSE_DELAY: Duration = Duration::from_millis(50);
/// Reply to a set command: done.
pub const SET_OK: u8 = 1;
/// Reply to a set command: refused.
pub const SET_FAILED: u8 = 2;
/// Watchdog intervals the API accepts, minutes.
pub const WATCHDOG_INTERVAL_MINUTES: std::ops::RangeInclusive<u8> = 4..=180;
/// Battery maximum charge levels the API documents, percent.
pub const MAX_CHARGE_LEVEL_PERCENT: std::ops::RangeInclusive<u8> = 60..=100;
/// Power-outage sleep times the API accepts, minutes.
pub const OUTAGE_SLEEP_MINUTES: std::ops::RangeInclusive<u16> = 2..=1439;
/// Power-outage run times the API accepts, minutes.
pub const OUTAGE_RUN_MINUTES: std::ops::RangeInclusive<u16> = 0..=1437;

const CHIP: &str = "sixfab";

/// How often to try one exchange, and how long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all (at least one is made).
    pub attempts: u32,
    /// Wait between tries.
    pub pause: Duration,
}

impl Default for Retry {
    /// 10 attempts, 100 ms apart, as the official API.
    fn default() -> Self {
        Retry {
            attempts: 10,
            pause: Duration::from_millis(100),
        }
    }
}

/// What feeds the Pi, from the working mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkingMode {
    /// Adapter present, battery charging (1).
    Charging,
    /// Adapter present, battery full (2).
    FullyCharged,
    /// Running from the battery (3).
    OnBattery,
}

impl WorkingMode {
    /// Decodes the MCU's code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(WorkingMode::Charging),
            2 => Some(WorkingMode::FullyCharged),
            3 => Some(WorkingMode::OnBattery),
            _ => None,
        }
    }

    /// Whether the adapter (mains) is present.
    pub fn on_mains(self) -> bool {
        !matches!(self, WorkingMode::OnBattery)
    }
}

/// What the MCU says about the fan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanHealth {
    /// Turning when driven (1).
    Healthy,
    /// Not turning when driven (2).
    Broken,
}

/// What the MCU does when the adapter fails: sleep, then run, in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerOutageParams {
    /// Minutes to keep the Pi off (2–1439).
    pub sleep_minutes: u16,
    /// Minutes to run it (0–1437).
    pub run_minutes: u16,
}

/// Which rail [`PowerMonitor`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rail {
    /// The adapter input (commands 2–4).
    Input,
    /// The rail feeding the Pi and its peripherals (commands 6–8).
    #[default]
    System,
}

/// A delay that sleeps the thread (what `linux_embedded_hal::Delay` does),
/// for the simulated bus and builds without the `linux-i2c` feature.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdDelay;

impl DelayNs for StdDelay {
    fn delay_ns(&mut self, ns: u32) {
        std::thread::sleep(Duration::from_nanos(u64::from(ns)));
    }
}

/// The LM75B-style battery temperature sensor (0x48, 11 bit), through the
/// existing LM75 driver.
pub fn battery_sensor<I2C: I2c>(i2c: I2C) -> Lm75<I2C> {
    Lm75::new(i2c, BATTERY_SENSOR_ADDRESS, Resolution::Bits11)
}

fn pause<D: DelayNs>(delay: &mut D, d: Duration) {
    if d.is_zero() {
        return;
    }
    let us = d.as_micros();
    if us % 1000 == 0 {
        delay.delay_ms(u32::try_from(us / 1000).unwrap_or(u32::MAX));
    } else {
        delay.delay_us(u32::try_from(us).unwrap_or(u32::MAX));
    }
}

fn be_u32(data: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[..4]);
    u32::from_be_bytes(b)
}

/// The UPS HAT's MCU on an I²C bus, with the delay it needs between a
/// request and its reply.
pub struct Sixfab<I2C, D> {
    i2c: I2C,
    delay: D,
    addr: u8,
    retry: Retry,
    rail: Rail,
}

impl<I2C: I2c, D: DelayNs> Sixfab<I2C, D> {
    /// A driver for the MCU at `addr` (always [`ADDRESS`] on real boards),
    /// retrying as the official API does and reporting the system rail as
    /// its [`PowerMonitor`].
    pub fn new(i2c: I2C, delay: D, addr: u8) -> Self {
        Sixfab {
            i2c,
            delay,
            addr,
            retry: Retry::default(),
            rail: Rail::default(),
        }
    }

    /// Uses `retry` for every exchange.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Reports `rail` through [`PowerMonitor`].
    pub fn with_rail(mut self, rail: Rail) -> Self {
        self.rail = rail;
        self
    }

    /// Gives the bus and the delay back.
    pub fn release(self) -> (I2C, D) {
        (self.i2c, self.delay)
    }

    /// One request/reply cycle with retries: the reply's data, exactly
    /// `data_len` bytes.
    pub fn exchange(&mut self, cmd: Command, data: &[u8], data_len: usize) -> Result<Vec<u8>> {
        let wire = self.wire(cmd, data)?;
        let attempts = self.retry.attempts.max(1);
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                pause(&mut self.delay, self.retry.pause);
            }
            match self.attempt(&wire, cmd, data_len) {
                Ok(d) => return Ok(d),
                Err(e) => last = e,
            }
        }
        Err(Error::Protocol {
            chip: CHIP,
            detail: format!("{cmd}: no valid reply after {attempts} attempts; last: {last}"),
        })
    }

    /// Sends a command that has no reply (reset MCU), once.
    pub fn send_only(&mut self, cmd: Command, data: &[u8]) -> Result<()> {
        let wire = self.wire(cmd, data)?;
        self.i2c.write(self.addr, &wire).map_err(Error::i2c)
    }

    fn wire(&self, cmd: Command, data: &[u8]) -> Result<Vec<u8>> {
        let f = frame::encode_request(cmd.id(), data).ok_or_else(|| Error::Invalid {
            chip: CHIP,
            detail: format!(
                "{cmd}: {} data bytes do not fit one 32-byte block",
                data.len()
            ),
        })?;
        let mut wire = Vec::with_capacity(1 + f.len());
        wire.push(WRITE_COMMAND);
        wire.extend_from_slice(&f);
        Ok(wire)
    }

    fn attempt(
        &mut self,
        wire: &[u8],
        cmd: Command,
        data_len: usize,
    ) -> std::result::Result<Vec<u8>, String> {
        self.i2c
            .write(self.addr, wire)
            .map_err(|e| format!("request: {}", Error::i2c(e)))?;
        pause(&mut self.delay, cmd.response_delay());
        let n = frame::reply_len(data_len);
        let mut parser = frame::Parser::new();
        let mut reply = None;
        for i in 0..n {
            let mut b = [0u8; 1];
            self.i2c
                .read(self.addr, &mut b)
                .map_err(|e| format!("reply byte {} of {n}: {}", i + 1, Error::i2c(e)))?;
            if reply.is_some() {
                continue; // N is fixed: the host reads it all
            }
            match parser.push(b[0]) {
                frame::Step::Pending => {}
                frame::Step::Done(r) => reply = Some(r),
                // The official host stops reading at a CRC failure.
                frame::Step::Failed(e) => return Err(e.to_string()),
            }
        }
        let r = reply.ok_or_else(|| parser.unfinished().to_string())?;
        if r.command != cmd.id() {
            return Err(format!("reply is for command {}", r.command));
        }
        if r.data.len() != data_len {
            return Err(format!(
                "reply carries {} data bytes, want {data_len}",
                r.data.len()
            ));
        }
        Ok(r.data)
    }

    fn get_u8(&mut self, cmd: Command) -> Result<u8> {
        Ok(self.exchange(cmd, &[], 1)?[0])
    }

    fn get_u32(&mut self, cmd: Command) -> Result<u32> {
        Ok(be_u32(&self.exchange(cmd, &[], 4)?))
    }

    fn get_i32(&mut self, cmd: Command) -> Result<i32> {
        Ok(self.get_u32(cmd)? as i32)
    }

    fn set(&mut self, cmd: Command, data: &[u8]) -> Result<()> {
        match self.exchange(cmd, data, 1)?[0] {
            SET_OK => Ok(()),
            SET_FAILED => Err(Error::Protocol {
                chip: CHIP,
                detail: format!("{cmd}: the MCU answered SET_FAILED"),
            }),
            other => Err(Error::Protocol {
                chip: CHIP,
                detail: format!("{cmd}: answer {other} is neither SET_OK nor SET_FAILED"),
            }),
        }
    }

    fn milli(&mut self, cmd: Command) -> Result<f64> {
        Ok(f64::from(self.get_u32(cmd)?) / 1000.0)
    }

    fn signed_milli(&mut self, cmd: Command) -> Result<f64> {
        Ok(f64::from(self.get_i32(cmd)?) / 1000.0)
    }

    fn centi(&mut self, cmd: Command) -> Result<f64> {
        Ok(f64::from(self.get_i32(cmd)?) / 100.0)
    }

    /// PCB (input) temperature, °C.
    pub fn input_temperature_celsius(&mut self) -> Result<f64> {
        self.centi(Command::GetInputTemp)
    }

    /// Adapter input voltage, V.
    pub fn input_volts(&mut self) -> Result<f64> {
        self.milli(Command::GetInputVoltage)
    }

    /// Adapter input current, A.
    pub fn input_amps(&mut self) -> Result<f64> {
        self.milli(Command::GetInputCurrent)
    }

    /// Adapter input power, W.
    pub fn input_watts(&mut self) -> Result<f64> {
        self.milli(Command::GetInputPower)
    }

    /// Voltage of the rail feeding the Pi, V.
    pub fn system_volts(&mut self) -> Result<f64> {
        self.milli(Command::GetSystemVoltage)
    }

    /// Current of the rail feeding the Pi, A.
    pub fn system_amps(&mut self) -> Result<f64> {
        self.milli(Command::GetSystemCurrent)
    }

    /// Power of the rail feeding the Pi, W.
    pub fn system_watts(&mut self) -> Result<f64> {
        self.milli(Command::GetSystemPower)
    }

    /// Battery temperature as the MCU measures it, °C.
    pub fn battery_temperature_celsius(&mut self) -> Result<f64> {
        self.centi(Command::GetBatteryTemp)
    }

    /// Battery voltage, V.
    pub fn battery_volts(&mut self) -> Result<f64> {
        self.milli(Command::GetBatteryVoltage)
    }

    /// Battery current, A, signed (which sign is discharge is \[U\]).
    pub fn battery_amps(&mut self) -> Result<f64> {
        self.signed_milli(Command::GetBatteryCurrent)
    }

    /// Battery power, W, signed like the current.
    pub fn battery_watts(&mut self) -> Result<f64> {
        self.signed_milli(Command::GetBatteryPower)
    }

    /// State of charge, %, as the MCU reports it.
    pub fn battery_level_percent(&mut self) -> Result<u32> {
        self.get_u32(Command::GetBatteryLevel)
    }

    /// Battery health, %.
    pub fn battery_health_percent(&mut self) -> Result<u32> {
        self.get_u32(Command::GetBatteryHealth)
    }

    /// What feeds the Pi.
    pub fn working_mode(&mut self) -> Result<WorkingMode> {
        let code = self.get_u8(Command::GetWorkingMode)?;
        WorkingMode::from_code(code).ok_or_else(|| Error::Invalid {
            chip: CHIP,
            detail: format!("working mode {code} is not 1, 2 or 3"),
        })
    }

    /// Fan speed, RPM.
    pub fn fan_rpm(&mut self) -> Result<u32> {
        self.get_u32(Command::GetFanSpeed)
    }

    /// Fan health.
    pub fn fan_health(&mut self) -> Result<FanHealth> {
        match self.get_u32(Command::GetFanHealth)? {
            1 => Ok(FanHealth::Healthy),
            2 => Ok(FanHealth::Broken),
            other => Err(Error::Invalid {
                chip: CHIP,
                detail: format!("fan health {other} is not 1 or 2"),
            }),
        }
    }

    /// Whether the watchdog is enabled.
    pub fn watchdog_enabled(&mut self) -> Result<bool> {
        match self.get_u8(Command::GetWatchdogStatus)? {
            1 => Ok(true),
            2 => Ok(false),
            other => Err(Error::Invalid {
                chip: CHIP,
                detail: format!("watchdog status {other} is not 1 or 2"),
            }),
        }
    }

    /// Enables or disables the watchdog.
    pub fn set_watchdog_enabled(&mut self, enabled: bool) -> Result<()> {
        self.set(Command::SetWatchdogStatus, &[if enabled { 1 } else { 2 }])
    }

    /// The watchdog interval, minutes.
    pub fn watchdog_interval_minutes(&mut self) -> Result<u8> {
        self.get_u8(Command::GetWatchdogInterval)
    }

    /// Sets the watchdog interval; 4–180 minutes, anything else is
    /// [`Error::Invalid`] and nothing is sent.
    pub fn set_watchdog_interval_minutes(&mut self, minutes: u8) -> Result<()> {
        if !WATCHDOG_INTERVAL_MINUTES.contains(&minutes) {
            return Err(Error::Invalid {
                chip: CHIP,
                detail: format!("watchdog interval {minutes} min is not within 4–180 min"),
            });
        }
        self.set(Command::SetWatchdogInterval, &[minutes])
    }

    /// Kicks the watchdog (command 39).
    pub fn kick_watchdog(&mut self) -> Result<()> {
        self.set(Command::WatchdogSignal, &[1])
    }

    /// The MCU's RTC, seconds since the Unix epoch.
    pub fn rtc_epoch(&mut self) -> Result<u32> {
        self.get_u32(Command::GetRtcTime)
    }

    /// Sets the MCU's RTC, seconds since the Unix epoch.
    pub fn set_rtc_epoch(&mut self, epoch: u32) -> Result<()> {
        self.set(Command::SetRtcTime, &epoch.to_be_bytes())
    }

    /// The firmware version, 8 ASCII characters (e.g. `v1.00.00`).
    pub fn firmware_version(&mut self) -> Result<String> {
        let d = self.exchange(Command::GetFirmwareVer, &[], 8)?;
        if !d.iter().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Invalid {
                chip: CHIP,
                detail: format!("firmware version {d:02x?} is not ASCII"),
            });
        }
        Ok(d.iter().map(|&b| char::from(b)).collect())
    }

    /// The level the battery is charged up to, %.
    pub fn battery_max_charge_level(&mut self) -> Result<u8> {
        self.get_u8(Command::GetBatteryMaxChargeLevel)
    }

    /// Sets the level the battery is charged up to; 60–100 % (the range
    /// the official API documents), anything else is [`Error::Invalid`]
    /// and nothing is sent.
    pub fn set_battery_max_charge_level(&mut self, percent: u8) -> Result<()> {
        if !MAX_CHARGE_LEVEL_PERCENT.contains(&percent) {
            return Err(Error::Invalid {
                chip: CHIP,
                detail: format!("maximum charge level {percent} % is not within 60–100 %"),
            });
        }
        self.set(Command::SetBatteryMaxChargeLevel, &[percent])
    }

    /// What the MCU does on a power outage. The reply is one u32; that
    /// the sleep time is its high half is inferred from the request's
    /// order (\[U\]).
    pub fn power_outage_params(&mut self) -> Result<PowerOutageParams> {
        let v = self.get_u32(Command::GetPowerOutageParams)?;
        Ok(PowerOutageParams {
            sleep_minutes: (v >> 16) as u16,
            run_minutes: v as u16,
        })
    }

    /// Sets what the MCU does on a power outage; out-of-range minutes are
    /// [`Error::Invalid`] and nothing is sent.
    pub fn set_power_outage_params(&mut self, p: PowerOutageParams) -> Result<()> {
        if !OUTAGE_SLEEP_MINUTES.contains(&p.sleep_minutes)
            || !OUTAGE_RUN_MINUTES.contains(&p.run_minutes)
        {
            return Err(Error::Invalid {
                chip: CHIP,
                detail: format!(
                    "power outage sleep {} min / run {} min not within 2–1439 / 0–1437 min",
                    p.sleep_minutes, p.run_minutes
                ),
            });
        }
        let [a, b] = p.sleep_minutes.to_be_bytes();
        let [c, d] = p.run_minutes.to_be_bytes();
        self.set(Command::SetPowerOutageParams, &[a, b, c, d])
    }

    /// Old API (removed from the v2 Python API; v2 firmware support is
    /// \[U\]): whether the MCU asks the Pi to shut down (the button or a
    /// scheduled event). Command 36 without data; 1 = a request exists.
    pub fn soft_power_off_requested(&mut self) -> Result<bool> {
        match self.get_u8(Command::SoftPowerOff)? {
            1 => Ok(true),
            2 => Ok(false),
            other => Err(Error::Invalid {
                chip: CHIP,
                detail: format!("soft power-off answer {other} is not 1 or 2"),
            }),
        }
    }

    /// Old API: acknowledges a soft power-off request (command 36 with
    /// u8 1). The official API then shuts the Pi down about 5 s later;
    /// that is the caller's to do.
    pub fn acknowledge_soft_power_off(&mut self) -> Result<()> {
        self.set(Command::SoftPowerOff, &[1])
    }

    /// Resets the MCU. It sends no reply.
    pub fn reset_mcu(&mut self) -> Result<()> {
        self.send_only(Command::ResetMcu, &[])
    }
}

impl<I2C: I2c + Send, D: DelayNs + Send> Battery for Sixfab<I2C, D> {
    fn charge_percent(&mut self) -> Result<f64> {
        let level = self.battery_level_percent()?;
        if level > 100 {
            return Err(Error::Invalid {
                chip: CHIP,
                detail: format!("battery level {level} % is over 100 %"),
            });
        }
        Ok(f64::from(level))
    }

    fn volts(&mut self) -> Result<f64> {
        self.battery_volts()
    }

    /// Working modes 1 (charging) and 2 (full) mean the adapter is there.
    fn on_mains(&mut self) -> Result<bool> {
        Ok(self.working_mode()?.on_mains())
    }
}

impl<I2C: I2c + Send, D: DelayNs + Send> PowerMonitor for Sixfab<I2C, D> {
    fn bus_volts(&mut self) -> Result<f64> {
        match self.rail {
            Rail::Input => self.input_volts(),
            Rail::System => self.system_volts(),
        }
    }

    fn current_amps(&mut self) -> Result<f64> {
        match self.rail {
            Rail::Input => self.input_amps(),
            Rail::System => self.system_amps(),
        }
    }

    fn power_watts(&mut self) -> Result<f64> {
        match self.rail {
            Rail::Input => self.input_watts(),
            Rail::System => self.system_watts(),
        }
    }
}

impl<I2C: I2c + Send, D: DelayNs + Send> TemperatureSensor for Sixfab<I2C, D> {
    /// The PCB (input) temperature.
    fn temperature_celsius(&mut self) -> Result<f64> {
        self.input_temperature_celsius()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_pick_response_delays_per_command() {
        assert_eq!(Command::GetInputVoltage.response_delay(), RESPONSE_DELAY);
        assert_eq!(Command::GetInputPower.response_delay(), SLOW_RESPONSE_DELAY);
        assert_eq!(
            Command::GetSystemCurrent.response_delay(),
            SLOW_RESPONSE_DELAY
        );
        assert_eq!(
            Command::GetSystemPower.response_delay(),
            SLOW_RESPONSE_DELAY
        );
        assert_eq!(Command::GetBatteryPower.response_delay(), RESPONSE_DELAY);
    }

    #[test]
    fn can_decode_working_modes() {
        assert_eq!(
            WorkingMode::from_code(1).map(WorkingMode::on_mains),
            Some(true)
        );
        assert_eq!(
            WorkingMode::from_code(2).map(WorkingMode::on_mains),
            Some(true)
        );
        assert_eq!(
            WorkingMode::from_code(3).map(WorkingMode::on_mains),
            Some(false)
        );
        assert_eq!(WorkingMode::from_code(0), None);
    }

    #[test]
    fn can_name_commands() {
        assert_eq!(Command::WatchdogSignal.to_string(), "WATCHDOG_SIGNAL (39)");
        assert_eq!(Command::GetFirmwareVer.id(), 200);
    }
}
