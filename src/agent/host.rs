//! The host's own power: reboot and power-off, and the requests that ask
//! for them.
//!
//! Only the power loop acts on the host. Everything else (the Argon power
//! button, Redfish `ComputerSystem.Reset`, the UPS policy) files a
//! [`Request`] or decides inside that loop, so one place applies the
//! bundle's `spec.power.host` permissions and records what was done.
//!
//! On a real node the action goes through systemd (`systemctl reboot` /
//! `systemctl poweroff`, which ask logind and honour its inhibitors); in
//! simulation it is recorded, never performed on this machine
//! ([`Recorded`]), and a power-off turns the simulated node off (the power
//! loop tells the simulated world).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RequestKind {
    /// Reboot the host.
    Reboot,
    /// Power the host off.
    Shutdown,
    /// Reboot at once: services are killed rather than stopped in order
    /// (`systemctl reboot --force`; file systems are still unmounted).
    ForceReboot,
    /// Power off at once (`systemctl poweroff --force`).
    ForceShutdown,
}

impl RequestKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Reboot => "reboot",
            RequestKind::Shutdown => "shutdown",
            RequestKind::ForceReboot => "force-reboot",
            RequestKind::ForceShutdown => "force-shutdown",
        }
    }

    /// Whether it reboots (else it powers off).
    pub fn reboots(self) -> bool {
        matches!(self, RequestKind::Reboot | RequestKind::ForceReboot)
    }
}

/// What a request to a power switch asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SwitchAction {
    /// Switch on.
    On,
    /// Switch off.
    Off,
    /// Off, then on again after [`crate::agent::power::SWITCH_CYCLE_OFF`].
    Cycle,
}

impl SwitchAction {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchAction::On => "on",
            SwitchAction::Off => "off",
            SwitchAction::Cycle => "power-cycle",
        }
    }
}

/// A request to switch one of the bundle's power switches
/// (`spec.power.switches`), e.g. Redfish `Chassis.Reset` on a blade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwitchRequest {
    /// The switch's name in the bundle.
    pub switch: String,
    /// What is asked.
    pub action: SwitchAction,
    /// Who asked.
    pub source: String,
}

/// A request to the power loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    /// What is asked.
    pub kind: RequestKind,
    /// Who asked (`button:power-button`, `redfish:admin`).
    pub source: String,
}

/// Requests waiting for the power loop; clones share them.
#[derive(Clone, Default)]
pub struct Requests {
    inner: Arc<Mutex<VecDeque<Request>>>,
    switches: Arc<Mutex<VecDeque<SwitchRequest>>>,
}

impl Requests {
    /// Files a request.
    pub fn push(&self, r: Request) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(r);
    }

    /// Takes every waiting request, oldest first.
    pub fn drain(&self) -> Vec<Request> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect()
    }

    /// Files a switch request.
    pub fn push_switch(&self, r: SwitchRequest) {
        self.switches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(r);
    }

    /// Takes every waiting switch request, oldest first.
    pub fn drain_switches(&self) -> Vec<SwitchRequest> {
        self.switches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect()
    }
}

/// A host action taken (or, in simulation, recorded).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Taken {
    /// What.
    pub kind: RequestKind,
    /// Why (`button:power-button`, `ups: battery at 19 %`).
    pub why: String,
    /// Unix seconds.
    pub time: f64,
}

fn record(taken: &Mutex<Vec<Taken>>, kind: RequestKind, why: &str) {
    taken.lock().unwrap_or_else(|e| e.into_inner()).push(Taken {
        kind,
        why: why.to_owned(),
        time: super::reconcile::unix_now(),
    });
}

/// Reboots or powers off the host.
pub trait Host: Send + Sync {
    /// Performs (or records) `kind` for `why`.
    fn act(&self, kind: RequestKind, why: &str) -> Result<(), String>;
    /// Actions taken so far.
    fn taken(&self) -> Vec<Taken>;
}

/// The real host, through systemd.
pub struct Systemd {
    taken: Mutex<Vec<Taken>>,
}

impl Systemd {
    /// The node's systemd.
    pub fn new() -> Systemd {
        Systemd {
            taken: Mutex::new(Vec::new()),
        }
    }
}

impl Default for Systemd {
    fn default() -> Self {
        Self::new()
    }
}

impl Host for Systemd {
    fn act(&self, kind: RequestKind, why: &str) -> Result<(), String> {
        let verb = if kind.reboots() { "reboot" } else { "poweroff" };
        let force = matches!(kind, RequestKind::ForceReboot | RequestKind::ForceShutdown);
        tracing::warn!(
            action = kind.as_str(),
            why,
            "asking systemd to {verb} the host"
        );
        let mut cmd = std::process::Command::new("systemctl");
        cmd.arg(verb);
        if force {
            cmd.arg("--force");
        }
        let out = cmd
            .output()
            .map_err(|e| format!("running systemctl {verb}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "systemctl {verb} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        record(&self.taken, kind, why);
        Ok(())
    }

    fn taken(&self) -> Vec<Taken> {
        self.taken.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A simulated host: actions are recorded, not performed.
#[derive(Default)]
pub struct Recorded {
    taken: Mutex<Vec<Taken>>,
}

impl Host for Recorded {
    fn act(&self, kind: RequestKind, why: &str) -> Result<(), String> {
        tracing::warn!(
            action = kind.as_str(),
            why,
            "simulated host: {} recorded, nothing done on this machine",
            kind.as_str()
        );
        record(&self.taken, kind, why);
        Ok(())
    }

    fn taken(&self) -> Vec<Taken> {
        self.taken.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
