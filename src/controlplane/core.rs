//! The control plane's state and every operation on it: the one place
//! that the gRPC services, the REST API and the rollout engine go
//! through.
//!
//! Durable records live in the [`Store`]; what changes at every
//! heartbeat (last seen, online) lives in memory and is written back in
//! batches ([`Core::flush`]). Locks are held for short, synchronous
//! sections only, never across an `.await`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use super::auth::{self, Principal, Role, TokenKind};
use super::pki::Pki;
use super::store::{
    Alert, AuditEntry, Device, Event, Facts, Kind, Object, Revision, Rollout, Store, Token, User,
    Write,
};
use crate::proto::v1 as pb;

/// Tunables.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often agents send heartbeats.
    pub heartbeat: Duration,
    /// A session silent this long is dropped (the device goes offline).
    pub session_timeout: Duration,
    /// Samples kept per device for live views.
    pub telemetry_window: usize,
    /// How long an enrolment token lives unless asked otherwise.
    pub enrol_ttl: Duration,
    /// A bundle not applied this long after delivery is sent again.
    pub redeliver_after: Duration,
    /// Tunnel idle and total limits.
    pub tunnel: crate::tunnel::Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            heartbeat: Duration::from_secs(10),
            session_timeout: Duration::from_secs(35),
            telemetry_window: 360,
            enrol_ttl: Duration::from_secs(24 * 3600),
            redeliver_after: Duration::from_secs(30),
            tunnel: crate::tunnel::Limits::default(),
        }
    }
}

/// An error of an operation, with the status it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Bad input (400 / INVALID_ARGUMENT); every problem listed.
    #[error("{0}")]
    Invalid(String),
    /// No or a bad credential (401 / UNAUTHENTICATED).
    #[error("{0}")]
    Unauthenticated(String),
    /// The role does not allow it (403 / PERMISSION_DENIED).
    #[error("{0}")]
    Forbidden(String),
    /// No such record (404 / NOT_FOUND).
    #[error("{0}")]
    NotFound(String),
    /// The record changed meanwhile (409 / ABORTED): read it again.
    #[error("{0}")]
    Conflict(String),
    /// Refused because of the state it would leave (409 /
    /// FAILED_PRECONDITION): revoking the last valid admin token. Nothing
    /// changed; the message says what to do first.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Our fault (500 / INTERNAL).
    #[error("{0}")]
    Internal(String),
    /// Not reachable now (503 / UNAVAILABLE): a device offline.
    #[error("{0}")]
    Unavailable(String),
}

impl From<super::store::Error> for ApiError {
    fn from(e: super::store::Error) -> Self {
        match e {
            super::store::Error::Conflict(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Invalid(m) => tonic::Status::invalid_argument(m),
            ApiError::Unauthenticated(m) => tonic::Status::unauthenticated(m),
            ApiError::Forbidden(m) => tonic::Status::permission_denied(m),
            ApiError::NotFound(m) => tonic::Status::not_found(m),
            // ABORTED: the record changed meanwhile; read it again.
            ApiError::Conflict(m) => tonic::Status::aborted(m),
            ApiError::FailedPrecondition(m) => tonic::Status::failed_precondition(m),
            ApiError::Internal(m) => tonic::Status::internal(m),
            ApiError::Unavailable(m) => tonic::Status::unavailable(m),
        }
    }
}

/// A result of an operation.
pub type ApiResult<T> = Result<T, ApiError>;

pub use crate::clock::{now, now_ms};

/// A change pushed to live watchers (WebSocket, `onprem watch`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Live {
    /// A device's summary changed.
    Device {
        /// The summary.
        device: Box<DeviceView>,
    },
    /// An event.
    Event {
        /// The event.
        event: Event,
    },
}

/// A device as the API shows it: the stored record plus what is only in
/// memory.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    /// The record.
    #[serde(flatten)]
    pub device: Device,
    /// Whether a session is up now.
    pub online: bool,
    /// The first address of its facts or its session's.
    pub last_ip_addr: String,
    /// Runs its desired version, applied, with every loop ready.
    pub converged: bool,
    /// Its state in one word, why, and its loops' readiness
    /// ([`super::health`]).
    #[serde(flatten)]
    pub health: super::health::Assessment,
}

struct Session {
    tx: mpsc::Sender<Result<pb::ControlMessage, tonic::Status>>,
    epoch: u64,
    last_msg: Instant,
}

/// The latest sample of a device.
#[derive(Debug, Clone, Default)]
pub struct Latest {
    /// Its sequence number.
    pub seq: u64,
    /// Unix milliseconds.
    pub ts_ms: i64,
    /// Its series.
    pub series: Vec<pb::Series>,
    /// What the device said its families are (type, HELP, unit), merged
    /// over its uploads.
    pub families: crate::proto::Families,
}

#[derive(Default)]
struct State {
    devices: HashMap<String, Device>,
    by_name: HashMap<String, String>,
    by_fp: HashMap<String, String>,
    sessions: HashMap<String, Session>,
    delivered: HashMap<String, (u64, Instant)>,
    dirty: HashSet<String>,
    tokens: HashMap<String, Token>,
    revisions: HashMap<u64, Arc<Revision>>,
    rollouts: BTreeMap<String, Rollout>,
    latest: HashMap<String, Latest>,
    /// Firing alerts by device.
    firing: HashMap<String, Vec<Alert>>,
    /// Events published but not yet stored (written by [`Core::flush`]).
    events: Vec<Event>,
    /// Audit entries written with the next flush (tunnels).
    audits: Vec<Write>,
    /// Per API token id: cancelled when the token is revoked, ending what
    /// it holds open (tunnels, watches; [`Core::token_ended`]).
    holds: HashMap<String, tokio_util::sync::CancellationToken>,
    epoch: u64,
}

