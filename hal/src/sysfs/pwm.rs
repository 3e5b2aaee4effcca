//! The Linux PWM class (`/sys/class/pwm/pwmchipN/`) and fans on it.
//!
//! A chip has `npwm`, `export` and `unexport`; writing a channel number to
//! `export` makes the kernel create `pwmM/` with `period` and `duty_cycle`
//! (nanoseconds; the duty cycle is the active time, not a ratio),
//! `polarity` (`normal` / `inversed`) and `enable` (0/1). The directory
//! appears at once, but udev may need a moment to give it the `gpio`
//! group, so [`PwmChip::export`] waits, bounded, until `enable` can be
//! opened for writing. The kernel refuses a `period` shorter than the
//! current `duty_cycle` (EINVAL), and many drivers refuse a polarity
//! change while enabled.
//!
//! Raspberry Pi hardware PWM (hardware reference §5 \[V\] `[S-RPPAL]`): Pi
//! ≤4 has two channels on `pwmchip0` (PWM0 = GPIO12 or 18, PWM1 = GPIO13
//! or 19), Pi 5 four on `pwmchip2` (GPIO12, 13, 18, 19), after
//! `dtoverlay=pwm` or `pwm-2chan`; the kernel may number the chip
//! differently, so it is a parameter here ([`PwmChip::open`]) or found by
//! its device ([`PwmChip::find_by_device`]). With the `rppal` feature,
//! `RppalFan` drives the same channels through rppal 0.22 (which
//! implements only embedded-hal 0.2 PWM, so this is the adapter).
//!
//! To extend: another PWM-driven actuator is a struct over a
//! [`PwmChannel`] implementing its device trait, as [`SysfsPwmFan`] does.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{canonical, device_matches, numbered_entries, read_string, read_u64, write_str};
use crate::devices::{Fan, check_duty};
use crate::{Error, Result};

/// How long [`PwmChip::export`] waits by default for a channel to appear
/// and become writable (rppal waits up to 1 s for udev).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(1);

/// Output polarity, as the `polarity` attribute spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// Active high (`normal`).
    Normal,
    /// Active low (`inversed`).
    Inversed,
}

impl Polarity {
    /// The sysfs spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Polarity::Normal => "normal",
            Polarity::Inversed => "inversed",
        }
    }

    /// Parses the sysfs spelling.
    pub fn parse(text: &str) -> Option<Polarity> {
        match text.trim() {
            "normal" => Some(Polarity::Normal),
            "inversed" => Some(Polarity::Inversed),
            _ => None,
        }
    }
}

/// One PWM chip.
#[derive(Debug, Clone)]
pub struct PwmChip {
    dir: PathBuf,
}

impl PwmChip {
    /// `class/pwm/pwmchip<chip>` under `sysfs`; it must exist.
    pub fn open(sysfs: &Path, chip: u32) -> Result<PwmChip> {
        let dir = sysfs.join(format!("class/pwm/pwmchip{chip}"));
        read_string(&dir.join("npwm"))?;
        Ok(PwmChip { dir })
    }

    /// The chip whose device path matches `device` (see
    /// [`super::device_matches`]), e.g. `1f00098000.pwm` on a Pi 5.
    pub fn find_by_device(sysfs: &Path, device: &str) -> Result<PwmChip> {
        let class = sysfs.join("class/pwm");
        let mut found = Vec::new();
        for (_, entry) in numbered_entries(&class, "pwmchip")? {
            let Ok(dev) = canonical(&entry.join("device")) else {
                continue;
            };
            if device_matches(sysfs, &dev, device) {
                found.push(entry);
            }
        }
        match found.len() {
            1 => Ok(PwmChip {
                dir: found.remove(0),
            }),
            0 => Err(Error::Io {
                path: class.display().to_string(),
                kind: std::io::ErrorKind::NotFound,
                detail: format!("no pwmchip with device {device} (PWM overlay not loaded?)"),
            }),
            n => Err(Error::Invalid {
                chip: "pwm",
                detail: format!("{n} pwmchips match device {device}; give a longer path"),
            }),
        }
    }

    /// The chip's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of channels.
    pub fn npwm(&self) -> Result<u32> {
        let p = self.dir.join("npwm");
        let v = read_u64(&p)?;
        u32::try_from(v).map_err(|_| Error::Invalid {
            chip: "pwm",
            detail: format!("{}: {v} channels", p.display()),
        })
    }

    fn check_channel(&self, channel: u32) -> Result<()> {
        let n = self.npwm()?;
        if channel >= n {
            return Err(Error::Invalid {
                chip: "pwm",
                detail: format!(
                    "{}: channel {channel} does not exist (npwm = {n})",
                    self.dir.display()
                ),
            });
        }
        Ok(())
    }

