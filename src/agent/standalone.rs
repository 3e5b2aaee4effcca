//! Standalone mode: the agent runs the bundle in a local file
//! (`--bundle`), with no control plane.
//!
//! At start: when the state directory holds a last-known-good bundle, its
//! hardware opens and every fan gets the fail-safe duty first, before any
//! other bundle is read. Then the bundle file is read, verified (when
//! signatures are required) and validated; if it is refused, the
//! last-known-good bundle runs instead. The devices of the chosen
//! bundle's hardware open (nothing reopens when it is the same hardware),
//! every fan gets the fail-safe duty, and only then do the loops start.
//! With no stored bundle (a first boot), nothing is opened until the file
//! has been checked: which fans there are is the bundle's to say.
//!
//! Reading, verifying, parsing and validating a bundle (from the file, the
//! store or the control plane) runs on the blocking pool, never on the
//! runtime's thread that the loops and `/metrics` share, and within the
//! limits of [`crate::limits`]: a regular file of at most
//! `MAX_BUNDLE_BYTES`, nested at most `MAX_DEPTH` deep.
//!
//! The file is re-read on SIGHUP and checked for changes every
//! `bundle.watch_interval`; a new bundle restarts only the loops whose
//! section changed. A bundle that is refused leaves the running one in
//! place; one that fails to apply is rolled back. On stop, the loops stop
//! and every fan is left at the fail-safe duty.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::host::{Host, Recorded, Systemd};
use super::loops::{self, Loops};
use super::reconcile::{Events, Registry, Stop, unix_now};
use super::{Config, Devices, Error};
use crate::bundle::schema::DEFAULT_FAILSAFE_PERCENT;
use crate::bundle::sign::TrustedKeys;
use crate::bundle::store::{Meta, Store};
use crate::bundle::{self, Resolved};
use crate::exporter::http::Shared;
use crate::exporter::loops::{BundleState, SharedBundle};
use crate::hw::poller::Hub;

/// How long a changed bundle file must hold still before the watch
/// acts on it (SIGHUP acts at once).
pub const SETTLE: Duration = Duration::from_millis(200);

/// A node running a local bundle.
pub struct Node {
    config: Config,
    /// The bundle file (standalone); `None` when bundles come from the
    /// control plane ([`offer`](Self::offer)).
    path: Option<PathBuf>,
    store: Option<Store>,
    keys: TrustedKeys,
    loops: Loops,
    devices: Option<Devices>,
    /// The hub the exporter's `devices` collector reads (swapped with the
    /// hardware).
    pub hub: Arc<Mutex<Option<Hub>>>,
    /// The bundle's state, for `/metrics` and status.
    pub bundle: SharedBundle,
    /// The loop registry.
    pub registry: Registry,
    /// Events.
    pub events: Events,
    /// The host.
    pub host: Arc<dyn Host>,
    shared: Arc<OnceLock<Arc<Shared>>>,
    fingerprint: Option<String>,
    first: Option<(Resolved, String, Option<String>, String)>,
    offers: Option<tokio::sync::mpsc::Receiver<crate::dialhome::Offer>>,
    /// The running bundle's telemetry section (for the sampler).
    pub telemetry: Arc<Mutex<crate::bundle::schema::Telemetry>>,
    /// Dial-home state for `/metrics`, when the node dials home.
    pub dial: Option<crate::dialhome::Metrics>,
    /// The node's Redfish service.
    redfish: crate::redfish::Service,
    /// The settings it last took.
    redfish_settings: Option<crate::redfish::Settings>,
    /// The node's identity (Redfish, the control plane), which a
    /// simulated node's board changes.
    facts: Arc<Mutex<crate::proto::v1::HardwareFacts>>,
    /// The running bundle's tunnel ports and the Redfish address.
    tunnel: Arc<Mutex<(Vec<u16>, Option<std::net::SocketAddr>)>>,
    /// The hardware whose devices are open.
    opened: Option<onprem_hal::inventory::Spec>,
    /// Why the bundle file could not be read last time (said once).
    read_error: Option<String>,
    /// Cancelled when the node stops: a check in flight is left to
    /// finish on its own.
    stop: CancellationToken,
}

