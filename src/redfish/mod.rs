//! # Redfish: a software BMC on every node
//!
//! Pi, Jetson and blade nodes have no BMC. The agent serves a Redfish
//! service (DSP0266) over TLS, backed by the same device handles and
//! loops it already runs, so that datacenter tools (redfishtool, sushy, a
//! DCIM) manage the node as they manage a server's BMC: locally, or
//! through the control plane's reverse tunnel without any inbound port
//! on the node.
//!
//! - [`resources`]: the resource tree (ServiceRoot, `Systems/1`,
//!   `Chassis/1` and one chassis per power switch, `Managers/1`,
//!   SessionService, AccountService) and the schema versions served.
//! - [`auth`]: accounts from the bundle (Argon2 hashes), Redfish's three
//!   predefined roles, sessions (`X-Auth-Token`), Basic, lockout.
//! - [`errors`]: Redfish error bodies with Base registry message ids.
//! - [`metadata`]: the `$metadata` document.
//! - [`tls`]: the bundle's certificate or a self-signed one.
//!
//! `ComputerSystem.Reset` and `Chassis.Reset` never act themselves: they
//! file a request with the power loop, which applies
//! `spec.power.host` (`allowReboot`, `allowShutdown`) and records what it
//! did. The service is configured by the bundle's `spec.redfish` section
//! and follows each new bundle: accounts change in place (sessions of
//! removed accounts end), a new address or certificate rebinds.
//!
//! ## Adding a resource
//!
//! Add its URI to [`resources::methods`] (which methods it allows), its
//! JSON to [`resources::get`], and its schema to [`resources::SCHEMAS`] if
//! it is a new type; the DMTF validator test walks it from the root.

pub mod auth;
pub mod errors;
pub mod metadata;
pub mod resources;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use axum::body::Body;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Map, Value, json};
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

use crate::agent::host::{
    Request as HostRequest, RequestKind, Requests, SwitchAction, SwitchRequest,
};
use crate::agent::reconcile::{Events, Registry};
use crate::bundle::schema::{HostActions, Redfish};
use crate::hw::poller::Hub;
use crate::proto::v1::HardwareFacts;
use auth::{Auth, LoginFailure, Principal, Privilege};
use errors::Error;
use resources::{ID, Snapshot};

/// Shortest password `onprem hash-password` hashes.
pub const MIN_PASSWORD_LENGTH: usize = 8;

/// Options of `onprem hash-password`.
#[derive(Debug, clap::Args)]
pub struct HashPasswordOptions {
    /// Read the password from the first line of this file instead of
    /// standard input.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

/// Reads the password (first line, without its newline) and hashes it.
pub fn hash_password_cli(o: &HashPasswordOptions) -> anyhow::Result<String> {
    let text = match &o.password_file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("--password-file {}: {e}", f.display()))?,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| anyhow::anyhow!("reading the password from standard input: {e}"))?;
            line
        }
    };
    let pw = text.lines().next().unwrap_or_default();
    if pw.chars().count() < MIN_PASSWORD_LENGTH {
        anyhow::bail!(
            "the password is shorter than {MIN_PASSWORD_LENGTH} characters (give it on standard input or with --password-file)"
        );
    }
    auth::hash_password(pw).map_err(|e| anyhow::anyhow!("hashing: {e}"))
}

/// Largest request body taken.
pub const MAX_BODY: usize = 64 * 1024;

/// What the service reads from the agent.
#[derive(Clone)]
pub struct Sources {
    /// The node's device hub (follows the bundle's hardware).
    pub hub: Arc<Mutex<Option<Hub>>>,
    /// The agent's events (the manager's log).
    pub events: Events,
    /// Where resets go: the power loop.
    pub requests: Requests,
    /// The loops' conditions (health).
    pub registry: Registry,
    /// The node's identity (a simulated node takes its board's once the
    /// bundle's hardware is up).
    pub facts: Arc<Mutex<HardwareFacts>>,
    /// The state directory (self-signed certificate).
    pub state_dir: Option<PathBuf>,
}

/// What the running bundle says that the service uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settings {
    /// `spec.redfish`.
    pub redfish: Redfish,
    /// `spec.power.host`: which resets the node honours.
    pub host: HostActions,
    /// `spec.power.switches`: each is a chassis with `Chassis.Reset`.
    pub switches: Vec<String>,
}

impl Settings {
    /// From a bundle.
    pub fn of(b: &crate::bundle::schema::Bundle) -> Settings {
        Settings {
            redfish: b.spec.redfish.clone(),
            host: b.spec.power.host.clone(),
            switches: b
                .spec
                .power
                .switches
                .iter()
                .map(|s| s.name.clone())
                .collect(),
        }
    }

    /// The `ComputerSystem.Reset` types the node honours.
    pub fn reset_types(&self) -> Vec<&'static str> {
        let mut v = vec!["On"];
        if self.host.allow_shutdown {
            v.extend(["ForceOff", "GracefulShutdown"]);
        }
        if self.host.allow_reboot {
            v.extend(["GracefulRestart", "ForceRestart"]);
        }
        v
    }
}

/// Every `ResetType` Redfish defines (values outside it are not even
/// reset types).
const RESET_TYPES: &[&str] = &[
    "On",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "Nmi",
    "ForceOn",
    "PushPowerButton",
    "PowerCycle",
    "Suspend",
    "Pause",
    "Resume",
    "FullPowerCycle",
];

