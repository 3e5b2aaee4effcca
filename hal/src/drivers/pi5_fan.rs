//! The Raspberry Pi 5 official fan (Active Cooler, case fan), taken over
//! from the kernel's thermal governor.
//!
//! The device (hardware reference §5 \[V\] `[S-BCM2712DTS]`): DT node
//! `cooling_fan`, driver `pwm-fan`, hwmon name `pwmfan` with `pwm1`
//! (0–255), `fan1_input` (RPM from an RP1 register) and `pwm1_enable`;
//! RP1 PWM1 channel 3 (GPIO45), period 41 566 ns, inverted in the device
//! tree (the driver handles that: `pwm1` 255 is full speed). It is also
//! the thermal cooling device of type `pwm-fan`, states 0–4 with cooling
//! levels 0, 75, 125, 175, 250, bound to the `cpu-thermal` zone whose
//! `step_wise` governor moves it at trips of 50 / 60 / 67.5 / 75 °C.
//!
//! ## Taking over from the governor
//!
//! While the governor owns the cooling device, a write to `pwm1` lasts
//! only until the governor next sets a state (hardware reference §5:
//! "overridden at the next poll", \[T\]; exactly when is \[U\]: mainline
//! `step_wise` and `pwm-fan` only act when the state changes). So
//! [`Pi5Fan::take_over`] takes the zone away from it first, in one of two
//! ways:
//!
//! - [`TakeOver::UserSpaceGovernor`] (the default, and what `set_duty`
//!   uses when nobody took over yet): the zone's `policy` becomes
//!   `user_space`. That governor never sets cooling states (it only sends
//!   uevents), while the zone stays enabled: its temperature still reads
//!   and the kernel still acts on critical trips (orderly shutdown). It
//!   needs `user_space` in `available_policies`
//!   (`CONFIG_THERMAL_GOV_USER_SPACE`); without it the take-over fails
//!   as Unsupported rather than silently doing something weaker.
//! - [`TakeOver::DisableZone`]: the zone's `mode` becomes `disabled`. It
//!   works without the user_space governor, but the kernel then stops
//!   polling the zone, critical trips included: only for kernels without
//!   `user_space`, and only with a fan loop that fails safe.
//!
//! Either way, every other cooling device bound to `cpu-thermal` also
//! loses its governor (on a Pi 5 the fan is the only one; the firmware's
//! own throttling at 80–85 °C is independent of Linux). Then
//! `pwm1_enable` is set to 1 (for `pwm-fan` it only says what happens
//! at `pwm1` = 0, and 1 is its default) and `pwm1` is ours.
//!
//! [`Pi5Fan::assert_manual`], which the fan loop calls each period (and
//! `set_duty` calls), puts the policy or mode back if something else
//! changed it, and re-asserts `pwm1_enable`.
//!
//! [`Pi5Fan::hand_back`] restores what was there before the take-over:
//! the policy, the mode, `pwm1_enable`, and `cur_state` (so that the
//! governor's view and the fan agree again; it will move the fan at the
//! next state change). Dropping a `Pi5Fan` that holds the fan hands it
//! back, best effort. The governor settings are not persistent: after a
//! crash, a reboot gives the fan back to the kernel.
//!
//! To extend: another governed fan (a `pwm-fan` on another board) can use
//! this with its own hwmon selector and zone type through
//! [`Pi5Fan::open_with`].

use std::path::Path;

use crate::devices::{Fan, check_duty};
use crate::sysfs::hwmon::{Hwmon, HwmonFan, Selector, percent_to_pwm, pwm_to_percent};
use crate::sysfs::is_gone;
use crate::sysfs::thermal::{CoolingDevice, USER_SPACE, Zone};
use crate::{Error, Result};

