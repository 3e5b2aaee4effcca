//! Reads every device of the node's inventory on a period, on its own
//! thread, and keeps the latest readings for `/metrics`.
//!
//! Buses are slow and can hang (a UPS MCU takes 10–100 ms per command and
//! retries; a stretched I²C clock times out), so scrapes never touch them:
//! the `devices` collector renders the last [`Readings`], which say when
//! they were taken. A device that fails to read is counted
//! (`onprem_device_errors_total`), reported down, and tried again next
//! period; a device that failed to open is re-opened on a later period.
//! "Not supported" answers (NVML on a Jetson) leave a value out and are
//! not errors.
//!
//! In simulation the poller also moves the simulated world forward by the
//! wall-clock time that passed, so the physical model runs in real time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use onprem_hal::devices::{ButtonRequest, GpuIdentity, GpuSample};
use onprem_hal::inventory::{Entry, Handle, Hardware, Inventory, Spec};
use onprem_hal::{Error, ErrorKind};

/// One device's latest reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// A fan.
    Fan {
        /// Duty, percent (absent for a write-only fan not set yet).
        duty: Option<f64>,
        /// Speed, RPM (absent without a tachometer).
        rpm: Option<f64>,
    },
    /// A temperature, °C.
    Temperature(Option<f64>),
    /// A rail.
    Rail {
        /// V.
        volts: Option<f64>,
        /// A.
        amps: Option<f64>,
        /// W.
        watts: Option<f64>,
    },
    /// A battery.
    Battery {
        /// Percent.
        percent: Option<f64>,
        /// V.
        volts: Option<f64>,
        /// External power present.
        on_mains: Option<bool>,
    },
    /// A switch (absent: the device cannot report it).
    Switch(Option<bool>),
    /// A signal's last sample.
    Signal(Option<f64>),
    /// A GPU.
    Gpu {
        /// Which.
        id: GpuIdentity,
        /// Telemetry.
        sample: Box<GpuSample>,
        /// XID events seen.
        xid_total: u64,
        /// The last XID.
        last_xid: Option<u64>,
    },
    /// A power button.
    Button {
        /// Reboot requests seen.
        reboots: u64,
        /// Shutdown requests seen.
        shutdowns: u64,
    },
    /// The device did not open.
    Absent,
}

/// One device in [`Readings`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceReading {
    /// Name.
    pub name: String,
    /// Driver.
    pub driver: &'static str,
    /// Handle kind (`fan`, `rail`, …; `-` when it did not open).
    pub kind: &'static str,
    /// Whether the last read fully succeeded.
    pub up: bool,
    /// Read errors since the agent started.
    pub errors_total: u64,
    /// The last error, if the last read failed.
    pub error: Option<String>,
    /// The values.
    pub reading: Reading,
}

/// The latest readings of every device.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    /// Devices in spec order.
    pub devices: Vec<DeviceReading>,
    /// When they were taken.
    pub at: Option<SystemTime>,
    /// How long the pass over all devices took.
    pub duration: Duration,
}

struct State {
    spec: Spec,
    hw: Hardware,
    errors: BTreeMap<String, u64>,
    buttons: BTreeMap<String, (u64, u64)>,
    xids: BTreeMap<String, (u64, Option<u64>)>,
    last_step: Instant,
}

/// One inventory entry behind its own lock.
struct Slot {
    name: String,
    entry: Mutex<Entry>,
}