/// What checking a bundle needs, for a thread of its own.
#[derive(Clone)]
struct Checker {
    require_signatures: bool,
    keys: TrustedKeys,
    /// Where profiles named by path are found.
    dir: Option<PathBuf>,
}

impl Checker {
    /// Verifies (when signatures are required), parses and validates.
    fn check(&self, text: &str, sig: Option<&str>) -> Result<Resolved, bundle::Error> {
        if self.require_signatures {
            let sig = sig.ok_or_else(|| {
                bundle::Error::Parse(crate::validate::FieldError::new(
                    "signature",
                    "no signature file, and bundle.require_signatures is set",
                ))
            })?;
            self.keys.verify(text.as_bytes(), sig).map_err(|e| {
                bundle::Error::Parse(crate::validate::FieldError::new("signature", e.to_string()))
            })?;
        }
        let b = bundle::parse(text)?;
        bundle::validate(&b, self.dir.as_deref()).map_err(bundle::Error::Invalid)
    }
}

/// The bundle file and its signature (`None` when there is none or it
/// cannot be read), each within its limit.
fn read_bundle(path: &Path) -> Result<(String, Option<String>), bundle::Error> {
    let text = bundle::read_file(path)?;
    let sig = bundle::read_sig(path).ok().flatten();
    Ok((text, sig))
}

/// Runs `f` on the blocking pool; `None` when `stop` comes first (`f` is
/// left to finish on its own).
async fn off_thread<T: Send + 'static>(
    stop: &CancellationToken,
    f: impl FnOnce() -> Result<T, bundle::Error> + Send + 'static,
) -> Option<Result<T, bundle::Error>> {
    let work = tokio::task::spawn_blocking(f);
    tokio::select! {
        r = work => Some(r.unwrap_or_else(|e| {
            Err(bundle::Error::Parse(crate::validate::FieldError::new(
                "",
                format!("the check stopped: {e}"),
            )))
        })),
        _ = stop.cancelled() => None,
    }
}

fn fingerprint(text: &str, sig: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    h.update(sig.unwrap_or_default().as_bytes());
    crate::bundle::validate::hex(&h.finalize())
}

