//! The simulated world of one node: the emulators a hardware spec calls
//! for, wired to the physical [`Model`], on a [`Clock`] that the caller
//! advances.
//!
//! [`World::new`] reads a spec and puts an emulator wherever the real
//! device would be: a register-level chip on a simulated I²C bus per bus
//! number, generated sysfs trees (hwmon, thermal, Pi 5 fan, Jetson) under
//! the world's directory, serial devices on pty pairs, GPIO lines, and the
//! fake NVML library. The inventory then builds the *real* drivers on top
//! of those, from the same spec. [`World::step`] moves time: it reads the
//! actuators (fan duties), advances the model, and writes the physical
//! inputs (temperatures, currents, battery) back into the emulators.
//!
//! Which model quantity a sensor reports: fan-controller diodes, thermal
//! zones of type `*cpu*`/`soc*` and hwmon temperatures read the SoC
//! temperature; stand-alone board sensors (LM75, TMP102, UPS) read the
//! board temperature; GPU sensors the GPU temperature. The fan that cools
//! the node is the one with the highest duty.
//!
//! To add an emulator: attach it in `attach_*` for its driver, and sync
//! it in [`World::step`] through a [`Binding`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::SimBus;
use super::chips;
use super::model::{Clock, Model, Params};
use super::sysfs;
use crate::inventory::spec::{Device, Spec};
use crate::{Error, Result};

/// How one emulator follows the model.
#[derive(Debug, Clone)]
enum Binding {
    Lm75 { bus: u32, addr: u8 },
    Tmp102 { bus: u32, addr: u8 },
    Ina219 { bus: u32, addr: u8 },
    Ina3221 { bus: u32, addr: u8 },
    Emc2101 { bus: u32, addr: u8 },
    Emc230x { bus: u32, addr: u8, fan: u8 },
    Ads1x15 { bus: u32, addr: u8 },
    ArgonOne { bus: u32, addr: u8 },
    ArgonFanHat { bus: u32, addr: u8 },
    Sixfab { bus: u32, addr: u8 },
}

struct Inner {
    model: Model,
    buses: BTreeMap<u32, SimBus>,
    bindings: Vec<Binding>,
    lines: BTreeMap<u8, super::gpio::SimLine>,
    outputs: BTreeMap<u8, super::gpio::SimOutputPin>,
    serial: BTreeMap<String, SerialDevice>,
    #[cfg(feature = "nvml")]
    nvml: BTreeMap<String, std::result::Result<super::nvml::FakeNvml, Error>>,
    sysfs: Option<SysWorld>,
}

/// The generated sysfs tree and the emulated files in it.
struct SysWorld {
    board: Board,
    zones: Vec<(String, sysfs::SimZone)>,
    hwmons: Vec<(HwmonRole, sysfs::SimHwmon, u32)>,
    pwms: Vec<(sysfs::SimPwmChip, u32)>,
}

enum Board {
    Plain(sysfs::Tree),
    Pi5(Box<sysfs::Pi5>),
    Nano(Box<sysfs::JetsonNano>),
    Orin(Box<sysfs::JetsonOrinNano>),
}

impl Board {
    fn tree(&mut self) -> &mut sysfs::Tree {
        match self {
            Board::Plain(t) => t,
            Board::Pi5(b) => &mut b.tree,
            Board::Nano(b) => &mut b.tree,
            Board::Orin(b) => &mut b.tree,
        }
    }