struct Inner {
    sources: Sources,
    settings: RwLock<Settings>,
    auth: Auth,
    port: std::sync::atomic::AtomicU16,
    cpu_model: String,
    boot_time: Option<SystemTime>,
    started: SystemTime,
}

struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    listen: String,
    tls: Option<crate::bundle::schema::RedfishTls>,
    /// A second handle on the listening socket: a new certificate on the
    /// same address takes the socket over, with no moment unbound.
    socket: std::net::TcpListener,
    /// Its TLS setup, to serve the old address again when a new one on
    /// the same port cannot take it.
    config: Arc<rustls::ServerConfig>,
}

/// How long a new listener waits for the old one to let go of their
/// shared port (`127.0.0.1:8443` to `0.0.0.0:8443`) before it gives up.
const REBIND_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The node's Redfish service; follows the running bundle.
pub struct Service {
    inner: Arc<Inner>,
    running: Option<Running>,
    addr: Arc<Mutex<Option<SocketAddr>>>,
    inlet: Inlet,
    parent: CancellationToken,
}

/// Connections made inside the agent: a tunnel to the Redfish port is
/// handed to the running service through an in-memory pipe, with no
/// loopback TCP connection (no connect, no accept, no socket calls per
/// request); TLS and everything above it are the same as on the port.
#[derive(Clone, Default)]
pub struct Inlet(Arc<Mutex<Option<(u16, Handovers)>>>);

/// Where the running service takes handed-over connections.
type Handovers = tokio::sync::mpsc::Sender<crate::tlsserver::Handover>;

/// Bytes an in-process connection buffers each way.
pub const INLET_PIPE: usize = 64 * 1024;

impl Inlet {
    /// The caller's end of a new connection to the service, when it runs
    /// on `port`; `peer` names the other end in its logs.
    pub fn connect(&self, port: u16, peer: &str) -> Option<tokio::io::DuplexStream> {
        let tx = {
            let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
            match g.as_ref() {
                Some((p, tx)) if *p == port => tx.clone(),
                _ => return None,
            }
        };
        let (ours, theirs) = tokio::io::duplex(INLET_PIPE);
        tx.try_send(crate::tlsserver::Handover {
            io: theirs,
            peer: peer.to_owned(),
        })
        .ok()?;
        Some(ours)
    }

    fn set(&self, v: Option<(u16, Handovers)>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = v;
    }
}

fn read_cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    for key in ["model name", "Model", "Hardware", "cpu model"] {
        if let Some(v) = text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        }) {
            if !v.is_empty() {
                return v;
            }
        }
    }
    String::new()
}

fn read_boot_time() -> Option<SystemTime> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let secs: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

impl Service {
    /// A service not serving yet; [`apply`](Self::apply) starts it.
    pub fn new(sources: Sources, parent: CancellationToken) -> Service {
        let settings = Settings::default();
        Service {
            inner: Arc::new(Inner {
                auth: Auth::new(&settings.redfish),
                settings: RwLock::new(settings),
                sources,
                port: Default::default(),
                cpu_model: read_cpu_model(),
                boot_time: read_boot_time(),
                started: SystemTime::now(),
            }),
            running: None,
            addr: Default::default(),
            inlet: Inlet::default(),
            parent,
        }
    }

    /// Where it listens, shared (`None` while it does not).
    pub fn addr_slot(&self) -> Arc<Mutex<Option<SocketAddr>>> {
        Arc::clone(&self.addr)
    }

    /// Hands connections to it inside the process.
    pub fn inlet(&self) -> Inlet {
        self.inlet.clone()
    }

