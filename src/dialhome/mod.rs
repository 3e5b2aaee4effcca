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
