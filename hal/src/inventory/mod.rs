//! The inventory: device handles built from a hardware [`Spec`], on real
//! buses or on the simulated world, from the same spec.
//!
//! [`validate`] checks a spec and returns every problem with its field
//! path (`devices[2].address: 0x90 is not a 7-bit address`), so a bundle
//! with a bad hardware section is rejected as a whole. [`Inventory::build`]
//! then opens each device. A device that fails to open (absent, wrong
//! chip) is kept as an entry with its error, so `onprem hw probe` and
//! `/metrics` show it, and the agent retries it later; it never stops the
//! other devices.
//!
//! What each entry holds is a [`Handle`]: one of the device traits of
//! [`crate::devices`]. A chip with several functions gives several
//! entries (an EMC2101 is a fan `<name>` and a sensor
//! `<name>/temperature`; a UPS is a battery and rails).
//!
//! To add a driver: a variant in [`spec::Device`] with its settings, its
//! checks in [`validate`], its construction in `build.rs`, and, in
//! `sim::world`, the emulator that stands in for it.

mod build;
pub mod spec;

#[cfg(all(feature = "modbus", feature = "sim"))]
pub(crate) use build::modbus_point;

use std::path::PathBuf;

pub use spec::{Device, Spec};

use crate::devices::{
    Battery, Button, Fan, Gpu, PowerMonitor, PowerSwitch, SignalSource, TemperatureSensor,
};
use crate::{Error, Result};

/// Where the devices are.
#[derive(Clone)]
pub enum Hardware {
    /// The machine's own buses, sysfs and device nodes.
    Real {
        /// The sysfs root (`/sys`, or another tree for containers).
        sysfs: PathBuf,
    },
    /// The simulated world.
    #[cfg(feature = "sim")]
    Sim(crate::sim::world::World),
}

impl Hardware {
    /// The machine's own hardware under `/sys`.
    pub fn real() -> Self {
        Hardware::Real {
            sysfs: PathBuf::from("/sys"),
        }
    }
}

/// A device as the rest of onprem sees it.
pub enum Handle {
    /// A fan.
    Fan(Box<dyn Fan>),
    /// A temperature sensor.
    Temperature(Box<dyn TemperatureSensor>),
    /// A power rail.
    Power(Box<dyn PowerMonitor>),
    /// A battery.
    Battery(Box<dyn Battery>),
    /// A power switch.
    Switch(Box<dyn PowerSwitch>),
    /// A signal source.
    Signal(Box<dyn SignalSource>),
    /// A GPU.
    Gpu(Box<dyn Gpu>),
    /// A power button.
    Button(Box<dyn Button>),
}

impl Handle {
    /// The kind, as metrics and `hw probe` name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Handle::Fan(_) => "fan",
            Handle::Temperature(_) => "temperature",
            Handle::Power(_) => "rail",
            Handle::Battery(_) => "battery",
            Handle::Switch(_) => "switch",
            Handle::Signal(_) => "signal",
            Handle::Gpu(_) => "gpu",
            Handle::Button(_) => "button",
        }
    }
}

/// One device of the inventory.
pub struct Entry {
    /// Its name (`<device>` or `<device>/<part>`).
    pub name: String,
    /// The driver that serves it.
    pub driver: &'static str,
    /// The handle, or why it could not be opened.
    pub handle: Result<Handle>,
}

/// Every device of a spec.
pub struct Inventory {
    /// The entries, in spec order.
    pub entries: Vec<Entry>,
}

impl Inventory {
    /// Opens every device of `spec` on `hw`. The spec should have passed
    /// [`validate`]; a device that fails to open becomes an entry with an
    /// error.
    pub fn build(spec: &Spec, hw: &Hardware) -> Inventory {
        let mut entries = Vec::new();
        for dev in &spec.devices {
            build::device(dev, hw, &mut entries);
        }
        Inventory { entries }
    }

    /// The entry called `name`.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.name == name)
    }
}

