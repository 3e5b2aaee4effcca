//! The Sixfab MCU's command ids, their official names and how long the
//! host waits for each reply (hardware reference §2.2–2.3, \[V\]
//! `[S-SIXCMD]` `[S-SIXAPI]`).
//!
//! To add a command: a variant with its id, its name in `name()`, and a
//! longer wait in `response_delay()` if the official API uses one.

use std::time::Duration;

use super::{RESPONSE_DELAY, SLOW_RESPONSE_DELAY};

/// The commands this driver sends (ids from the official API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// PCB (input) temperature, u32 ×100 °C.
    GetInputTemp = 1,
    /// Adapter input voltage, u32 mV.
    GetInputVoltage = 2,
    /// Adapter input current, u32 mA.
    GetInputCurrent = 3,
    /// Adapter input power, u32 mW (50 ms response delay).
    GetInputPower = 4,
    /// Voltage of the rail feeding the Pi, u32 mV.
    GetSystemVoltage = 6,
    /// Current of the rail feeding the Pi, u32 mA (50 ms).
    GetSystemCurrent = 7,
    /// Power of the rail feeding the Pi, u32 mW (50 ms).
    GetSystemPower = 8,
    /// Battery temperature, u32 ×100 °C.
    GetBatteryTemp = 9,
    /// Battery voltage, u32 mV.
    GetBatteryVoltage = 10,
    /// Battery current, i32 mA.
    GetBatteryCurrent = 11,
    /// Battery power, i32 mW.
    GetBatteryPower = 12,
    /// State of charge, u32 %.
    GetBatteryLevel = 13,
    /// Battery health, u32 %.
    GetBatteryHealth = 14,
    /// Fan speed, u32 RPM.
    GetFanSpeed = 15,
    /// Watchdog status, u8: 1 enabled, 2 disabled.
    GetWatchdogStatus = 16,
    /// Enables (1) or disables (2) the watchdog.
    SetWatchdogStatus = 17,
    /// Fan health, u32: 1 healthy, 2 broken.
    GetFanHealth = 23,
    /// Sets the battery's maximum charge level, u8 %.
    SetBatteryMaxChargeLevel = 24,
    /// The battery's maximum charge level, u8 %.
    GetBatteryMaxChargeLevel = 25,
    /// Working mode, u8 (see [`super::WorkingMode`]).
    GetWorkingMode = 30,
    /// Sets the RTC, u32 epoch seconds.
    SetRtcTime = 33,
    /// The RTC, u32 epoch seconds.
    GetRtcTime = 34,
    /// Old API: poll (no data) or acknowledge (u8 1) a soft power-off.
    SoftPowerOff = 36,
    /// Watchdog kick, u8 1.
    WatchdogSignal = 39,
    /// The watchdog interval, u8 minutes.
    GetWatchdogInterval = 51,
    /// Sets the watchdog interval, u8 minutes (4–180).
    SetWatchdogInterval = 52,
    /// Power-outage parameters, two u16 minutes (sleep, run).
    GetPowerOutageParams = 56,
    /// Sets the power-outage parameters.
    SetPowerOutageParams = 57,
    /// Firmware version, 8 ASCII characters.
    GetFirmwareVer = 200,
    /// Resets the MCU; no reply.
    ResetMcu = 203,
}

impl Command {
    /// The id on the wire.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The official API's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Command::GetInputTemp => "GET_INPUT_TEMP",
            Command::GetInputVoltage => "GET_INPUT_VOLTAGE",
            Command::GetInputCurrent => "GET_INPUT_CURRENT",
            Command::GetInputPower => "GET_INPUT_POWER",
            Command::GetSystemVoltage => "GET_SYSTEM_VOLTAGE",
            Command::GetSystemCurrent => "GET_SYSTEM_CURRENT",
            Command::GetSystemPower => "GET_SYSTEM_POWER",
            Command::GetBatteryTemp => "GET_BATTERY_TEMP",
            Command::GetBatteryVoltage => "GET_BATTERY_VOLTAGE",
            Command::GetBatteryCurrent => "GET_BATTERY_CURRENT",
            Command::GetBatteryPower => "GET_BATTERY_POWER",
            Command::GetBatteryLevel => "GET_BATTERY_LEVEL",
            Command::GetBatteryHealth => "GET_BATTERY_HEALTH",
            Command::GetFanSpeed => "GET_FAN_SPEED",
            Command::GetWatchdogStatus => "GET_WATCHDOG_STATUS",
            Command::SetWatchdogStatus => "SET_WATCHDOG_STATUS",
            Command::GetFanHealth => "GET_FAN_HEALTH",
            Command::SetBatteryMaxChargeLevel => "SET_BATTERY_MAX_CHARGE_LEVEL",
            Command::GetBatteryMaxChargeLevel => "GET_BATTERY_MAX_CHARGE_LEVEL",
            Command::GetWorkingMode => "GET_WORKING_MODE",
            Command::SetRtcTime => "SET_RTC_TIME",
            Command::GetRtcTime => "GET_RTC_TIME",
            Command::SoftPowerOff => "SOFT_POWER_OFF",
            Command::WatchdogSignal => "WATCHDOG_SIGNAL",
            Command::GetWatchdogInterval => "GET_WATCHDOG_INTERVAL",
            Command::SetWatchdogInterval => "SET_WATCHDOG_INTERVAL",
            Command::GetPowerOutageParams => "GET_POWER_OUTAGE_PARAMS",
            Command::SetPowerOutageParams => "SET_POWER_OUTAGE_PARAMS",
            Command::GetFirmwareVer => "GET_FIRMWARE_VER",
            Command::ResetMcu => "RESET_MCU",
        }
    }

    /// How long the host waits before reading the reply.
    pub fn response_delay(self) -> Duration {
        match self {
            Command::GetInputPower | Command::GetSystemCurrent | Command::GetSystemPower => {
                SLOW_RESPONSE_DELAY
            }
            _ => RESPONSE_DELAY,
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.id())
    }
}
