//! Sixfab UPS HAT (v2) MCU emulator (hardware reference §2, §9): request
//! frames written as SMBus "write I²C block data" with command 0x01
//! (`01 CD cmd 01 len_hi len_lo data… crc_hi crc_lo`), CRC-16/XMODEM
//! checked (a corrupt or malformed request gets no reply), and a reply
//! (`DC cmd 02 len… crc`) read back one byte per transaction.
//!
//! Timing: a reply becomes readable [`REPLY_DELAY`] (10 ms) of real time
//! after its request. Before that, and after the reply has been read out,
//! a read returns 0x00; what the real MCU clocks out then is \[U\] — the host
//! skips bytes until 0xDC either way. A new request discards an unread
//! reply.
//!
//! State that persists: watchdog enable and interval (4–180 min), a
//! countdown in minutes driven by [`Sixfab::advance`] (a test clock, not
//! wall time) that records a recovery action each time an interval passes
//! without a kick (which action the real MCU takes is \[U\]); an RTC epoch
//! that advances with the same clock; maximum charge level (60–100 %);
//! power-outage parameters; a pending soft power-off request (old API).
//!
//! Faults ([`ReplyFault`]), each applied to the next request's reply:
//! corrupt CRC, garbage before 0xDC, no reply, SET_FAILED.
//!
//! Choices where the real firmware's behaviour is \[U\]: unknown commands
//! get no reply; set commands with malformed or out-of-range data answer
//! SET_FAILED; the working mode is 1 (charging) with the adapter present
//! and the level under the maximum charge level, 2 (full) at or above it,
//! 3 without the adapter; the input rail reads 0 V / 0 A without the
//! adapter; power-outage parameters come back as sleep (high u16) then run
//! (low u16);
//! powers are volts × amps.

use std::any::Any;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::sim::{Chip, ChipError};

/// How long after a request its reply becomes readable.
pub const REPLY_DELAY: Duration = Duration::from_millis(10);

/// A fault applied to the reply of the next request (one per request, in
/// the order injected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyFault {
    /// The reply's CRC is wrong.
    CorruptCrc,
    /// These bytes come before the reply's 0xDC.
    Garbage(Vec<u8>),
    /// No reply at all (reads return 0x00).
    NoReply,
    /// A set command answers SET_FAILED (2) and changes nothing; on a get
    /// command this fault has no effect.
    SetFailed,
}

/// CRC-16/XMODEM, written out again here so that the emulator does not
/// share the driver's code.
fn crc(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |acc, &b| {
        let mut c = acc ^ (u16::from(b) << 8);
        for _ in 0..8 {
            c = if c & 0x8000 == 0 {
                c << 1
            } else {
                (c << 1) ^ 0x1021
            };
        }
        c
    })
}

fn u32_of(value: f64, scale: f64) -> Vec<u8> {
    ((value * scale).round().clamp(0.0, f64::from(u32::MAX)) as u32)
        .to_be_bytes()
        .to_vec()
}

fn i32_of(value: f64, scale: f64) -> Vec<u8> {
    ((value * scale)
        .round()
        .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32)
        .to_be_bytes()
        .to_vec()
}

/// An emulated Sixfab UPS HAT MCU.
#[derive(Debug, Clone)]
pub struct Sixfab {
    out: VecDeque<u8>,
    ready_at: Option<Instant>,
    reply_delay: Duration,
    faults: VecDeque<ReplyFault>,
    requests: u64,
    bad_requests: u64,
    resets: u32,

    mains: bool,
    battery_level: f64,
    battery_volts: f64,
    battery_amps: f64,
    battery_health: u8,
    input_volts: f64,
    input_amps: f64,
    system_volts: f64,
    system_amps: f64,
    input_celsius: f64,
    battery_celsius: f64,
    fan_rpm: u32,
    fan_broken: bool,
    firmware: [u8; 8],

    watchdog_enabled: bool,
    watchdog_interval: u8,
    since_kick: Duration,
    recoveries: u32,
    max_charge: u8,
    outage: (u16, u16),
    rtc: Duration,
    soft_off_requested: bool,
    soft_off_acknowledged: bool,
}

impl Default for Sixfab {
    fn default() -> Self {
        Self::new()
    }
}

