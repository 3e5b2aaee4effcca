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
//! simulation it is recorded, never performed ([`Recorded`]).

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
}

impl RequestKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Reboot => "reboot",
            RequestKind::Shutdown => "shutdown",
        }
    }
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
        let verb = match kind {
            RequestKind::Reboot => "reboot",
            RequestKind::Shutdown => "poweroff",
        };
        tracing::warn!(action = verb, why, "asking systemd to {verb} the host");
        let out = std::process::Command::new("systemctl")
            .arg(verb)
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
            "simulated host: {} recorded, not performed",
            kind.as_str()
        );
        record(&self.taken, kind, why);
        Ok(())
    }

    fn taken(&self) -> Vec<Taken> {
        self.taken.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