/// The control plane.
pub struct Core {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) pki: Pki,
    /// Tunables.
    pub settings: Settings,
    state: Mutex<State>,
    live: broadcast::Sender<Live>,
    /// Remote-write forwarding, when configured.
    pub remote_write: Option<super::remote_write::Forwarder>,
    /// Tunnels waiting for their agent, and those open.
    pub tunnels: super::tunnel::Broker,
    /// Held by each apply and delete from reading the stored records to
    /// committing: concurrent applies take turns, so that revision
    /// versions and generations are assigned from what the one before
    /// committed.
    pub(crate) writer: Mutex<()>,
    /// Held by each revocation from counting the admin tokens left to
    /// committing: two concurrent revocations cannot each leave the other
    /// as the last admin token and together leave none.
    revoking: Mutex<()>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("pki", &self.pki)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// Loads the state from `store`.
    pub fn new(store: Arc<dyn Store>, pki: Pki, settings: Settings) -> ApiResult<Core> {
        let mut st = State::default();
        for d in store.devices()? {
            st.by_name.insert(d.name.clone(), d.id.clone());
            st.by_fp.insert(d.cert_fingerprint.clone(), d.id.clone());
            st.devices.insert(d.id.clone(), d);
        }
        for t in store.tokens()? {
            st.tokens.insert(t.id.clone(), t);
        }
        for r in store.rollouts()? {
            st.rollouts.insert(r.bundle.clone(), r);
        }
        for a in store.alerts()? {
            if a.state == "firing" {
                st.firing.entry(a.device.clone()).or_default().push(a);
            }
        }
        let (live, _) = broadcast::channel(1024);
        Ok(Core {
            store,
            pki,
            settings,
            state: Mutex::new(st),
            live,
            remote_write: None,
            tunnels: super::tunnel::Broker::default(),
            writer: Mutex::new(()),
            revoking: Mutex::new(()),
        })
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Live changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.live.subscribe()
    }

    pub(crate) fn publish(&self, l: Live) {
        let _ = self.live.send(l);
    }

    // ---- users and tokens -------------------------------------------

    /// Creates the admin user and a first admin token when there is no
    /// user yet; returns the token (shown once).
    pub fn bootstrap(&self) -> ApiResult<Option<String>> {
        if !self.store.users()?.is_empty() {
            return Ok(None);
        }
        let (id, token, hash) = auth::new_token(TokenKind::Api).map_err(ApiError::Internal)?;
        let t = Token {
            id: id.clone(),
            kind: "api".into(),
            hash,
            user: "admin".into(),
            role: "admin".into(),
            description: "created at first start".into(),
            created: now(),
            created_by: "system".into(),
            ..Default::default()
        };
        self.store.commit(vec![
            Write::PutUser(User {
                name: "admin".into(),
                role: "admin".into(),
                created: now(),
            }),
            Write::PutToken(t.clone()),
            audit(
                &Principal::system(),
                "bootstrap",
                "User/admin",
                "first admin token",
            ),
        ])?;
        self.st().tokens.insert(id, t);
        Ok(Some(token))
    }

    /// Who holds `bearer` (an API token).
    pub fn authenticate(&self, bearer: Option<&str>) -> ApiResult<Principal> {
        let raw = bearer.ok_or_else(|| {
            ApiError::Unauthenticated(
                "no API token: send `authorization: Bearer <token>` (see `onprem login`)".into(),
            )
        })?;
        let raw = raw.strip_prefix("Bearer ").unwrap_or(raw).trim();
        let Some((TokenKind::Api, id, secret)) = auth::split(raw) else {
            return Err(ApiError::Unauthenticated(
                "not an onprem API token (they start with onp_)".into(),
            ));
        };
        let mut st = self.st();
        let t = st
            .tokens
            .get(id)
            .filter(|t| t.kind == "api" && auth::check(secret, &t.hash))
            .ok_or_else(|| ApiError::Unauthenticated("unknown API token".into()))?;
        if t.revoked {
            return Err(ApiError::Unauthenticated(format!(
                "API token {id} was revoked"
            )));
        }
        if t.expires != 0 && t.expires <= now() {
            return Err(ApiError::Unauthenticated(format!(
                "API token {id} has expired"
            )));
        }
        let role = Role::parse(&t.role)
            .ok_or_else(|| ApiError::Internal(format!("token {id} has an unknown role")))?;
        let who = Principal {
            user: t.user.clone(),
            role,
            token_id: t.id.clone(),
        };
        // `usedAt`, to the minute: stored with the next flush, not on
        // every request.
        if let Some(w) = st.tokens.get_mut(id).and_then(|t| auth::note_use(t, now())) {
            st.audits.push(w);
        }
        Ok(who)
    }

    /// Creates an API or enrolment token.
    pub fn create_token(
        &self,
        who: &Principal,
        req: &pb::CreateTokenRequest,
    ) -> ApiResult<pb::CreateTokenResponse> {
        who.require(Role::Admin, "creating tokens")
            .map_err(ApiError::Forbidden)?;
        let kind = match req.r#type.as_str() {
            "" | "api" => TokenKind::Api,
            "enrol" | "enroll" => TokenKind::Enrol,
            other => {
                return Err(ApiError::Invalid(format!(
                    "type: {other:?} is not api or enrol"
                )));
            }
        };
        let mut writes = Vec::new();
        let (role, user) = match kind {
            TokenKind::Api => {
                let role = Role::parse(if req.role.is_empty() {
                    "viewer"
                } else {
                    &req.role
                })
                .ok_or_else(|| {
                    ApiError::Invalid(format!(
                        "role: {:?} is not viewer, operator or admin",
                        req.role
                    ))
                })?;
                let user = if req.user.is_empty() {
                    who.user.clone()
                } else {
                    req.user.clone()
                };
                if !user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
                    || user.is_empty()
                {
                    return Err(ApiError::Invalid(format!(
                        "user: {user:?} must be letters, digits, '-', '_', '.' or '@'"
                    )));
                }
                let users = self.store.users()?;
                match users.iter().find(|u| u.name == user) {
                    Some(u) => {
                        if Role::parse(&u.role).is_some_and(|r| r < role) {
                            // The user's role rises to the token's.
                            writes.push(Write::PutUser(User {
                                role: role.as_str().into(),
                                ..u.clone()
                            }));
                        }
                    }
                    None => writes.push(Write::PutUser(User {
                        name: user.clone(),
                        role: role.as_str().into(),
                        created: now(),
                    })),
                }
                (role.as_str().to_owned(), user)
            }
            TokenKind::Enrol => {
                let bad = super::labels::validate_labels(
                    &req.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                );
                if let Some((k, p)) = bad.first() {
                    return Err(ApiError::Invalid(format!("labels.{k}: {p}")));
                }
                (String::new(), String::new())
            }
        };
        let ttl = match (kind, req.ttl_seconds) {
            (TokenKind::Enrol, 0) => self.settings.enrol_ttl.as_secs() as i64,
            (_, s) => s as i64,
        };
        let (id, token, hash) = auth::new_token(kind).map_err(ApiError::Internal)?;
        let t = Token {
            id: id.clone(),
            kind: kind.as_str().into(),
            hash,
            user,
            role,
            description: req.description.clone(),
            labels: req
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            created: now(),
            expires: if ttl > 0 { now() + ttl } else { 0 },
            created_by: who.user.clone(),
            ..Default::default()
        };
        writes.push(Write::PutToken(t.clone()));
        writes.push(audit(
            who,
            "token.create",
            &format!("Token/{id}"),
            &format!("type={} role={} user={}", t.kind, t.role, t.user),
        ));
        self.store.commit(writes)?;
        let expires = t.expires;
        self.st().tokens.insert(id.clone(), t);
        Ok(pb::CreateTokenResponse {
            id,
            token,
            expires_unix: expires,
        })
    }

    /// Every token (never their secrets).
    pub fn tokens(&self) -> Vec<Token> {
        let mut v: Vec<Token> = self.st().tokens.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Revokes a token, and ends what it holds open (tunnels, watches).
    /// The last valid admin API token is never revoked
    /// ([`ApiError::FailedPrecondition`]): that would leave no one able to
    /// make tokens, short of [`offline_admin_token`] with the control
    /// plane stopped.
    pub fn revoke_token(&self, who: &Principal, id: &str) -> ApiResult<bool> {
        who.require(Role::Admin, "revoking tokens")
            .map_err(ApiError::Forbidden)?;
        let _turn = self.revoking.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut t) = self.st().tokens.get(id).cloned() else {
            return Ok(false);
        };
        let now = now();
        if is_valid_admin(&t, now) {
            let others = self
                .st()
                .tokens
                .values()
                .filter(|o| o.id != t.id && is_valid_admin(o, now))
                .count();
            if others == 0 {
                return Err(ApiError::FailedPrecondition(last_admin_refusal(&t)));
            }
        }
        t.revoked = true;
        self.store.commit(vec![
            Write::PutToken(t.clone()),
            audit(who, "token.revoke", &format!("Token/{id}"), ""),
        ])?;
        let mut st = self.st();
        st.tokens.insert(id.to_owned(), t);
        if let Some(held) = st.holds.remove(id) {
            held.cancel();
        }
        Ok(true)
    }

    /// Resolves, with why, when `who`'s API token stops being valid:
    /// revoked ([`Core::revoke_token`]) or past its expiry. What a token
    /// holds open past its request (a tunnel, a watch) ends then. Never
    /// resolves for the control plane itself ([`Principal::system`]); at
    /// once for a token already revoked, expired or unknown.
    pub fn token_ended(
        &self,
        who: &Principal,
    ) -> impl std::future::Future<Output = String> + Send + 'static {
        let id = who.token_id.clone();
        let user = who.user.clone();
        let now = now();
        let (held, expires) = {
            let mut st = self.st();
            // Holds of tokens gone for good are of no more use.
            let State { holds, tokens, .. } = &mut *st;
            holds.retain(|tid, _| tokens.get(tid).is_some_and(|t| usable(t, now)));
            match st.tokens.get(&id) {
                _ if id.is_empty() => (None, 0),
                Some(t) if usable(t, now) => {
                    let expires = t.expires;
                    let held = st.holds.entry(id.clone()).or_default().clone();
                    (Some(held), expires)
                }
                Some(t) if t.revoked => (Some(cancelled()), 0),
                _ => (None, now),
            }
        };
        async move {
            let system = id.is_empty();
            let revoked = async {
                match held {
                    Some(h) => h.cancelled_owned().await,
                    None => std::future::pending().await,
                }
            };
            let expired = async {
                if system || expires == 0 {
                    return std::future::pending().await;
                }
                // Wall-clock seconds: checked again after each sleep, so
                // that a clock set back does not end it early.
                loop {
                    let left = expires - self::now();
                    if left <= 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(left.unsigned_abs())).await;
                }
            };
            tokio::select! {
                _ = revoked => format!("API token {id} of user {user:?} was revoked"),
                _ = expired => format!("API token {id} of user {user:?} expired"),
            }
        }
    }

    // ---- enrolment and sessions --------------------------------------

    /// Enrols a device: checks the one-time token, signs its CSR, stores
    /// the device.
    pub fn enrol(&self, req: &pb::EnrolRequest, peer: &str) -> ApiResult<pb::EnrolResponse> {
        let Some((TokenKind::Enrol, tid, secret)) = auth::split(&req.token) else {
            return Err(ApiError::Unauthenticated(
                "not an enrolment token (they start with onpe_; see `onprem token create --enrol`)"
                    .into(),
            ));
        };
        let token = {
            let st = self.st();
            st.tokens
                .get(tid)
                .filter(|t| t.kind == "enrol" && auth::check(secret, &t.hash))
                .cloned()
        };
        let token =
            token.ok_or_else(|| ApiError::Unauthenticated("unknown enrolment token".into()))?;
        if token.revoked {
            return Err(ApiError::Unauthenticated(format!(
                "enrolment token {tid} was revoked"
            )));
        }
        if token.used_at != 0 {
            return Err(ApiError::Unauthenticated(format!(
                "enrolment token {tid} was used already (by device {}); tokens are one-time",
                token.used_by
            )));
        }
        if token.expires != 0 && token.expires <= now() {
            return Err(ApiError::Unauthenticated(format!(
                "enrolment token {tid} expired at {}",
                token.expires
            )));
        }
        let facts = facts_of(req.facts.as_ref());
        let mut name = if req.name.is_empty() {
            facts.hostname.clone()
        } else {
            req.name.clone()
        };
        if name.is_empty() {
            name = "device".into();
        }
        if !super::records::name_ok(&name) {
            return Err(ApiError::Invalid(format!(
                "name: {name:?} must be {}",
                crate::bundle::bounds::NAME_RULE
            )));
        }
        let id = super::id::new();
        {
            let st = self.st();
            if st.by_name.contains_key(&name) {
                // Another device has the name: keep both, tell them apart.
                name = format!("{name}-{}", &id[id.len() - 6..]);
            }
        }
        let (cert, fp) = self
            .pki
            .issue_client(&req.csr_pem, &id)
            .map_err(|e| ApiError::Invalid(format!("csr_pem: {e}")))?;
        let mut labels = token.labels.clone();
        labels
            .entry("arch".into())
            .or_insert_with(|| facts.arch.clone());
        labels.retain(|_, v| !v.is_empty());
        let d = Device {
            id: id.clone(),
            name: name.clone(),
            labels,
            facts,
            cert_fingerprint: fp.clone(),
            enrolled_at: now(),
            last_seen: now(),
            last_addr: peer.to_owned(),
            ..Default::default()
        };
        let d = self.with_desired(d);
        let ev = event(
            &id,
            "Normal",
            "Enrolled",
            format!("device {name} enrolled from {peer}"),
        );
        self.store.commit(vec![
            Write::ConsumeToken {
                id: tid.to_owned(),
                device: id.clone(),
                at: now(),
            },
            Write::PutDevice(d.clone()),
            Write::Audit(AuditEntry {
                ts_ms: now_ms(),
                actor: format!("device/{id}"),
                action: "enrol".into(),
                target: format!("Device/{name}"),
                detail: format!("token {tid}, from {peer}"),
                ..Default::default()
            }),
            Write::Event(ev.clone()),
        ])?;
        {
            let mut st = self.st();
            if let Some(t) = st.tokens.get_mut(tid) {
                t.used_at = now();
                t.used_by = id.clone();
            }
            st.by_name.insert(name.clone(), id.clone());
            st.by_fp.insert(fp, id.clone());
            st.devices.insert(id.clone(), d.clone());
        }
        self.publish(Live::Event { event: ev });
        self.publish_device(&id);
        Ok(pb::EnrolResponse {
            device_id: id,
            device_name: name,
            certificate_pem: cert,
            ca_pem: self.pki.ca_pem().to_owned(),
            bundle_keys: vec![self.pki.signing.public().to_string()],
        })
    }

    /// The device a client certificate belongs to.
    pub fn device_by_fingerprint(&self, fp: &str) -> Option<String> {
        self.st().by_fp.get(fp).cloned()
    }

    /// A session starts: replaces any older one of the device. Returns the
    /// Welcome and the session's epoch.
    pub fn connect(
        &self,
        id: &str,
        tx: mpsc::Sender<Result<pb::ControlMessage, tonic::Status>>,
        peer: &str,
    ) -> ApiResult<(pb::ControlMessage, u64)> {
        let acked = self.store.telemetry_cursor(id)?;
        let mut st = self.st();
        st.epoch += 1;
        let epoch = st.epoch;
        let d = st.devices.get_mut(id).ok_or_else(|| {
            ApiError::Unauthenticated("the device was deleted: enrol again".into())
        })?;
        d.last_seen = now();
        d.last_addr = peer.to_owned();
        let welcome = pb::ControlMessage {
            msg: Some(pb::control_message::Msg::Welcome(pb::Welcome {
                device_id: d.id.clone(),
                device_name: d.name.clone(),
                heartbeat_seconds: self.settings.heartbeat.as_secs().max(1) as u32,
                telemetry_acked_seq: acked,
                bundle_keys: vec![self.pki.signing.public().to_string()],
                warm_tunnels: super::tunnel::WARM_TUNNELS,
            })),
        };
        st.sessions.insert(
            id.to_owned(),
            Session {
                tx,
                epoch,
                last_msg: Instant::now(),
            },
        );
        st.delivered.remove(id);
        st.dirty.insert(id.to_owned());
        drop(st);
        self.publish_device(id);
        Ok((welcome, epoch))
    }

    /// A session ended (only the one of `epoch`: a newer one stays).
    pub fn disconnect(&self, id: &str, epoch: u64) {
        let mut st = self.st();
        if st.sessions.get(id).is_some_and(|s| s.epoch == epoch) {
            st.sessions.remove(id);
            st.dirty.insert(id.to_owned());
            drop(st);
            self.publish_device(id);
        }
    }

    /// Sends a message on a device's session, waiting up to `limit` for
    /// room in its queue; false when it has no session (or the queue
    /// stayed full).
    pub async fn send_to_agent(&self, id: &str, m: pb::ControlMessage, limit: Duration) -> bool {
        let tx = self.st().sessions.get(id).map(|s| s.tx.clone());
        match tx {
            Some(tx) => matches!(
                tokio::time::timeout(limit, tx.send(Ok(m))).await,
                Ok(Ok(()))
            ),
            None => false,
        }
    }

    /// Whether a device has a session now.
    pub fn online(&self, id: &str) -> bool {
        self.st().sessions.contains_key(id)
    }

    /// Drops sessions that have been silent too long.
    pub fn expire_sessions(&self) -> usize {
        let limit = self.settings.session_timeout;
        let mut st = self.st();
        let dead: Vec<String> = st
            .sessions
            .iter()
            .filter(|(_, s)| s.last_msg.elapsed() > limit)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &dead {
            if let Some(s) = st.sessions.remove(id) {
                let _ = s.tx.try_send(Err(tonic::Status::deadline_exceeded(
                    "no heartbeat: session dropped",
                )));
            }
            st.dirty.insert(id.clone());
        }
        drop(st);
        for id in &dead {
            self.publish_device(id);
        }
        dead.len()
    }

    /// A message from a device's session.
    pub fn on_message(&self, id: &str, msg: pb::AgentMessage) {
        use pb::agent_message::Msg;
        {
            let mut st = self.st();
            if let Some(s) = st.sessions.get_mut(id) {
                s.last_msg = Instant::now();
            }
            if let Some(d) = st.devices.get_mut(id) {
                d.last_seen = now();
            }
            st.dirty.insert(id.to_owned());
        }
        // Whether a rollout may have moved on.
        let progress = match msg.msg {
            Some(Msg::Hello(h)) => {
                if let Some(f) = h.facts.as_ref() {
                    let facts = facts_of(Some(f));
                    if let Some(d) = self.st().devices.get_mut(id) {
                        d.facts = facts;
                    }
                }
                h.status.is_some_and(|s| self.on_status(id, &s))
            }
            Some(Msg::Heartbeat(_)) | None => false,
            Some(Msg::Status(s)) => self.on_status(id, &s),
            Some(Msg::BundleResult(r)) => {
                self.on_result(id, &r);
                true
            }
            Some(Msg::CommandResult(c)) => {
                self.record_event(
                    id,
                    if c.ok { "Normal" } else { "Warning" },
                    "CommandResult",
                    format!("command {}: {}", c.id, c.message),
                );
                false
            }
        };
        if progress {
            self.progress_after(id);
        }
        self.deliver(id);
    }

    /// Takes a reported status; returns whether the device changed.
    fn on_status(&self, id: &str, s: &pb::Status) -> bool {
        let mut relabelled = false;
        let changed = {
            let mut st = self.st();
            let Some(d) = st.devices.get_mut(id) else {
                return false;
            };
            let before = (
                d.current.clone(),
                d.conditions.clone(),
                d.tainted,
                d.facts.clone(),
            );
            if s.facts.is_some() {
                d.facts = facts_of(s.facts.as_ref());
                // The `arch` label follows the facts (a simulated node
                // takes its board's), unless an applied record set it.
                let arch = d.facts.arch.clone();
                if !arch.is_empty()
                    && !d.applied_labels.iter().any(|k| k == "arch")
                    && d.labels.get("arch") != Some(&arch)
                {
                    d.labels.insert("arch".into(), arch);
                    relabelled = true;
                }
            }
            d.current = super::store::Running {
                name: s.bundle_name.clone(),
                version: s.bundle_version,
                digest: s.bundle_digest.clone(),
                source: s.bundle_source.clone(),
            };
            d.conditions = s
                .conditions
                .iter()
                .map(|c| super::store::Condition {
                    kind: c.r#type.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition: c.last_transition_unix,
                    observed_version: c.observed_version,
                })
                .collect();
            d.telemetry_dropped = s.telemetry_dropped_total;
            taint(d);
            before
                != (
                    d.current.clone(),
                    d.conditions.clone(),
                    d.tainted,
                    d.facts.clone(),
                )
        };
        let fresh = relabelled
            .then(|| self.st().devices.get(id).cloned())
            .flatten();
        if let Some(mut d) = fresh {
            // Its labels changed: the bundle that selects it may too.
            let mut writes = vec![Write::PutDevice(d.clone())];
            let retargeted = self.retarget(&mut d, &mut writes);
            match retargeted.and_then(|()| Ok(self.store.commit(writes)?)) {
                Ok(()) => {
                    self.put_devices(vec![d]);
                    self.deliver(id);
                }
                Err(e) => tracing::error!(error = %e, "cannot store the device's new arch label"),
            }
        }
        self.sync_alerts(id, &s.alerts);
        if changed {
            self.publish_device(id);
        }
        changed
    }

    fn on_result(&self, id: &str, r: &pb::BundleResult) {
        let outcome = match pb::Outcome::try_from(r.outcome).unwrap_or(pb::Outcome::Unspecified) {
            pb::Outcome::Applied => "Applied",
            pb::Outcome::Unchanged => "Unchanged",
            pb::Outcome::Rejected => "Rejected",
            pb::Outcome::RolledBack => "RolledBack",
            pb::Outcome::Unspecified => "Unknown",
        };
        {
            let mut st = self.st();
            if let Some(d) = st.devices.get_mut(id) {
                d.last_result = super::store::LastResult {
                    version: r.version,
                    outcome: outcome.into(),
                    message: r.message.clone(),
                    at: now(),
                };
                // The result alone can taint (a refusal with no status).
                taint(d);
            }
            st.dirty.insert(id.to_owned());
        }
        let bad = matches!(outcome, "Rejected" | "RolledBack");
        // One per device and rollout: stored with the next flush, not one
        // commit each.
        self.queue_event(
            id,
            if bad { "Warning" } else { "Normal" },
            &format!("Bundle{outcome}"),
            format!(
                "bundle version {}: {outcome}{}",
                r.version,
                if r.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.message)
                }
            ),
        );
        if let Some(s) = &r.status {
            self.on_status(id, s);
        }
        self.publish_device(id);
    }

    /// Sends the device its desired bundle when it runs another one and
    /// it was not sent (recently).
    pub fn deliver(&self, id: &str) {
        let (tx, version) =
            {
                let mut st = self.st();
                let Some(d) = st.devices.get(id) else {
                    return;
                };
                let v = d.desired_version;
                if v == 0 || d.current.version == v {
                    return;
                }
                // A bundle refused by the agent is not sent again until a new
                // version exists.
                if d.last_result.version == v
                    && matches!(d.last_result.outcome.as_str(), "Rejected" | "RolledBack")
                {
                    return;
                }
                if st.delivered.get(id).is_some_and(|(dv, at)| {
                    *dv == v && at.elapsed() < self.settings.redeliver_after
                }) {
                    return;
                }
                let Some(s) = st.sessions.get(id) else {
                    return;
                };
                let tx = s.tx.clone();
                st.delivered.insert(id.to_owned(), (v, Instant::now()));
                (tx, v)
            };
        let rev = match self.revision(version) {
            Ok(Some(r)) => r,
            Ok(None) => {
                tracing::error!(version, "desired revision missing");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read revision");
                return;
            }
        };
        let msg = pb::ControlMessage {
            msg: Some(pb::control_message::Msg::Bundle(pb::BundleDelivery {
                version: rev.version,
                name: rev.bundle.clone(),
                text: rev.text.clone(),
                signature: rev.sig.clone(),
                digest: rev.digest.clone(),
            })),
        };
        if tx.try_send(Ok(msg)).is_err() {
            // Full or closed: try again at the next message.
            self.st().delivered.remove(id);
        }
    }

    /// A revision, cached.
    pub fn revision(&self, version: u64) -> ApiResult<Option<Arc<Revision>>> {
        if let Some(r) = self.st().revisions.get(&version) {
            return Ok(Some(Arc::clone(r)));
        }
        let r = self.store.revision(version)?.map(Arc::new);
        if let Some(r) = &r {
            self.st().revisions.insert(version, Arc::clone(r));
        }
        Ok(r)
    }

    // ---- telemetry --------------------------------------------------

    /// Stores a batch of samples; returns the acknowledged sequence.
    pub fn upload(&self, id: &str, batch: pb::TelemetryBatch) -> ApiResult<u64> {
        use prost::Message as _;
        let mut samples: Vec<super::store::StoredSample> = batch
            .samples
            .iter()
            .map(|s| super::store::StoredSample {
                seq: s.seq,
                ts_ms: s.timestamp_ms,
                data: s.encode_to_vec(),
            })
            .collect();
        samples.sort_by_key(|s| s.seq);
        let (cursor, new) =
            self.store
                .append_samples(id, &samples, self.settings.telemetry_window)?;
        let fresh: Vec<&pb::Sample> = batch
            .samples
            .iter()
            .filter(|s| s.seq > cursor.saturating_sub(new as u64))
            .collect();
        let (name, facility) = {
            let mut st = self.st();
            if let Some(d) = st.devices.get_mut(id) {
                d.telemetry_dropped = d.telemetry_dropped.max(batch.dropped_total);
            }
            if let Some(last) = batch.samples.iter().max_by_key(|s| s.seq) {
                let keep = st.latest.get(id).is_none_or(|l| l.seq < last.seq);
                if keep {
                    let families = st.latest.remove(id).map(|l| l.families);
                    st.latest.insert(
                        id.to_owned(),
                        Latest {
                            seq: last.seq,
                            ts_ms: last.timestamp_ms,
                            series: last.series.clone(),
                            families: families.unwrap_or_default(),
                        },
                    );
                }
                if let Some(l) = st.latest.get_mut(id) {
                    l.families.learn(&batch.metadata);
                }
            }
            st.devices
                .get(id)
                .map(|d| (d.name.clone(), d.facility.clone()))
                .unwrap_or_default()
        };
        if let Some(fw) = &self.remote_write {
            fw.learn(&batch.metadata);
            let mut points = Vec::new();
            for s in fresh {
                for series in &s.series {
                    let mut labels: Vec<(String, String)> = series
                        .labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect();
                    labels.push(("device".into(), name.clone()));
                    if !facility.is_empty() {
                        labels.push(("facility".into(), facility.clone()));
                    }
                    points.push(super::remote_write::Point {
                        name: series.name.clone(),
                        labels,
                        value: series.value,
                        timestamp_ms: s.timestamp_ms,
                    });
                }
            }
            if !points.is_empty() {
                fw.send(points);
            }
        }
        Ok(cursor)
    }

    /// The latest sample of every device: `(device name, facility, sample)`.
    pub fn latest(&self) -> Vec<(String, String, Latest)> {
        let st = self.st();
        let mut v: Vec<(String, String, Latest)> = st
            .latest
            .iter()
            .filter_map(|(id, l)| {
                let d = st.devices.get(id)?;
                Some((d.name.clone(), d.facility.clone(), l.clone()))
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The latest sample of one device.
    pub fn latest_of(&self, id: &str) -> Option<Latest> {
        self.st().latest.get(id).cloned()
    }

    // ---- alerts and events -------------------------------------------

    /// Records the alerts that started and stopped firing on `id`; the
    /// firing ones are kept in memory, so a status with no change costs no
    /// store access.
    fn sync_alerts(&self, id: &str, firing: &[pb::Alert]) {
        let stored: Vec<Alert> = self.st().firing.get(id).cloned().unwrap_or_default();
        let same = stored.len() == firing.len()
            && firing
                .iter()
                .all(|f| stored.iter().any(|a| a.rule == f.rule));
        if same {
            return;
        }
        let mut writes = Vec::new();
        let mine: Vec<&Alert> = stored.iter().collect();
        for f in firing {
            if !mine.iter().any(|a| a.rule == f.rule) {
                let a = Alert {
                    id: super::id::new(),
                    device: id.to_owned(),
                    rule: f.rule.clone(),
                    severity: f.severity.clone(),
                    summary: f.summary.clone(),
                    state: "firing".into(),
                    since: if f.since_unix > 0 {
                        f.since_unix
                    } else {
                        now()
                    },
                    ..Default::default()
                };
                writes.push(Write::PutAlert(a));
                writes.push(Write::Event(event(
                    id,
                    "Warning",
                    "AlertFiring",
                    format!("{} ({}): {}", f.rule, f.severity, f.summary),
                )));
            }
        }
        for a in mine {
            if !firing.iter().any(|f| f.rule == a.rule) {
                let mut r = a.clone();
                r.state = "resolved".into();
                r.resolved_at = now();
                writes.push(Write::PutAlert(r));
                writes.push(Write::Event(event(
                    id,
                    "Normal",
                    "AlertResolved",
                    format!("{} resolved", a.rule),
                )));
            }
        }
        if writes.is_empty() {
            return;
        }
        let evs: Vec<Event> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        let now_firing: Vec<Alert> = stored
            .iter()
            .filter(|a| firing.iter().any(|f| f.rule == a.rule))
            .cloned()
            .chain(writes.iter().filter_map(|w| match w {
                Write::PutAlert(a) if a.state == "firing" => Some(a.clone()),
                _ => None,
            }))
            .collect();
        if let Err(e) = self.store.commit(writes) {
            tracing::error!(error = %e, "cannot store alerts");
            return;
        }
        self.st().firing.insert(id.to_owned(), now_firing);
        for e in evs {
            self.publish(Live::Event { event: e });
        }
    }

    /// Acknowledges an alert.
    pub fn ack(&self, who: &Principal, id: &str, comment: &str) -> ApiResult<()> {
        who.require(Role::Operator, "acknowledging alerts")
            .map_err(ApiError::Forbidden)?;
        let mut a = self
            .store
            .alerts()?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
        a.acked_by = who.user.clone();
        a.acked_at = now();
        a.comment = comment.to_owned();
        self.store.commit(vec![
            Write::PutAlert(a.clone()),
            audit(who, "ack", &format!("Alert/{id}"), comment),
        ])?;
        // The firing copy keeps the acknowledgement (a later resolution
        // writes it back).
        if let Some(f) = self
            .st()
            .firing
            .get_mut(&a.device)
            .and_then(|v| v.iter_mut().find(|x| x.id == a.id))
        {
            *f = a;
        }
        Ok(())
    }

    /// Publishes an event now and stores it with the next
    /// [`flush`](Self::flush) (within a second), in one commit with the
    /// others: for events that come one per device.
    pub(crate) fn queue_event(&self, device: &str, kind: &str, reason: &str, message: String) {
        let e = event(device, kind, reason, message);
        self.st().events.push(e.clone());
        self.publish(Live::Event { event: e });
    }

    /// Queues an audit entry for the next [`flush`](Self::flush) (within
    /// a second): for what must not wait on a disk write (a tunnel
    /// opening).
    pub(crate) fn queue_audit(&self, w: Write) {
        self.st().audits.push(w);
    }

    /// The last `n` events, oldest first: those stored and those queued
    /// for the next [`flush`](Self::flush).
    pub fn recent_events(&self, n: usize) -> ApiResult<Vec<Event>> {
        // The queue first: one flushed meanwhile is then in the store.
        let queued = self.st().events.clone();
        let mut all = self.store.events(None, n)?;
        all.reverse();
        let same = |a: &Event, b: &Event| {
            (a.ts_ms, &a.device, &a.kind, &a.reason, &a.message)
                == (b.ts_ms, &b.device, &b.kind, &b.reason, &b.message)
        };
        for e in queued {
            if !all.iter().any(|s| same(s, &e)) {
                all.push(e);
            }
        }
        all.sort_by_key(|e| e.ts_ms);
        let extra = all.len().saturating_sub(n);
        all.drain(..extra);
        Ok(all)
    }

    /// Stores and publishes an event.
    pub fn record_event(&self, device: &str, kind: &str, reason: &str, message: String) {
        let e = event(device, kind, reason, message);
        if let Err(err) = self.store.commit(vec![Write::Event(e.clone())]) {
            tracing::error!(error = %err, "cannot store an event");
        }
        self.publish(Live::Event { event: e });
    }

    // ---- devices ----------------------------------------------------

    /// Every device, with what is in memory.
    pub fn devices(&self) -> Vec<DeviceView> {
        let st = self.st();
        let mut v: Vec<DeviceView> = st.devices.values().map(|d| view(&st, d)).collect();
        v.sort_by(|a, b| a.device.name.cmp(&b.device.name));
        v
    }

    /// One device by name or id.
    pub fn device(&self, name_or_id: &str) -> Option<DeviceView> {
        let st = self.st();
        let id = st
            .by_name
            .get(name_or_id)
            .cloned()
            .unwrap_or_else(|| name_or_id.to_owned());
        st.devices.get(&id).map(|d| view(&st, d))
    }

    fn publish_device(&self, id: &str) {
        let v = {
            let st = self.st();
            st.devices.get(id).map(|d| view(&st, d))
        };
        if let Some(device) = v {
            self.publish(Live::Device {
                device: Box::new(device),
            });
        }
    }

    /// Writes the devices changed in memory and the queued events back
    /// to the store; returns how many devices.
    pub fn flush(&self) -> ApiResult<usize> {
        let (mut writes, events) = {
            let mut st = self.st();
            let dirty: Vec<String> = st.dirty.drain().collect();
            let writes: Vec<Write> = dirty
                .iter()
                .filter_map(|id| st.devices.get(id).cloned().map(Write::PutDevice))
                .collect();
            let mut writes = writes;
            writes.append(&mut st.audits);
            (writes, std::mem::take(&mut st.events))
        };
        let n = writes.len();
        writes.extend(events.into_iter().map(Write::Event));
        self.store.commit(writes)?;
        Ok(n)
    }

    /// Runs `f` on the rollouts and the devices, without copying them
    /// (for the rollout engine's cheap checks).
    pub(crate) fn with_rollouts<R>(
        &self,
        f: impl FnOnce(&BTreeMap<String, Rollout>, &HashMap<String, Device>) -> R,
    ) -> R {
        let st = self.st();
        f(&st.rollouts, &st.devices)
    }

    /// Runs `f` on the devices and whether each has a session now (for
    /// the rollout engine).
    pub(crate) fn with_fleet<R>(
        &self,
        f: impl FnOnce(&HashMap<String, Device>, &dyn Fn(&str) -> bool) -> R,
    ) -> R {
        let st = self.st();
        let online = |id: &str| st.sessions.contains_key(id);
        f(&st.devices, &online)
    }

    /// Runs `f` on the device map (for the rollout engine and apply).
    pub(crate) fn with_devices<R>(&self, f: impl FnOnce(&mut HashMap<String, Device>) -> R) -> R {
        let mut st = self.st();
        f(&mut st.devices)
    }

    /// Marks devices changed, for [`flush`](Self::flush).
    pub(crate) fn touch(&self, ids: impl IntoIterator<Item = String>) {
        let ids: Vec<String> = ids.into_iter().collect();
        self.st().dirty.extend(ids.iter().cloned());
        for id in ids {
            self.publish_device(&id);
        }
    }

    /// Replaces device records after a committed change.
    pub(crate) fn put_devices(&self, ds: Vec<Device>) {
        let mut st = self.st();
        for d in ds {
            st.by_name.retain(|_, v| *v != d.id);
            st.by_name.insert(d.name.clone(), d.id.clone());
            st.devices.insert(d.id.clone(), d);
        }
    }

    /// Forgets a deleted device and ends its session.
    pub(crate) fn forget_device(&self, id: &str) {
        let mut st = self.st();
        if let Some(d) = st.devices.remove(id) {
            st.by_name.remove(&d.name);
            st.by_fp.remove(&d.cert_fingerprint);
        }
        if let Some(s) = st.sessions.remove(id) {
            let _ = s.tx.try_send(Err(tonic::Status::unauthenticated(
                "the device was deleted",
            )));
        }
        st.latest.remove(id);
    }

    /// The rollouts.
    pub fn rollouts(&self) -> Vec<Rollout> {
        self.st().rollouts.values().cloned().collect()
    }

    /// The rollouts the rollout engine follows
    /// ([`super::rollout::followed`]).
    pub(crate) fn followed(&self) -> Vec<Rollout> {
        self.st()
            .rollouts
            .values()
            .filter(|r| super::rollout::followed(r))
            .cloned()
            .collect()
    }

    pub(crate) fn set_rollout(&self, r: Rollout) {
        self.st().rollouts.insert(r.bundle.clone(), r);
    }

    pub(crate) fn drop_rollout(&self, bundle: &str) {
        self.st().rollouts.remove(bundle);
    }

    /// Ids of devices with a session.
    pub fn online_ids(&self) -> Vec<String> {
        self.st().sessions.keys().cloned().collect()
    }

    /// Sets a new device's desired bundle from the bundles that select it.
    fn with_desired(&self, mut d: Device) -> Device {
        match super::rollout::bundle_for(self, &d) {
            Ok(Some((bundle, version))) => {
                d.desired_bundle = bundle;
                d.desired_version = version;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot resolve the device's bundle"),
        }
        d
    }

    /// The stored records of `kind`.
    pub fn objects(&self, kind: Kind) -> ApiResult<Vec<Object>> {
        Ok(self.store.objects(kind)?)
    }

    /// The store (read side).
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

/// `tainted`: running something other than what is wanted, and not on
/// the way there ([`super::health::taint`]).
fn taint(d: &mut Device) {
    let (t, why) = super::health::taint(d);
    d.tainted = t;
    d.taint_reason = why;
}

fn view(st: &State, d: &Device) -> DeviceView {
    let online = st.sessions.contains_key(&d.id);
    let health = super::health::assess(d, online);
    DeviceView {
        online,
        last_ip_addr: d.facts.addresses.first().cloned().unwrap_or_else(|| {
            d.last_addr
                .rsplit_once(':')
                .map_or(d.last_addr.clone(), |(h, _)| h.to_owned())
        }),
        converged: health.converged,
        health,
        device: d.clone(),
    }
}

/// Facts from the wire.
pub fn facts_of(f: Option<&pb::HardwareFacts>) -> Facts {
    let Some(f) = f else {
        return Facts::default();
    };
    Facts {
        manufacturer: f.manufacturer.clone(),
        model: f.model.clone(),
        serial: f.serial.clone(),
        uuid: f.uuid.clone(),
        hostname: f.hostname.clone(),
        addresses: f.addresses.clone(),
        arch: f.arch.clone(),
        cores: f.cores,
        memory_bytes: f.memory_bytes,
        agent_version: f.agent_version.clone(),
    }
}

/// Whether `t` is an API token that authenticates at `now` (not revoked,
/// not expired).
fn usable(t: &Token, now: i64) -> bool {
    t.kind == TokenKind::Api.as_str() && !t.revoked && (t.expires == 0 || t.expires > now)
}

/// Whether `t` is an API token with the admin role that authenticates
/// at `now`.
pub fn is_valid_admin(t: &Token, now: i64) -> bool {
    usable(t, now) && t.role == Role::Admin.as_str()
}

fn cancelled() -> tokio_util::sync::CancellationToken {
    let c = tokio_util::sync::CancellationToken::new();
    c.cancel();
    c
}

/// Why the last valid admin token `t` is not revoked, and what to do.
fn last_admin_refusal(t: &Token) -> String {
    format!(
        "token {} (user {:?}) is the last valid admin token: revoking it would leave no one able to manage tokens, users or enrolment. Create another admin token first (onprem token create --role admin --user NAME), log in with it, then revoke this one. Locked out already? Stop the control plane and run `onprem control-plane admin-token --state-dir DIR`",
        t.id, t.user
    )
}

/// Adds an admin API token for `user` (created, or raised to admin)
/// straight to `store`, with no control plane running: the way back when
/// no valid admin token is left (`onprem control-plane admin-token`).
/// Audited as the control plane itself (`offline`). Returns `(id,
/// token)`; the token is shown once.
pub fn offline_admin_token(
    store: &dyn Store,
    user: &str,
    ttl_seconds: u64,
    description: &str,
) -> ApiResult<(String, String)> {
    if user.is_empty()
        || !user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(ApiError::Invalid(format!(
            "--user: {user:?} must be letters, digits, '-', '_', '.' or '@'"
        )));
    }
    let (id, token, hash) = auth::new_token(TokenKind::Api).map_err(ApiError::Internal)?;
    let now = now();
    let ttl = i64::try_from(ttl_seconds).unwrap_or(i64::MAX);
    let t = Token {
        id: id.clone(),
        kind: TokenKind::Api.as_str().into(),
        hash,
        user: user.to_owned(),
        role: Role::Admin.as_str().into(),
        description: description.to_owned(),
        created: now,
        expires: if ttl > 0 { now.saturating_add(ttl) } else { 0 },
        created_by: "system".into(),
        ..Default::default()
    };
    let created = store
        .users()?
        .into_iter()
        .find(|u| u.name == user)
        .map_or(now, |u| u.created);
    store.commit(vec![
        Write::PutUser(User {
            name: user.to_owned(),
            role: Role::Admin.as_str().into(),
            created,
        }),
        Write::PutToken(t),
        audit(
            &Principal::system(),
            "token.create",
            &format!("Token/{id}"),
            &format!(
                "type=api role=admin user={user}; offline (onprem control-plane admin-token), the control plane stopped"
            ),
        ),
    ])?;
    Ok((id, token))
}

/// An audit entry by `who`.
pub fn audit(who: &Principal, action: &str, target: &str, detail: &str) -> Write {
    Write::Audit(AuditEntry {
        ts_ms: now_ms(),
        actor: who.actor(),
        action: action.into(),
        target: target.into(),
        detail: detail.into(),
        ..Default::default()
    })
}

/// A new event.
pub fn event(device: &str, kind: &str, reason: &str, message: String) -> Event {
    Event {
        ts_ms: now_ms(),
        device: device.into(),
        kind: kind.into(),
        reason: reason.into(),
        message,
        ..Default::default()
    }
}