/// The node's devices and their latest readings; clones share them.
///
/// Each device has its own lock, so the fans loop reading a sensor never
/// waits behind the poller's whole pass over a slow bus; scrapes only take
/// the `readings` lock for the instant it takes to clone them.
#[derive(Clone)]
pub struct Hub {
    slots: Arc<Vec<Slot>>,
    state: Arc<Mutex<State>>,
    readings: Arc<Mutex<Readings>>,
    requests: Arc<Mutex<VecDeque<(String, ButtonRequest)>>>,
    claimed: Arc<Mutex<BTreeMap<String, Option<f64>>>>,
    stepping: Arc<AtomicBool>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// Opens every device of `spec` on `hw` and reads them once.
    pub fn new(spec: Spec, hw: Hardware) -> Hub {
        let inventory = Inventory::build(&spec, &hw);
        let slots = inventory
            .entries
            .into_iter()
            .map(|e| Slot {
                name: e.name.clone(),
                entry: Mutex::new(e),
            })
            .collect();
        let hub = Hub {
            slots: Arc::new(slots),
            state: Arc::new(Mutex::new(State {
                spec,
                hw,
                errors: BTreeMap::new(),
                buttons: BTreeMap::new(),
                xids: BTreeMap::new(),
                last_step: Instant::now(),
            })),
            readings: Arc::new(Mutex::new(Readings::default())),
            requests: Arc::new(Mutex::new(VecDeque::new())),
            claimed: Arc::new(Mutex::new(BTreeMap::new())),
            stepping: Arc::new(AtomicBool::new(true)),
        };
        hub.poll();
        hub
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        relock(&self.state)
    }

    /// The latest readings.
    pub fn readings(&self) -> Readings {
        relock(&self.readings).clone()
    }

    /// The names of the inventory's entries, in spec order.
    pub fn names(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.name.clone()).collect()
    }

    /// Runs `f` on the open handle of entry `name`. `None`: no such entry;
    /// `Some(Err)`: the device did not open (its error).
    pub fn with<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Handle) -> R,
    ) -> Option<Result<R, Error>> {
        let slot = self.slots.iter().find(|s| s.name == name)?;
        let mut e = relock(&slot.entry);
        Some(match &mut e.handle {
            Ok(h) => Ok(f(h)),
            Err(err) => Err(err.clone()),
        })
    }

    /// Takes the power-button requests the poller has seen, oldest first,
    /// with the button's name.
    pub fn take_requests(&self) -> Vec<(String, ButtonRequest)> {
        relock(&self.requests).drain(..).collect()
    }

    /// Hands signal `name` to a loop that samples it itself (the signals
    /// loop at its own rate): the poller stops reading it and reports the
    /// value the loop last [`publish`](Self::publish)ed.
    pub fn claim(&self, name: &str) {
        relock(&self.claimed).insert(name.to_owned(), None);
    }

    /// Gives a claimed signal back to the poller.
    pub fn release(&self, name: &str) {
        relock(&self.claimed).remove(name);
    }

    /// The latest value of a claimed signal.
    pub fn publish(&self, name: &str, v: f64) {
        if let Some(slot) = relock(&self.claimed).get_mut(name) {
            *slot = Some(v);
        }
    }

    /// Whether [`poll`](Self::poll) moves the simulated world on by the
    /// wall-clock time that passed (the default). The agent turns it off
    /// and steps the world on tokio's clock instead ([`step_world`](Self::step_world)).
    pub fn set_stepping(&self, on: bool) {
        self.stepping.store(on, Ordering::Relaxed);
    }

    /// Moves the simulated world on by `dt` (nothing on real hardware).
    pub fn step_world(&self, dt: Duration) {
        let hw = self.lock().hw.clone();
        if let Hardware::Sim(world) = hw {
            world.step(dt);
        }
    }

    /// The simulated world, if the hub runs on one.
    pub fn world(&self) -> Option<onprem_hal::sim::world::World> {
        match &self.lock().hw {
            Hardware::Sim(w) => Some(w.clone()),
            Hardware::Real { .. } => None,
        }
    }

    /// Reads every device once (and, in simulation, moves the world on).
    pub fn poll(&self) {
        let start = Instant::now();
        let mut g = self.lock();
        let st = &mut *g;
        if let Hardware::Sim(world) = &st.hw {
            let dt = st.last_step.elapsed();
            st.last_step = Instant::now();
            if self.stepping.load(Ordering::Relaxed) {
                world.step(dt);
            }
        }
        // Re-open only the spec devices that failed to open (a device that
        // is absent by nature, such as NVML without a driver, is not
        // retried); the others keep their open handles.
        let failed: Vec<String> = self
            .slots
            .iter()
            .filter(|s| {
                relock(&s.entry)
                    .handle
                    .as_ref()
                    .is_err_and(|err| err.kind() != ErrorKind::Unsupported)
            })
            .map(|s| s.name.split('/').next().unwrap_or_default().to_owned())
            .collect();
        if !failed.is_empty() {
            let retry = Spec {
                devices: st
                    .spec
                    .devices
                    .iter()
                    .filter(|d| failed.iter().any(|f| f == d.name()))
                    .cloned()
                    .collect(),
                ..st.spec.clone()
            };
            for fresh in Inventory::build(&retry, &st.hw).entries {
                if let Some(slot) = self.slots.iter().find(|s| s.name == fresh.name) {
                    let mut e = relock(&slot.entry);
                    if e.handle.is_err() {
                        *e = fresh;
                    }
                }
            }
        }
        let claimed = relock(&self.claimed).clone();
        let mut devices = Vec::with_capacity(self.slots.len());
        for slot in self.slots.iter() {
            let mut e = relock(&slot.entry);
            let (r, err) = match claimed.get(&slot.name) {
                Some(v) if e.handle.is_ok() => (Reading::Signal(*v), None),
                _ => read(&mut e, &mut st.buttons, &mut st.xids, &self.requests),
            };
            let errors = st.errors.entry(e.name.clone()).or_insert(0);
            if err.is_some() {
                *errors += 1;
            }
            devices.push(DeviceReading {
                name: e.name.clone(),
                driver: e.driver,
                kind: e.handle.as_ref().map_or("-", |h| h.kind()),
                up: err.is_none(),
                errors_total: *errors,
                error: err.map(|e| e.to_string()),
                reading: r,
            });
        }
        let fresh = Readings {
            devices,
            at: Some(SystemTime::now()),
            duration: start.elapsed(),
        };
        *relock(&self.readings) = fresh;
    }

    /// Polls every `every` on a thread of its own until `stop` is set.
    pub fn spawn(&self, every: Duration, stop: Arc<std::sync::atomic::AtomicBool>) {
        let hub = self.clone();
        let spawned = std::thread::Builder::new()
            .name("onprem-devices".into())
            .spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(every);
                    hub.poll();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the device poller; readings stay as first read");
        }
    }
}