impl Node {
    /// Loads the bundle (or the last-known-good one), opens its devices
    /// and writes the fail-safe duty to every fan. Loops start with
    /// [`start`](Self::start).
    pub async fn prepare(config: &Config, parent: CancellationToken) -> Result<Node, Error> {
        let path = config.bundle.path.clone();
        let store = match Store::open(&config.bundle.state_dir) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(dir = %config.bundle.state_dir.display(), error = %e, "no bundle store: applied bundles will not survive a restart");
                None
            }
        };
        let mut keys = TrustedKeys::new();
        for k in &config.bundle.trusted_keys {
            match crate::bundle::sign::PublicKey::load(k) {
                Ok(key) => keys.add(key),
                Err(e) => {
                    return Err(Error::Devices(format!(
                        "bundle.trusted_keys: {}: {e}",
                        k.display()
                    )));
                }
            }
        }
        let host: Arc<dyn Host> = if config.sim {
            Arc::new(Recorded::default())
        } else {
            Arc::new(Systemd::new())
        };
        let shared_slot: Arc<OnceLock<Arc<Shared>>> = Arc::new(OnceLock::new());
        let metrics_slot = Arc::clone(&shared_slot);
        let registry = Registry::default();
        let events = Events::default();
        let requests = super::host::Requests::default();
        let hub: Arc<Mutex<Option<Hub>>> = Arc::new(Mutex::new(None));
        let facts = Arc::new(Mutex::new(super::node_facts(config, None)));
        let redfish = crate::redfish::Service::new(
            crate::redfish::Sources {
                hub: Arc::clone(&hub),
                events: events.clone(),
                requests: requests.clone(),
                registry: registry.clone(),
                facts: Arc::clone(&facts),
                state_dir: store.as_ref().map(|_| config.bundle.state_dir.clone()),
            },
            parent.child_token(),
        );
        let lshared = loops::Shared {
            host: Arc::clone(&host),
            events: events.clone(),
            requests,
            registry: registry.clone(),
            state_dir: store.as_ref().map(|_| config.bundle.state_dir.clone()),
            metrics: Some(Arc::new(move || {
                metrics_slot
                    .get()
                    .map(|s| s.exporter().scrape(None).families)
                    .unwrap_or_default()
            })),
            boot_id: None,
        };
        let bundle_state: SharedBundle = Arc::new(Mutex::new(BundleState {
            status: "False".into(),
            reason: "NoBundle".into(),
            last_transition_time: unix_now(),
            ..Default::default()
        }));
        let mut node = Node {
            config: config.clone(),
            path: path.clone(),
            store,
            keys,
            loops: Loops::new(lshared, None, parent),
            devices: None,
            hub,
            bundle: bundle_state,
            registry,
            events,
            host,
            shared: shared_slot,
            fingerprint: None,
            first: None,
            offers: None,
            telemetry: Default::default(),
            dial: None,
            redfish,
            redfish_settings: None,
            facts,
            tunnel: Default::default(),
            opened: None,
            read_error: None,
            stop: CancellationToken::new(),
        };
        // The fail-safe duty before any other bundle is read: the last
        // one applied knows the node's fans.
        let stored = node.stored().await;
        if let Some((r, ..)) = &stored {
            if let Err(e) = node.open(r).await {
                tracing::error!(error = %e, "cannot open the last-known-good bundle's devices");
            }
        }
        let last_known_good = |stored: Option<(Resolved, String, Option<String>, String)>| {
            stored.inspect(|(r, ..)| {
                tracing::warn!(name = %r.name(), version = r.version(), "running the last-known-good bundle from the state directory");
            })
        };
        // The file's bundle, else the last one applied (with a control
        // plane: the last one it sent).
        let chosen = match &path {
            None => last_known_good(stored),
            Some(path) => {
                let p = path.clone();
                let stop = node.stop.clone();
                match off_thread(&stop, move || read_bundle(&p)).await {
                    Some(Ok((text, sig))) => {
                        // The same refused file is not reported again by
                        // the watch.
                        node.fingerprint = Some(fingerprint(&text, sig.as_deref()));
                        match node.checked(text, sig).await {
                            Some((Ok(r), text, sig)) => {
                                Some((r, text, sig, format!("file:{}", path.display())))
                            }
                            Some((Err(e), ..)) => {
                                node.reject(&e);
                                last_known_good(stored)
                            }
                            None => last_known_good(stored),
                        }
                    }
                    Some(Err(e)) => {
                        node.read_error = Some(e.to_string());
                        node.reject(&e);
                        last_known_good(stored)
                    }
                    None => last_known_good(stored),
                }
            }
        };
        if let Some((r, ..)) = &chosen {
            node.open(r).await?;
        }
        node.first = chosen;
        Ok(node)
    }

    /// Hands the HTTP state over (for checks and hardware changes) and
    /// starts the loops of the prepared bundle.
    pub async fn start(&mut self, shared: Arc<Shared>) {
        let _ = self.shared.set(Arc::clone(&shared));
        let status = self.status_fn();
        shared.set_status(status);
        if let Some((r, text, sig, source)) = self.first.take() {
            self.apply(r, text, sig, source).await;
        }
    }

    /// What the collectors read.
    pub fn parts(&self) -> super::NodeParts {
        super::NodeParts {
            hub: Arc::clone(&self.hub),
            registry: self.registry.clone(),
            bundle: Arc::clone(&self.bundle),
            dial: self.dial.clone(),
        }
    }

    /// What `/-/status` serves.
    pub fn status_fn(&self) -> crate::exporter::http::StatusFn {
        let registry = self.registry.clone();
        let bundle = Arc::clone(&self.bundle);
        let events = self.events.clone();
        let host = Arc::clone(&self.host);
        let redfish = self.redfish.addr_slot();
        Arc::new(move || {
            let b = bundle.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let rf = *redfish.lock().unwrap_or_else(|e| e.into_inner());
            serde_json::json!({
                "bundle": b,
                "loops": registry.reports(),
                // Without who and from where (`/-/status` is unauthenticated).
                "events": events
                    .since(0)
                    .into_iter()
                    .rev()
                    .take(50)
                    .map(super::reconcile::Event::redacted)
                    .collect::<Vec<_>>(),
                "hostActions": host.taken(),
                "redfish": { "address": rf.map(|a| a.to_string()) },
            })
        })
    }

    fn checker(&self) -> Checker {
        Checker {
            require_signatures: self.config.bundle.require_signatures,
            keys: self.keys.clone(),
            dir: self
                .path
                .as_deref()
                .and_then(|p| p.parent())
                .map(Path::to_owned),
        }
    }

    fn check(&self, text: &str, sig: Option<&str>) -> Result<Resolved, bundle::Error> {
        self.checker().check(text, sig)
    }

    /// [`check`](Self::check) on the blocking pool; the text and signature
    /// come back with the result. `None` when the node stops meanwhile.
    async fn checked(
        &self,
        text: String,
        sig: Option<String>,
    ) -> Option<(Result<Resolved, bundle::Error>, String, Option<String>)> {
        let checker = self.checker();
        let work = tokio::task::spawn_blocking(move || {
            let r = checker.check(&text, sig.as_deref());
            (r, text, sig)
        });
        tokio::select! {
            r = work => match r {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!(error = %e, "the bundle check stopped");
                    None
                }
            },
            _ = self.stop.cancelled() => None,
        }
    }

    fn last_known_good(&self) -> Option<(Resolved, String, Option<String>, String)> {
        let stored = self.store.as_ref()?.current().ok().flatten()?;
        match self.check(&stored.text, stored.sig.as_deref()) {
            Ok(r) => {
                tracing::warn!(name = %r.name(), version = r.version(), "running the last-known-good bundle from the state directory");
                Some((r, stored.text, stored.sig, "last-known-good".into()))
            }
            Err(e) => {
                tracing::error!(error = %e, "the stored bundle is not valid either");
                None
            }
        }
    }

    /// The last-known-good bundle, read and checked on the blocking pool.
    async fn stored(&self) -> Option<(Resolved, String, Option<String>, String)> {
        let store = self.store.clone()?;
        let read = off_thread(&self.stop, move || {
            store.current().map_err(|e| {
                bundle::Error::Parse(crate::validate::FieldError::new(
                    "",
                    format!("the bundle store: {e}"),
                ))
            })
        })
        .await;
        let stored = match read {
            Some(Ok(Some(s))) => s,
            Some(Ok(None)) | None => return None,
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot read the last-known-good bundle");
                return None;
            }
        };
        match self.checked(stored.text, stored.sig).await? {
            (Ok(r), text, sig) => Some((r, text, sig, "last-known-good".into())),
            (Err(e), ..) => {
                tracing::error!(error = %e, "the stored bundle is not valid either");
                None
            }
        }
    }

    fn reject(&self, e: &bundle::Error) {
        let origin = self
            .path
            .as_ref()
            .map_or_else(|| "control plane".to_owned(), |p| p.display().to_string());
        self.reject_from(e, &origin);
    }

    fn reject_from(&self, e: &bundle::Error, origin: &str) {
        // At most MAX_ERRORS problems of at most MAX_ERROR_CHARS each, in
        // the event and the condition alike; logged once, by the event.
        let problems = e.field_errors();
        let errs = crate::limits::bounded_lines(&problems);
        tracing::error!(bundle = %origin, problems = problems.len(), "bundle refused; the running bundle stays (the Rejected event says why)");
        self.events.push(
            "bundle",
            "warning",
            "Rejected",
            format!("{origin}: {}", errs.join("; ")),
        );
        let mut b = self.bundle.lock().unwrap_or_else(|e| e.into_inner());
        b.rejected_total += 1;
        b.condition("False", "Rejected", errs.join("; "));
    }

    /// Opens the devices of `r`'s hardware (when they differ from the
    /// open ones) and writes the fail-safe duty to every fan.
    async fn open(&mut self, r: &Resolved) -> Result<(), Error> {
        let same = self.opened.as_ref() == Some(&r.hardware) && self.devices.is_some();
        if same {
            return Ok(());
        }
        let failsafe = r.bundle.spec.fans.failsafe_percent;
        // Stop the old loops first (fans left safe), then open the new.
        self.loops.replace_hub(None, DEFAULT_FAILSAFE_PERCENT).await;
        self.devices = None;
        self.opened = None;
        let hw = super::config::Hardware {
            spec: r.hardware.clone(),
            sim: self.config.sim,
            poll_interval: self.config.poll_interval,
        };
        let devices = super::open_devices(&hw).await?;
        let hub = devices.hub.clone();
        if self.config.sim {
            // The simulated node is its board now.
            if let Some(w) = hub.world() {
                *self.facts.lock().unwrap_or_else(|e| e.into_inner()) =
                    super::node_facts(&self.config, Some(&w.identity_root()));
            }
            hub.set_stepping(false);
            spawn_stepper(hub.clone(), devices.stop_token());
        }
        self.loops.replace_hub(Some(hub.clone()), failsafe).await;
        *self.hub.lock().unwrap_or_else(|e| e.into_inner()) = Some(hub);
        self.devices = Some(devices);
        self.opened = Some(r.hardware.clone());
        if let Some(shared) = self.shared.get() {
            // The devices collector follows the new hub.
            match super::build_exporter_with(&self.config, Some(&self.parts()), None) {
                Ok(ex) => shared.swap(ex),
                Err(e) => tracing::error!(error = %e, "cannot rebuild the collectors"),
            }
        }
        Ok(())
    }

    /// Applies a checked bundle; rolls back if it fails to apply: a loop
    /// that cannot take it, or a Redfish service that cannot (its address
    /// cannot be bound, its certificate cannot be read; the old listener
    /// then serves on).
    async fn apply(&mut self, r: Resolved, text: String, sig: Option<String>, source: String) {
        let previous = self.loops.current().cloned();
        if let Err(e) = self.open(&r).await {
            tracing::error!(error = %e, "cannot open the bundle's devices");
        }
        let applied = match self.loops.apply(&r).await {
            Ok(diff) => self.follow_redfish().await.map(|()| diff),
            Err(why) => Err(why),
        };
        match applied {
            Ok(diff) => {
                tracing::info!(name = %r.name(), version = r.version(), changes = %diff, "bundle applied");
                if let Some(store) = &mut self.store {
                    let latest = store.current().ok().flatten();
                    if latest.is_none_or(|s| s.meta.digest != r.digest) {
                        if let Err(e) = store.write(&text, sig.as_deref(), &Meta::new(&r, &source))
                        {
                            tracing::error!(error = %e, "cannot store the applied bundle");
                        }
                    }
                }
                self.events.push(
                    "bundle",
                    "info",
                    "Applied",
                    format!(
                        "bundle {} version {} applied ({diff})",
                        r.name(),
                        r.version()
                    ),
                );
                let mut b = self.bundle.lock().unwrap_or_else(|e| e.into_inner());
                b.condition("True", "Applied", diff.to_string());
                b.running(&r, source);
                b.applied_total += 1;
            }
            Err(why) => {
                let msg = format!(
                    "bundle {} version {} failed to apply: {why}",
                    r.name(),
                    r.version()
                );
                // Back to the bundle that ran before, or the stored one.
                let back = previous
                    .map(|p| (p, "previous".to_owned()))
                    .or_else(|| self.last_known_good().map(|(p, _, _, s)| (p, s)));
                let mut note = msg.clone();
                if let Some((p, src)) = back.filter(|(p, _)| p.digest != r.digest) {
                    if let Err(e) = Box::pin(self.open(&p)).await {
                        tracing::error!(error = %e, "cannot reopen the previous bundle's devices");
                    }
                    let again = match self.loops.apply(&p).await {
                        Ok(_) => self.follow_redfish().await,
                        Err(e) => Err(e),
                    };
                    note = format!(
                        "{msg}; rolled back to {} version {} ({src}){}",
                        p.name(),
                        p.version(),
                        again
                            .err()
                            .map(|e| format!(", which also fails: {e}"))
                            .unwrap_or_default()
                    );
                    self.bundle
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .running(&p, src);
                } else {
                    note.push_str("; nothing to roll back to: it keeps running as it can");
                    self.bundle
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .running(&r, source);
                }
                self.events
                    .push("bundle", "critical", "RolledBack", note.clone());
                let mut b = self.bundle.lock().unwrap_or_else(|e| e.into_inner());
                b.condition("False", "RolledBack", note);
                b.rolled_back_total += 1;
            }
        }
        *self.telemetry.lock().unwrap_or_else(|e| e.into_inner()) = self
            .loops
            .current()
            .map(|c| c.bundle.spec.telemetry.clone())
            .unwrap_or_default();
        let ports = self
            .loops
            .current()
            .map(|c| c.bundle.spec.tunnel.allowed_ports.clone())
            .unwrap_or_default();
        *self.tunnel.lock().unwrap_or_else(|e| e.into_inner()) = (ports, self.redfish.addr());
    }

    /// Gives the Redfish service the running bundle's settings (when they
    /// changed). When it cannot take them, it keeps serving the previous
    /// ones (or serves nothing, if it did not before), and the error,
    /// which names the address and what the OS said, fails the bundle.
    async fn follow_redfish(&mut self) -> Result<(), String> {
        let Some(want) = self
            .loops
            .current()
            .map(|c| crate::redfish::Settings::of(&c.bundle))
        else {
            return Ok(());
        };
        if self.redfish_settings.as_ref() == Some(&want) {
            return Ok(());
        }
        match self.redfish.apply(want.clone()).await {
            Ok(()) => {
                self.redfish_settings = Some(want);
                Ok(())
            }
            Err(e) => {
                let (reason, still) = match self.redfish.addr() {
                    Some(a) => (
                        "RedfishNotApplied",
                        format!("; it keeps serving on {a} as before"),
                    ),
                    None => ("RedfishNotServing", String::new()),
                };
                tracing::error!(error = %e, "the Redfish service cannot take the bundle's settings{still}");
                self.events
                    .push("redfish", "critical", reason, format!("{e}{still}"));
                Err(format!("redfish: {e}"))
            }
        }
    }

    /// Where tunnels to a port connect on this node (the running bundle
    /// decides which ports).
    pub fn tunnel_target(&self) -> crate::dialhome::tunnel::TargetFn {
        let t = Arc::clone(&self.tunnel);
        let inlet = self.redfish.inlet();
        let listen = self.config.listen.ip();
        let local = if listen.is_loopback() {
            listen
        } else {
            std::net::IpAddr::from([127, 0, 0, 1])
        };
        Arc::new(move |port| {
            use crate::dialhome::tunnel::Target;
            let (ports, redfish) = t.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let addr = crate::dialhome::tunnel::target(&ports, redfish, port, local)?;
            // The Redfish service runs in this process: hand it the
            // connection directly.
            if redfish.is_some_and(|a| a.port() == port) {
                if let Some(io) = inlet.connect(port, "tunnel") {
                    return Ok(Target::InProcess(io));
                }
            }
            Ok(Target::Tcp(addr))
        })
    }

    /// The node's facts now.
    pub fn facts(&self) -> crate::proto::v1::HardwareFacts {
        self.facts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Where the Redfish service listens.
    pub fn redfish_addr(&self) -> Option<std::net::SocketAddr> {
        self.redfish.addr()
    }

    /// Takes bundles from the control plane (dial-home): they must carry
    /// a valid signature by one of `keys` (pinned at enrolment), whatever
    /// `bundle.require_signatures` says. Returns where to send them.
    pub fn accept_offers(
        &mut self,
        keys: TrustedKeys,
    ) -> tokio::sync::mpsc::Sender<crate::dialhome::Offer> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        self.keys = keys;
        self.offers = Some(rx);
        tx
    }

    /// A bundle from the control plane: verified (always), validated,
    /// applied (rolled back if it fails to apply) and stored.
    pub async fn offer(
        &mut self,
        d: &crate::proto::v1::BundleDelivery,
    ) -> crate::proto::v1::BundleResult {
        use crate::proto::v1::Outcome;
        let result = |outcome: Outcome, message: String| crate::proto::v1::BundleResult {
            version: d.version,
            digest: d.digest.clone(),
            outcome: outcome as i32,
            message,
            status: None,
        };
        let origin = format!("control plane, version {}", d.version);
        // Size, signature, parse and validation on the blocking pool.
        let (keys, text, signature) = (self.keys.clone(), d.text.clone(), d.signature.clone());
        let checked = off_thread(&self.stop, move || {
            crate::limits::check_text(&text, crate::limits::MAX_BUNDLE_BYTES).map_err(|e| {
                bundle::Error::Parse(crate::validate::FieldError::new("", e.to_string()))
            })?;
            keys.verify(text.as_bytes(), &signature).map_err(|e| {
                bundle::Error::Parse(crate::validate::FieldError::new("signature", e.to_string()))
            })?;
            let b = bundle::parse(&text)?;
            bundle::validate(&b, None).map_err(bundle::Error::Invalid)
        })
        .await;
        let r = match checked {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                self.reject_from(&e, &origin);
                let errs = crate::limits::bounded_lines(&e.field_errors());
                return result(Outcome::Rejected, errs.join("; "));
            }
            None => return result(Outcome::Rejected, "the agent is stopping".into()),
        };
        if self.loops.current().is_some_and(|c| c.digest == r.digest) {
            let mut b = self.bundle.lock().unwrap_or_else(|e| e.into_inner());
            b.running(&r, "control-plane".into());
            return result(Outcome::Unchanged, String::new());
        }
        self.apply(
            r,
            d.text.clone(),
            Some(d.signature.clone()),
            "control-plane".into(),
        )
        .await;
        let b = self
            .bundle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match b.reason.as_str() {
            "Applied" => result(Outcome::Applied, b.message),
            _ => result(Outcome::RolledBack, b.message),
        }
    }

    /// What the agent reports to its control plane: the running bundle,
    /// the loops' conditions and the firing alerts.
    pub fn status_source(&self) -> crate::dialhome::StatusFn {
        let bundle = Arc::clone(&self.bundle);
        let registry = self.registry.clone();
        let alerts = self.loops.alerts();
        let facts = Arc::clone(&self.facts);
        Arc::new(move || {
            use crate::proto::v1 as pb;
            let b = bundle.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut conditions = vec![pb::Condition {
                r#type: "Bundle".into(),
                status: b.status.clone(),
                reason: b.reason.clone(),
                message: b.message.clone(),
                last_transition_unix: b.last_transition_time as i64,
                observed_version: b.version.unwrap_or(0),
            }];
            for r in registry.reports() {
                conditions.push(pb::Condition {
                    r#type: format!("Loop/{}", r.name),
                    status: r.condition.status.into(),
                    reason: r.condition.reason.clone(),
                    message: r.condition.message.clone(),
                    last_transition_unix: r.condition.last_transition_time as i64,
                    observed_version: r.condition.observed_version,
                });
            }
            let firing = alerts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|a| a.firing())
                .unwrap_or_default();
            let mut seen = std::collections::BTreeSet::new();
            let alerts = firing
                .into_iter()
                .filter(|a| seen.insert(a.check.clone()))
                .map(|a| pb::Alert {
                    rule: a.check,
                    severity: format!("{:?}", a.severity).to_lowercase(),
                    summary: a.summary,
                    since_unix: a.firing_since.unwrap_or(a.since) as i64,
                })
                .collect();
            pb::Status {
                bundle_name: b.name.clone().unwrap_or_default(),
                bundle_version: b.version.unwrap_or(0),
                bundle_digest: b.digest.clone().unwrap_or_default(),
                bundle_source: b.source.clone().unwrap_or_default(),
                conditions,
                alerts,
                telemetry_dropped_total: 0,
                facts: Some(facts.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            }
        })
    }

    /// Re-reads the bundle file; applies it when it changed and is valid.
    ///
    /// The file is read and checked on the blocking pool, within
    /// [`crate::limits`]: one that is not a regular file, or is too large,
    /// is refused (said once, until it changes) and never waited on; one
    /// that is missing is said only on SIGHUP.
    pub async fn reload(&mut self, forced: bool) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let p = path.clone();
        let Some(read) = off_thread(&self.stop, move || read_bundle(&p)).await else {
            return;
        };
        let (text, sig) = match read {
            Ok(r) => {
                self.read_error = None;
                r
            }
            Err(e) => {
                let missing = matches!(&e, bundle::Error::Read { source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound);
                let said = e.to_string();
                if forced || (!missing && self.read_error.as_deref() != Some(said.as_str())) {
                    self.reject(&e);
                }
                self.read_error = Some(said);
                return;
            }
        };
        let fp = fingerprint(&text, sig.as_deref());
        if self.fingerprint.as_deref() == Some(fp.as_str()) && !forced {
            return;
        }
        if !forced {
            // Seen changing: an editor or `cp` may be half way through
            // writing it. Act only on a file that holds still for a
            // moment; otherwise look again at the next tick.
            tokio::time::sleep(SETTLE).await;
            let p = path.clone();
            match off_thread(&self.stop, move || read_bundle(&p)).await {
                Some(Ok((again, sig2))) if again == text && sig2 == sig => {}
                _ => return,
            }
        }
        self.fingerprint = Some(fp);
        let Some((checked, text, sig)) = self.checked(text, sig).await else {
            return;
        };
        match checked {
            Ok(r) => {
                let unchanged = self.loops.current().is_some_and(|c| c.digest == r.digest);
                if !unchanged {
                    let src = format!("file:{}", path.display());
                    self.apply(r, text, sig, src).await;
                }
            }
            Err(e) => self.reject(&e),
        }
    }

    /// Watches the file and SIGHUP until `stop`; then stops every loop and
    /// leaves the fans at the fail-safe duty.
    pub async fn run(mut self, stop: CancellationToken, hup: Arc<Notify>) {
        let every = Duration::from_secs_f64(self.config.bundle.watch_interval);
        // The bundle was read at start: the first look is one interval
        // later (an immediate first tick would pick up a change made
        // meanwhile without SIGHUP, whenever this task started late).
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut offers = self.offers.take();
        // A check in flight when the node stops is not waited for.
        self.stop = stop.clone();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = hup.notified() => self.reload(true).await,
                _ = tick.tick() => self.reload(false).await,
                Some((d, reply)) = async {
                    match offers.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let r = self.offer(&d).await;
                    let _ = reply.send(r);
                }
            }
        }
        self.redfish.stop();
        self.loops.stop_all(Stop::Shutdown).await;
        if let Some(hub) = self.hub.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            let failsafe = self.loops.current().map_or(DEFAULT_FAILSAFE_PERCENT, |r| {
                r.bundle.spec.fans.failsafe_percent
            });
            let n = super::fans::write_safe(&hub, failsafe, super::fans::all_fans(&hub));
            tracing::info!(
                fans = n,
                percent = failsafe,
                "agent stopping: fans left at the fail-safe duty"
            );
        }
    }
}

/// Moves the simulated world on tokio's clock (so a paused clock drives
/// the physics too), every 100 ms.
fn spawn_stepper(hub: Hub, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut last = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = tokio::time::Instant::now();
            let dt = now - last;
            last = now;
            let h = hub.clone();
            let _ = tokio::task::spawn_blocking(move || h.step_world(dt)).await;
        }
    });
}
