//! # Dial-home: the agent's side of the control-plane connection
//!
//! The agent dials out; nothing listens on the node for the control
//! plane. In order:
//!
//! 1. **enrol** ([`identity`]): once, with a one-time token: a key pair
//!    made here, a CSR, and back a client certificate, the CA and the
//!    bundle-signing keys, all kept in `<state>/identity/`;
//! 2. **session** ([`session`]): one long-lived gRPC stream over mutual
//!    TLS, with heartbeats; bundles arrive on it and go to the node
//!    ([`Offer`]) to be verified, validated, stored and applied, and the
//!    result and the node's status go back. When the connection drops,
//!    it is dialled again with capped, jittered exponential backoff; the
//!    loops never stop for it;
//! 3. **telemetry** ([`telemetry`]): the agent's own metrics sampled at
//!    the bundle's interval into an on-disk buffer bounded in bytes
//!    ([`buffer`]), uploaded in order in acknowledged batches; after an
//!    outage or a restart, what was not acknowledged is sent again, and
//!    the control plane keeps each sample once.

pub mod buffer;
pub mod connect;
pub mod identity;
pub mod session;
pub mod telemetry;
pub mod tunnel;

use std::sync::Arc;

use crate::proto::v1 as pb;

/// A bundle from the control plane for the node, and where its result
/// goes.
pub type Offer = (
    pb::BundleDelivery,
    tokio::sync::oneshot::Sender<pb::BundleResult>,
);

/// What the node reports about itself.
pub type StatusFn = Arc<dyn Fn() -> pb::Status + Send + Sync>;

pub use session::run;

/// The dial-home state on the agent's own `/metrics` (collector
/// `dialhome`): whether the session is up, and the telemetry buffer.
#[derive(Clone)]
pub struct Metrics {
    /// The buffer.
    pub telemetry: telemetry::Telemetry,
    /// Set while the session is up.
    pub connected: Arc<std::sync::atomic::AtomicBool>,
}

impl crate::exporter::Collector for Metrics {
    fn name(&self) -> &'static str {
        "dialhome"
    }

    fn update(
        &self,
        out: &mut crate::exporter::MetricWriter,
    ) -> Result<(), crate::exporter::CollectError> {
        let up = self.connected.load(std::sync::atomic::Ordering::Relaxed);
        out.gauge(
            "onprem_dialhome_connected",
            "1 while the session with the control plane is up.",
            &[],
            if up { 1.0 } else { 0.0 },
        );
        let (pending, bytes, dropped, acked) = self.telemetry.figures();
        out.gauge(
            "onprem_telemetry_buffered_samples",
            "Telemetry samples in the on-disk buffer not yet acknowledged by the control plane.",
            &[],
            pending as f64,
        );
        out.gauge(
            "onprem_telemetry_buffer_bytes",
            "Size of the on-disk telemetry buffer.",
            &[],
            bytes as f64,
        );
        out.counter(
            "onprem_telemetry_dropped_samples_total",
            "Telemetry samples dropped, oldest first, because the buffer was full.",
            &[],
            dropped as f64,
        );
        out.gauge(
            "onprem_telemetry_acknowledged_sequence",
            "The last telemetry sample the control plane acknowledged.",
            &[],
            acked as f64,
        );
        Ok(())
    }
}
