//! `loops`: the reconcile loops (runs, errors, durations, conditions, and
//! what each loop reports: fan zones, power, signals, alerts) and the
//! running bundle (name, version, digest, its condition, applies and
//! rollbacks). Like `devices`, it renders state the loops keep; a scrape
//! never waits for a loop.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::{CollectError, Collector, MetricWriter};
use crate::agent::reconcile::Registry;

/// The running bundle as the agent sees it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleState {
    /// Name of the running bundle.
    pub name: Option<String>,
    /// Its version.
    pub version: Option<u64>,
    /// Its digest.
    pub digest: Option<String>,
    /// Where it came from.
    pub source: Option<String>,
    /// Condition status: `True` (the wanted bundle runs), `False`.
    pub status: String,
    /// CamelCase reason: `Applied`, `RolledBack`, `Invalid`, `Rejected`,
    /// `NoBundle`.
    pub reason: String,
    /// For people.
    pub message: String,
    /// Unix seconds of the last change of `status`.
    pub last_transition_time: f64,
    /// Bundles applied.
    pub applied_total: u64,
    /// Bundles rolled back after failing to apply.
    pub rolled_back_total: u64,
    /// Bundles refused (invalid, unsigned, tampered).
    pub rejected_total: u64,
}

impl BundleState {
    /// Sets the condition; the transition time moves when the status does.
    pub fn condition(&mut self, status: &str, reason: &str, message: String) {
        if self.status != status {
            self.last_transition_time = crate::agent::reconcile::unix_now();
        }
        self.status = status.to_owned();
        self.reason = reason.to_owned();
        self.message = message;
    }

    /// Records the bundle that runs now.
    pub fn running(&mut self, r: &crate::bundle::Resolved, source: String) {
        self.name = Some(r.name().to_owned());
        self.version = Some(r.version());
        self.digest = Some(r.digest.clone());
        self.source = Some(source);
    }
}

/// Shared bundle state; clones share it.
pub type SharedBundle = Arc<Mutex<BundleState>>;

/// Renders the loops' registry and the bundle state.
pub struct Loops {
    registry: Registry,
    bundle: SharedBundle,
}

impl Loops {
    /// A collector over `registry` and `bundle`.
    pub fn new(registry: Registry, bundle: SharedBundle) -> Loops {
        Loops { registry, bundle }
    }
}

impl Collector for Loops {
    fn name(&self) -> &'static str {
        "loops"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        self.registry.write_metrics(out);
        let b = self
            .bundle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let (Some(name), Some(version), Some(digest)) = (&b.name, b.version, &b.digest) {
            let v = version.to_string();
            out.gauge(
                "onprem_bundle_info",
                "The running bundle: name, version and content digest.",
                &[("name", name), ("version", &v), ("digest", digest)],
                1.0,
            );
        }
        if !b.status.is_empty() {
            out.gauge(
                "onprem_bundle_condition",
                "The bundle's condition: 1 for its current type, status and reason.",
                &[
                    ("type", "Applied"),
                    ("status", &b.status),
                    ("reason", &b.reason),
                ],
                1.0,
            );
        }
        for (result, n) in [
            ("applied", b.applied_total),
            ("rolled_back", b.rolled_back_total),
            ("rejected", b.rejected_total),
        ] {
            out.counter(
                "onprem_bundle_updates_total",
                "Bundles the agent was given, by result (applied, rolled_back, rejected).",
                &[("result", result)],
                n as f64,
            );
        }
        Ok(())
    }
}
