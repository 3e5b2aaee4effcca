//! # The agent: the daemon that runs on every node
//!
//! [`Agent::bind`] loads and validates the configuration (nothing binds
//! before it is valid), builds the collectors, binds the listener and runs
//! the first collection; [`Agent::run`] serves until the shutdown token is
//! cancelled. One supervisor owns the pieces:
//!
//! - **start order**: config → collectors → listener → first collection →
//!   `READY=1`.
//! - **SIGHUP**: re-reads the config file (flags still override it) and
//!   swaps the collector set between requests; the listener and scrapes in
//!   flight are untouched. A bad new config is logged and the running one
//!   stays.
//! - **watchdog**: `WATCHDOG=1` at half of `WATCHDOG_USEC`, sent only after
//!   a request to the agent's own `/-/healthy` succeeds, so a wedged scrape
//!   path lets systemd restart the agent.
//! - **shutdown**: SIGTERM/SIGINT (handled by the binary) cancel the token;
//!   the listener stops accepting, scrapes in flight finish (within
//!   [`DRAIN_GRACE`]), `STOPPING=1`.
//! - **listeners** (`/metrics`, Redfish) keep the
//!   [server limits](crate::serverlimits) of `web.*`: a connection cap,
//!   header and idle timeouts, read at start.
//!
//! Later subsystems (reconcile loops, dial-home, Redfish) start here, each
//! with a child of the same token.
//!
//! ## Troubleshooting
//!
//! - `Address already in use`: another exporter (node_exporter?) holds the
//!   port; stop it or set `--web.listen-address`.
//! - Collectors failing with permission errors: the systemd unit's
//!   hardening hides a path; `node_scrape_collector_success` and the log
//!   name the file.

pub mod checks;
pub mod config;
pub mod fans;
pub mod flags;
pub mod host;
pub mod loops;
pub mod notify;
pub mod power;
pub mod reconcile;
pub mod signals;
pub mod standalone;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use onprem_hal::inventory::Hardware;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::exporter::encode::Format;
use crate::exporter::http::{self, Shared};
use crate::exporter::{Exporter, error_chain};
use crate::hw::poller::Hub;
pub use config::Config;
pub use flags::Flags;

/// Why the agent could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration was refused; nothing was started.
    #[error(transparent)]
    Config(#[from] config::Error),
    /// The listen address could not be bound (in use, or not a local
    /// address).
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("serving HTTP")]
    Serve(#[source] std::io::Error),
    /// The device inventory could not be set up (the simulated world's
    /// directory, the poller thread). A device that merely fails to open is
    /// not this: it is reported and retried.
    #[error("setting up devices: {0}")]
    Devices(String),
}

/// At shutdown, how long requests in flight on `/metrics` may take to
/// finish before the loops stop (the fans' fail-safe duty must come well
/// within systemd's `TimeoutStopSec`).
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// An agent whose listener is bound and whose first collection has run.
pub struct Agent {
    /// How to re-read the configuration on SIGHUP; `None` when it came
    /// from elsewhere (`onprem demo`) and there is nothing to re-read.
    flags: Option<Flags>,
    config: Config,
    listener: TcpListener,
    shared: Arc<Shared>,
    devices: Option<Devices>,
    node: Option<standalone::Node>,
    dial: Option<crate::dialhome::session::Parts>,
}

/// The node's device hub, its poller's stop flag, and the simulated world
/// it may run on (kept alive with the agent).
pub(crate) struct Devices {
    hub: Hub,
    stop: Arc<AtomicBool>,
    cancel: CancellationToken,
    _world: Option<crate::hw::SimWorld>,
}

impl Devices {
    /// Cancelled when the devices close (for tasks that drive them).
    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

impl Drop for Devices {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cancel.cancel();
    }
}

/// Opens the inventory (on a blocking thread: buses can be slow) and
/// starts its poller.
pub(crate) async fn open_devices(hw: &config::Hardware) -> Result<Devices, Error> {
    let hw = hw.clone();
    let opened = tokio::task::spawn_blocking(move || -> anyhow::Result<Devices> {
        let (hardware, world) = if hw.sim {
            let w = crate::hw::SimWorld::new(&hw.spec)?;
            (Hardware::Sim(w.world.clone()), Some(w))
        } else {
            (Hardware::real(), None)
        };
        let hub = Hub::new(hw.spec.clone(), hardware);
        let stop = Arc::new(AtomicBool::new(false));
        hub.spawn(hw.poll_interval, Arc::clone(&stop));
        Ok(Devices {
            hub,
            stop,
            cancel: CancellationToken::new(),
            _world: world,
        })
    })
    .await
    .map_err(|e| Error::Devices(e.to_string()))?;
    let devices = opened.map_err(|e| Error::Devices(format!("{e:#}")))?;
    for d in devices.hub.readings().devices {
        match &d.error {
            Some(e) => {
                tracing::warn!(device = %d.name, driver = d.driver, error = %e, "device not readable; retrying each period")
            }
            None => {
                tracing::info!(device = %d.name, driver = d.driver, kind = d.kind, "device ready")
            }
        }
    }
    Ok(devices)
}