    /// Where it listens.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.running.as_ref().map(|r| r.addr)
    }

    /// Takes a bundle's settings: accounts and policies at once; starts,
    /// stops or rebinds the listener when `enabled`, `listen` or `tls`
    /// changed. The new listener is bound and its certificate loaded
    /// before the old one closes (on the same address, the new one takes
    /// the old one's socket over). An error (address in use, unreadable
    /// certificate) changes nothing: the old listener, accounts and
    /// settings stay as they were, and the error names the address and
    /// what the OS said, for the caller to refuse the bundle.
    pub async fn apply(&mut self, s: Settings) -> Result<(), String> {
        let serve = s.redfish.enabled && !s.redfish.accounts.is_empty();
        let same_listener = serve
            && self
                .running
                .as_ref()
                .is_some_and(|r| r.listen == s.redfish.listen && r.tls == s.redfish.tls);
        if same_listener {
            self.take(s);
            return Ok(());
        }
        if !serve {
            if s.redfish.enabled {
                // Nobody could log in: nothing to serve, and no port taken
                // on nodes that do not use Redfish.
                tracing::info!(
                    "Redfish service not started: spec.redfish.accounts is empty (add an account with a hash from `onprem hash-password`)"
                );
            }
            self.take(s);
            self.stop();
            return Ok(());
        }
        let want: SocketAddr = s
            .redfish
            .listen
            .parse()
            .map_err(|e| format!("spec.redfish.listen {:?}: {e}", s.redfish.listen))?;
        let bind_err = |e: std::io::Error| format!("binding the Redfish service to {want}: {e}");
        // The socket: the running one when the address stays, else a new
        // one bound while the old one still serves.
        let same_addr = self
            .running
            .as_ref()
            .filter(|r| r.listen == s.redfish.listen);
        let listener = match same_addr {
            Some(r) => Some(
                r.socket
                    .try_clone()
                    .and_then(tokio_listener)
                    .map_err(bind_err)?,
            ),
            None => match tokio::net::TcpListener::bind(want).await {
                Ok(l) => Some(l),
                // The same port on another address of this host: only
                // one of the two can have it.
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && self
                            .running
                            .as_ref()
                            .is_some_and(|r| r.addr.port() == want.port()) =>
                {
                    None
                }
                Err(e) => return Err(bind_err(e)),
            },
        };
        let addr = listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .unwrap_or(want);
        // The certificate, before anything changes.
        let config = self.tls_config(&s, addr).await?;
        let listener = match listener {
            Some(l) => l,
            None => {
                // Hand the port over: stop the old listener, take the port,
                // and serve the old address again if that fails.
                let Some(old) = self.running.take() else {
                    return Err(bind_err(std::io::ErrorKind::AddrInUse.into()));
                };
                old.stop.cancel();
                let Running {
                    addr: old_addr,
                    socket,
                    config: old_config,
                    listen,
                    tls,
                    ..
                } = old;
                drop(socket);
                match rebind(want).await {
                    Ok(l) => l,
                    Err(e) => {
                        let msg = bind_err(e);
                        match rebind(old_addr).await {
                            Ok(l) => {
                                let settings = self.settings();
                                self.start(l, old_config, listen, tls, &settings)
                                    .map_err(|e| format!("{msg}; and {e}"))?;
                            }
                            Err(e2) => {
                                self.stop();
                                return Err(format!(
                                    "{msg}; and the previous address {old_addr} could not be bound again: {e2}"
                                ));
                            }
                        }
                        return Err(msg);
                    }
                }
            }
        };
        let (listen, tls) = (s.redfish.listen.clone(), s.redfish.tls.clone());
        self.take(s.clone());
        self.start(listener, config, listen, tls, &s)
    }

    /// The settings in force.
    fn settings(&self) -> Settings {
        self.inner.settings()
    }

    /// Takes accounts, policies and the rest of `s`.
    fn take(&mut self, s: Settings) {
        self.inner.auth.configure(&s.redfish);
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// The TLS setup for serving `s` on `addr`.
    async fn tls_config(
        &self,
        s: &Settings,
        addr: SocketAddr,
    ) -> Result<Arc<rustls::ServerConfig>, String> {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let host = self
            .inner
            .sources
            .facts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .hostname
            .clone();
        if !host.is_empty() {
            names.push(host);
        }
        if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
            names.push(addr.ip().to_string());
        }
        let tls_cfg = s.redfish.tls.clone();
        let dir = self.inner.sources.state_dir.clone();
        tokio::task::spawn_blocking(move || {
            let (c, k) = tls::load(tls_cfg.as_ref(), dir.as_deref(), &names)?;
            tls::server_config(&c, &k)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("Redfish TLS: {e}"))
    }

    /// Serves on `listener` from now on; the listener before it (if any)
    /// stops taking connections.
    fn start(
        &mut self,
        listener: tokio::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
        listen: String,
        tls: Option<crate::bundle::schema::RedfishTls>,
        s: &Settings,
    ) -> Result<(), String> {
        let addr = listener
            .local_addr()
            .map_err(|e| format!("the Redfish listener on {}: {e}", s.redfish.listen))?;
        let socket = dup(&listener).map_err(|e| format!("the Redfish listener on {addr}: {e}"))?;
        if let Some(old) = self.running.take() {
            old.stop.cancel();
        }
        self.inner
            .port
            .store(addr.port(), std::sync::atomic::Ordering::Relaxed);
        let stop = self.parent.child_token();
        let inner = Arc::clone(&self.inner);
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let inner = Arc::clone(&inner);
            async move { handle(inner, req).await }
        });
        let (handover, handed) = tokio::sync::mpsc::channel(64);
        self.inlet.set(Some((addr.port(), handover)));
        tokio::spawn(crate::tlsserver::serve_with(
            listener,
            Some(handed),
            Arc::clone(&config),
            app,
            stop.clone(),
        ));
        tracing::info!(redfish = %addr, "Redfish service up (TLS)");
        *self.addr.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
        self.running = Some(Running {
            addr,
            stop,
            listen,
            tls,
            socket,
            config,
        });
        Ok(())
    }

    /// Stops serving (connections in flight end).
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop.cancel();
        }
        self.inlet.set(None);
        *self.addr.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A second handle on a listening socket (the same socket, another file
/// descriptor).
fn dup(l: &tokio::net::TcpListener) -> std::io::Result<std::net::TcpListener> {
    use std::os::fd::AsFd as _;
    Ok(std::net::TcpListener::from(l.as_fd().try_clone_to_owned()?))
}

/// A listener of the runtime on a socket handle.
fn tokio_listener(l: std::net::TcpListener) -> std::io::Result<tokio::net::TcpListener> {
    l.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(l)
}

/// Binds `addr` once the listener that had it has let go (it closes its
/// socket as soon as its task sees the stop), within [`REBIND_WAIT`].
async fn rebind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let deadline = tokio::time::Instant::now() + REBIND_WAIT;
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            r => return r,
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Inner {
    fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn snapshot(&self) -> Snapshot {
        let settings = self.settings();
        let hub = self
            .sources
            .hub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let readings = hub.map(|h| h.readings()).unwrap_or_default();
        let health = if self
            .sources
            .registry
            .reports()
            .iter()
            .any(|r| r.condition.status == "False")
        {
            "Warning"
        } else {
            "OK"
        };
        let mut s = Snapshot {
            facts: self
                .sources
                .facts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            cpu_model: self.cpu_model.clone(),
            boot_time: self.boot_time,
            agent_started: Some(self.started),
            events: self.sources.events.since(0),
            health,
            reset_types: settings.reset_types(),
            port: self.port.load(std::sync::atomic::Ordering::Relaxed),
            accounts: self.auth.accounts(),
            sessions: self.auth.sessions(),
            session_timeout: settings.redfish.session_timeout.0,
            lockout: (
                settings.redfish.lockout_threshold,
                settings.redfish.lockout_duration.0,
            ),
            chassis_type: settings.redfish.chassis_type.clone(),
            ..Default::default()
        };
        s.read_devices(&readings, &settings.switches);
        // The power loop observes its switches every period (the poller
        // only every few seconds): its view is the fresher one.
        if let Some(power) = self.sources.registry.get("power") {
            for b in &mut s.blades {
                if let Some(on) = power.details["switches"][&b.name]["on"].as_bool() {
                    b.on = Some(on);
                }
            }
        }
        s
    }
}

/// A request as the handlers see it.
struct Req {
    method: Method,
    path: Vec<String>,
    headers: HeaderMap,
    body: Option<Map<String, Value>>,
    peer: String,
}

impl Req {
    fn parts(&self) -> Vec<&str> {
        self.path.iter().map(String::as_str).collect()
    }
}

fn etag(body: &[u8]) -> String {
    let h = sha2::Sha256::digest(body);
    let hex: String = h.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

fn base_headers(b: http::response::Builder) -> http::response::Builder {
    b.header("OData-Version", "4.0")
        .header("Cache-Control", "no-cache")
        .header("X-Frame-Options", "DENY")
        .header("Strict-Transport-Security", "max-age=31536000")
}

fn error_response(e: &Error, head: bool) -> Response<Body> {
    let body = serde_json::to_vec(&e.body()).unwrap_or_default();
    let mut b = base_headers(Response::builder().status(e.status))
        .header("Content-Type", "application/json; charset=utf-8");
    for (k, v) in &e.headers {
        b = b.header(*k, v.as_str());
    }
    let body = if head {
        Body::empty()
    } else {
        Body::from(body)
    };
    b.body(body).unwrap_or_default()
}

fn json_response(
    status: StatusCode,
    v: &Value,
    allow: &[&str],
    head: bool,
    extra: &[(&str, String)],
) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut b = base_headers(Response::builder().status(status))
        .header("Content-Type", "application/json; charset=utf-8")
        .header("ETag", etag(&body))
        .header("Allow", allow.join(", "));
    if let Some(schema) = resources::schema_of(v) {
        b = b.header(
            "Link",
            format!("<http://redfish.dmtf.org/schemas/v1/{schema}.json>; rel=describedby"),
        );
    }
    for (k, val) in extra {
        b = b.header(*k, val.as_str());
    }
    let body = if head {
        b = b.header("Content-Length", body.len().to_string());
        Body::empty()
    } else {
        Body::from(body)
    };
    b.body(body).unwrap_or_default()
}

fn no_content() -> Response<Body> {
    base_headers(Response::builder().status(StatusCode::NO_CONTENT))
        .body(Body::empty())
        .unwrap_or_default()
}

async fn handle(inner: Arc<Inner>, req: Request<Body>) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    match serve(&inner, req).await {
        Ok(r) => {
            tracing::debug!(%method, %path, status = r.status().as_u16(), "redfish");
            r
        }
        Err(e) => {
            tracing::debug!(%method, %path, error = %e, "redfish request refused");
            error_response(&e, head)
        }
    }
}