/// The hwmon `name` of the fan.
pub const HWMON_NAME: &str = "pwmfan";
/// The cooling device type.
pub const COOLING_TYPE: &str = "pwm-fan";
/// The thermal zone that governs it.
pub const ZONE_TYPE: &str = "cpu-thermal";
/// `pwm1` per cooling state.
pub const COOLING_LEVELS: [u8; 5] = [0, 75, 125, 175, 250];
/// PWM period, ns.
pub const PERIOD_NS: u64 = 41_566;

/// The cooling state whose level is the highest not above `pwm` (what the
/// pwm-fan driver reports after a direct `pwm1` write).
pub fn state_for_pwm(pwm: u8) -> usize {
    COOLING_LEVELS.iter().rposition(|&l| pwm >= l).unwrap_or(0)
}

/// How to take the fan away from the thermal governor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TakeOver {
    /// Set the zone's `policy` to `user_space` (keeps critical trips).
    #[default]
    UserSpaceGovernor,
    /// Set the zone's `mode` to `disabled` (stops the zone entirely).
    DisableZone,
}

#[derive(Debug, Clone)]
struct Saved {
    how: TakeOver,
    policy: Option<String>,
    mode: Option<String>,
    pwm_enable: Option<i64>,
    cur_state: Option<u64>,
}

/// The Pi 5 fan.
#[derive(Debug)]
pub struct Pi5Fan {
    fan: HwmonFan,
    zone: Option<Zone>,
    cooling: Option<CoolingDevice>,
    saved: Option<Saved>,
}

impl Pi5Fan {
    /// Finds the fan under `sysfs` (hwmon `pwmfan`, cooling device
    /// `pwm-fan`, and the zone it is bound to, else `cpu-thermal`).
    /// Changes nothing.
    pub fn open(sysfs: &Path) -> Result<Pi5Fan> {
        Self::open_with(sysfs, Selector::name(HWMON_NAME), COOLING_TYPE, ZONE_TYPE)
    }

    /// As [`open`](Self::open) with another hwmon selector, cooling device
    /// type and fallback zone type.
    pub fn open_with(
        sysfs: &Path,
        selector: Selector,
        cooling_type: &str,
        zone_type: &str,
    ) -> Result<Pi5Fan> {
        let fan = HwmonFan::new(Hwmon::open(sysfs, selector)?, 1)?;
        let cooling = match CoolingDevice::open(sysfs, cooling_type) {
            Ok(c) => Some(c),
            Err(e) if is_gone(&e) => None,
            Err(e) => return Err(e),
        };
        let mut zone = None;
        if let Some(c) = &cooling {
            for mut z in Zone::all(sysfs)? {
                if z.cooling_devices()?.iter().any(|d| d.dir() == c.dir()) {
                    zone = Some(z);
                    break;
                }
            }
        }
        if zone.is_none() {
            zone = Zone::open_any(sysfs, &[zone_type])?;
        }
        Ok(Pi5Fan {
            fan,
            zone,
            cooling,
            saved: None,
        })
    }

    /// Whether the fan is taken over.
    pub fn is_taken_over(&self) -> bool {
        self.saved.is_some()
    }

    /// The zone that governs the fan, if any.
    pub fn zone(&self) -> Option<&Zone> {
        self.zone.as_ref()
    }

    /// The cooling state the kernel shows, if there is a cooling device.
    pub fn cooling_state(&self) -> Result<Option<u64>> {
        self.cooling.as_ref().map(|c| c.cur_state()).transpose()
    }