/// A problem in a spec, with its field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// Field path, e.g. `devices[2].address`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Checks everything serde cannot: unique names, address and channel
/// ranges, enumerated strings, provisional acknowledgement. Returns every
/// problem found.
pub fn validate(spec: &Spec) -> Vec<SpecError> {
    let mut errs = Vec::new();
    let mut err = |path: String, message: String| errs.push(SpecError { path, message });
    let mut names = std::collections::BTreeMap::new();
    let mut i2c = std::collections::BTreeMap::new();
    for (i, dev) in spec.devices.iter().enumerate() {
        let at = |f: &str| format!("devices[{i}].{f}");
        let name = dev.name();
        if name.is_empty()
            || name.len() > spec::NAME_MAX
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            err(
                at("name"),
                format!(
                    "{name:?} must be 1–{} letters, digits, '-' or '_'",
                    spec::NAME_MAX
                ),
            );
        }
        if let Some(first) = names.insert(name.to_string(), i) {
            err(
                at("name"),
                format!("{name:?} is already the name of devices[{first}]"),
            );
        }
        if let Some((bus, Some(addr))) = dev.i2c() {
            if !(0x03..=0x77).contains(&addr) {
                err(
                    at("address"),
                    format!("0x{addr:02x} is not a usable 7-bit address (0x03–0x77)"),
                );
            }
            // Two drivers on one address are allowed only for the chips
            // that expose several parts through separate entries.
            let key = (bus, addr, dev.driver());
            if let Some((j, drv)) = i2c.insert((bus, addr), (i, dev.driver())) {
                if drv != key.2 {
                    err(
                        at("address"),
                        format!("bus {bus} address 0x{addr:02x} is already devices[{j}] ({drv})"),
                    );
                }
            }
        }
        match dev {
            Device::Lm75(d) if !matches!(d.resolution_bits, 9 | 11) => err(
                at("resolutionBits"),
                format!("{} is not 9 or 11", d.resolution_bits),
            ),
            Device::Ina219(d) => {
                positive(&mut err, at("shuntOhms"), d.shunt_ohms);
                positive(&mut err, at("maxAmps"), d.max_amps);
            }
            Device::Ina3221(d) => {
                if !(1..=3).contains(&d.channel) {
                    err(at("channel"), format!("{} is not 1–3", d.channel));
                }
                positive(&mut err, at("shuntOhms"), d.shunt_ohms);
            }
            Device::Emc230x(d) if !(1..=5).contains(&d.fan) => {
                err(at("fan"), format!("{} is not 1–5", d.fan))
            }
            Device::Ads1x15(d) => {
                if build::ads_variant(&d.variant).is_none() {
                    err(
                        at("variant"),
                        format!("{:?} is not ads1115 or ads1015", d.variant),
                    );
                }
                if build::ads_input(&d.input).is_none() {
                    err(
                        at("input"),
                        format!("{:?} is not a0–a3, a0-a1, a0-a3, a1-a3 or a2-a3", d.input),
                    );
                }
                if build::ads_pga(d.full_scale_volts).is_none() {
                    err(
                        at("fullScaleVolts"),
                        format!(
                            "{} is not 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256",
                            d.full_scale_volts
                        ),
                    );
                }
                if d.rate > 7 {
                    err(at("rate"), format!("{} is not 0–7", d.rate));
                }
            }
            Device::ArgonButton(spec::ArgonButton { pin, .. })
            | Device::GpioRelay(spec::GpioRelay { pin, .. })
            | Device::GpioCounter(spec::GpioCounter { pin, .. })
                if *pin > 57 =>
            {
                err(at("pin"), format!("GPIO {pin} does not exist (BCM 0–57)"))
            }
            Device::HwmonFan(d) | Device::HwmonTemperature(d) | Device::HwmonRail(d)
                if d.chip.is_none() && d.device.is_none() && d.kernel_driver.is_none() =>
            {
                err(
                    at("chip"),
                    "give chip, device or kernelDriver to find the hwmon node (hwmonN numbers change across boots)".into(),
                );
            }
            Device::SysfsPwmFan(d) if d.period_ns == 0 => {
                err(at("periodNs"), "must be more than 0".into())
            }
            Device::RpiPwmFan(d) => {
                if d.channel > 3 {
                    err(at("channel"), format!("{} is not 0–3", d.channel));
                }
                positive(&mut err, at("frequencyHz"), d.frequency_hz);
            }
            Device::ModbusMeter(d) => {
                serial(&mut err, &at("serial"), &d.serial);
                if !(1..=247).contains(&d.unit) {
                    err(at("unit"), format!("{} is not a unit id (1–247)", d.unit));
                }
                point(&mut err, &at("volts"), &d.volts);
                point(&mut err, &at("amps"), &d.amps);
                if let Some(w) = &d.watts {
                    point(&mut err, &at("watts"), w);
                }
            }
            Device::BitscopeBmc(d) => {
                serial(&mut err, &at("serial"), &d.serial);
                if !spec.provisional {
                    err(
                        at("driver"),
                        "bitscope-bmc commands come from this spec, not from a confirmed protocol: set `provisional: true` at the top of the hardware section to acknowledge".into(),
                    );
                }
                if !matches!(d.line_ending.as_str(), "cr" | "lf" | "crlf") {
                    err(
                        at("lineEnding"),
                        format!("{:?} is not cr, lf or crlf", d.line_ending),
                    );
                }
            }
            _ => {}
        }
    }
    let s = &spec.sim;
    if !(0.0..=1.0).contains(&s.load) {
        err("sim.load".into(), format!("{} is not within 0–1", s.load));
    }
    let [lo, hi] = spec::SIM_AMBIENT_CELSIUS;
    within(
        &mut err,
        "sim.ambientCelsius".into(),
        s.ambient_celsius,
        lo,
        hi,
    );
    for (f, [idle, full], max) in [
        ("boardWatts", s.board_watts, spec::SIM_MAX_BOARD_WATTS),
        ("gpuWatts", s.gpu_watts, spec::SIM_MAX_GPU_WATTS),
    ] {
        let ok = within(&mut err, format!("sim.{f}[0]"), idle, 0.0, max)
            & within(&mut err, format!("sim.{f}[1]"), full, 0.0, max);
        if ok && idle > full {
            err(
                format!("sim.{f}"),
                format!("[{idle}, {full}]: idle is above full load"),
            );
        }
    }
    within(
        &mut err,
        "sim.batteryWh".into(),
        s.battery_wh,
        0.0,
        spec::SIM_MAX_BATTERY_WH,
    );
    if s.gpus > spec::SIM_MAX_GPUS {
        err(
            "sim.gpus".into(),
            format!(
                "{} is more than the maximum of {} simulated GPUs",
                s.gpus,
                spec::SIM_MAX_GPUS
            ),
        );
    }
    for (f, n) in [
        ("mainsOutages", s.mains_outages.len()),
        ("signals", s.signals.len()),
    ] {
        if n > spec::SIM_MAX_ENTRIES {
            err(
                format!("sim.{f}"),
                format!(
                    "{n} entries is more than the maximum of {}",
                    spec::SIM_MAX_ENTRIES
                ),
            );
        }
    }
    for (i, [from, until]) in s.mains_outages.iter().enumerate() {
        if !(*from >= 0.0 && until > from && *until <= spec::SIM_MAX_SECONDS) {
            err(
                format!("sim.mainsOutages[{i}]"),
                format!(
                    "[{}, {}] is not a span (0 ≤ from < until ≤ {})",
                    num(*from),
                    num(*until),
                    spec::SIM_MAX_SECONDS
                ),
            );
        }
    }
    for (i, sig) in s.signals.iter().enumerate() {
        let at = |f: &str| format!("sim.signals[{i}].{f}");
        let single_ended = spec.devices.iter().any(|d| match d {
            Device::Ads1x15(a) => a.name == sig.device && !a.input.contains('-'),
            _ => false,
        });
        if !single_ended {
            err(
                at("device"),
                format!(
                    "{:?} is not an ads1x15 device with a single-ended input",
                    sig.device
                ),
            );
        }
        within(
            &mut err,
            at("volts"),
            sig.volts,
            -spec::SIM_MAX_VOLTS,
            spec::SIM_MAX_VOLTS,
        );
        within(
            &mut err,
            at("amplitude"),
            sig.amplitude,
            0.0,
            spec::SIM_MAX_VOLTS,
        );
        if within(
            &mut err,
            at("periodSeconds"),
            sig.period_seconds,
            0.0,
            spec::SIM_MAX_SECONDS,
        ) {
            positive(&mut err, at("periodSeconds"), sig.period_seconds);
        }
    }
    errs
}