/// Keeps a value, or records the first real error (an unsupported reading
/// is absent, not an error).
fn keep<T>(r: onprem_hal::Result<T>, err: &mut Option<Error>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) if e.kind() == ErrorKind::Unsupported => None,
        Err(Error::NotReady { .. }) => None,
        Err(e) => {
            err.get_or_insert(e);
            None
        }
    }
}

type Buttons = BTreeMap<String, (u64, u64)>;
type Xids = BTreeMap<String, (u64, Option<u64>)>;

fn read(
    e: &mut Entry,
    buttons: &mut Buttons,
    xids: &mut Xids,
    requests: &Mutex<VecDeque<(String, ButtonRequest)>>,
) -> (Reading, Option<Error>) {
    let mut err = None;
    let h = match &mut e.handle {
        Ok(h) => h,
        // Absent by nature (NVML on a Jetson): not a failure.
        Err(open) if open.kind() == ErrorKind::Unsupported => return (Reading::Absent, None),
        Err(open) => return (Reading::Absent, Some(open.clone())),
    };
    let r = match h {
        Handle::Fan(f) => Reading::Fan {
            duty: keep(f.duty(), &mut err),
            rpm: keep(f.rpm(), &mut err).flatten(),
        },
        Handle::Temperature(t) => Reading::Temperature(keep(t.temperature_celsius(), &mut err)),
        Handle::Power(p) => {
            let volts = keep(p.bus_volts(), &mut err);
            let amps = keep(p.current_amps(), &mut err);
            let watts = keep(p.power_watts(), &mut err);
            Reading::Rail { volts, amps, watts }
        }
        Handle::Battery(b) => Reading::Battery {
            percent: keep(b.charge_percent(), &mut err),
            volts: keep(b.volts(), &mut err),
            on_mains: keep(b.on_mains(), &mut err),
        },
        Handle::Switch(s) => Reading::Switch(keep(s.is_on(), &mut err).flatten()),
        Handle::Signal(s) => {
            // A conversion started last period is done by now.
            let mut v = keep(s.poll_sample(), &mut err).flatten();
            if v.is_none() && err.is_none() {
                v = keep(s.poll_sample(), &mut err).flatten();
            }
            Reading::Signal(v)
        }
        Handle::Gpu(g) => {
            let id = g.identity().clone();
            let sample = Box::new(keep(g.sample(), &mut err).unwrap_or_default());
            let seen = xids.entry(e.name.clone()).or_insert((0, None));
            if let Some(events) = keep(g.events(), &mut err) {
                for ev in events {
                    seen.0 += 1;
                    seen.1 = Some(ev.xid);
                }
            }
            Reading::Gpu {
                id,
                sample,
                xid_total: seen.0,
                last_xid: seen.1,
            }
        }
        Handle::Button(b) => {
            let seen = buttons.entry(e.name.clone()).or_insert((0, 0));
            while let Some(req) = keep(b.next_request(Duration::ZERO), &mut err).flatten() {
                match req {
                    ButtonRequest::Reboot => seen.0 += 1,
                    ButtonRequest::Shutdown => seen.1 += 1,
                }
                relock(requests).push_back((e.name.clone(), req));
            }
            Reading::Button {
                reboots: seen.0,
                shutdowns: seen.1,
            }
        }
    };
    (r, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        serde_yaml_ng::from_str(
            "devices:\n  - { driver: lm75, name: board, bus: 1 }\n  - { driver: lm75, name: gone, bus: 1, address: 0x4f }\n",
        )
        .unwrap()
    }

    #[test]
    fn can_read_while_a_poll_holds_the_devices() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec();
        let world = onprem_hal::sim::world::World::new(&s, dir.path()).unwrap();
        let hub = Hub::new(s, Hardware::Sim(world));
        // A poll in progress holds the device state (as a slow bus would);
        // a scrape must still get the last readings at once.
        let held = hub.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = hub.clone();
        std::thread::spawn(move || {
            let _ = tx.send(h.readings());
        });
        let r = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("readings() blocked behind a poll");
        drop(held);
        assert_eq!(r.devices.len(), 2);
    }

    #[test]
    fn can_count_errors_per_device_and_keep_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec();
        let world = onprem_hal::sim::world::World::new(&s, dir.path()).unwrap();
        world.i2c(1).detach(0x4f);
        let hub = Hub::new(s, Hardware::Sim(world));
        hub.poll();
        let r = hub.readings();
        let board = &r.devices[0];
        assert!(board.up && board.errors_total == 0, "{board:?}");
        assert!(matches!(board.reading, Reading::Temperature(Some(_))));
        let gone = &r.devices[1];
        assert!(!gone.up, "{gone:?}");
        assert_eq!(gone.errors_total, 2, "one per poll");
        assert!(
            gone.error
                .as_deref()
                .unwrap_or_default()
                .contains("acknowledge")
        );
    }

    #[test]
    fn can_reopen_a_device_that_appears_later() {
        let dir = tempfile::tempdir().unwrap();
        let s: Spec = serde_yaml_ng::from_str(
            "devices:\n  - { driver: lm75, name: board, bus: 1 }\n  - { driver: tmp102, name: late, bus: 1, address: 0x4a }\n",
        )
        .unwrap();
        let world = onprem_hal::sim::world::World::new(&s, dir.path()).unwrap();
        let bus = world.i2c(1);
        bus.detach(0x4a);
        let hub = Hub::new(s, Hardware::Sim(world));
        let r = hub.readings();
        assert!(r.devices[0].up);
        assert!(!r.devices[1].up && matches!(r.devices[1].reading, Reading::Absent));
        // The sensor is plugged in: the next poll opens it.
        bus.attach(0x4a, onprem_hal::sim::chips::tmp102::Tmp102::new(31.0));
        hub.poll();
        let r = hub.readings();
        assert!(r.devices[1].up, "{:?}", r.devices[1]);
        assert!(matches!(
            r.devices[1].reading,
            Reading::Temperature(Some(_))
        ));
        assert!(r.devices[0].up);
    }
}