impl Sixfab {
    /// An MCU on mains with a battery at 80 %, 3.9 V, charging at 0.3 A;
    /// input 5.1 V / 1.2 A, system 5.0 V / 1.0 A; PCB at 35 °C, battery at
    /// 30 °C; fan at 3000 RPM; watchdog off with a 5-minute interval
    /// (power-on defaults of the real firmware are \[U\]); RTC at 0.
    pub fn new() -> Self {
        Sixfab {
            out: VecDeque::new(),
            ready_at: None,
            reply_delay: REPLY_DELAY,
            faults: VecDeque::new(),
            requests: 0,
            bad_requests: 0,
            resets: 0,
            mains: true,
            battery_level: 80.0,
            battery_volts: 3.9,
            battery_amps: 0.3,
            battery_health: 100,
            input_volts: 5.1,
            input_amps: 1.2,
            system_volts: 5.0,
            system_amps: 1.0,
            input_celsius: 35.0,
            battery_celsius: 30.0,
            fan_rpm: 3000,
            fan_broken: false,
            firmware: *b"v1.00.00",
            watchdog_enabled: false,
            watchdog_interval: 5,
            since_kick: Duration::ZERO,
            recoveries: 0,
            max_charge: 100,
            outage: (2, 0),
            rtc: Duration::ZERO,
            soft_off_requested: false,
            soft_off_acknowledged: false,
        }
    }

    // --- physical inputs ---

    /// Whether the adapter (mains) is present.
    pub fn set_mains(&mut self, present: bool) {
        self.mains = present;
    }

    /// State of charge, percent.
    pub fn set_battery_level(&mut self, percent: f64) {
        self.battery_level = percent;
    }

    /// Battery voltage.
    pub fn set_battery_volts(&mut self, volts: f64) {
        self.battery_volts = volts;
    }

    /// Battery current, signed (the sign convention of the real MCU is
    /// \[U\]; the emulator reports what is set).
    pub fn set_battery_amps(&mut self, amps: f64) {
        self.battery_amps = amps;
    }

    /// Battery health, percent.
    pub fn set_battery_health(&mut self, percent: u8) {
        self.battery_health = percent;
    }

    /// What the adapter delivers while present.
    pub fn set_input(&mut self, volts: f64, amps: f64) {
        self.input_volts = volts;
        self.input_amps = amps;
    }

    /// The rail feeding the Pi.
    pub fn set_system(&mut self, volts: f64, amps: f64) {
        self.system_volts = volts;
        self.system_amps = amps;
    }

    /// PCB (input) temperature, °C.
    pub fn set_input_temperature(&mut self, celsius: f64) {
        self.input_celsius = celsius;
    }

    /// Battery temperature as the MCU measures it, °C.
    pub fn set_battery_temperature(&mut self, celsius: f64) {
        self.battery_celsius = celsius;
    }

    /// Fan speed.
    pub fn set_fan_rpm(&mut self, rpm: u32) {
        self.fan_rpm = rpm;
    }

    /// A fan the MCU reports as broken.
    pub fn set_fan_broken(&mut self, broken: bool) {
        self.fan_broken = broken;
    }

    /// The firmware version string (8 bytes; shorter is padded with
    /// spaces, longer is cut).
    pub fn set_firmware_version(&mut self, version: &str) {
        let mut f = [b' '; 8];
        for (o, b) in f.iter_mut().zip(version.bytes()) {
            *o = b;
        }
        self.firmware = f;
    }

    /// The user (button or scheduled event) asks for a soft power-off.
    pub fn request_soft_power_off(&mut self) {
        self.soft_off_requested = true;
        self.soft_off_acknowledged = false;
    }

    // --- protocol and faults ---

    /// How long after a request its reply becomes readable.
    pub fn set_reply_delay(&mut self, d: Duration) {
        self.reply_delay = d;
    }

    /// Queues a fault for the next request's reply.
    pub fn inject(&mut self, fault: ReplyFault) {
        self.faults.push_back(fault);
    }

    /// Time passes on the test clock: the RTC advances and the watchdog
    /// counts down, recording a recovery action for each interval that
    /// passes without a kick.
    pub fn advance(&mut self, d: Duration) {
        self.rtc += d;
        if !self.watchdog_enabled {
            return;
        }
        self.since_kick += d;
        let interval = Duration::from_secs(u64::from(self.watchdog_interval.max(1)) * 60);
        while self.since_kick >= interval {
            self.recoveries += 1;
            self.since_kick -= interval;
        }
    }

    // --- what the host did ---

    /// Whether the host enabled the watchdog.
    pub fn watchdog_enabled(&self) -> bool {
        self.watchdog_enabled
    }

    /// The watchdog interval the host set, minutes.
    pub fn watchdog_interval_minutes(&self) -> u8 {
        self.watchdog_interval
    }

    /// Recovery actions the watchdog has taken (intervals without a kick).
    pub fn watchdog_recoveries(&self) -> u32 {
        self.recoveries
    }