    /// Asks the kernel to export `channel` (nothing when it is exported
    /// already; EBUSY, "exported by someone else", counts as exported).
    pub fn request_export(&self, channel: u32) -> Result<()> {
        self.check_channel(channel)?;
        if self.channel_dir(channel).exists() {
            return Ok(());
        }
        let p = self.dir.join("export");
        match std::fs::write(&p, channel.to_string()) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(16) => Ok(()),
            Err(e) => Err(super::write_error(&p, &channel.to_string(), &e)),
        }
    }

    /// Waits until an exported channel's directory exists and its
    /// `enable` can be opened for writing, at most `timeout`. Running out
    /// is a transient [`Error::Io`] `TimedOut`.
    pub fn wait_exported(&self, channel: u32, timeout: Duration) -> Result<PwmChannel> {
        let dir = self.channel_dir(channel);
        let enable = dir.join("enable");
        let start = Instant::now();
        loop {
            let last = match OpenOptions::new().write(true).open(&enable) {
                Ok(_) => {
                    return Ok(PwmChannel {
                        dir,
                        index: channel,
                    });
                }
                Err(e) => e,
            };
            if start.elapsed() >= timeout {
                return Err(Error::Io {
                    path: enable.display().to_string(),
                    kind: std::io::ErrorKind::TimedOut,
                    detail: format!(
                        "pwm{channel} not ready {} ms after export: {last}",
                        timeout.as_millis()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Exports `channel` and waits (at most `timeout`) until it is usable.
    pub fn export(&self, channel: u32, timeout: Duration) -> Result<PwmChannel> {
        self.request_export(channel)?;
        self.wait_exported(channel, timeout)
    }

    /// Unexports `channel` (nothing when it is not exported).
    pub fn unexport(&self, channel: u32) -> Result<()> {
        if !self.channel_dir(channel).exists() {
            return Ok(());
        }
        write_str(&self.dir.join("unexport"), &channel.to_string())
    }

    /// An exported channel; [`Error::Io`] `NotFound` when it is not.
    pub fn channel(&self, channel: u32) -> Result<PwmChannel> {
        let dir = self.channel_dir(channel);
        if !dir.exists() {
            return Err(Error::Io {
                path: dir.display().to_string(),
                kind: std::io::ErrorKind::NotFound,
                detail: format!("pwm{channel} is not exported"),
            });
        }
        Ok(PwmChannel {
            dir,
            index: channel,
        })
    }

    fn channel_dir(&self, channel: u32) -> PathBuf {
        self.dir.join(format!("pwm{channel}"))
    }
}

/// One exported PWM channel.
#[derive(Debug, Clone)]
pub struct PwmChannel {
    dir: PathBuf,
    index: u32,
}

impl PwmChannel {
    /// The channel's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The channel number on its chip.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Period, ns.
    pub fn period_ns(&self) -> Result<u64> {
        read_u64(&self.dir.join("period"))
    }

    /// Sets the period, ns.
    pub fn set_period_ns(&self, ns: u64) -> Result<()> {
        write_str(&self.dir.join("period"), &ns.to_string())
    }

    /// Active time per period, ns.
    pub fn duty_cycle_ns(&self) -> Result<u64> {
        read_u64(&self.dir.join("duty_cycle"))
    }

    /// Sets the active time per period, ns (at most the period).
    pub fn set_duty_cycle_ns(&self, ns: u64) -> Result<()> {
        write_str(&self.dir.join("duty_cycle"), &ns.to_string())
    }

    /// The output polarity.
    pub fn polarity(&self) -> Result<Polarity> {
        let p = self.dir.join("polarity");
        let t = read_string(&p)?;
        Polarity::parse(&t).ok_or_else(|| Error::Invalid {
            chip: "pwm",
            detail: format!("{}: unknown polarity {t:?}", p.display()),
        })
    }

    /// Sets the output polarity (most drivers need the channel disabled).
    pub fn set_polarity(&self, polarity: Polarity) -> Result<()> {
        write_str(&self.dir.join("polarity"), polarity.as_str())
    }

    /// Whether the output runs.
    pub fn is_enabled(&self) -> Result<bool> {
        Ok(read_u64(&self.dir.join("enable"))? != 0)
    }

    /// Starts or stops the output.
    pub fn set_enabled(&self, on: bool) -> Result<()> {
        write_str(&self.dir.join("enable"), if on { "1" } else { "0" })
    }

    /// Sets a new period without tripping over the kernel's
    /// duty ≤ period rule: a duty cycle longer than the new period is
    /// zeroed first.
    pub fn configure_period_ns(&self, period_ns: u64) -> Result<()> {
        if self.duty_cycle_ns()? > period_ns {
            self.set_duty_cycle_ns(0)?;
        }
        self.set_period_ns(period_ns)
    }
}

/// How a [`SysfsPwmFan`] drives its channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FanConfig {
    /// PWM period, ns (40 000 = 25 kHz, the 4-wire fan standard; the Pi 5
    /// fan uses 41 566).
    pub period_ns: u64,
    /// Hardware polarity to set (the channel is disabled while it is
    /// changed); `None` leaves it as it is.
    pub polarity: Option<Polarity>,
    /// The fan's PWM input is active-low: full speed at 0 % active time.
    /// Done in software (duty = period × (1 − p)), so it works on drivers
    /// that cannot change polarity.
    pub invert: bool,
}

impl Default for FanConfig {
    fn default() -> Self {
        FanConfig {
            period_ns: 40_000,
            polarity: None,
            invert: false,
        }
    }
}

/// Active time for `percent` of full drive over `period_ns`.
pub fn percent_to_duty_ns(percent: f64, period_ns: u64, invert: bool) -> u64 {
    let p = percent.clamp(0.0, 100.0) / 100.0;
    let p = if invert { 1.0 - p } else { p };
    (p * period_ns as f64).round() as u64
}

/// Drive in percent for an active time of `duty_ns` over `period_ns`.
pub fn duty_ns_to_percent(duty_ns: u64, period_ns: u64, invert: bool) -> f64 {
    if period_ns == 0 {
        return 0.0;
    }
    let p = (duty_ns.min(period_ns) as f64 / period_ns as f64) * 100.0;
    if invert { 100.0 - p } else { p }
}

/// A fan on a sysfs PWM channel. No tachometer.
#[derive(Debug, Clone)]
pub struct SysfsPwmFan {
    channel: PwmChannel,
    config: FanConfig,
}

impl SysfsPwmFan {
    /// Sets the channel up (period, polarity) and enables it at its
    /// current duty cycle; the fan loop writes its own duty next.
    pub fn new(channel: PwmChannel, config: FanConfig) -> Result<SysfsPwmFan> {
        if config.period_ns == 0 {
            return Err(Error::Invalid {
                chip: "pwm",
                detail: format!("{}: a period of 0 ns", channel.dir().display()),
            });
        }
        channel.configure_period_ns(config.period_ns)?;
        if let Some(p) = config.polarity {
            if channel.polarity()? != p {
                channel.set_enabled(false)?;
                channel.set_polarity(p)?;
            }
        }
        channel.set_enabled(true)?;
        Ok(SysfsPwmFan { channel, config })
    }

    /// Gives the channel back (still running at its last duty).
    pub fn release(self) -> PwmChannel {
        self.channel
    }
}

impl Fan for SysfsPwmFan {
    fn set_duty(&mut self, percent: f64) -> Result<()> {
        let p = check_duty("pwm", percent)?;
        self.channel.set_duty_cycle_ns(percent_to_duty_ns(
            p,
            self.config.period_ns,
            self.config.invert,
        ))
    }

    fn duty(&mut self) -> Result<f64> {
        let period = self.channel.period_ns()?;
        let duty = self.channel.duty_cycle_ns()?;
        Ok(duty_ns_to_percent(duty, period, self.config.invert))
    }

    fn rpm(&mut self) -> Result<Option<f64>> {
        Ok(None)
    }
}

#[cfg(feature = "rppal")]
pub use self::rppal_fan::RppalFan;

#[cfg(feature = "rppal")]
mod rppal_fan {
    use rppal::pwm::{Channel, Polarity as RppalPolarity, Pwm};

    use super::{Fan, check_duty};
    use crate::{Error, Result};

    /// A fan on Raspberry Pi hardware PWM through rppal 0.22 (embedded-hal
    /// 0.2 only: this adapter is the `Fan` for it). No tachometer. The
    /// channel stays enabled at its last duty when this is dropped (the
    /// fan loop writes its safe duty before it stops).
    #[derive(Debug)]
    pub struct RppalFan {
        pwm: Pwm,
        what: String,
        invert: bool,
    }

    /// Maps an rppal PWM error on `what` (the channel's sysfs path or
    /// name).
    pub(crate) fn map_error(what: &str, e: rppal::pwm::Error) -> Error {
        match e {
            rppal::pwm::Error::Io(io) => Error::io(what, &io),
            rppal::pwm::Error::UnknownModel => Error::Unsupported {
                chip: "rppal-pwm",
                what: format!("{what}: hardware PWM on a board rppal does not know"),
            },
            rppal::pwm::Error::InvalidChannel => Error::Invalid {
                chip: "rppal-pwm",
                detail: format!(
                    "{what}: channel not available (enable it with dtoverlay=pwm or pwm-2chan)"
                ),
            },
        }
    }

    impl RppalFan {
        fn start(pwm: Pwm, what: String, frequency_hz: f64, invert: bool) -> Result<RppalFan> {
            let mut pwm = pwm;
            pwm.set_reset_on_drop(false);
            let idle = if invert { 1.0 } else { 0.0 };
            pwm.set_frequency(frequency_hz, idle)
                .map_err(|e| map_error(&what, e))?;
            pwm.set_polarity(RppalPolarity::Normal)
                .map_err(|e| map_error(&what, e))?;
            pwm.enable().map_err(|e| map_error(&what, e))?;
            Ok(RppalFan { pwm, what, invert })
        }

        /// The channel rppal picks for this Pi model (Pi ≤4: pwmchip0
        /// channels 0/1; Pi 5: pwmchip2 channels 0–3), at `frequency_hz`
        /// (25 000 for 4-wire fans), fan stopped until the first duty.
        pub fn new(channel: Channel, frequency_hz: f64, invert: bool) -> Result<RppalFan> {
            let what = format!("hardware PWM {channel}");
            let pwm = Pwm::new(channel).map_err(|e| map_error(&what, e))?;
            Self::start(pwm, what, frequency_hz, invert)
        }

        /// Channel `index` of `pwmchip<chip>`, for kernels that number the
        /// chip differently.
        pub fn with_pwmchip(
            chip: u8,
            index: u8,
            frequency_hz: f64,
            invert: bool,
        ) -> Result<RppalFan> {
            let what = format!("/sys/class/pwm/pwmchip{chip}/pwm{index}");
            let pwm = Pwm::with_pwmchip(chip, index).map_err(|e| map_error(&what, e))?;
            Self::start(pwm, what, frequency_hz, invert)
        }

        /// Gives rppal's handle back.
        pub fn release(self) -> Pwm {
            self.pwm
        }
    }

    impl Fan for RppalFan {
        fn set_duty(&mut self, percent: f64) -> Result<()> {
            let p = check_duty("rppal-pwm", percent)? / 100.0;
            let d = if self.invert { 1.0 - p } else { p };
            self.pwm
                .set_duty_cycle(d)
                .map_err(|e| map_error(&self.what, e))
        }

        fn duty(&mut self) -> Result<f64> {
            let d = self
                .pwm
                .duty_cycle()
                .map_err(|e| map_error(&self.what, e))?;
            let d = if self.invert { 1.0 - d } else { d };
            Ok(d * 100.0)
        }

        fn rpm(&mut self) -> Result<Option<f64>> {
            Ok(None)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::ErrorKind;

        #[test]
        fn can_classify_rppal_errors() {
            let w = "/sys/class/pwm/pwmchip2/pwm0";
            let e = map_error(w, rppal::pwm::Error::UnknownModel);
            assert_eq!(e.kind(), ErrorKind::Unsupported);
            let e = map_error(w, rppal::pwm::Error::InvalidChannel);
            assert_eq!(e.kind(), ErrorKind::Fatal);
            assert!(e.to_string().contains("pwmchip2"), "{e}");
            let e = map_error(
                w,
                rppal::pwm::Error::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
            );
            assert_eq!(e.kind(), ErrorKind::Fatal);
            assert!(e.to_string().contains("pwmchip2/pwm0"), "{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_convert_percent_to_duty_ns() {
        assert_eq!(percent_to_duty_ns(50.0, 40_000, false), 20_000);
        assert_eq!(percent_to_duty_ns(25.0, 40_000, true), 30_000);
        assert_eq!(percent_to_duty_ns(100.0, 41_566, false), 41_566);
        assert_eq!(duty_ns_to_percent(10_000, 40_000, false), 25.0);
        assert_eq!(duty_ns_to_percent(10_000, 40_000, true), 75.0);
        assert_eq!(duty_ns_to_percent(10, 0, false), 0.0);
    }

    #[test]
    fn can_parse_polarity() {
        assert_eq!(Polarity::parse("inversed\n"), Some(Polarity::Inversed));
        assert_eq!(Polarity::parse("normal"), Some(Polarity::Normal));
        assert_eq!(Polarity::parse("inverted"), None);
    }
}