async fn serve(inner: &Arc<Inner>, req: Request<Body>) -> Result<Response<Body>, Error> {
    let (parts, body) = req.into_parts();
    let head = parts.method == Method::HEAD;
    let raw = parts.uri.path();
    // `/redfish`: the version document.
    if raw == "/redfish" || raw == "/redfish/" {
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            return Err(errors::method_not_allowed(&["GET", "HEAD"]));
        }
        return Ok(json_response(
            StatusCode::OK,
            &json!({ "v1": "/redfish/v1/" }),
            &["GET", "HEAD"],
            head,
            &[],
        ));
    }
    let Some(rest) = raw
        .strip_prefix(resources::ROOT)
        .filter(|r| r.is_empty() || r.starts_with('/'))
    else {
        return Err(errors::not_found(raw));
    };
    let path: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(q) = parts.uri.query() {
        for (k, _) in form_urlencoded::parse(q.as_bytes()) {
            if k.starts_with('$') {
                return Err(errors::query_not_supported(&k));
            }
        }
    }
    if let Some(v) = parts.headers.get("OData-Version") {
        let v = v.to_str().unwrap_or("?");
        if v.trim() != "4.0" {
            return Err(errors::odata_version(v));
        }
    }
    let peer = parts
        .extensions
        .get::<crate::tlsserver::Peer>()
        .map(|p| p.addr.clone())
        .unwrap_or_default();
    let snap = inner.snapshot();
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let uri = resources::uri(&p);
    let Some(allow) = resources::methods(&snap, &p) else {
        return Err(errors::not_found(&uri));
    };
    let allowed = allow.contains(&parts.method.as_str()) || (head && allow.contains(&"GET"));
    if !allowed {
        return Err(errors::method_not_allowed(allow));
    }
    // Read the body (bounded) for the methods that carry one.
    let body = if matches!(parts.method, Method::POST | Method::PATCH) {
        if let Some(ct) = parts.headers.get(http::header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("?");
            if !ct
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
            {
                return Err(errors::unsupported_media_type(ct));
            }
        }
        // A body that trickles in holds a connection that the cap never
        // closes for room (a request is in flight): it gets the header
        // timeout to arrive whole.
        let limit = crate::serverlimits::process().header_timeout;
        let read = http_body_util::Limited::new(body, MAX_BODY).collect();
        let bytes = tokio::time::timeout(limit, read)
            .await
            .map_err(|_| errors::body_timeout(limit.as_secs_f64()))?
            .map_err(|_| errors::payload_too_large(MAX_BODY))?
            .to_bytes();
        Some(parse_body(&bytes)?)
    } else {
        None
    };
    let r = Req {
        method: parts.method.clone(),
        path,
        headers: parts.headers,
        body,
        peer,
    };
    let p = r.parts();
    let open = matches!(p.as_slice(), [] | ["odata"] | ["$metadata"])
        && matches!(r.method, Method::GET | Method::HEAD);
    if open {
        if p == ["$metadata"] {
            let doc = metadata::document();
            let b = base_headers(Response::builder().status(StatusCode::OK))
                .header("Content-Type", "application/xml; charset=utf-8")
                .header("Allow", "GET, HEAD");
            let body = if head { Body::empty() } else { Body::from(doc) };
            return Ok(b.body(body).unwrap_or_default());
        }
        let v = resources::get(&snap, &p, None)?;
        return get_response(&r, &v, allow, head);
    }
    if p == ["SessionService", "Sessions"] && r.method == Method::POST {
        return login(inner, &r).await;
    }
    let who = authenticate(inner, &r).await?;
    let need = |pr: Privilege| -> Result<(), Error> {
        if who.role.has(pr) {
            Ok(())
        } else {
            Err(errors::insufficient_privilege(pr.as_str()))
        }
    };
    match r.method {
        Method::GET | Method::HEAD => {
            need(Privilege::Login)?;
            match p.as_slice() {
                ["AccountService", "Accounts", a] if *a != who.user => {
                    need(Privilege::ConfigureUsers)?
                }
                ["SessionService", "Sessions", s] if who.session.as_deref() != Some(*s) => {
                    need(Privilege::ConfigureManager)?
                }
                _ => {}
            }
            let v = resources::get(&snap, &p, Some(&who))?;
            get_response(&r, &v, allow, head)
        }
        Method::DELETE => {
            // Only sessions can be deleted.
            let id = p.last().copied().unwrap_or_default();
            if who.session.as_deref() == Some(id) {
                need(Privilege::ConfigureSelf)?;
            } else {
                need(Privilege::ConfigureManager)?;
            }
            if inner.auth.close(id) {
                Ok(no_content())
            } else {
                Err(errors::not_found(&uri))
            }
        }
        Method::PATCH => patch(inner, &r, &snap, &who, allow),
        Method::POST => match p.as_slice() {
            ["Systems", ID, "Actions", "ComputerSystem.Reset"] => {
                need(Privilege::ConfigureComponents)?;
                reset_system(inner, &r, &snap, &who)
            }
            ["Chassis", c, "Actions", "Chassis.Reset"] => {
                need(Privilege::ConfigureComponents)?;
                reset_chassis(inner, &r, &snap, &who, c)
            }
            _ => Err(errors::method_not_allowed(allow)),
        },
        _ => Err(errors::method_not_allowed(allow)),
    }
}