    fn zones(&self) -> Vec<(&'static str, &sysfs::SimZone)> {
        match self {
            Board::Plain(_) => Vec::new(),
            Board::Pi5(b) => vec![("cpu-thermal", &b.zone)],
            Board::Nano(b) => vec![("CPU-therm", &b.cpu_zone), ("GPU-therm", &b.gpu_zone)],
            Board::Orin(b) => vec![("cpu-thermal", &b.cpu_zone), ("gpu-thermal", &b.gpu_zone)],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum HwmonRole {
    Fan,
    Temperature,
    Rail,
}

/// A serial emulator on a pty, kept alive with the world.
enum SerialDevice {
    #[cfg(feature = "modbus")]
    Meter(super::serial::ModbusMeter),
    Line(
        super::serial::LineResponder,
        BTreeMap<&'static str, (f64, f64)>,
    ),
}

/// The simulated world; clones share it.
#[derive(Clone)]
pub struct World {
    inner: Arc<Mutex<Inner>>,
    clock: Clock,
    dir: PathBuf,
}

impl World {
    /// Builds the world a spec describes, keeping its files (sysfs trees,
    /// the fake NVML library) under `dir`, which must exist.
    pub fn new(spec: &Spec, dir: &Path) -> Result<World> {
        let s = &spec.sim;
        let params = Params {
            seed: s.seed,
            ambient_celsius: s.ambient_celsius,
            load_mean: s.load,
            idle_watts: s.board_watts[0],
            max_watts: s.board_watts[1],
            battery_wh: s.battery_wh,
            mains_outages: s
                .mains_outages
                .iter()
                .map(|[a, b]| (Duration::from_secs_f64(*a), Duration::from_secs_f64(*b)))
                .collect(),
            gpu_watts: (s.gpu_watts[0], s.gpu_watts[1]),
            ..Params::default()
        };
        // The defaults describe a Raspberry Pi (7 W at full load); a bigger
        // node has proportionally bigger heat sinks and fans, so the same
        // temperatures and time constants hold at its power.
        let k = (s.board_watts[1] / 7.0).max(0.1);
        let params = Params {
            heat_capacity: params.heat_capacity * k,
            passive_conductance: params.passive_conductance * k,
            fan_conductance: params.fan_conductance * k,
            // A GPU at full power with full airflow runs 45 °C over ambient.
            gpu_conductance: if s.gpu_watts[1] > 0.0 {
                s.gpu_watts[1] / 45.0
            } else {
                params.gpu_conductance
            },
            ..params
        };
        let mut inner = Inner {
            model: Model::new(params),
            buses: BTreeMap::new(),
            bindings: Vec::new(),
            lines: BTreeMap::new(),
            outputs: BTreeMap::new(),
            serial: BTreeMap::new(),
            #[cfg(feature = "nvml")]
            nvml: BTreeMap::new(),
            sysfs: None,
        };
        inner.sysfs = sys_world(spec, &dir.join("sysroot"), s.ambient_celsius)?;
        // The board's identity (model, serial, CPUs, memory), seeded by
        // the spec's seed and the world's directory.
        let seed = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&s.seed, &mut h);
            std::hash::Hash::hash(&dir, &mut h);
            let a = std::hash::Hasher::finish(&h);
            std::hash::Hash::hash(&a, &mut h);
            let b = std::hash::Hasher::finish(&h);
            let mut seed = [0u8; 16];
            seed[..8].copy_from_slice(&a.to_le_bytes());
            seed[8..].copy_from_slice(&b.to_le_bytes());
            seed
        };
        super::identity::Board::of(spec.board.as_deref().unwrap_or_default())
            .write(&dir.join("identity"), &seed)?;
        inner.model.set_gpu_load(s.load);
        for dev in &spec.devices {
            #[cfg(feature = "nvml")]
            if let Device::Nvml(d) = dev {
                let fake = fake_nvml(&dir.join(format!("nvml-{}", d.name)), spec.sim.gpus);
                inner.nvml.insert(d.name.clone(), fake);
                continue;
            }
            attach(&mut inner, dev)?;
        }
        let world = World {
            inner: Arc::new(Mutex::new(inner)),
            clock: Clock::new(),
            dir: dir.to_path_buf(),
        };
        world.sync();
        world.put_signals(spec);
        Ok(world)
    }

    /// Puts the spec's `sim.signals` on their ADC inputs, before the first
    /// conversion: a sensor's signal is there when the node starts.
    fn put_signals(&self, spec: &Spec) {
        for sig in &spec.sim.signals {
            for dev in &spec.devices {
                let Device::Ads1x15(a) = dev else { continue };
                let Some(input) = a
                    .input
                    .strip_prefix('a')
                    .and_then(|i| i.parse::<usize>().ok())
                else {
                    continue;
                };
                if a.name != sig.device {
                    continue;
                }
                // The chip steps its sine once per conversion.
                let sps = if a.variant == "ads1015" {
                    [128.0, 250.0, 490.0, 920.0, 1600.0, 2400.0, 3300.0, 3300.0]
                } else {
                    [8.0, 16.0, 32.0, 64.0, 128.0, 250.0, 475.0, 860.0]
                };
                let rate = sps[usize::from(a.rate.min(7))];
                let sine = chips::ads1x15::Sine {
                    offset: sig.volts,
                    amplitude: sig.amplitude,
                    period: (sig.period_seconds * rate)
                        .round()
                        .clamp(1.0, f64::from(u32::MAX)) as u32,
                };
                let addr = a
                    .address
                    .unwrap_or(crate::drivers::ads1x15::DEFAULT_ADDRESS);
                self.i2c(a.bus)
                    .with_chip(addr, |c: &mut chips::ads1x15::Ads1x15| {
                        c.set_sine(input, Some(sine))
                    });
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The simulated I²C bus `n` (empty if the spec puts nothing there).
    pub fn i2c(&self, n: u32) -> SimBus {
        self.lock().buses.entry(n).or_default().clone()
    }

    /// The simulated GPIO input line `pin` (BCM), which tests pulse.
    pub fn gpio_line(&self, pin: u8) -> super::gpio::SimLine {
        self.lock().lines.entry(pin).or_default().clone()
    }

    /// The simulated GPIO output `pin` (BCM), whose level tests read.
    pub fn gpio_output(&self, pin: u8) -> super::gpio::SimOutputPin {
        self.lock().outputs.entry(pin).or_default().clone()
    }

    /// The pty path of the serial emulator standing in for device `name`.
    pub fn serial_path(&self, name: &str) -> Option<String> {
        self.lock().serial.get(name).map(|d| match d {
            #[cfg(feature = "modbus")]
            SerialDevice::Meter(m) => m.path().to_string(),
            SerialDevice::Line(l, _) => l.path().to_string(),
        })
    }

    /// The fake NVML library standing in for device `name`; the error if
    /// it could not be installed (not built).
    #[cfg(feature = "nvml")]
    pub fn nvml_library(&self, name: &str) -> Result<PathBuf> {
        match self.lock().nvml.get(name) {
            Some(Ok(f)) => Ok(f.lib_path().to_path_buf()),
            Some(Err(e)) => Err(e.clone()),
            None => Err(Error::Unsupported {
                chip: "sim",
                what: format!("a fake NVML library for {name}"),
            }),
        }
    }

    /// Runs `f` on the fake NVML library of device `name`.
    #[cfg(feature = "nvml")]
    pub fn with_nvml<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut super::nvml::FakeNvml) -> R,
    ) -> Option<R> {
        match self.lock().nvml.get_mut(name) {
            Some(Ok(fake)) => Some(f(fake)),
            _ => None,
        }
    }

    /// The root of the generated sysfs tree (where the real sysfs code
    /// reads; empty when the spec has no sysfs devices).
    pub fn sysfs(&self) -> PathBuf {
        let mut g = self.lock();
        match g.sysfs.as_mut() {
            Some(w) => w.board.tree().sysfs(),
            None => self.dir.join("sysroot/sys"),
        }
    }

    /// The root of the board's identity files (`proc/device-tree/model`,
    /// `sys/class/dmi/id/*`, `proc/cpuinfo`, …: [`super::identity`]),
    /// read as the real machine's `/`.
    pub fn identity_root(&self) -> PathBuf {
        self.dir.join("identity")
    }

    /// The world's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The world's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs `f` on the model (to change load, ambient, seize the fan).
    pub fn with_model<R>(&self, f: impl FnOnce(&mut Model) -> R) -> R {
        f(&mut self.lock().model)
    }

    /// Advances time by `dt`: actuators → model → sensors.
    pub fn step(&self, dt: Duration) {
        self.clock.advance(dt);
        {
            let mut g = self.lock();
            // Emulators with their own clocks (the UPS watchdog, its RTC).
            for b in &g.bindings {
                if let Binding::Sixfab { bus, addr } = *b {
                    with(&g.buses, bus, addr, |c: &mut chips::sixfab::Sixfab| {
                        c.advance(dt)
                    });
                }
            }
            let duty = fan_duty(&g);
            if let Some(d) = duty {
                g.model.set_fan_duty(d);
            }
            #[cfg(feature = "nvml")]
            {
                // A power limit set through NVML caps the model's GPUs;
                // none set (or forgotten by a driver reset): the default.
                let mut limit = None;
                for fake in g.nvml.values().flatten() {
                    let set = match fake.power_limit_set_mw(0) {
                        Ok(Some(mw)) => Some(mw),
                        _ => fake.gpu(0).and_then(|gpu| gpu.power_limit_mw),
                    };
                    if let Some(mw) = set {
                        limit = Some(f64::from(mw) / 1000.0);
                    }
                }
                if let Some(w) = limit {
                    g.model.set_gpu_limit(w);
                }
            }
            g.model.step(dt);
        }
        self.sync();
    }

    /// Writes the model's state into every emulator.
    fn sync(&self) {
        let mut g = self.lock();
        let st = g.model.state().clone();
        let amps = g.model.board_amps();
        if let Some(sw) = g.sysfs.as_mut() {
            sys_sync(sw, &st, amps);
        }
        #[cfg(feature = "nvml")]
        {
            let st = g.model.state().clone();
            let noise = g.model.noisy(0.0);
            for fake in g.nvml.values_mut().flatten() {
                let n = fake.gpu_count();
                for i in 0..n {
                    // Each GPU a little apart, so they are told apart.
                    let t = st.gpu_celsius + f64::from(i) * 1.5 + noise;
                    let _ = fake.update(i, |gpu| {
                        gpu.temperature_celsius = Some(t.max(0.0).round() as u32);
                        gpu.power_mw = Some((st.gpu_watts * 1000.0) as u32);
                        gpu.energy_mj =
                            Some((st.energy_joules * 1000.0 / f64::from(n.max(1))) as u64);
                        let util = (st.gpu_load * 100.0).round() as u32;
                        gpu.utilization = Some((util, util / 2));
                    });
                }
            }
        }
        let Inner {
            model,
            buses,
            bindings,
            serial,
            ..
        } = &mut *g;
        let st = model.state().clone();
        let amps = model.board_amps();
        let volts = model.params().supply_volts;
        // Serial meters see the whole node from the wall socket: board and
        // GPU at 230 V; the blade BMC its 12 V supply.
        let node_watts = st.board_watts + st.gpu_watts;
        for dev in serial.values() {
            match dev {
                #[cfg(feature = "modbus")]
                SerialDevice::Meter(m) => {
                    m.set_volts(230.0);
                    m.set_amps(node_watts / 230.0);
                    m.set_watts(node_watts);
                }
                SerialDevice::Line(l, scales) => {
                    for (name, v) in [
                        ("supply_volts", 12.0),
                        ("supply_amps", node_watts / 12.0),
                        ("node_amps", amps),
                        ("temperature", st.board_celsius),
                    ] {
                        // What the BMC would send, before the profile's
                        // scale and offset.
                        if let Some((scale, offset)) = scales.get(name) {
                            l.set_value(name, (v - offset) / scale);
                        }
                    }
                }
            }
        }
        for b in bindings.iter() {
            match *b {
                Binding::Lm75 { bus, addr } => {
                    let t = model.noisy(st.board_celsius);
                    with(buses, bus, addr, |c: &mut chips::lm75::Lm75| {
                        c.set_temperature(t)
                    });
                }
                Binding::Tmp102 { bus, addr } => {
                    let t = model.noisy(st.board_celsius);
                    with(buses, bus, addr, |c: &mut chips::tmp102::Tmp102| {
                        c.set_temperature(t)
                    });
                }
                Binding::Ina219 { bus, addr } => {
                    with(buses, bus, addr, |c: &mut chips::ina219::Ina219| {
                        c.set_load(amps, volts)
                    });
                }
                Binding::Ina3221 { bus, addr } => {
                    with(buses, bus, addr, |c: &mut chips::ina3221::Ina3221| {
                        // Channel 1 carries the board; 2 and 3 split it.
                        c.set_rail(0, amps, volts);
                        c.set_rail(1, amps * 0.6, volts);
                        c.set_rail(2, amps * 0.3, volts);
                    });
                }
                Binding::Emc2101 { bus, addr } => {
                    let t = model.noisy(st.cpu_celsius);
                    with(buses, bus, addr, |c: &mut chips::emc2101::Emc2101| {
                        c.set_diode(chips::emc2101::Diode::Celsius(t))
                    });
                }
                Binding::Emc230x { .. }
                | Binding::ArgonOne { .. }
                | Binding::ArgonFanHat { .. } => {}
                Binding::Sixfab { bus, addr } => {
                    let t = model.noisy(st.board_celsius);
                    let bv = model.battery_volts();
                    with(buses, bus, addr, |c: &mut chips::sixfab::Sixfab| {
                        c.set_mains(st.mains);
                        c.set_battery_level(st.battery_percent);
                        c.set_battery_volts(bv);
                        c.set_input(
                            if st.mains { volts } else { 0.0 },
                            if st.mains { amps * 1.1 } else { 0.0 },
                        );
                        c.set_system(volts, amps);
                        c.set_input_temperature(t);
                        c.set_battery_temperature(t);
                    });
                }
                Binding::Ads1x15 { bus, addr } => {
                    // A0: the supply through a 1:2 divider; A1: load as 0–3.3 V.
                    with(buses, bus, addr, |c: &mut chips::ads1x15::Ads1x15| {
                        c.set_input(0, volts / 2.0);
                        c.set_input(1, 3.3 * st.load);
                    });
                }
            }
        }
    }
}

fn with<C: super::Chip>(buses: &BTreeMap<u32, SimBus>, bus: u32, addr: u8, f: impl FnOnce(&mut C)) {
    if let Some(b) = buses.get(&bus) {
        b.with_chip(addr, f);
    }
}

/// The highest duty of the node's fans, percent.
fn fan_duty(g: &Inner) -> Option<f64> {
    let mut best: Option<f64> = g.sysfs.as_ref().and_then(sys_duty);
    for b in &g.bindings {
        let d = match *b {
            Binding::Emc2101 { bus, addr } => g.buses.get(&bus).and_then(|bus| {
                bus.with_chip(addr, |c: &mut chips::emc2101::Emc2101| {
                    f64::from(c.setting()) * 100.0 / 63.0
                })
            }),
            Binding::Emc230x { bus, addr, fan } => g.buses.get(&bus).and_then(|bus| {
                bus.with_chip(addr, |c: &mut chips::emc230x::Emc230x| {
                    c.setting(usize::from(fan))
                        .map(|s| f64::from(s) * 100.0 / 255.0)
                })
                .flatten()
            }),
            Binding::ArgonOne { bus, addr } => g.buses.get(&bus).and_then(|bus| {
                bus.with_chip(addr, |c: &mut chips::argon_one::ArgonOne| {
                    f64::from(c.duty())
                })
            }),
            Binding::ArgonFanHat { bus, addr } => g.buses.get(&bus).and_then(|bus| {
                bus.with_chip(addr, |c: &mut chips::argon_fan_hat::ArgonFanHat| {
                    f64::from(c.duty())
                })
            }),
            _ => None,
        };
        if let Some(d) = d {
            best = Some(best.map_or(d, |b: f64| b.max(d)));
        }
    }
    best
}

fn attach(inner: &mut Inner, dev: &Device) -> Result<()> {
    let ambient = inner.model.params().ambient_celsius;
    match dev {
        #[cfg(feature = "modbus")]
        Device::ModbusMeter(d) => {
            use super::serial::{ModbusMeter, Quantity};
            let m = ModbusMeter::spawn(d.unit)?;
            let mut points = vec![(Quantity::Volts, &d.volts), (Quantity::Amps, &d.amps)];
            if let Some(w) = &d.watts {
                points.push((Quantity::Watts, w));
            }
            for (q, p) in points {
                let pt = crate::inventory::modbus_point(d.unit, p);
                m.map(q, pt.table, pt.address, pt.format, pt.word_order, pt.scale);
            }
            inner.serial.insert(d.name.clone(), SerialDevice::Meter(m));
            return Ok(());
        }
        Device::BitscopeBmc(d) => {
            let l = super::serial::LineResponder::spawn()?;
            let mut scales = BTreeMap::new();
            let node = d.node.to_string();
            let sub = |s: &str| s.replace("{node}", &node);
            for (name, cmd) in [
                ("supply_volts", &d.supply_volts),
                ("supply_amps", &d.supply_amps),
                ("node_amps", &d.node_amps),
                ("temperature", &d.temperature),
                ("power_state", &d.power_state),
            ] {
                if let Some(c) = cmd {
                    // The reply carries the value as number `field`,
                    // after the expected prefix, in the value's unit
                    // before scaling.
                    let mut reply = c.expect.clone().unwrap_or_default();
                    for _ in 0..c.field {
                        reply.push_str("0 ");
                    }
                    reply.push_str(&format!("{{{name}}}"));
                    l.answer(&sub(&c.send), &reply);
                    if c.scale != 0.0 {
                        scales.insert(name, (c.scale, c.offset));
                    }
                }
            }
            l.set_value("power_state", 1.0);
            // A command without `expect` awaits no reply: answer only those
            // that wait for one.
            for (cmd, v) in [(&d.power_on, 1.0), (&d.power_off, 0.0)] {
                if let Some(c) = cmd {
                    l.act(&sub(&c.send), "power_state", v);
                    if let Some(e) = &c.expect {
                        l.answer(&sub(&c.send), e);
                    }
                }
            }
            for c in &d.init {
                if let Some(e) = &c.expect {
                    l.answer(&sub(&c.send), e);
                }
            }
            inner
                .serial
                .insert(d.name.clone(), SerialDevice::Line(l, scales));
            return Ok(());
        }
        _ => {}
    }
    let Some((bus_n, addr)) = dev.i2c() else {
        return Ok(());
    };
    let bus = inner.buses.entry(bus_n).or_default().clone();
    let present = |a: u8| bus.addresses().contains(&a);
    let binding = match dev {
        Device::Lm75(d) => {
            let a = addr.unwrap_or(crate::drivers::lm75::DEFAULT_ADDRESS);
            bus.attach(a, chips::lm75::Lm75::new(d.resolution_bits, ambient));
            Binding::Lm75 {
                bus: bus_n,
                addr: a,
            }
        }
        Device::Tmp102(_) => {
            let a = addr.unwrap_or(crate::drivers::tmp102::DEFAULT_ADDRESS);
            bus.attach(a, chips::tmp102::Tmp102::new(ambient));
            Binding::Tmp102 {
                bus: bus_n,
                addr: a,
            }
        }
        Device::Ina219(d) => {
            let a = addr.unwrap_or(crate::drivers::ina219::DEFAULT_ADDRESS);
            bus.attach(a, chips::ina219::Ina219::new(d.shunt_ohms));
            Binding::Ina219 {
                bus: bus_n,
                addr: a,
            }
        }
        Device::Ina3221(d) => {
            let a = addr.unwrap_or(crate::drivers::ina3221::DEFAULT_ADDRESS);
            if present(a) {
                return Ok(());
            }
            bus.attach(a, chips::ina3221::Ina3221::new([d.shunt_ohms; 3]));
            Binding::Ina3221 {
                bus: bus_n,
                addr: a,
            }
        }
        Device::Emc2101(_) => {
            let a = addr.unwrap_or(crate::drivers::emc2101::ADDRESS);
            bus.attach(a, chips::emc2101::Emc2101::new(5000.0));
            Binding::Emc2101 {
                bus: bus_n,
                addr: a,
            }
        }
        Device::Emc230x(d) => {
            let a = addr.unwrap_or(crate::drivers::emc230x::DEFAULT_ADDRESS);
            if !present(a) {
                // Enough fans for the highest one named: EMC2301 for fan 1.
                let product = match d.fan {
                    1 => 0x37,
                    2 => 0x36,
                    3 => 0x35,
                    _ => 0x34,
                };
                bus.attach(a, chips::emc230x::Emc230x::new(product, 5000.0));
            }
            Binding::Emc230x {
                bus: bus_n,
                addr: a,
                fan: d.fan,
            }
        }
        Device::Ads1x15(d) => {
            let a = addr.unwrap_or(crate::drivers::ads1x15::DEFAULT_ADDRESS);
            let variant = if d.variant == "ads1015" {
                crate::drivers::ads1x15::Variant::Ads1015
            } else {
                crate::drivers::ads1x15::Variant::Ads1115
            };
            if !present(a) {
                bus.attach(a, chips::ads1x15::Ads1x15::new(variant, 1));
            }
            Binding::Ads1x15 {
                bus: bus_n,
                addr: a,
            }
        }
        Device::ArgonOne(d) => {
            let a = addr.unwrap_or(crate::drivers::argon_one::ADDRESS);
            // `detect` finds the generation the emulator has: legacy, as
            // on most Argon ONE V2 boards, unless the spec says register.
            let chip = match d.firmware {
                crate::inventory::spec::ArgonFirmware::Register => {
                    chips::argon_one::ArgonOne::register()
                }
                _ => chips::argon_one::ArgonOne::legacy(),
            };
            bus.attach(a, chip);
            Binding::ArgonOne {
                bus: bus_n,
                addr: a,
            }
        }
        Device::ArgonFanHat(_) => {
            let a = addr.unwrap_or(crate::drivers::argon_one::ADDRESS);
            bus.attach(a, chips::argon_fan_hat::ArgonFanHat::new());
            Binding::ArgonFanHat {
                bus: bus_n,
                addr: a,
            }
        }
        Device::SixfabUps(_) => {
            let a = addr.unwrap_or(crate::drivers::sixfab::ADDRESS);
            bus.attach(a, chips::sixfab::Sixfab::new());
            Binding::Sixfab {
                bus: bus_n,
                addr: a,
            }
        }
        other => {
            return Err(Error::Unsupported {
                chip: "sim",
                what: format!("an emulator for {}", other.driver()),
            });
        }
    };
    inner.bindings.push(binding);
    Ok(())
}

/// Installs the fake NVML library with `gpus` data-centre GPUs.
#[cfg(feature = "nvml")]
fn fake_nvml(dir: &Path, gpus: u32) -> std::result::Result<super::nvml::FakeNvml, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
    let mut fake = super::nvml::FakeNvml::install(dir)?;
    for i in 0..gpus {
        let mut gpu = super::nvml::FakeGpu::datacenter("NVIDIA H100 80GB HBM3");
        gpu.uuid = Some(format!("GPU-00000000-0000-4000-8000-{:012x}", i + 1));
        fake.add_gpu(gpu)?;
    }
    Ok(fake)
}

/// Whether a spec needs a sysfs tree.
fn needs_sysfs(d: &Device) -> bool {
    matches!(
        d,
        Device::ThermalZone(_)
            | Device::Pi5Fan(_)
            | Device::HwmonFan(_)
            | Device::HwmonTemperature(_)
            | Device::HwmonRail(_)
            | Device::SysfsPwmFan(_)
            | Device::RpiPwmFan(_)
            | Device::JetsonFan(_)
            | Device::JetsonRails(_)
            | Device::JetsonGpu(_)
    )
}

/// Builds the sysfs tree a spec reads: a whole board where the spec names
/// one (Pi 5 with its fan, Jetson Nano on JetPack 4, Orin Nano on
/// JetPack 6), plus a zone, hwmon node or PWM chip per device.
fn sys_world(spec: &Spec, root: &Path, ambient: f64) -> Result<Option<SysWorld>> {
    if !spec.devices.iter().any(needs_sysfs) {
        return Ok(None);
    }
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, &e))?;
    let jetson = spec.devices.iter().any(|d| {
        matches!(
            d,
            Device::JetsonFan(_) | Device::JetsonRails(_) | Device::JetsonGpu(_)
        )
    });
    let board_name = spec.board.as_deref().unwrap_or_default();
    let board = if jetson {
        if board_name.contains("orin") || !board_name.contains("nano") {
            Board::Orin(Box::new(sysfs::JetsonOrinNano::build(root)?))
        } else {
            Board::Nano(Box::new(sysfs::JetsonNano::build(root)?))
        }
    } else if spec.devices.iter().any(|d| matches!(d, Device::Pi5Fan(_))) {
        Board::Pi5(Box::new(sysfs::Pi5::build(root)?))
    } else {
        Board::Plain(sysfs::Tree::new(root)?)
    };
    let mut w = SysWorld {
        board,
        zones: Vec::new(),
        hwmons: Vec::new(),
        pwms: Vec::new(),
    };
    let known: Vec<String> = w.board.zones().iter().map(|(t, _)| t.to_string()).collect();
    let mut chips: BTreeMap<u32, sysfs::SimPwmChip> = BTreeMap::new();
    let mut hwmons: BTreeMap<(String, String, String), sysfs::SimHwmon> = BTreeMap::new();
    for dev in &spec.devices {
        match dev {
            Device::ThermalZone(d)
                if !known.contains(&d.zone_type)
                    && !w.zones.iter().any(|(t, _)| *t == d.zone_type) =>
            {
                let z = w.board.tree().add_zone(&d.zone_type, ambient + 10.0)?;
                w.zones.push((d.zone_type.clone(), z));
            }
            Device::HwmonFan(d) | Device::HwmonTemperature(d) | Device::HwmonRail(d) => {
                let role = match dev {
                    Device::HwmonFan(_) => HwmonRole::Fan,
                    Device::HwmonTemperature(_) => HwmonRole::Temperature,
                    _ => HwmonRole::Rail,
                };
                let chip = d.chip.clone().unwrap_or_else(|| "onprem_sim".into());
                let path = d
                    .device
                    .clone()
                    .unwrap_or_else(|| format!("devices/platform/{}", d.name));
                let path = path.trim_start_matches("/sys/").to_string();
                let driver = d.kernel_driver.clone().unwrap_or_default();
                let key = (chip.clone(), path.clone(), driver.clone());
                let i = d.index;
                if !hwmons.contains_key(&key) {
                    let mut device = sysfs::Device::new(&path);
                    if !driver.is_empty() {
                        device = device.driver(&format!("bus/platform/drivers/{driver}"));
                    }
                    let h = w
                        .board
                        .tree()
                        .add_hwmon(sysfs::HwmonSpec::new(&chip, device))?;
                    hwmons.insert(key.clone(), h);
                }
                let Some(h) = hwmons.get(&key) else { continue };
                match role {
                    HwmonRole::Fan => {
                        h.set(&format!("pwm{i}"), "0")?;
                        h.set(&format!("pwm{i}_enable"), "2")?;
                        h.set(&format!("fan{i}_input"), "0")?;
                    }
                    HwmonRole::Temperature => h.set(&format!("temp{i}_input"), "35000")?,
                    HwmonRole::Rail => {
                        h.set(&format!("in{i}_input"), "5000")?;
                        h.set(&format!("curr{i}_input"), "500")?;
                    }
                }
                w.hwmons.push((role, h.clone(), i));
            }
            Device::SysfsPwmFan(crate::inventory::spec::SysfsPwm { chip, channel, .. }) => {
                add_pwm(&mut w, &mut chips, *chip, *channel)?;
            }
            Device::RpiPwmFan(d) => add_pwm(&mut w, &mut chips, 2, u32::from(d.channel))?,
            _ => {}
        }
    }
    Ok(Some(w))
}