impl Agent {
    /// Loads the configuration from `flags`, builds the collectors, binds
    /// the listener and runs the first collection.
    pub async fn bind(flags: Flags) -> Result<Agent, Error> {
        let config = flags.load()?;
        Self::bind_config(Some(flags), config).await
    }

    /// Like [`bind`](Self::bind) with an already loaded configuration;
    /// SIGHUP re-reads it through `flags` when given.
    pub async fn bind_config(flags: Option<Flags>, config: Config) -> Result<Agent, Error> {
        // Every listener of the agent (Redfish too) within `web.*`.
        crate::serverlimits::set_process(config.server);
        // Standalone: the bundle's hardware, fans at fail-safe before any
        // loop runs. Otherwise the config's hardware section, read only.
        let dialling = config.control_plane.url.is_some();
        if config.bundle.path.is_some() || dialling {
            private_state_dir(&config.bundle.state_dir);
        }
        let mut node = if config.bundle.path.is_some() || dialling {
            Some(standalone::Node::prepare(&config, CancellationToken::new()).await?)
        } else {
            None
        };
        let identity = match (&mut node, dialling) {
            (Some(n), true) => {
                let id = dial_identity(&config).await?;
                let keys = id
                    .trusted_keys()
                    .map_err(|e| Error::Devices(format!("identity: {e}")))?;
                let offers = n.accept_offers(keys);
                let max = n
                    .telemetry
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .buffer_bytes;
                let telemetry =
                    crate::dialhome::telemetry::Telemetry::open(&config.bundle.state_dir, max)
                        .map_err(|e| Error::Devices(format!("telemetry buffer: {e}")))?;
                let dial = crate::dialhome::Metrics {
                    telemetry,
                    connected: Default::default(),
                };
                n.dial = Some(dial.clone());
                Some((id, offers, dial))
            }
            _ => None,
        };
        let devices = match (&config.hardware, &node) {
            (Some(hw), None) => Some(open_devices(hw).await?),
            _ => None,
        };
        let exporter = build_exporter_with(
            &config,
            node.as_ref().map(|n| n.parts()).as_ref(),
            devices.as_ref().map(|d| &d.hub),
        )?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let shared = Shared::new(exporter, config.max_requests);
        if let Some(n) = node.as_mut() {
            n.start(Arc::clone(&shared)).await;
        }
        let dial = match (identity, &node) {
            (Some((identity, offers, dial)), Some(n)) => {
                let facts = n.facts();
                Some(crate::dialhome::session::Parts {
                    identity,
                    status: n.status_source(),
                    offers,
                    telemetry: dial.telemetry.clone(),
                    facts,
                    connected: Arc::clone(&dial.connected),
                    tunnel_target: n.tunnel_target(),
                })
            }
            _ => None,
        };
        let first = Arc::clone(&shared);
        // The first collection runs before READY=1, so that a broken
        // collector shows in the log before systemd calls the unit started.
        // Failing collectors are logged by the scrape itself.
        let _ = tokio::task::spawn_blocking(move || first.render(None, Format::Text, false)).await;
        shared.set_ready(true);
        Ok(Agent {
            flags,
            config,
            listener,
            shared,
            devices,
            node,
            dial,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// The hub of the node's devices: the bundle's hardware in standalone
    /// mode, else the config's (none without hardware).
    pub fn hub(&self) -> Option<Hub> {
        match &self.node {
            Some(n) => n.hub.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            None => self.devices.as_ref().map(|d| d.hub.clone()),
        }
    }

    /// The node's hub as it will be after each bundle (none before the
    /// first, or without a node): for callers that keep it past
    /// [`Agent::run`].
    pub fn hub_slot(&self) -> Option<Arc<std::sync::Mutex<Option<Hub>>>> {
        self.node.as_ref().map(|n| Arc::clone(&n.hub))
    }

    /// The state shared with the HTTP handlers.
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Serves until `shutdown` is cancelled; handles SIGHUP (reload) and
    /// the systemd watchdog.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let addr = self.local_addr();
        let Agent {
            flags,
            config,
            listener,
            shared,
            devices,
            node,
            dial,
        } = self;
        let config_limits = config.server;
        let hub = devices.as_ref().map(|d| d.hub.clone());
        let node_parts = node.as_ref().map(|n| n.parts());
        let hup = Arc::new(tokio::sync::Notify::new());
        let node_stop = CancellationToken::new();
        let telemetry_spec = node.as_ref().map(|n| Arc::clone(&n.telemetry));
        let node_task = node.map(|n| tokio::spawn(n.run(node_stop.clone(), Arc::clone(&hup))));
        let dial_stop = shutdown.child_token();
        if let (Some(parts), Some(spec)) = (dial, telemetry_spec) {
            let metrics_shared = Arc::clone(&shared);
            let metrics: crate::dialhome::telemetry::MetricsFn =
                Arc::new(move || metrics_shared.exporter().scrape(None).families);
            let spec: crate::dialhome::telemetry::SpecFn =
                Arc::new(move || spec.lock().unwrap_or_else(|e| e.into_inner()).clone());
            tokio::spawn(crate::dialhome::telemetry::sample(
                parts.telemetry.clone(),
                metrics,
                spec,
                dial_stop.clone(),
            ));
            tokio::spawn(crate::dialhome::run(parts, dial_stop.clone()));
        }
        tracing::info!(address = %addr, collectors = ?shared.exporter().names(), "listening");
        notify::ready(&status_line(&shared, addr));

        let tasks = shutdown.child_token();
        if let Some(flags) = flags {
            tokio::spawn(reload_on_sighup(
                flags,
                config,
                Arc::clone(&shared),
                hub,
                node_parts,
                hup,
                tasks.clone(),
            ));
        }
        if let Some(every) = notify::watchdog_interval() {
            // A scrape stuck for a whole watchdog period wedges the path.
            shared.set_stall(every * 2);
            tokio::spawn(watchdog(addr, every, Arc::clone(&shared), tasks.clone()));
        }

        let app = http::router(Arc::clone(&shared));
        let stop = shutdown.clone();
        let opts = crate::tlsserver::Options {
            limits: config_limits,
            grace: DRAIN_GRACE,
        };
        crate::tlsserver::serve_limited(listener, None, None, app, opts, stop).await;
        tasks.cancel();
        dial_stop.cancel();
        shared.set_ready(false);
        // The loops stop last: fans end at the fail-safe duty.
        node_stop.cancel();
        if let Some(t) = node_task {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "stopping the loops failed");
            }
        }
        notify::stopping();
        tracing::info!("stopped");
        Ok(())
    }
}