fn get_response(r: &Req, v: &Value, allow: &[&str], head: bool) -> Result<Response<Body>, Error> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let tag = etag(&body);
    if let Some(inm) = r.headers.get(http::header::IF_NONE_MATCH) {
        let inm = inm.to_str().unwrap_or_default();
        if inm.split(',').any(|t| t.trim() == tag || t.trim() == "*") {
            return Ok(
                base_headers(Response::builder().status(StatusCode::NOT_MODIFIED))
                    .header("ETag", tag)
                    .body(Body::empty())
                    .unwrap_or_default(),
            );
        }
    }
    Ok(json_response(StatusCode::OK, v, allow, head, &[]))
}

/// Checks the request's `X-Auth-Token` or Basic credentials.
async fn authenticate(inner: &Arc<Inner>, r: &Req) -> Result<Principal, Error> {
    if let Some(t) = r.headers.get("X-Auth-Token") {
        let t = t.to_str().unwrap_or_default();
        return inner.auth.by_token(t).ok_or_else(errors::no_valid_session);
    }
    let Some(a) = r.headers.get(http::header::AUTHORIZATION) else {
        return Err(errors::no_valid_session());
    };
    let a = a.to_str().unwrap_or_default();
    let Some(b64) = a
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, v)| v.trim())
    else {
        return Err(errors::no_valid_session());
    };
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(errors::no_valid_session)?;
    let (user, pass) = decoded
        .split_once(':')
        .ok_or_else(errors::no_valid_session)?;
    if let Some(p) = inner.auth.basic_cached(user, pass) {
        return Ok(p);
    }
    let role = verify(inner, user, pass, &r.peer).await;
    match role {
        Ok(role) => {
            inner.auth.basic_remember(user, pass);
            Ok(Principal {
                user: user.to_owned(),
                role,
                session: None,
            })
        }
        Err(f) => Err(login_error(f, &resources::uri(&r.parts()))),
    }
}