    /// The maximum charge level the host set, percent.
    pub fn max_charge_level(&self) -> u8 {
        self.max_charge
    }

    /// Power-outage (sleep, run) minutes the host set.
    pub fn power_outage_params(&self) -> (u16, u16) {
        self.outage
    }

    /// Whether the host acknowledged a soft power-off request.
    pub fn soft_power_off_acknowledged(&self) -> bool {
        self.soft_off_acknowledged
    }

    /// The RTC, seconds since the epoch.
    pub fn rtc_epoch(&self) -> u32 {
        u32::try_from(self.rtc.as_secs()).unwrap_or(u32::MAX)
    }

    /// Requests received (well-formed or not).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Requests dropped for a bad command byte, frame or CRC.
    pub fn bad_requests(&self) -> u64 {
        self.bad_requests
    }

    /// Times the host reset the MCU.
    pub fn resets(&self) -> u32 {
        self.resets
    }

    /// The working mode code: 1 charging, 2 full, 3 on battery.
    pub fn working_mode(&self) -> u8 {
        if !self.mains {
            3
        } else if self.battery_level >= f64::from(self.max_charge) {
            2
        } else {
            1
        }
    }

    fn input(&self) -> (f64, f64) {
        if self.mains {
            (self.input_volts, self.input_amps)
        } else {
            (0.0, 0.0)
        }
    }

    /// Commands that change state (36 only with data: without, it polls).
    fn is_set(cmd: u8, data: &[u8]) -> bool {
        matches!(cmd, 17 | 24 | 33 | 39 | 52 | 57) || (cmd == 36 && !data.is_empty())
    }

    /// Carries out one well-formed request; the reply's data, or `None`
    /// for no reply.
    fn handle(&mut self, cmd: u8, data: &[u8]) -> Option<Vec<u8>> {
        const OK: u8 = 1;
        const FAILED: u8 = 2;
        let status = |ok: bool| Some(vec![if ok { OK } else { FAILED }]);
        match (cmd, data) {
            (1, []) => Some(i32_of(self.input_celsius, 100.0)),
            (2, []) => Some(u32_of(self.input().0, 1000.0)),
            (3, []) => Some(u32_of(self.input().1, 1000.0)),
            (4, []) => {
                let (v, a) = self.input();
                Some(u32_of(v * a, 1000.0))
            }
            (6, []) => Some(u32_of(self.system_volts, 1000.0)),
            (7, []) => Some(u32_of(self.system_amps, 1000.0)),
            (8, []) => Some(u32_of(self.system_volts * self.system_amps, 1000.0)),
            (9, []) => Some(i32_of(self.battery_celsius, 100.0)),
            (10, []) => Some(u32_of(self.battery_volts, 1000.0)),
            (11, []) => Some(i32_of(self.battery_amps, 1000.0)),
            (12, []) => Some(i32_of(self.battery_volts * self.battery_amps, 1000.0)),
            (13, []) => Some(u32_of(self.battery_level, 1.0)),
            (14, []) => Some(u32::from(self.battery_health).to_be_bytes().to_vec()),
            (15, []) => Some(self.fan_rpm.to_be_bytes().to_vec()),
            (16, []) => Some(vec![if self.watchdog_enabled { 1 } else { 2 }]),
            (17, [v @ (1 | 2)]) => {
                let enable = *v == 1;
                if enable && !self.watchdog_enabled {
                    self.since_kick = Duration::ZERO;
                }
                self.watchdog_enabled = enable;
                status(true)
            }
            (23, []) => Some(
                u32::from(if self.fan_broken { 2u8 } else { 1 })
                    .to_be_bytes()
                    .to_vec(),
            ),
            (24, [v]) => {
                let ok = (60..=100).contains(v);
                if ok {
                    self.max_charge = *v;
                }
                status(ok)
            }
            (25, []) => Some(vec![self.max_charge]),
            (30, []) => Some(vec![self.working_mode()]),
            (33, [a, b, c, d]) => {
                self.rtc = Duration::from_secs(u64::from(u32::from_be_bytes([*a, *b, *c, *d])));
                status(true)
            }
            (34, []) => Some(self.rtc_epoch().to_be_bytes().to_vec()),
            (36, []) => status(self.soft_off_requested),
            (36, [1]) => {
                let pending = self.soft_off_requested;
                if pending {
                    self.soft_off_requested = false;
                    self.soft_off_acknowledged = true;
                }
                status(pending)
            }
            (39, [1]) => {
                self.since_kick = Duration::ZERO;
                status(true)
            }
            (51, []) => Some(vec![self.watchdog_interval]),
            (52, [v]) => {
                let ok = (4..=180).contains(v);
                if ok {
                    self.watchdog_interval = *v;
                    self.since_kick = Duration::ZERO;
                }
                status(ok)
            }
            (56, []) => {
                let (s, r) = self.outage;
                Some(((u32::from(s) << 16) | u32::from(r)).to_be_bytes().to_vec())
            }
            (57, [a, b, c, d]) => {
                let s = u16::from_be_bytes([*a, *b]);
                let r = u16::from_be_bytes([*c, *d]);
                let ok = (2..=1439).contains(&s) && r <= 1437;
                if ok {
                    self.outage = (s, r);
                }
                status(ok)
            }
            (200, []) => Some(self.firmware.to_vec()),
            (203, []) => {
                self.resets += 1;
                None
            }
            // Set commands with data of the wrong shape.
            (c, d) if Self::is_set(c, d) => status(false),
            _ => None,
        }
    }