fn add_pwm(
    w: &mut SysWorld,
    chips: &mut BTreeMap<u32, sysfs::SimPwmChip>,
    chip: u32,
    channel: u32,
) -> Result<()> {
    let c = match chips.entry(chip) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => e.insert(w.board.tree().add_pwmchip(
            chip,
            4.max(channel + 1),
            &format!("devices/platform/pwm{chip}"),
        )?),
    };
    c.precreate(channel)?;
    w.pwms.push((c.clone(), channel));
    Ok(())
}

/// The highest fan duty found in the sysfs tree, percent.
fn sys_duty(w: &SysWorld) -> Option<f64> {
    let mut duties = Vec::new();
    let pwm255 = |v: i64| v as f64 * 100.0 / 255.0;
    match &w.board {
        Board::Pi5(b) => duties.extend(b.pwm1().ok().map(pwm255)),
        Board::Nano(b) => duties.extend(b.target_pwm().ok().map(pwm255)),
        Board::Orin(b) => duties.extend(b.pwm1().ok().map(pwm255)),
        Board::Plain(_) => {}
    }
    for (role, h, i) in &w.hwmons {
        if *role == HwmonRole::Fan {
            duties.extend(h.get_i64(&format!("pwm{i}")).ok().map(pwm255));
        }
    }
    for (c, ch) in &w.pwms {
        if let (Ok(d), Ok(p), Ok(true)) = (c.duty_cycle(*ch), c.period(*ch), c.enabled(*ch)) {
            if p > 0 {
                duties.push(d as f64 * 100.0 / p as f64);
            }
        }
    }
    duties.into_iter().reduce(f64::max)
}