/// The answer to a failed login: 503 with `Retry-After` when it was not
/// looked at ([`LoginFailure::Busy`]), else 401 whatever the reason.
fn login_error(f: LoginFailure, uri: &str) -> Error {
    match f {
        LoginFailure::Busy => errors::temporarily_unavailable(auth::HASH_RETRY_AFTER_SECS),
        _ => errors::login_failed(uri),
    }
}

/// Argon2 on a blocking thread, within the bound on Argon2 work
/// ([`auth::Hashing`]: [`LoginFailure::Busy`] beyond it); failures become
/// events, whose user name and client address `/-/status` does not show.
async fn verify(
    inner: &Arc<Inner>,
    user: &str,
    pass: &str,
    peer: &str,
) -> Result<auth::Role, LoginFailure> {
    let Some(turn) = inner.auth.hashing.turn().await else {
        tracing::debug!(peer, "Redfish login refused: too many being verified");
        return Err(LoginFailure::Busy);
    };
    let i = Arc::clone(inner);
    let (u, p) = (user.to_owned(), pass.to_owned());
    let r = tokio::task::spawn_blocking(move || {
        // Held until Argon2 is done, even if the client goes away.
        let _turn = turn;
        i.auth.login(&u, &p)
    })
    .await
    .unwrap_or(Err(LoginFailure::BadPassword));
    if let Err(f) = r {
        let ev = &inner.sources.events;
        ev.push_redacted(
            "redfish",
            "warning",
            "LoginFailed",
            format!(
                "Redfish login as {user:?} from {peer} failed: {}",
                f.as_str()
            ),
            Some(PUBLIC_LOGIN_FAILED.to_owned()),
        );
        if f == LoginFailure::NowLocked {
            let lock = inner.settings().redfish.lockout_duration;
            ev.push_redacted(
                "redfish",
                "warning",
                "AccountLocked",
                format!("Redfish account {user:?} locked for {lock} after repeated failed logins"),
                Some(format!(
                    "A Redfish account was locked for {lock} after repeated failed logins (which one: the Redfish log service)"
                )),
            );
        }
    }
    r
}

/// What `/-/status` says of a failed Redfish login: neither the user name
/// nor the client nor why (the Redfish log service, which authenticates
/// its readers, says).
pub const PUBLIC_LOGIN_FAILED: &str = "A Redfish login failed (who, from where and why: the Redfish log service, Managers/1/LogServices/Log)";

/// Reads a POST or PATCH body (read whole, at most [`MAX_BODY`] bytes):
/// a blank body is an empty object; anything else must be one JSON
/// object.
#[doc(hidden)]
pub fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(errors::not_an_object()),
        Err(e) => Err(errors::malformed_json(&e.to_string())),
    }
}

/// What [`check_body`] checks a body as.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum BodyCheck<'a> {
    /// `POST SessionService/Sessions`.
    Login,
    /// `PATCH` of the resource at `uri` (path segments below the root),
    /// whose current JSON is `current`.
    Patch {
        /// The resource's path segments.
        uri: &'a [&'a str],
        /// The resource as a GET shows it.
        current: &'a Value,
    },
    /// `ComputerSystem.Reset`, with these reset types allowed.
    SystemReset(&'a [&'a str]),
    /// `Chassis.Reset` of a power switch.
    ChassisReset,
}

/// Parses a POST or PATCH body and checks it as the handler `what`
/// does, without acting on it (no login, no unlock, no reset): the entry
/// of the fuzz targets in `fuzz/`.
#[doc(hidden)]
pub fn check_body(bytes: &[u8], what: BodyCheck<'_>) -> Result<(), Error> {
    let body = parse_body(bytes)?;
    match what {
        BodyCheck::Login => login_body(&body).map(drop),
        BodyCheck::Patch { uri, current } => {
            let (_, writable, why) = patch_rules(uri);
            patch_body(&body, writable, current, why).map(drop)
        }
        BodyCheck::SystemReset(allowed) => {
            reset_type(Some(&body), "ComputerSystem.Reset", allowed).map(drop)
        }
        BodyCheck::ChassisReset => {
            reset_type(Some(&body), "Chassis.Reset", resources::SWITCH_RESET_TYPES).map(drop)
        }
    }
}

