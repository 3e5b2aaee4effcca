//! # The command line
//!
//! One binary, several roles: `onprem agent` (the node daemon),
//! `onprem control-plane`, the kubectl-like fleet commands ([`fleet`]:
//! `login`, `get`, `describe`, `apply`, `diff`, `delete`, `watch`,
//! `token`, `ack`), what kubectl users reach for beside them
//! ([`kubectl`]: `version`, `whoami`, `logout`, `completion`, `rollout
//! status`) and `onprem demo`. `main.rs` parses with [`Cli`] and
//! hands over to [`run`].
//!
//! To add a command: a variant of [`Command`] with its options struct (in
//! the subsystem's module), and an arm in [`run`] that calls the
//! subsystem's `run(options, shutdown)`.

pub mod fleet;
pub mod jsonpath;
pub mod kubectl;
pub mod nodehttp;
pub mod tunnel;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::{agent, bundle, controlplane, demo, hw};

/// onprem: edge agent, control plane and CLI in one binary.
#[derive(Debug, Parser)]
#[command(name = "onprem", version = VERSION_AND_COMMIT, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// What `onprem --version` prints after the name: the version and the
/// commit (`onprem version` also asks the control plane).
const VERSION_AND_COMMIT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ONPREM_GIT_COMMIT"),
    ")"
);

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node agent: node-exporter-compatible /metrics, its bundle's
    /// reconcile loops (fans, power, signals, checks), its Redfish service,
    /// and dial-home to a control plane.
    ///
    /// Each collector is turned on with `--collector.<name>` and off with
    /// `--no-collector.<name>`. A flag given twice takes its last value, so
    /// systemd drop-ins can override ExecStart flags.
    #[command(args_override_self = true)]
    Agent(Box<agent::Flags>),
    /// Run the control plane: enrolment, bundles and rollouts, telemetry,
    /// the fleet API (gRPC and REST) on one TLS port.
    ControlPlane(controlplane::Options),
    /// Run the whole system on this machine with no hardware.
    Demo(demo::Options),
    /// Node hardware: probe a profile's devices, list profiles.
    #[command(subcommand)]
    Hw(hw::Command),
    /// Scan an I²C bus as i2c-tools' i2cdetect does (skipping addresses
    /// where a probe is known to hurt a device).
    I2cdetect(hw::I2cdetectOptions),
    /// Check bundle files: parse, validate (every problem with its field
    /// path) and, with trusted keys, verify their signatures.
    Validate(bundle::cli::ValidateOptions),
    /// Print the documentation of a bundle field, or the whole JSON Schema.
    Explain(bundle::cli::ExplainOptions),
    /// Bundle signing keys and signatures.
    #[command(subcommand)]
    Bundle(bundle::cli::Command),
    /// The local agent's bundle, loops, fan zones, alerts and recent
    /// events.
    Status(agent::status::Options),
    /// Log in to a control plane: its URL, an API token, and its CA
    /// pinned by fingerprint (or file); kept in ~/.config/onprem.
    Login(fleet::LoginOptions),
    /// Forget the login (the token stays valid until revoked).
    Logout,
    /// The login's user, role and token, and its control plane (exit 4
    /// when not logged in).
    Whoami(kubectl::WhoAmIOptions),
    /// This binary's version and commit, and the control plane's when
    /// logged in.
    Version(kubectl::VersionOptions),
    /// A shell completion script: `source <(onprem completion bash)`.
    Completion(kubectl::CompletionOptions),
    /// Follow a bundle's rollout: `onprem rollout status bundle/NAME`.
    #[command(subcommand)]
    Rollout(kubectl::RolloutCommand),
    /// List records: devices, bundles, profiles, facilities, chassis,
    /// alerts, tokens, events, users, rollouts, audit.
    Get(fleet::GetOptions),
    /// One record in detail: a device's conditions, bundle, latest
    /// telemetry, alerts and events.
    Describe(fleet::DescribeOptions),
    /// Create or update records from YAML files, all or nothing.
    Apply(fleet::ApplyOptions),
    /// What `apply` would change (exit 1 when anything would).
    Diff(fleet::DiffOptions),
    /// Edit a record in $VISUAL or $EDITOR and apply it on save (exit 9
    /// when it changed meanwhile).
    Edit(fleet::EditOptions),
    /// Delete records (a device: its certificate is no longer accepted).
    Delete(fleet::DeleteOptions),
    /// Follow devices (or events) live until Ctrl-C.
    Watch(fleet::WatchOptions),
    /// API and enrolment tokens.
    #[command(subcommand)]
    Token(fleet::TokenCommand),
    /// Acknowledge alerts.
    Ack(fleet::AckOptions),
    /// Forward local ports to ports on a device, through the control
    /// plane (`onprem port-forward device/NAME 8443`).
    PortForward(tunnel::PortForwardOptions),
    /// One HTTP(S) request to a port on a device, through the control
    /// plane (`onprem curl --device NAME /redfish/v1/Systems/1 -u admin`).
    Curl(nodehttp::CurlOptions),
    /// Reset a device through its Redfish service, through the control
    /// plane (`onprem reset device/NAME --type GracefulRestart`).
    Reset(nodehttp::ResetOptions),
    /// Hash a Redfish account's password for a bundle
    /// (`spec.redfish.accounts[].passwordHash`): reads it from standard
    /// input (or `--password-file`), prints its Argon2id PHC string.
    HashPassword(crate::redfish::HashPasswordOptions),
}