    /// Checks a request frame; `(command, data)` when it is well formed.
    fn parse_request(bytes: &[u8]) -> Option<(u8, &[u8])> {
        let (&smbus_cmd, frame) = bytes.split_first()?;
        if smbus_cmd != 0x01 || frame.len() < 7 || frame[0] != 0xCD {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([frame[3], frame[4]]));
        if frame.len() != 7 + len {
            return None;
        }
        let body = 5 + len;
        if crc(&frame[..body]) != u16::from_be_bytes([frame[body], frame[body + 1]]) {
            return None;
        }
        Some((frame[1], &frame[5..body]))
    }
}

impl Chip for Sixfab {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ChipError> {
        self.requests += 1;
        self.out.clear();
        self.ready_at = None;
        let Some((cmd, data)) = Self::parse_request(bytes) else {
            self.bad_requests += 1;
            return Ok(());
        };
        let data = data.to_vec();
        let fault = self.faults.pop_front();
        let reply = if fault == Some(ReplyFault::SetFailed) && Self::is_set(cmd, &data) {
            Some(vec![2])
        } else {
            self.handle(cmd, &data)
        };
        let Some(reply) = reply else {
            return Ok(());
        };
        if fault == Some(ReplyFault::NoReply) {
            return Ok(());
        }
        let mut frame = vec![0xDC, cmd, 0x02];
        frame.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        frame.extend_from_slice(&reply);
        let mut c = crc(&frame);
        if fault == Some(ReplyFault::CorruptCrc) {
            c ^= 0x5A5A;
        }
        frame.extend_from_slice(&c.to_be_bytes());
        if let Some(ReplyFault::Garbage(g)) = fault {
            self.out.extend(g);
        }
        self.out.extend(frame);
        self.ready_at = Some(Instant::now() + self.reply_delay);
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), ChipError> {
        let ready = self.ready_at.is_some_and(|t| Instant::now() >= t);
        for b in buf.iter_mut() {
            *b = if ready {
                self.out.pop_front().unwrap_or(0x00)
            } else {
                0x00
            };
        }
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_compute_the_xmodem_check_value() {
        assert_eq!(crc(b"123456789"), 0x31C3);
    }

    #[test]
    fn can_answer_a_request_after_the_reply_delay() {
        let mut c = Sixfab::new();
        c.set_reply_delay(Duration::ZERO);
        c.set_input(5.123, 1.0);
        c.write(&[0x01, 0xCD, 0x02, 0x01, 0x00, 0x00, 0xC8, 0x9A])
            .ok();
        let mut b = [0u8; 11];
        c.read(&mut b).ok();
        assert_eq!(
            b,
            [
                0xDC, 0x02, 0x02, 0x00, 0x04, 0x00, 0x00, 0x14, 0x03, 0x9F, 0x12
            ]
        );
    }

    #[test]
    fn reads_zeros_before_the_reply_is_ready() {
        let mut c = Sixfab::new();
        c.set_reply_delay(Duration::from_secs(3600));
        c.write(&[0x01, 0xCD, 0x02, 0x01, 0x00, 0x00, 0xC8, 0x9A])
            .ok();
        let mut b = [0xFFu8; 3];
        c.read(&mut b).ok();
        assert_eq!(b, [0, 0, 0]);
    }

    #[test]
    fn drops_requests_with_a_bad_crc() {
        let mut c = Sixfab::new();
        c.set_reply_delay(Duration::ZERO);
        c.write(&[0x01, 0xCD, 0x02, 0x01, 0x00, 0x00, 0xC8, 0x9B])
            .ok();
        let mut b = [0xFFu8; 11];
        c.read(&mut b).ok();
        assert_eq!(b, [0; 11]);
        assert_eq!(c.bad_requests(), 1);
    }
}