/// The user name and password of a login body, or every problem with it.
fn login_body(body: &Map<String, Value>) -> Result<(String, String), Error> {
    let mut bad = Vec::new();
    let mut field = |name: &str| -> Option<String> {
        match body.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                bad.push(errors::property_type(other, name));
                None
            }
            None => {
                bad.push(errors::create_missing(name));
                None
            }
        }
    };
    let user = field("UserName");
    let pass = field("Password");
    for k in body.keys() {
        if k != "UserName" && k != "Password" && !k.starts_with('@') {
            bad.push(errors::property_unknown(k));
        }
    }
    let (Some(user), Some(pass), true) = (user, pass, bad.is_empty()) else {
        return Err(errors::bad_request(bad));
    };
    Ok((user, pass))
}

/// `POST /redfish/v1/SessionService/Sessions`.
async fn login(inner: &Arc<Inner>, r: &Req) -> Result<Response<Body>, Error> {
    let (user, pass) = login_body(&r.body.clone().unwrap_or_default())?;
    let uri = format!("{}/SessionService/Sessions", resources::ROOT);
    let role = verify(inner, &user, &pass, &r.peer)
        .await
        .map_err(|f| login_error(f, &uri))?;
    let (s, token) = inner
        .auth
        .open_session(&user, role, &r.peer)
        .map_err(|l| errors::session_limit(l.resolution()))?;
    let location = format!("{uri}/{}", s.id);
    tracing::info!(user = %user, peer = %r.peer, session = %s.id, "Redfish session opened");
    Ok(json_response(
        StatusCode::CREATED,
        &resources::session_json(&s),
        &["GET", "HEAD", "DELETE"],
        false,
        &[("Location", location), ("X-Auth-Token", token)],
    ))
}

/// What a PATCH may write where, the privilege it needs, and where the
/// read-only properties are set instead.
fn patch_rules(p: &[&str]) -> (Privilege, &'static [&'static str], &'static str) {
    match p {
        ["AccountService", "Accounts", _] => (
            Privilege::ConfigureUsers,
            &["Locked"],
            "Accounts come from spec.redfish.accounts in the node's bundle; only Locked can be written here (false, to unlock).",
        ),
        ["AccountService"] => (
            Privilege::ConfigureUsers,
            &[],
            "Set spec.redfish.lockoutThreshold and lockoutDuration in the node's bundle.",
        ),
        ["SessionService"] => (
            Privilege::ConfigureManager,
            &[],
            "Set spec.redfish.sessionTimeout in the node's bundle.",
        ),
        ["Managers", _] => (
            Privilege::ConfigureManager,
            &[],
            "The manager is the onprem agent; its settings come from the node's bundle.",
        ),
        _ => (
            Privilege::ConfigureComponents,
            &[],
            "Set by the node's hardware and its bundle.",
        ),
    }
}

fn patch(
    inner: &Arc<Inner>,
    r: &Req,
    snap: &Snapshot,
    who: &Principal,
    allow: &[&str],
) -> Result<Response<Body>, Error> {
    let p = r.parts();
    let (privilege, writable, why) = patch_rules(&p);
    if !who.role.has(privilege) {
        return Err(errors::insufficient_privilege(privilege.as_str()));
    }
    let current = resources::get(snap, &p, Some(who))?;
    if let Some(m) = r.headers.get(http::header::IF_MATCH) {
        let tag = etag(&serde_json::to_vec(&current).unwrap_or_default());
        let m = m.to_str().unwrap_or_default();
        if !m.split(',').any(|t| t.trim() == tag || t.trim() == "*") {
            return Err(errors::precondition_failed());
        }
    }
    let unlock = patch_body(&r.body.clone().unwrap_or_default(), writable, &current, why)?;
    if unlock {
        if let ["AccountService", "Accounts", user] = p.as_slice() {
            inner.auth.unlock(user);
            inner.sources.events.push(
                "redfish",
                "info",
                "AccountUnlocked",
                format!("Redfish account {user:?} unlocked by {}", who.user),
            );
        }
    }
    let fresh = resources::get(&inner.snapshot(), &p, Some(who))?;
    Ok(json_response(StatusCode::OK, &fresh, allow, false, &[]))
}

/// Checks a PATCH body against what may be written (`writable`) and what
/// the resource has (`current`); true when it unlocks an account.
fn patch_body(
    body: &Map<String, Value>,
    writable: &[&str],
    current: &Value,
    why: &str,
) -> Result<bool, Error> {
    if body.is_empty() {
        return Err(errors::bad_request(vec![
            errors::property_unknown("(none)").resolution("The body holds no property to change."),
        ]));
    }
    let mut bad = Vec::new();
    let mut unlock = false;
    for (k, v) in body {
        if writable.contains(&k.as_str()) {
            // The only writable property: an account's Locked.
            match v {
                Value::Bool(false) => unlock = true,
                Value::Bool(true) => bad.push(errors::property_out_of_range(
                    v,
                    k,
                    "Only false (unlock) can be written; accounts lock themselves after repeated failed logins.",
                )),
                other => bad.push(errors::property_type(other, k)),
            }
        } else if current.get(k).is_some() || k.starts_with("@odata") {
            bad.push(errors::property_not_writable(k, why));
        } else {
            bad.push(errors::property_unknown(k));
        }
    }
    if !bad.is_empty() {
        return Err(errors::bad_request(bad));
    }
    Ok(unlock)
}