/// Writes the model's state into the sysfs tree.
fn sys_sync(w: &mut SysWorld, st: &super::model::State, amps: f64) {
    let cpu = st.cpu_celsius;
    let rpm = st.fan_rpm.round() as u32;
    let gpu_load = (st.gpu_load * 1000.0).round() as u32;
    for (kind, z) in w.board.zones() {
        let t = if kind.to_ascii_lowercase().contains("gpu") {
            cpu - 1.5
        } else {
            cpu
        };
        let _ = z.set_celsius(t);
    }
    for (kind, z) in &w.zones {
        let k = kind.to_ascii_lowercase();
        let t = if k.contains("gpu") {
            st.gpu_celsius
        } else if k.contains("board") || k.contains("ambient") {
            st.board_celsius
        } else {
            cpu
        };
        let _ = z.set_celsius(t);
    }
    let watts = st.board_watts;
    match &mut w.board {
        Board::Plain(_) => {}
        Board::Pi5(b) => {
            // The firmware's governor, until the agent takes the fan over.
            let _ = b.governor_tick();
            let _ = b.set_fan_rpm(rpm);
        }
        Board::Nano(b) => {
            let _ = b.set_fan_rpm(rpm);
            let _ = b.ina.set_rail("POM_5V_IN", 5.0, watts / 5.0);
            let _ = b
                .ina
                .set_rail("POM_5V_GPU", 5.0, watts * 0.3 * st.gpu_load / 5.0);
            let _ = b.ina.set_rail("POM_5V_CPU", 5.0, watts * 0.4 / 5.0);
            let _ = b.gpu.set_load_permille(gpu_load);
        }
        Board::Orin(b) => {
            let _ = b.set_fan_rpm(rpm);
            let _ = b.ina.set_rail("VDD_IN", 5.0, watts / 5.0);
            let _ = b.ina.set_rail("VDD_CPU_GPU_CV", 5.0, watts * 0.5 / 5.0);
            let _ = b.ina.set_rail("VDD_SOC", 5.0, watts * 0.25 / 5.0);
            let _ = b.gpu.set_load_permille(gpu_load);
        }
    }
    for (role, h, i) in &w.hwmons {
        let _ = match role {
            HwmonRole::Fan => h.set(&format!("fan{i}_input"), &rpm.to_string()),
            HwmonRole::Temperature => h.set(
                &format!("temp{i}_input"),
                &((cpu * 1000.0).round() as i64).to_string(),
            ),
            HwmonRole::Rail => h.set(&format!("in{i}_input"), "5000").and_then(|()| {
                h.set(
                    &format!("curr{i}_input"),
                    &((amps * 1000.0).round() as i64).to_string(),
                )
            }),
        };
    }
}