    /// Takes the fan from the thermal governor (see the module docs) and
    /// remembers what to restore. Taking over again only re-asserts.
    pub fn take_over(&mut self, how: TakeOver) -> Result<()> {
        if self.saved.is_some() {
            self.assert_manual()?;
            return Ok(());
        }
        let mut saved = Saved {
            how,
            policy: None,
            mode: None,
            pwm_enable: self.fan.enable_mode()?,
            cur_state: self.cooling_state()?,
        };
        if let Some(z) = self.zone.as_mut() {
            saved.policy = Some(z.policy()?);
            saved.mode = z.mode()?;
            match how {
                TakeOver::UserSpaceGovernor => {
                    let available = z.available_policies()?;
                    if !available.iter().any(|p| p == USER_SPACE) {
                        return Err(Error::Unsupported {
                            chip: "pi5_fan",
                            what: format!(
                                "taking {} from its governor: no user_space policy (available: {}); \
                                 use TakeOver::DisableZone or leave the fan to the kernel",
                                z.dir().display(),
                                available.join(" ")
                            ),
                        });
                    }
                    z.set_policy(USER_SPACE)?;
                }
                TakeOver::DisableZone => {
                    if saved.mode.is_none() {
                        return Err(Error::Unsupported {
                            chip: "pi5_fan",
                            what: format!("disabling {}: the zone has no mode", z.dir().display()),
                        });
                    }
                    z.set_mode("disabled")?;
                }
            }
        }
        self.saved = Some(saved);
        self.fan.assert_manual()?;
        Ok(())
    }

    /// Re-asserts the take-over: puts the zone's policy or mode back if
    /// something changed it, and `pwm1_enable` to 1. `true` when anything
    /// had to be rewritten. Does nothing before a take-over.
    pub fn assert_manual(&mut self) -> Result<bool> {
        let Some(saved) = &self.saved else {
            return Ok(false);
        };
        let mut changed = false;
        if let Some(z) = self.zone.as_mut() {
            match saved.how {
                TakeOver::UserSpaceGovernor => {
                    if z.policy()? != USER_SPACE {
                        z.set_policy(USER_SPACE)?;
                        changed = true;
                    }
                }
                TakeOver::DisableZone => {
                    if z.mode()?.as_deref() != Some("disabled") {
                        z.set_mode("disabled")?;
                        changed = true;
                    }
                }
            }
        }
        changed |= self.fan.assert_manual()?;
        Ok(changed)
    }

    /// Gives the fan back to the governor: restores the policy, mode,
    /// `pwm1_enable` and cooling state saved at the take-over. Nothing to
    /// do when not taken over.
    pub fn hand_back(&mut self) -> Result<()> {
        let Some(saved) = self.saved.take() else {
            return Ok(());
        };
        if let Some(z) = self.zone.as_mut() {
            if let Some(m) = &saved.mode {
                z.set_mode(m)?;
            }
            if let Some(p) = &saved.policy {
                z.set_policy(p)?;
            }
        }
        if let Some(e) = saved.pwm_enable {
            self.fan.set_enable_mode(e)?;
        }
        if let (Some(c), Some(s)) = (&self.cooling, saved.cur_state) {
            c.set_cur_state(s)?;
        }
        Ok(())
    }

    /// Hands the fan back and gives the hwmon fan back.
    pub fn release(mut self) -> Result<HwmonFan> {
        self.hand_back()?;
        Ok(self.fan.clone())
    }
}

impl Drop for Pi5Fan {
    fn drop(&mut self) {
        let _ = self.hand_back();
    }
}

impl Fan for Pi5Fan {
    fn set_duty(&mut self, percent: f64) -> Result<()> {
        let p = check_duty("pi5_fan", percent)?;
        if self.saved.is_none() {
            self.take_over(TakeOver::default())?;
        } else {
            self.assert_manual()?;
        }
        self.fan.set_pwm(percent_to_pwm(p))
    }

    fn duty(&mut self) -> Result<f64> {
        Ok(pwm_to_percent(self.fan.pwm()?))
    }

    fn rpm(&mut self) -> Result<Option<f64>> {
        self.fan.rpm()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_map_pwm_to_cooling_state() {
        assert_eq!(state_for_pwm(0), 0);
        assert_eq!(state_for_pwm(74), 0);
        assert_eq!(state_for_pwm(75), 1);
        assert_eq!(state_for_pwm(204), 3);
        assert_eq!(state_for_pwm(255), 4);
    }
}