/// The `ResetType` of an action body, checked against `allowed`.
fn reset_type<'a>(
    body: Option<&'a Map<String, Value>>,
    action: &str,
    allowed: &[&str],
) -> Result<&'a str, Error> {
    if let Some(k) = body.and_then(|b| b.keys().find(|k| *k != "ResetType" && !k.starts_with('@')))
    {
        return Err(errors::action_parameter_unknown(action, k));
    }
    let v = body
        .and_then(|b| b.get("ResetType"))
        .ok_or_else(|| errors::action_parameter_missing(action, "ResetType"))?;
    let t = v
        .as_str()
        .ok_or_else(|| errors::action_parameter_type(v, "ResetType", action))?;
    if !allowed.contains(&t) {
        return Err(errors::action_parameter_not_in_list(
            t,
            "ResetType",
            action,
            allowed,
        ));
    }
    Ok(t)
}

fn reset_system(
    inner: &Arc<Inner>,
    r: &Req,
    snap: &Snapshot,
    who: &Principal,
) -> Result<Response<Body>, Error> {
    const ACTION: &str = "ComputerSystem.Reset";
    let t = match reset_type(r.body.as_ref(), ACTION, &snap.reset_types) {
        Ok(t) => t,
        Err(e) => {
            // A reset type Redfish knows but the bundle does not allow:
            // say which setting refuses it.
            let asked = r
                .body
                .as_ref()
                .and_then(|b| b.get("ResetType"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let why = match asked {
                "GracefulRestart" | "ForceRestart" => Some(
                    "The node's bundle does not allow reboots (spec.power.host.allowReboot is false).",
                ),
                "GracefulShutdown" | "ForceOff" => Some(
                    "The node's bundle does not allow power-off (spec.power.host.allowShutdown is false).",
                ),
                "PowerCycle" | "FullPowerCycle" | "ForceOn" | "Nmi" | "PushPowerButton"
                | "Suspend" | "Pause" | "Resume" => Some(
                    "A node cannot do this to itself without a BMC; the allowable values are what it honours.",
                ),
                _ => None,
            };
            return Err(match why {
                Some(w) if RESET_TYPES.contains(&asked) => {
                    errors::action_refused(ACTION, "ResetType", asked, w)
                }
                _ => e,
            });
        }
    };
    let kind = match t {
        "On" => None,
        "GracefulShutdown" => Some(RequestKind::Shutdown),
        "ForceOff" => Some(RequestKind::ForceShutdown),
        "GracefulRestart" => Some(RequestKind::Reboot),
        "ForceRestart" => Some(RequestKind::ForceReboot),
        other => {
            return Err(errors::internal(&format!(
                "reset type {other} is allowed but not mapped"
            )));
        }
    };
    let Some(kind) = kind else {
        // The system is on (it is answering): nothing to do.
        return Ok(no_content());
    };
    let source = format!("redfish:{}", who.user);
    inner.sources.events.push_redacted(
        "redfish",
        "info",
        "ResetRequested",
        format!(
            "{ACTION} {t} requested by {} from {}: asking the power loop for {}",
            who.user,
            r.peer,
            kind.as_str()
        ),
        Some(format!(
            "{ACTION} {t} requested by {}: asking the power loop for {}",
            who.user,
            kind.as_str()
        )),
    );
    inner.sources.requests.push(HostRequest { kind, source });
    Ok(no_content())
}

fn reset_chassis(
    inner: &Arc<Inner>,
    r: &Req,
    snap: &Snapshot,
    who: &Principal,
    id: &str,
) -> Result<Response<Body>, Error> {
    const ACTION: &str = "Chassis.Reset";
    let t = reset_type(r.body.as_ref(), ACTION, resources::SWITCH_RESET_TYPES)?;
    let Some(blade) = snap.blades.iter().find(|b| b.id == id) else {
        return Err(errors::not_found(&resources::uri(&r.parts())));
    };
    let action = match t {
        "On" => SwitchAction::On,
        "ForceOff" => SwitchAction::Off,
        _ => SwitchAction::Cycle,
    };
    inner.sources.events.push_redacted(
        "redfish",
        "info",
        "ResetRequested",
        format!(
            "{ACTION} {t} of {} requested by {} from {}",
            blade.name, who.user, r.peer
        ),
        Some(format!(
            "{ACTION} {t} of {} requested by {}",
            blade.name, who.user
        )),
    );
    inner.sources.requests.push_switch(SwitchRequest {
        switch: blade.name.clone(),
        action,
        source: format!("redfish:{}", who.user),
    });
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn the_inlet_hands_connections_to_the_running_service_only() {
        let inlet = Inlet::default();
        assert!(inlet.connect(8443, "tunnel").is_none(), "nothing runs");
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        inlet.set(Some((8443, tx)));
        assert!(inlet.connect(22, "tunnel").is_none(), "another port");
        let mut ours = inlet.connect(8443, "tunnel").expect("a pipe");
        let mut h = rx.recv().await.expect("a handover");
        assert_eq!(h.peer, "tunnel");
        ours.write_all(b"ping").await.expect("write");
        let mut b = [0u8; 4];
        h.io.read_exact(&mut b).await.expect("read");
        assert_eq!(&b, b"ping");
        // A full queue (the service not taking them) refuses, never blocks.
        assert!(inlet.connect(8443, "tunnel").is_some());
        assert!(inlet.connect(8443, "tunnel").is_none());
        inlet.set(None);
        assert!(inlet.connect(8443, "tunnel").is_none(), "stopped");
    }
}