/// The files of the agent's state directory that hold secrets or state
/// (mode 0600, tightened at start when looser).
pub const PRIVATE_FILES: &[&str] = &["identity/key.pem", "redfish/tls.key", power::STATE_FILE];

/// Makes the state directory private ([`crate::statedir`]): created 0700,
/// a looser one of this user's tightened, its secret files 0600. One of
/// another user's is an error in the log, and the agent runs on: its
/// loops come before its secrets.
fn private_state_dir(dir: &std::path::Path) {
    let r = crate::statedir::prepare(dir, "agent's state directory")
        .and_then(|_| crate::statedir::tighten(dir, PRIVATE_FILES));
    if let Err(e) = r {
        tracing::error!(dir = %dir.display(), error = %error_chain(&e), "the state directory is not private; running on");
    }
}

/// The agent's identity with its control plane: the one in the state
/// directory, or a new one from enrolment (with the configured token).
async fn dial_identity(config: &Config) -> Result<crate::dialhome::identity::Identity, Error> {
    use crate::dialhome::identity::{self, CaTrust, Identity};
    let cp = &config.control_plane;
    let url = cp.url.clone().unwrap_or_default();
    let state = config.bundle.state_dir.clone();
    let dev = |m: String| Error::Devices(m);
    if let Some(id) = Identity::load(&state).map_err(|e| dev(format!("identity: {e}")))? {
        if id.url != url {
            tracing::warn!(enrolled_with = %id.url, configured = %url, "the configured control-plane URL differs from the one enrolled with; using the configured one");
        }
        return Ok(Identity { url, ..id });
    }
    let token = match (&cp.enrol_token, &cp.enrol_token_file) {
        (Some(t), _) => t.trim().to_owned(),
        (None, Some(f)) => {
            let f = f.clone();
            tokio::task::spawn_blocking(move || read_enrol_token(&f))
                .await
                .map_err(|e| dev(format!("reading the enrolment token: {e}")))?
                .map_err(dev)?
        }
        (None, None) => {
            return Err(dev(format!(
                "control_plane: not enrolled yet ({} has no identity) and no enrol token: pass --enrol-token-file PATH or --enrol-token (from `onprem token create --enrol`)",
                state.join("identity").display()
            )));
        }
    };
    let trust = match (&cp.ca_file, &cp.ca_fingerprint) {
        (Some(f), _) => CaTrust::Pem(
            std::fs::read_to_string(f)
                .map_err(|e| dev(format!("control_plane.ca_file: {}: {e}", f.display())))?,
        ),
        (None, Some(fp)) => CaTrust::Fingerprint(fp.clone()),
        (None, None) => {
            return Err(dev(
                "control_plane: enrolment needs the control plane's CA: --ca-fingerprint sha256:… or --ca-file".into(),
            ));
        }
    };
    let facts = node_facts(config, None);
    let name = cp
        .device_name
        .clone()
        .unwrap_or_else(|| facts.hostname.clone());
    let id = identity::enrol(&url, &token, &trust, &name, facts)
        .await
        .map_err(|e| dev(format!("enrolment: {e}")))?;
    id.save(&state)
        .map_err(|e| dev(format!("saving the identity: {e}")))?;
    tracing::info!(device = %id.device_name, id = %id.device_id, "enrolled");
    Ok(id)
}

