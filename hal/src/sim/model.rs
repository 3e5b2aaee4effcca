//! The physical model behind the simulated world: node temperature from
//! load, ambient and airflow (fan duty → rpm → cooling), rail power from
//! load, battery charge and discharge, mains loss on a schedule, GPU heat.
//!
//! Deterministic: the same seed and the same sequence of steps give the
//! same numbers, and time is a [`Clock`] that tests advance, never the
//! wall clock. The world (`sim::world`) reads the actuators from the
//! emulators (fan duty), calls [`Model::step`], and writes the physical
//! inputs back into them (temperatures, currents, battery level), so the
//! real drivers read what the model says.
//!
//! The physics is a lumped thermal mass, first-order, on purpose: enough
//! to make a fan loop's closed loop behave like a real one (hotter under
//! load, cooler with more airflow, a seized fan heats up, a lost sensor
//! stays put), not a CFD model.
//!
//! To extend: add a state field with its parameters in [`Params`], advance
//! it in [`Model::step`], and a unit test that shows the behaviour.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A clock that tests control; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    now: Arc<Mutex<Duration>>,
}

impl Clock {
    /// A clock at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Time since the start of the simulation.
    pub fn now(&self) -> Duration {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves time forward.
    pub fn advance(&self, dt: Duration) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) += dt;
    }
}

/// A small deterministic generator (xorshift64*), so the model needs no
/// random-number crate and replays exactly from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// From a seed (0 is replaced by a fixed non-zero value).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next value in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (v >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A value in [-1, 1).
    pub fn symmetric(&mut self) -> f64 {
        self.next_f64() * 2.0 - 1.0
    }
}

/// The model's parameters; the defaults describe a Raspberry Pi 4 in a
/// case with a small fan.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Seed of the load and noise generator.
    pub seed: u64,
    /// Ambient air, °C.
    pub ambient_celsius: f64,
    /// Heat capacity of the SoC and heatsink, J/K.
    pub heat_capacity: f64,
    /// Board power at idle, W.
    pub idle_watts: f64,
    /// Board power at full load, W.
    pub max_watts: f64,
    /// Heat conductance to ambient with no airflow, W/K.
    pub passive_conductance: f64,
    /// Extra conductance at full airflow, W/K.
    pub fan_conductance: f64,
    /// Fan speed at 100 % duty, RPM.
    pub fan_max_rpm: f64,
    /// Duty below which the fan does not turn, percent.
    pub fan_start_percent: f64,
    /// Time constant of the fan's spin-up and spin-down, s.
    pub fan_time_constant: f64,
    /// Mean load, 0–1.
    pub load_mean: f64,
    /// Amplitude of the load's random walk, 0–1.
    pub load_swing: f64,
    /// Supply voltage of the board, V.
    pub supply_volts: f64,
    /// Battery capacity, Wh (0: no battery).
    pub battery_wh: f64,
    /// Charging power when on mains, W.
    pub charge_watts: f64,
    /// Battery voltage when full and when empty, V.
    pub battery_volts: (f64, f64),
    /// Spans of time with the mains off: (from, until), since the start.
    pub mains_outages: Vec<(Duration, Duration)>,
    /// GPU power at idle and at full load, W (0, 0: no discrete GPU).
    pub gpu_watts: (f64, f64),
    /// GPU heat conductance to ambient at full fan, W/K.
    pub gpu_conductance: f64,
    /// Standard deviation-like amplitude of sensor noise, °C.
    pub noise_celsius: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            seed: 1,
            ambient_celsius: 25.0,
            heat_capacity: 60.0,
            idle_watts: 2.7,
            max_watts: 7.0,
            passive_conductance: 0.12,
            fan_conductance: 0.35,
            fan_max_rpm: 5000.0,
            fan_start_percent: 10.0,
            fan_time_constant: 1.5,
            load_mean: 0.35,
            load_swing: 0.25,
            supply_volts: 5.1,
            battery_wh: 0.0,
            charge_watts: 10.0,
            battery_volts: (4.2, 3.3),
            mains_outages: Vec::new(),
            gpu_watts: (0.0, 0.0),
            gpu_conductance: 2.5,
            noise_celsius: 0.05,
        }
    }
}