impl Command {
    /// The log level this command starts with.
    pub fn log_level(&self) -> tracing::Level {
        match self {
            Command::Agent(f) => f
                .log_level
                .as_deref()
                .and_then(|l| l.parse().ok())
                .unwrap_or(tracing::Level::INFO),
            Command::ControlPlane(_) => tracing::Level::INFO,
            Command::Demo(_)
            | Command::Hw(_)
            | Command::I2cdetect(_)
            | Command::Validate(_)
            | Command::Explain(_)
            | Command::Bundle(_)
            | Command::Status(_)
            | Command::Login(_)
            | Command::Logout
            | Command::Whoami(_)
            | Command::Version(_)
            | Command::Completion(_)
            | Command::Rollout(_)
            | Command::Get(_)
            | Command::Describe(_)
            | Command::Apply(_)
            | Command::Diff(_)
            | Command::Edit(_)
            | Command::Delete(_)
            | Command::Watch(_)
            | Command::Token(_)
            | Command::Ack(_)
            | Command::PortForward(_)
            | Command::Curl(_)
            | Command::Reset(_)
            | Command::HashPassword(_) => tracing::Level::WARN,
        }
    }

    /// The runtime's worker threads. Every command but the demo runs its
    /// tasks on one thread (0): the agent and the control plane keep
    /// their blocking work (loop ticks, logins, store writes, scrapes) on
    /// the blocking pool, so their tasks only move bytes, and a relay
    /// (the control plane's tunnels, `port-forward`, the agent's end)
    /// hands each frame between its tasks without waking another thread.
    /// The demo, a whole fleet in one process, runs two.
    /// `$ONPREM_WORKER_THREADS` overrides both (0 = one thread).
    pub fn worker_threads(&self) -> usize {
        let default = match self {
            Command::Demo(_) => 2,
            _ => 0,
        };
        workers(
            default,
            std::env::var("ONPREM_WORKER_THREADS").ok().as_deref(),
        )
    }
}

/// `$ONPREM_WORKER_THREADS` (a count up to 256; anything else is
/// ignored) or `default`.
fn workers(default: usize, env: Option<&str>) -> usize {
    env.and_then(|v| v.trim().parse().ok())
        .filter(|n| *n <= 256)
        .unwrap_or(default)
}

/// A command stopped by SIGINT or SIGTERM before it was done: the binary
/// exits at once with 128 + the signal's number (130, 143), as a shell
/// reports a program the signal killed, without waiting for the work
/// still running on other threads.
#[derive(Debug, thiserror::Error)]
#[error("stopped by a signal before it was done")]
pub struct Interrupted;