/// The enrolment token in `path` (`-`: standard input), without
/// surrounding whitespace; a missing, unreadable or empty one is an error
/// naming the flag and the field.
fn read_enrol_token(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read as _;
    let what = "--enrol-token-file (control_plane.enrol_token_file)";
    let (text, shown) = if path.as_os_str() == "-" {
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .map_err(|e| format!("{what} -: standard input: {e}"))?;
        (t, "standard input".to_owned())
    } else {
        let t =
            std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
        (t, path.display().to_string())
    };
    let token = text.trim();
    if token.is_empty() {
        return Err(format!(
            "{what}: {shown} is empty (put the token from `onprem token create --enrol` in it)"
        ));
    }
    Ok(token.to_owned())
}

/// The node's identity: what the machine says, or, for a simulated node
/// (which is not this machine), what its board says (`board`: the root of
/// the simulated world's identity files, once its hardware is up; see
/// `onprem_hal::sim::identity`), with a serial and UUID of its own,
/// stable for its state directory, its device name as host name and the
/// address its agent listens on.
pub fn node_facts(
    config: &Config,
    board: Option<&std::path::Path>,
) -> crate::proto::v1::HardwareFacts {
    let root = match board {
        Some(b) if config.sim => b,
        _ => std::path::Path::new("/"),
    };
    let mut facts = crate::dialhome::identity::facts(root);
    if config.sim {
        use sha2::Digest as _;
        let h = sha2::Sha256::digest(config.bundle.state_dir.to_string_lossy().as_bytes());
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        if board.is_none() {
            facts.manufacturer = "onprem".into();
            facts.model = "simulated node".into();
        }
        facts.serial = format!("SIM{}", &hex[..10]);
        facts.uuid = hex[..32].to_owned();
        if let Some(name) = &config.control_plane.device_name {
            facts.hostname = name.clone();
        } else if board.is_some() {
            facts.hostname = crate::dialhome::identity::facts(std::path::Path::new("/")).hostname;
        }
        let ip = config.listen.ip();
        facts.addresses = if ip.is_unspecified() {
            Vec::new()
        } else {
            vec![ip.to_string()]
        };
    }
    facts
}

/// Loads, binds and serves: the whole agent in one call.
pub async fn run(flags: Flags, shutdown: CancellationToken) -> Result<(), Error> {
    Agent::bind(flags).await?.run(shutdown).await
}

/// What the collectors of a node running a bundle read: its hub (which
/// follows the bundle's hardware), loops and bundle state.
#[derive(Clone)]
pub struct NodeParts {
    /// The hub now.
    pub hub: Arc<std::sync::Mutex<Option<Hub>>>,
    /// The loops.
    pub registry: reconcile::Registry,
    /// The bundle.
    pub bundle: crate::exporter::loops::SharedBundle,
    /// Dial-home state, when the node dials home.
    pub dial: Option<crate::dialhome::Metrics>,
}