/// The state the model computes.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// SoC / CPU temperature, °C.
    pub cpu_celsius: f64,
    /// Board temperature (slower, near ambient), °C.
    pub board_celsius: f64,
    /// Load, 0–1.
    pub load: f64,
    /// Fan duty the actuator was set to, percent.
    pub fan_duty: f64,
    /// Fan speed, RPM (0 when seized).
    pub fan_rpm: f64,
    /// Board power, W.
    pub board_watts: f64,
    /// Battery state of charge, percent.
    pub battery_percent: f64,
    /// Mains present.
    pub mains: bool,
    /// The node is on. It goes off when its host powers off
    /// ([`Model::power_off`]) or its battery runs flat without mains; a
    /// UPS HAT with auto power-on turns it on again when mains returns.
    /// Off, it draws nothing: the battery keeps its charge.
    pub powered: bool,
    /// GPU temperature, °C.
    pub gpu_celsius: f64,
    /// GPU power, W.
    pub gpu_watts: f64,
    /// GPU power limit, W (the model caps GPU power at it).
    pub gpu_limit_watts: f64,
    /// GPU utilisation, 0–1.
    pub gpu_load: f64,
    /// Energy drawn since the start, J.
    pub energy_joules: f64,
}

/// The physical model of one node.
#[derive(Debug, Clone)]
pub struct Model {
    params: Params,
    state: State,
    rng: Rng,
    load_walk: f64,
    fan_seized: bool,
    elapsed: Duration,
}

