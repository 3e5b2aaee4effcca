//! # The control plane (`onprem control-plane`)
//!
//! Enrols agents, stores records and bundles, resolves, signs and rolls
//! out bundle revisions, holds one session per agent, receives their
//! telemetry, and serves the fleet API (gRPC and REST, same operations),
//! a WebSocket stream of live changes, and a fleet `/metrics`. One
//! process, one TLS port, one SQLite file: nothing else to install.
//!
//! - [`pki`]: CA, serving certificate, bundle-signing key, client certificates;
//! - [`store`] (the trait) and [`sqlite`] (the embedded backend);
//! - [`core`]: the state and every operation; [`apply`] and [`rollout`] on it;
//! - [`agents`] and [`fleet`]: the gRPC services; [`rest`]: REST, OpenAPI,
//!   WebSocket and `/metrics`; [`server`]: the TLS listener;
//! - [`records`]: what `apply` takes; [`labels`]: label selectors;
//! - [`remote_write`]: forwarding telemetry to Prometheus remote-write.
//!
//! To add a record kind: a variant in [`store::Kind`], its spec in
//! [`records`], its checks in [`apply`], a column set in the CLI's
//! tables.

pub mod agents;
pub mod apply;
pub mod auth;
pub mod core;
pub mod fleet;
pub mod health;
pub mod id;
pub mod labels;
pub use crate::pki;
pub mod records;
pub mod remote_write;
pub mod rest;
pub mod rollout;
pub use crate::tlsserver as server;
pub mod sqlite;
pub mod store;
pub mod tunnel;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use self::core::{Core, Settings};
use crate::proto::v1::agent_service_server::AgentServiceServer;
use crate::proto::v1::fleet_server::FleetServer;

/// Default listen address: loopback only, unless configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";

/// The default `--state-dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/onprem-control-plane";

/// The files of the state directory that hold secrets or the state
/// (mode 0600, tightened at start when looser).
pub const PRIVATE_FILES: &[&str] = &[
    "ca.key",
    "server.key",
    "bundle-signing.key",
    "admin.token",
    "onprem.db",
    "onprem.db-wal",
    "onprem.db-shm",
    crate::statedir::LOCK_FILE,
];

/// `onprem control-plane` options.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Options {
    /// Where the database, CA, keys and certificates live (created mode
    /// 0700; an existing one of this user's is tightened to 0700, one of
    /// another user's refused).
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Address to listen on (gRPC, REST, WebSocket, /metrics; TLS).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Names (DNS or IP) agents and the CLI reach this control plane by:
    /// the serving certificate's subject alternative names. Repeatable;
    /// default: localhost, 127.0.0.1, ::1 and this host's name.
    #[arg(long = "san")]
    pub sans: Vec<String>,
    /// Forward every telemetry sample to this Prometheus remote-write
    /// receiver (`http://host:9090/api/v1/write`).
    #[arg(long)]
    pub remote_write_url: Option<String>,
    /// How often agents send heartbeats, seconds.
    #[arg(long, default_value_t = 10)]
    pub heartbeat_seconds: u64,
    /// Let `/metrics` be scraped without a token.
    #[arg(long)]
    pub public_metrics: bool,
    /// A tunnel (`onprem port-forward`) with no byte either way this
    /// long is closed, seconds.
    #[arg(long, default_value_t = crate::tunnel::DEFAULT_IDLE.as_secs())]
    pub tunnel_idle_seconds: u64,
    /// A tunnel is closed this long after it opened, seconds.
    #[arg(long, default_value_t = crate::tunnel::DEFAULT_TOTAL.as_secs())]
    pub tunnel_max_seconds: u64,
    /// Most connections open at once (each agent holds one); at the cap,
    /// idle ones close to make room. Default: 65536, at most the
    /// open-file limit less 256.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// How long a request head (and a TLS handshake) may take, seconds.
    #[arg(long, default_value_t = crate::serverlimits::HEADER_TIMEOUT.as_secs())]
    pub header_timeout_seconds: u64,
    /// A connection with no request in flight is closed after this long,
    /// seconds.
    #[arg(long, default_value_t = crate::serverlimits::IDLE_TIMEOUT.as_secs())]
    pub idle_timeout_seconds: u64,
    /// Work on the stopped control plane's state directory instead of
    /// serving.
    #[command(subcommand)]
    pub command: Option<Offline>,
}