/// The collectors of `config`, with `devices` over the node's hub and
/// `loops` over its loops when it runs a bundle.
pub(crate) fn build_exporter_with(
    config: &Config,
    node: Option<&NodeParts>,
    hub: Option<&Hub>,
) -> Result<Exporter, Error> {
    let mut exporter = Exporter::new(&config.collectors, &config.paths, config.exporter_metrics)
        .map_err(|e| Error::Config(config::Error::Invalid(crate::validate::FieldErrors(e))))?;
    let enabled = config.collectors.enabled().unwrap_or_default();
    let node_hub = node.and_then(|n| n.hub.lock().unwrap_or_else(|e| e.into_inner()).clone());
    if let (Some(hub), true) = (node_hub.as_ref().or(hub), enabled.contains("devices")) {
        exporter.add(Box::new(crate::exporter::devices::Devices::new(
            hub.clone(),
        )));
    }
    if let (Some(n), true) = (node, enabled.contains("loops")) {
        exporter.add(Box::new(crate::exporter::loops::Loops::new(
            n.registry.clone(),
            Arc::clone(&n.bundle),
        )));
    }
    if let (Some(d), true) = (
        node.and_then(|n| n.dial.as_ref()),
        enabled.contains("loops"),
    ) {
        exporter.add(Box::new(d.clone()));
    }
    Ok(exporter)
}

/// The one-line summary sent as systemd `STATUS=`.
pub fn status_line(shared: &Shared, addr: SocketAddr) -> String {
    let last = shared.last();
    let n = shared.exporter().names().len();
    format!(
        "serving {n} collectors on {addr}; last scrape {} families, {} samples in {:.1} ms, {} failed; {} scrapes",
        last.families,
        last.samples,
        last.duration.as_secs_f64() * 1000.0,
        last.failed,
        shared.scrapes()
    )
}

async fn reload_on_sighup(
    flags: Flags,
    mut current: Config,
    shared: Arc<Shared>,
    hub: Option<Hub>,
    node: Option<NodeParts>,
    bundle_reload: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload disabled");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        notify::reloading();
        // The bundle file is re-read too.
        bundle_reload.notify_one();
        // Reading and parsing the file runs on the blocking pool, not on
        // the thread the loops and the listener share.
        let work = {
            let (flags, old) = (flags.clone(), current.clone());
            let (shared, hub, node) = (Arc::clone(&shared), hub.clone(), node.clone());
            tokio::task::spawn_blocking(move || {
                reload(&flags, &old, &shared, hub.as_ref(), node.as_ref())
            })
        };
        let reloaded = tokio::select! {
            _ = stop.cancelled() => return,
            r = work => r,
        };
        let Ok(reloaded) = reloaded else {
            tracing::error!("the configuration reload stopped; the running configuration stays");
            continue;
        };
        match reloaded {
            Ok(next) => {
                tracing::info!(collectors = ?shared.exporter().names(), "configuration reloaded");
                current = next;
            }
            Err(e) => tracing::error!(
                error = %error_chain(&e).replace('\n', "; "),
                "reload refused; the running configuration stays"
            ),
        }
        notify::ready("configuration reloaded");
    }
}

/// Re-reads the configuration and swaps the collector set. Settings that
/// need a new socket (the listen address) are reported, not applied.
pub fn reload(
    flags: &Flags,
    current: &Config,
    shared: &Shared,
    hub: Option<&Hub>,
    node: Option<&NodeParts>,
) -> Result<Config, Error> {
    let next = flags.load()?;
    let exporter = build_exporter_with(&next, node, hub)?;
    if next.hardware != current.hardware || next.bundle != current.bundle {
        tracing::warn!(
            "changes to the hardware and bundle sections of the agent config take effect at restart"
        );
    }
    shared.swap(exporter);
    if next.listen != current.listen {
        tracing::warn!(old = %current.listen, new = %next.listen, "listen address changes take effect at restart");
    }
    if next.log_level != current.log_level {
        tracing::warn!("log level changes take effect at restart");
    }
    Ok(next)
}

async fn watchdog(addr: SocketAddr, every: Duration, shared: Arc<Shared>, stop: CancellationToken) {
    let target = loopback_for(addr);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match tokio::time::timeout(every, probe(target)).await {
            Ok(Ok(())) => {
                notify::watchdog();
                notify::status(&status_line(&shared, addr));
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "scrape path unhealthy; withholding WATCHDOG=1")
            }
            Err(_) => tracing::warn!("health probe timed out; withholding WATCHDOG=1"),
        }
    }
}

/// The address to probe for a listener bound to `addr` (an unspecified
/// address is reached over loopback).
pub fn loopback_for(addr: SocketAddr) -> SocketAddr {
    let mut t = addr;
    if addr.ip().is_unspecified() {
        t.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    t
}

/// GET `/-/healthy` on `addr`; Ok when it answers 200.
pub async fn probe(addr: SocketAddr) -> std::io::Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut buf = Vec::with_capacity(256);
    s.read_to_end(&mut buf).await?;
    if buf.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        let line = String::from_utf8_lossy(&buf)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        Err(std::io::Error::other(format!(
            "health check answered {line:?}"
        )))
    }
}