impl Model {
    /// A node at ambient temperature, full battery, mains on.
    pub fn new(params: Params) -> Self {
        let state = State {
            cpu_celsius: params.ambient_celsius + 10.0,
            board_celsius: params.ambient_celsius + 5.0,
            load: params.load_mean,
            fan_duty: 0.0,
            fan_rpm: 0.0,
            board_watts: params.idle_watts,
            battery_percent: 100.0,
            mains: true,
            powered: true,
            gpu_celsius: params.ambient_celsius + 5.0,
            gpu_watts: params.gpu_watts.0,
            gpu_limit_watts: params.gpu_watts.1,
            gpu_load: 0.0,
            energy_joules: 0.0,
        };
        Model {
            rng: Rng::new(params.seed),
            params,
            state,
            load_walk: 0.0,
            fan_seized: false,
            elapsed: Duration::ZERO,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Sets the fan duty the actuator reports, percent.
    pub fn set_fan_duty(&mut self, percent: f64) {
        self.state.fan_duty = percent.clamp(0.0, 100.0);
    }

    /// A seized fan turns at 0 RPM whatever its duty.
    pub fn seize_fan(&mut self, seized: bool) {
        self.fan_seized = seized;
    }

    /// Pins the load (0–1) instead of the random walk around the mean.
    pub fn set_load(&mut self, load: f64) {
        self.params.load_mean = load.clamp(0.0, 1.0);
        self.params.load_swing = 0.0;
        self.load_walk = 0.0;
    }

    /// Sets the ambient temperature, °C.
    pub fn set_ambient(&mut self, celsius: f64) {
        self.params.ambient_celsius = celsius;
    }

    /// Sets the GPU power limit, W.
    pub fn set_gpu_limit(&mut self, watts: f64) {
        self.state.gpu_limit_watts = watts;
    }

    /// Sets the GPU utilisation, 0–1.
    pub fn set_gpu_load(&mut self, load: f64) {
        self.state.gpu_load = load.clamp(0.0, 1.0);
    }

    /// The host powers itself off (a shutdown done): the node draws
    /// nothing until mains powers it on again.
    pub fn power_off(&mut self) {
        self.state.powered = false;
    }

    /// A temperature reading with the model's sensor noise.
    pub fn noisy(&mut self, celsius: f64) -> f64 {
        celsius + self.rng.symmetric() * self.params.noise_celsius
    }

    /// Advances the model by `dt`, in sub-steps of at most 100 ms.
    pub fn step(&mut self, dt: Duration) {
        let mut left = dt.as_secs_f64();
        while left > 0.0 {
            let h = left.min(0.1);
            self.substep(h);
            left -= h;
        }
    }

    fn substep(&mut self, h: f64) {
        let p = &self.params;
        self.elapsed += Duration::from_secs_f64(h);
        let now = self.elapsed;
        self.state.mains = !p
            .mains_outages
            .iter()
            .any(|(from, until)| now >= *from && now < *until);
        // The UPS's auto power-on.
        if self.state.mains {
            self.state.powered = true;
        }

        // Load: a bounded random walk around the mean.
        self.load_walk = (self.load_walk + self.rng.symmetric() * 0.2 * h.sqrt()).clamp(-1.0, 1.0);
        self.state.load = if self.state.powered {
            (p.load_mean + p.load_swing * self.load_walk).clamp(0.0, 1.0)
        } else {
            0.0
        };

        // Fan: rpm follows duty with a first-order lag; nothing below the
        // start duty; a seized fan stands still.
        let target_rpm = if self.fan_seized || self.state.fan_duty < p.fan_start_percent {
            0.0
        } else {
            p.fan_max_rpm * self.state.fan_duty / 100.0
        };
        let a = (h / p.fan_time_constant.max(1e-3)).min(1.0);
        self.state.fan_rpm += (target_rpm - self.state.fan_rpm) * a;

        // Heat balance of the SoC.
        let airflow = (self.state.fan_rpm / p.fan_max_rpm.max(1.0)).clamp(0.0, 1.0);
        let watts = if self.state.powered {
            p.idle_watts + (p.max_watts - p.idle_watts) * self.state.load
        } else {
            0.0
        };
        let g = p.passive_conductance + p.fan_conductance * airflow;
        let d_t = (watts - g * (self.state.cpu_celsius - p.ambient_celsius)) / p.heat_capacity;
        self.state.cpu_celsius += d_t * h;
        self.state.board_celsius += (p.ambient_celsius
            + 0.4 * (self.state.cpu_celsius - p.ambient_celsius)
            - self.state.board_celsius)
            * (h / 60.0).min(1.0);
        self.state.board_watts = watts;

        // GPU: power follows utilisation, capped by the limit.
        if p.gpu_watts.1 > 0.0 {
            let want = p.gpu_watts.0 + (p.gpu_watts.1 - p.gpu_watts.0) * self.state.gpu_load;
            self.state.gpu_watts = want.min(self.state.gpu_limit_watts.max(p.gpu_watts.0));
            // The GPU's own heat sink passes a quarter of its full-airflow
            // conductance with the node's fans stopped.
            let g = p.gpu_conductance * (0.25 + 0.75 * airflow);
            let d_t = (self.state.gpu_watts - g * (self.state.gpu_celsius - p.ambient_celsius))
                / (p.heat_capacity * 4.0);
            self.state.gpu_celsius += d_t * h;
        }
        self.state.energy_joules += (watts + self.state.gpu_watts) * h;

        // Battery.
        if p.battery_wh > 0.0 {
            let wh = if self.state.mains {
                if self.state.battery_percent < 100.0 {
                    p.charge_watts * h / 3600.0
                } else {
                    0.0
                }
            } else {
                -watts * h / 3600.0
            };
            self.state.battery_percent =
                (self.state.battery_percent + wh / p.battery_wh * 100.0).clamp(0.0, 100.0);
            // Flat: the UPS cuts the node's power.
            if !self.state.mains && self.state.battery_percent <= 0.0 {
                self.state.powered = false;
            }
        }
    }

    /// Battery voltage for the current charge (linear between empty and
    /// full), V.
    pub fn battery_volts(&self) -> f64 {
        let (full, empty) = self.params.battery_volts;
        empty + (full - empty) * self.state.battery_percent / 100.0
    }

    /// Board current at the supply voltage, A.
    pub fn board_amps(&self) -> f64 {
        self.state.board_watts / self.params.supply_volts.max(0.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settle(m: &mut Model, secs: u64) {
        m.step(Duration::from_secs(secs));
    }

    #[test]
    fn can_replay_exactly_from_a_seed() {
        let mut a = Model::new(Params::default());
        let mut b = Model::new(Params::default());
        for _ in 0..50 {
            a.step(Duration::from_millis(700));
            b.step(Duration::from_millis(700));
        }
        assert_eq!(a.state(), b.state());
        let mut c = Model::new(Params {
            seed: 2,
            ..Params::default()
        });
        c.step(Duration::from_secs(35));
        assert_ne!(a.state().load, c.state().load);
    }

    #[test]
    fn can_cool_with_airflow() {
        let mut still = Model::new(Params::default());
        still.set_load(0.8);
        let mut cooled = still.clone();
        cooled.set_fan_duty(100.0);
        settle(&mut still, 1800);
        settle(&mut cooled, 1800);
        assert!(
            still.state().cpu_celsius > cooled.state().cpu_celsius + 10.0,
            "{} vs {}",
            still.state().cpu_celsius,
            cooled.state().cpu_celsius
        );
        assert!((cooled.state().fan_rpm - 5000.0).abs() < 1.0);
    }

    #[test]
    fn can_heat_up_when_the_fan_seizes() {
        let mut m = Model::new(Params::default());
        m.set_load(0.8);
        m.set_fan_duty(100.0);
        settle(&mut m, 1800);
        let cool = m.state().cpu_celsius;
        m.seize_fan(true);
        settle(&mut m, 600);
        assert_eq!(m.state().fan_rpm.round(), 0.0);
        assert!(m.state().cpu_celsius > cool + 5.0);
    }

    #[test]
    fn can_not_turn_the_fan_below_its_start_duty() {
        let mut m = Model::new(Params::default());
        m.set_fan_duty(5.0);
        settle(&mut m, 30);
        assert_eq!(m.state().fan_rpm, 0.0);
        m.set_fan_duty(50.0);
        settle(&mut m, 30);
        assert!((m.state().fan_rpm - 2500.0).abs() < 1.0);
    }

    #[test]
    fn can_power_off_keep_its_charge_and_power_on_when_mains_returns() {
        let mut m = Model::new(Params {
            battery_wh: 10.0,
            mains_outages: vec![(Duration::from_secs(60), Duration::from_secs(1260))],
            ..Params::default()
        });
        m.set_load(1.0);
        settle(&mut m, 600);
        assert!(!m.state().mains && m.state().powered);
        m.power_off();
        settle(&mut m, 1);
        let left = m.state().battery_percent;
        settle(&mut m, 600);
        assert!(!m.state().powered);
        assert_eq!(m.state().battery_percent, left);
        assert_eq!(m.state().board_watts, 0.0);
        settle(&mut m, 120);
        assert!(m.state().mains && m.state().powered);
        assert!(m.state().battery_percent > left);
        assert!(m.state().board_watts > 0.0);
    }

    #[test]
    fn goes_off_when_its_battery_runs_flat() {
        let mut m = Model::new(Params {
            battery_wh: 1.0,
            mains_outages: vec![(Duration::from_secs(60), Duration::from_secs(100_000))],
            ..Params::default()
        });
        m.set_load(1.0);
        settle(&mut m, 1800);
        assert!(!m.state().powered);
        assert_eq!(m.state().battery_percent, 0.0);
        assert_eq!(m.state().board_watts, 0.0);
    }

    #[test]
    fn can_discharge_on_mains_loss_and_recharge() {
        let mut m = Model::new(Params {
            battery_wh: 10.0,
            mains_outages: vec![(Duration::from_secs(60), Duration::from_secs(3660))],
            ..Params::default()
        });
        m.set_load(1.0);
        settle(&mut m, 59);
        assert!(m.state().mains);
        assert_eq!(m.state().battery_percent, 100.0);
        settle(&mut m, 1800);
        assert!(!m.state().mains);
        // 7 W for half an hour out of 10 Wh: about 35 % gone.
        let left = m.state().battery_percent;
        assert!((60.0..70.0).contains(&left), "{left}");
        assert!(m.battery_volts() < 4.0);
        settle(&mut m, 3600);
        assert!(m.state().mains);
        assert!(m.state().battery_percent > left);
    }

    #[test]
    fn can_cap_gpu_power_at_its_limit() {
        let mut m = Model::new(Params {
            gpu_watts: (30.0, 300.0),
            gpu_conductance: 300.0 / 45.0,
            ..Params::default()
        });
        m.set_gpu_load(1.0);
        settle(&mut m, 10);
        assert_eq!(m.state().gpu_watts, 300.0);
        m.set_gpu_limit(200.0);
        settle(&mut m, 600);
        assert_eq!(m.state().gpu_watts, 200.0);
        let hot = m.state().gpu_celsius;
        m.set_gpu_load(0.0);
        settle(&mut m, 600);
        assert!(m.state().gpu_celsius < hot);
    }

    #[test]
    fn can_advance_a_shared_clock() {
        let c = Clock::new();
        let d = c.clone();
        c.advance(Duration::from_millis(1500));
        assert_eq!(d.now(), Duration::from_millis(1500));
    }
}
