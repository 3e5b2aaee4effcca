//! # onprem
//!
//! A lean edge agent for fleets of Raspberry Pi, NVIDIA Jetson and
//! cluster-blade nodes, and GPU servers, with its control plane and CLI in
//! the same binary.
//!
//! Newcomers start with [`agent`] (the daemon and its supervisor) and
//! [`exporter`] (the node-exporter-compatible `/metrics`); every module's
//! doc says what it does and how to extend it. Hardware access lives in
//! the `onprem-hal` crate.
//!
//! Each role has one entry point that takes its options and a
//! cancellation token, so tests and `onprem demo` run whole roles in one
//! process: [`agent::run`], [`demo::run`], and [`cli::run`] for the
//! command line.

pub mod agent;
pub mod bundle;
pub mod cli;
pub mod clock;
pub mod controlplane;
pub mod demo;
pub mod dialhome;
pub mod exporter;
#[doc(hidden)]
pub mod fuzzing;
pub mod httpc;
pub mod hw;
pub mod limits;
pub mod pki;
pub mod proto;
pub mod redfish;
pub mod serverlimits;
pub mod statedir;
pub mod tlsserver;
pub mod tunnel;
pub mod validate;

/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit this build is from: 12 hex digits of `git rev-parse HEAD`,
/// `-dirty` when tracked files differed from it, `$ONPREM_GIT_COMMIT` when
/// the build set it, or `unknown` (`build.rs`).
pub const GIT_COMMIT: &str = env!("ONPREM_GIT_COMMIT");