/// A finite `v` within `lo..=hi`; otherwise an error naming the range.
fn within(err: &mut impl FnMut(String, String), path: String, v: f64, lo: f64, hi: f64) -> bool {
    if v.is_finite() && (lo..=hi).contains(&v) {
        true
    } else {
        err(path, format!("{} is not within {lo}–{hi}", num(v)));
        false
    }
}

/// A number for a message: `1e300`, not three hundred digits.
pub fn num(v: f64) -> String {
    if v.is_finite() && v != 0.0 && !(1e-6..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

fn positive(err: &mut impl FnMut(String, String), path: String, v: f64) {
    if !(v.is_finite() && v > 0.0) {
        err(path, format!("{v} must be more than 0"));
    }
}

fn serial(err: &mut impl FnMut(String, String), at: &str, s: &spec::SerialLine) {
    if s.port.is_empty() {
        err(format!("{at}.port"), "must name a device node".into());
    }
    if s.baud == 0 {
        err(format!("{at}.baud"), "must be more than 0".into());
    }
    if !matches!(s.parity.as_str(), "none" | "even" | "odd") {
        err(
            format!("{at}.parity"),
            format!("{:?} is not none, even or odd", s.parity),
        );
    }
    if !matches!(s.stop_bits, 1 | 2) {
        err(
            format!("{at}.stopBits"),
            format!("{} is not 1 or 2", s.stop_bits),
        );
    }
}

fn point(err: &mut impl FnMut(String, String), at: &str, p: &spec::ModbusPoint) {
    if !matches!(p.table.as_str(), "holding" | "input") {
        err(
            format!("{at}.table"),
            format!("{:?} is not holding or input", p.table),
        );
    }
    if !matches!(p.value_type.as_str(), "u16" | "i16" | "u32" | "i32" | "f32") {
        err(
            format!("{at}.type"),
            format!("{:?} is not u16, i16, u32, i32 or f32", p.value_type),
        );
    }
    if !matches!(p.word_order.as_str(), "big" | "little") {
        err(
            format!("{at}.wordOrder"),
            format!("{:?} is not big or little", p.word_order),
        );
    }
    if !p.scale.is_finite() || p.scale == 0.0 {
        err(
            format!("{at}.scale"),
            format!("{} must be a non-zero number", p.scale),
        );
    }
}

/// One reading of a handle, for `onprem hw probe`: a line of text, or the
/// error it got.
pub fn probe(handle: &mut Handle) -> Result<String> {
    match handle {
        Handle::Fan(f) => {
            // A write-only fan (Argon Fan HAT, legacy Argon ONE) has no duty
            // to report until something sets it; probing never sets one.
            let duty = match f.duty() {
                Ok(d) => format!("duty {d:.0} %"),
                Err(Error::NotReady { .. }) => "duty not reported until set (write-only)".into(),
                Err(e) => return Err(e),
            };
            match f.rpm()? {
                Some(rpm) => Ok(format!("{duty}, {rpm:.0} rpm")),
                None => Ok(format!("{duty}, no tachometer")),
            }
        }
        Handle::Temperature(t) => Ok(format!("{:.2} °C", t.temperature_celsius()?)),
        Handle::Power(p) => Ok(format!(
            "{:.3} V, {:.3} A, {:.3} W",
            p.bus_volts()?,
            p.current_amps()?,
            p.power_watts()?
        )),
        Handle::Battery(b) => Ok(format!(
            "{:.0} %, {:.2} V, {}",
            b.charge_percent()?,
            b.volts()?,
            if b.on_mains()? {
                "on mains"
            } else {
                "on battery"
            }
        )),
        Handle::Switch(s) => Ok(match s.is_on()? {
            Some(true) => "on".into(),
            Some(false) => "off".into(),
            None => "state not reported by the device".into(),
        }),
        Handle::Signal(s) => {
            for _ in 0..200 {
                if let Some(v) = s.poll_sample()? {
                    return Ok(format!("{v:.5}"));
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(Error::NotReady {
                chip: "signal",
                detail: "no sample within 400 ms",
            })
        }
        Handle::Gpu(g) => {
            let id = g.identity().clone();
            let s = g.sample()?;
            let f = |v: Option<f64>, unit: &str| {
                v.map_or("n/a".to_string(), |v| format!("{v:.0} {unit}"))
            };
            Ok(format!(
                "{} ({}): {}, {}, util {}",
                id.name,
                id.uuid,
                f(s.temperature_celsius, "°C"),
                f(s.power_watts, "W"),
                f(s.utilization_percent, "%")
            ))
        }
        Handle::Button(_) => Ok("listening for presses".into()),
    }
}