/// What `onprem control-plane` does on its state directory while it is
/// stopped.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Offline {
    /// Add an admin API token to the state directory's database, with the
    /// control plane stopped: the way back when no valid admin token is
    /// left. Prints the token alone on standard output: start the control
    /// plane again, then log in with it (`onprem login URL --token-file -
    /// …`, the token on standard input). Run it as the user the control
    /// plane runs as, or as root (what it creates is then given to the
    /// directory's owner).
    AdminToken(AdminTokenOptions),
}

/// `onprem control-plane admin-token`.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminTokenOptions {
    /// The control plane's state directory.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// The user the token belongs to (created, or raised to admin).
    #[arg(long, default_value = "admin")]
    pub user: String,
    /// Lifetime (`90s`, `12h`, `720h`); default: it never expires.
    #[arg(long)]
    pub ttl: Option<String>,
}

impl Options {
    /// Defaults with `state_dir`, listening on a free loopback port.
    pub fn for_tests(state_dir: PathBuf) -> Options {
        Options {
            state_dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            sans: Vec::new(),
            remote_write_url: None,
            heartbeat_seconds: 10,
            public_metrics: false,
            tunnel_idle_seconds: crate::tunnel::DEFAULT_IDLE.as_secs(),
            tunnel_max_seconds: crate::tunnel::DEFAULT_TOTAL.as_secs(),
            max_connections: None,
            header_timeout_seconds: crate::serverlimits::HEADER_TIMEOUT.as_secs(),
            idle_timeout_seconds: crate::serverlimits::IDLE_TIMEOUT.as_secs(),
            command: None,
        }
    }
}

/// A running control plane.
pub struct Handle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub core: Arc<Core>,
    /// The first admin token, when this start created it.
    pub admin_token: Option<String>,
    /// `sha256:<hex>` of its CA.
    pub ca_fingerprint: String,
    /// Its CA, PEM.
    pub ca_pem: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// The state directory's lock, held while it serves.
    _lock: crate::statedir::Lock,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// `https://addr`.
    pub fn url(&self) -> String {
        format!("https://{}", server::display_addr(self.addr))
    }

    /// Stops serving and writes what is in memory back.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
        if let Err(e) = self.core.flush() {
            tracing::error!(error = %e, "cannot write the devices back");
        }
    }
}

/// The URL clients dial: the listen address, or when it is a wildcard
/// (`0.0.0.0`, `::`), the first name in the certificate that is not a
/// loopback one.
fn dial_url(addr: SocketAddr, sans: &[String]) -> String {
    if !addr.ip().is_unspecified() {
        return format!("https://{}", server::display_addr(addr));
    }
    let host = sans
        .iter()
        .find(|n| !matches!(n.as_str(), "localhost" | "127.0.0.1" | "::1"))
        .or_else(|| sans.first())
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    if host.contains(':') {
        format!("https://[{host}]:{}", addr.port())
    } else {
        format!("https://{host}:{}", addr.port())
    }
}

fn default_sans() -> Vec<String> {
    let mut v = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() && !v.iter().any(|x| x == h) {
            v.push(h.to_owned());
        }
    }
    v
}