/// Runs a parsed command until it ends or `shutdown` is cancelled.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> anyhow::Result<()> {
    match cli.command {
        Command::Agent(flags) => {
            if let Some(w) = flags.secret_on_command_line() {
                tracing::warn!("{w}");
            }
            if flags.check_config {
                let c = flags.load()?;
                let source = c
                    .source
                    .as_ref()
                    .map_or("defaults (no config file)".to_owned(), |p| {
                        p.display().to_string()
                    });
                println!(
                    "configuration OK: {source}; listen {}; collectors: {}",
                    c.listen,
                    {
                        let en = c.collectors.enabled().unwrap_or_default();
                        en.into_iter().collect::<Vec<_>>().join(" ")
                    }
                );
                return Ok(());
            }
            agent::loops::run_on_own_thread()
                .map_err(|e| anyhow::anyhow!("starting the loops' thread: {e}"))?;
            agent::run(*flags, shutdown).await?;
            Ok(())
        }
        Command::ControlPlane(opts) => controlplane::run(opts, shutdown).await,
        // The demo's nodes keep their loops on the demo's runtime: with a
        // runtime of their own, a node's simulated world outlived the demo.
        Command::Demo(opts) => demo::run(opts, shutdown).await,
        Command::Hw(cmd) => {
            let all_ok = tokio::task::spawn_blocking(move || hw::run(cmd)).await??;
            if !all_ok {
                anyhow::bail!("some devices failed (see ERROR lines above)");
            }
            Ok(())
        }
        Command::I2cdetect(opts) => {
            tokio::task::spawn_blocking(move || hw::i2cdetect(opts)).await?
        }
        Command::Validate(opts) => {
            let n = opts.files.len();
            // SIGINT or SIGTERM stops it at once, even in the middle of a
            // file (the parse runs on its own thread).
            let work = tokio::task::spawn_blocking(move || bundle::cli::validate(&opts));
            let invalid = tokio::select! {
                r = work => r??,
                _ = shutdown.cancelled() => return Err(Interrupted.into()),
            };
            if invalid > 0 {
                anyhow::bail!("{invalid} of {n} bundle file(s) invalid");
            }
            Ok(())
        }
        Command::Explain(opts) => bundle::cli::explain(&opts),
        Command::Status(opts) => {
            tokio::task::spawn_blocking(move || agent::status::run(&opts)).await?
        }
        Command::Bundle(cmd) => tokio::task::spawn_blocking(move || bundle::cli::run(cmd)).await?,
        Command::Login(o) => fleet::login(o).await,
        Command::Logout => kubectl::logout(),
        Command::Whoami(o) => kubectl::whoami(o).await,
        Command::Version(o) => kubectl::version(o).await,
        Command::Completion(o) => {
            kubectl::completion(&o);
            Ok(())
        }
        Command::Rollout(c) => kubectl::rollout(c, shutdown).await,
        Command::Get(o) => fleet::get(o, shutdown).await,
        Command::Describe(o) => fleet::describe(o).await,
        Command::Apply(o) => fleet::apply(o).await,
        Command::Diff(o) => fleet::diff(o).await,
        Command::Edit(o) => fleet::edit(o).await,
        Command::Delete(o) => fleet::delete(o).await,
        Command::Watch(o) => fleet::watch(o, shutdown).await,
        Command::Token(c) => fleet::token(c).await,
        Command::Ack(o) => fleet::ack(o).await,
        Command::PortForward(o) => tunnel::port_forward(o, shutdown).await,
        Command::Curl(o) => nodehttp::curl(o).await,
        Command::Reset(o) => nodehttp::reset(o).await,
        Command::HashPassword(o) => {
            let hash = tokio::task::spawn_blocking(move || crate::redfish::hash_password_cli(&o))
                .await??;
            println!("{hash}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_runs_two_workers_and_every_other_command_one_thread() {
        let demo = Cli::parse_from(["onprem", "demo"]);
        let cp = Cli::parse_from(["onprem", "control-plane"]);
        let agent = Cli::parse_from(["onprem", "agent"]);
        let client = Cli::parse_from(["onprem", "port-forward", "device/n", "8443"]);
        assert_eq!(workers(2, None), 2);
        assert_eq!(workers(0, Some(" 4 ")), 4);
        assert_eq!(workers(2, Some("0")), 0);
        assert_eq!(workers(2, Some("many")), 2);
        assert_eq!(workers(2, Some("100000")), 2);
        if std::env::var_os("ONPREM_WORKER_THREADS").is_none() {
            assert_eq!(demo.command.worker_threads(), 2);
            assert_eq!(cp.command.worker_threads(), 0);
            assert_eq!(agent.command.worker_threads(), 0);
            assert_eq!(client.command.worker_threads(), 0);
        }
    }
}