/// Opens the state, binds and starts serving.
pub async fn start(opts: Options, shutdown: CancellationToken) -> anyhow::Result<Handle> {
    use anyhow::Context as _;
    // The state directory: private (created 0700, a loose one of ours
    // tightened, another user's refused), one control plane at a time,
    // its secrets 0600 whatever the umask.
    let what = "control plane's state directory";
    crate::statedir::prepare(&opts.state_dir, what)?;
    let lock = crate::statedir::Lock::take(&opts.state_dir)?;
    crate::statedir::tighten(&opts.state_dir, PRIVATE_FILES)?;
    let sans = if opts.sans.is_empty() {
        default_sans()
    } else {
        opts.sans.clone()
    };
    let dir = opts.state_dir.clone();
    let pki = tokio::task::spawn_blocking(move || pki::Pki::open(&dir, &sans)).await??;
    let db = opts.state_dir.join("onprem.db");
    // SQLite gives its -wal and -shm files the database's mode.
    crate::statedir::create_private(&db)?;
    let store = sqlite::Sqlite::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let tls = Arc::new(pki.server_config()?);
    let ca_fingerprint = pki.ca_fingerprint();
    let ca_pem = pki.ca_pem().to_owned();
    let settings = Settings {
        heartbeat: Duration::from_secs(opts.heartbeat_seconds.max(1)),
        session_timeout: Duration::from_secs(opts.heartbeat_seconds.max(1) * 3 + 5),
        tunnel: crate::tunnel::Limits {
            idle: Duration::from_secs(opts.tunnel_idle_seconds.max(1)),
            total: Duration::from_secs(opts.tunnel_max_seconds.max(1)),
        },
        ..Settings::default()
    };
    let mut core = Core::new(Arc::new(store), pki, settings)?;
    let stop = shutdown.child_token();
    if let Some(url) = &opts.remote_write_url {
        let cfg = remote_write::Config::new(url.clone());
        core.remote_write = Some(remote_write::Forwarder::start(cfg, stop.clone())?);
    }
    let core = Arc::new(core);
    let admin_token = core.bootstrap()?;
    if let Some(t) = &admin_token {
        // Kept for the operator (mode 0600), like the CA key beside it.
        pki::write_atomic(
            &opts.state_dir.join("admin.token"),
            format!("{t}\n").as_bytes(),
            0o600,
        )?;
    }

    let limits = server_limits(&opts)?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let grpc = tonic::service::Routes::new(AgentServiceServer::new(agents::Agents::new(
        Arc::clone(&core),
    )))
    .add_service(FleetServer::with_interceptor(
        fleet::Fleet::new(Arc::clone(&core)),
        fleet::authenticate(Arc::clone(&core)),
    ))
    .into_axum_router();
    let app = grpc.merge(rest::router(Arc::clone(&core), opts.public_metrics));
    let serve_stop = stop.clone();
    let c2 = Arc::clone(&core);
    let task = tokio::spawn(async move {
        tokio::spawn(housekeeping(c2, serve_stop.clone()));
        let opts = server::Options::new(limits);
        server::serve_limited(listener, None, Some(tls), app, opts, serve_stop).await;
    });
    Ok(Handle {
        addr,
        core,
        admin_token,
        ca_fingerprint,
        ca_pem,
        stop,
        task,
        _lock: lock,
    })
}

/// `onprem control-plane admin-token`: a new admin API token in the
/// stopped control plane's database, printed alone on standard output.
fn admin_token(o: &AdminTokenOptions) -> anyhow::Result<()> {
    use crate::cli::fleet::{code, exit};
    let dir = &o.state_dir;
    let ttl_seconds = match &o.ttl {
        None => 0,
        Some(t) => crate::bundle::duration::parse(t)
            .map_err(|e| exit(code::USAGE, format!("--ttl {t:?}: {e}")))?
            .as_secs()
            .max(1),
    };
    let db = dir.join("onprem.db");
    if !db.is_file() {
        return Err(exit(
            code::USAGE,
            format!(
                "{}: no control plane database here (--state-dir): a control plane that never started makes its first admin token when it does",
                db.display()
            ),
        ));
    }
    // As the directory's owner; or as root, giving what SQLite and the
    // lock create back to the owner, so that the control plane can open
    // them again.
    let owner = match crate::statedir::prepare(dir, "control plane's state directory") {
        Ok(owner) => owner,
        Err(crate::statedir::Error::NotOurs { owner, .. }) if crate::statedir::euid() == 0 => owner,
        Err(e) => return Err(exit(code::USAGE, e.to_string())),
    };
    let lock = crate::statedir::Lock::take(dir).map_err(|e| match e {
        crate::statedir::Error::Locked { .. } => exit(
            code::USAGE,
            format!(
                "{e}. With an admin login, create the token through it instead: onprem token create --role admin --user {}",
                o.user
            ),
        ),
        e => exit(code::USAGE, e.to_string()),
    })?;
    let result = (|| {
        let store = sqlite::Sqlite::open(&db)
            .map_err(|e| exit(code::INTERNAL, format!("{}: {e}", db.display())))?;
        core::offline_admin_token(
            &store,
            &o.user,
            ttl_seconds,
            "created offline (onprem control-plane admin-token)",
        )
        .map_err(|e| exit(code::USAGE, e.to_string()))
    })();
    if owner != crate::statedir::euid() {
        for f in PRIVATE_FILES {
            let p = dir.join(f);
            if p.exists() {
                std::os::unix::fs::chown(&p, Some(owner), None).map_err(|e| {
                    exit(
                        code::INTERNAL,
                        format!("giving {} back to uid {owner}: {e}", p.display()),
                    )
                })?;
            }
        }
    }
    drop(lock);
    let (id, token) = result?;
    println!("{token}");
    eprintln!(
        "admin API token {id} for user {:?} ({}); shown this once. Start the control plane, then:\n  onprem login https://HOST:PORT --token-file FILE --ca-file {}   (FILE holding the token, or - for standard input)",
        o.user,
        if ttl_seconds == 0 {
            "never expires".to_owned()
        } else {
            format!("expires in {ttl_seconds} s")
        },
        dir.join("ca.crt").display()
    );
    Ok(())
}

/// The listener's limits from the options.
fn server_limits(opts: &Options) -> anyhow::Result<crate::serverlimits::Limits> {
    let mut l = crate::serverlimits::Limits::control_plane(opts.max_connections);
    if let Some(e) = l.check("--max-connections").into_iter().next() {
        anyhow::bail!("{e}");
    }
    for (flag, secs, slot) in [
        (
            "--header-timeout-seconds",
            opts.header_timeout_seconds,
            &mut l.header_timeout,
        ),
        (
            "--idle-timeout-seconds",
            opts.idle_timeout_seconds,
            &mut l.idle_timeout,
        ),
    ] {
        *slot = crate::serverlimits::timeout_secs(flag, secs as f64)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(l)
}

/// Every second: drop silent sessions, move rollouts on (deadlines),
/// write changed devices back.
async fn housekeeping(core: Arc<Core>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let c = Arc::clone(&core);
        let r = tokio::task::spawn_blocking(move || {
            c.expire_sessions();
            c.progress_rollouts();
            c.flush()
        })
        .await;
        match r {
            Ok(Err(e)) => tracing::error!(error = %e, "cannot write the devices back"),
            Err(e) => tracing::error!(error = %e, "housekeeping failed"),
            Ok(Ok(_)) => {}
        }
    }
}

/// `onprem control-plane`: serves until `shutdown` (or, with a
/// subcommand, works on the stopped control plane's state directory).
pub async fn run(opts: Options, shutdown: CancellationToken) -> anyhow::Result<()> {
    if let Some(Offline::AdminToken(o)) = opts.command {
        return tokio::task::spawn_blocking(move || admin_token(&o)).await?;
    }
    let state_dir = opts.state_dir.clone();
    let sans = if opts.sans.is_empty() {
        default_sans()
    } else {
        opts.sans.clone()
    };
    let h = start(opts, shutdown.clone()).await?;
    let url = dial_url(h.addr, &sans);
    println!("onprem control plane listening on {}", h.url());
    println!("  state:  {}", state_dir.display());
    println!("  CA:     {}", h.ca_fingerprint);
    if h.admin_token.is_some() {
        let file = state_dir.join("admin.token");
        println!();
        println!(
            "First start: an admin token was created in {} (mode 0600).",
            file.display()
        );
        println!("Log in with (the token stays off the command line and out of `ps`):");
        println!();
        println!(
            "  onprem login {url} --token-file {} --ca-fingerprint {}",
            file.display(),
            h.ca_fingerprint
        );
        println!();
        println!("Then enrol nodes with a token from `onprem token create --enrol`.");
    }
    crate::agent::notify::ready("control plane serving");
    // WATCHDOG=1 while the store answers (a wedged database or runtime
    // gets the unit restarted).
    if let Some(every) = crate::agent::notify::watchdog_interval() {
        let core = Arc::clone(&h.core);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every / 2);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let c = Arc::clone(&core);
                if let Ok(Ok(_)) = tokio::task::spawn_blocking(move || c.flush()).await {
                    crate::agent::notify::watchdog();
                }
            }
        });
    }
    shutdown.cancelled().await;
    crate::agent::notify::stopping();
    h.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_is_dialled_by_its_certificate_name() {
        let names = vec!["localhost".to_owned(), "cp.example.org".to_owned()];
        let a: SocketAddr = "0.0.0.0:7443".parse().unwrap();
        assert_eq!(dial_url(a, &names), "https://cp.example.org:7443");
        let b: SocketAddr = "10.0.0.2:7443".parse().unwrap();
        assert_eq!(dial_url(b, &names), "https://10.0.0.2:7443");
        let c: SocketAddr = "[::]:7443".parse().unwrap();
        assert_eq!(
            dial_url(c, &["fd00::2".to_owned()]),
            "https://[fd00::2]:7443"
        );
    }
}
