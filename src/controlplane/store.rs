//! What the control plane keeps, behind one trait ([`Store`]) so that a
//! second backend (PostgreSQL, for several replicas) is an addition, not
//! a rewrite. The embedded default is [`super::sqlite::Sqlite`].
//!
//! Reads are per record kind; every write goes through
//! [`Store::commit`], a list of [`Write`]s applied in one transaction, so
//! that an `apply` of many records, its audit entries and its rollout
//! land together or not at all.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database said no.
    #[error("database: {0}")]
    Db(String),
    /// A stored document does not decode (a newer control plane wrote it?).
    #[error("stored {what} does not decode: {message}")]
    Decode {
        /// What was read.
        what: String,
        /// Why.
        message: String,
    },
    /// A conditional write lost: the record changed meanwhile.
    #[error("conflict: {0}")]
    Conflict(String),
}

/// A result of the store.
pub type Result<T> = std::result::Result<T, Error>;

/// The declarative record kinds, stored alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// A site: a building, a room.
    Facility,
    /// A chassis or rack: where devices sit, in a facility.
    Chassis,
    /// A hardware profile (devices of a board), named by bundles.
    Profile,
    /// A bundle with its label selector and rollout strategy.
    Bundle,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [Kind::Facility, Kind::Chassis, Kind::Profile, Kind::Bundle];

    /// The name in documents (`kind: Bundle`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Facility => "Facility",
            Kind::Chassis => "Chassis",
            Kind::Profile => "Profile",
            Kind::Bundle => "Bundle",
        }
    }
}

/// A declarative record: what `apply` stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    /// Its id (20 sortable characters).
    pub id: String,
    /// Its kind.
    pub kind: Kind,
    /// Its name, unique per kind.
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its specification, as applied (JSON).
    pub spec: serde_json::Value,
    /// Incremented at every change of labels or spec.
    pub generation: u64,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub updated: i64,
}

/// What an agent told about its machine at enrolment and at each session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Facts {
    /// e.g. "Raspberry Pi".
    pub manufacturer: String,
    /// e.g. "5 Model B Rev 1.0".
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Machine UUID.
    pub uuid: String,
    /// Host name.
    pub hostname: String,
    /// IP addresses.
    pub addresses: Vec<String>,
    /// CPU architecture (`aarch64`, `x86_64`).
    pub arch: String,
    /// CPU cores.
    pub cores: u32,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// The agent's version.
    pub agent_version: String,
}

/// A condition, Kubernetes-style.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    /// e.g. `Bundle`, `Loop/fans`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False`, `Unknown`.
    pub status: String,
    /// One CamelCase word.
    pub reason: String,
    /// For people.
    pub message: String,
    /// Unix seconds.
    pub last_transition: i64,
    /// The bundle version the condition was computed for.
    pub observed_version: u64,
}

/// The bundle a device runs, as it reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Running {
    /// Bundle name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// Content digest.
    pub digest: String,
    /// `control-plane`, `file:…`, `last-known-good`.
    pub source: String,
}

/// The result of the last bundle delivered to a device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LastResult {
    /// The version delivered.
    pub version: u64,
    /// `Applied`, `Unchanged`, `Rejected`, `RolledBack`.
    pub outcome: String,
    /// The agent's words.
    pub message: String,
    /// Unix seconds.
    pub at: i64,
}

/// A device: created by enrolment; labels, facility and chassis set by
/// `apply`; the rest reported by its agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Device {
    /// Its id.
    pub id: String,
    /// Its name (unique).
    pub name: String,
    /// Its labels (from the enrolment token, its facts, and `apply`).
    pub labels: BTreeMap<String, String>,
    /// The facility it is in (a Facility name).
    pub facility: String,
    /// The chassis it is in (a Chassis name).
    pub chassis: String,
    /// Hardware facts.
    pub facts: Facts,
    /// SHA-256 of its client certificate.
    pub cert_fingerprint: String,
    /// Unix seconds.
    pub enrolled_at: i64,
    /// Unix seconds of the last message from it.
    pub last_seen: i64,
    /// The address its last session came from.
    pub last_addr: String,
    /// The bundle the control plane wants it to run.
    pub desired_bundle: String,
    /// Its version (0: none).
    pub desired_version: u64,
    /// What it runs.
    pub current: Running,
    /// The last delivery's result.
    pub last_result: LastResult,
    /// Its agent's conditions.
    pub conditions: Vec<Condition>,
    /// Set when it runs something other than what the control plane
    /// wants, and not on its way there: a bundle refused or rolled back,
    /// a local override.
    pub tainted: bool,
    /// Why it is tainted.
    pub taint_reason: String,
    /// Samples its agent dropped from a full buffer, as it reported.
    pub telemetry_dropped: u64,
    /// The label keys the last applied Device record named: `apply` owns
    /// these (one the next record leaves out is removed); the others
    /// (from the enrolment token, the agent's facts) stay unless a record
    /// names them.
    pub applied_labels: Vec<String>,
    /// Applied Device records that changed it (labels, facility,
    /// chassis), for `metadata.generation` preconditions.
    pub generation: u64,
}

/// A user (API tokens belong to users).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Name.
    pub name: String,
    /// `viewer`, `operator`, `admin`.
    pub role: String,
    /// Unix seconds.
    pub created: i64,
}

/// An API or enrolment token; the secret itself is never stored, only its
/// SHA-256.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Token {
    /// Id (also the token's visible prefix).
    pub id: String,
    /// `api` or `enrol`.
    #[serde(rename = "type")]
    pub kind: String,
    /// SHA-256 of the secret, hex.
    #[serde(skip_serializing)]
    pub hash: String,
    /// API tokens: the user.
    pub user: String,
    /// API tokens: the role.
    pub role: String,
    /// What it is for.
    pub description: String,
    /// Enrolment tokens: labels the device gets.
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds; 0: never.
    pub expires: i64,
    /// When it was used (Unix seconds; 0: never): an enrolment token's
    /// one use; an API token's last, to the minute
    /// ([`USED_AT_RESOLUTION`](super::auth::USED_AT_RESOLUTION)).
    pub used_at: i64,
    /// Enrolment tokens: the device it enrolled.
    pub used_by: String,
    /// Revoked tokens are refused.
    pub revoked: bool,
    /// Who created it.
    pub created_by: String,
}

/// One line of the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuditEntry {
    /// Sequence (assigned by the store).
    pub seq: u64,
    /// Unix milliseconds.
    pub ts_ms: i64,
    /// Who: `user/<name>` (token id) or `device/<id>`.
    pub actor: String,
    /// What: `apply`, `delete`, `enrol`, `token.create`, `ack`, ….
    pub action: String,
    /// On what: `Bundle/pi5-fans`.
    pub target: String,
    /// Details.
    pub detail: String,
}

/// An event of a device or of the control plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Event {
    /// Sequence (assigned by the store).
    pub seq: u64,
    /// Unix milliseconds.
    pub ts_ms: i64,
    /// The device id (empty: the control plane).
    pub device: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: String,
    /// One CamelCase word.
    pub reason: String,
    /// For people.
    pub message: String,
}

/// An alert from a node's checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Alert {
    /// Id.
    pub id: String,
    /// Device id.
    pub device: String,
    /// The check rule's name.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// Summary.
    pub summary: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// Unix seconds it started firing.
    pub since: i64,
    /// Unix seconds it resolved (0: still firing).
    pub resolved_at: i64,
    /// Who acknowledged it (empty: nobody).
    pub acked_by: String,
    /// Unix seconds.
    pub acked_at: i64,
    /// The acknowledgement's comment.
    pub comment: String,
}

/// A signed bundle revision, as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// The version (monotonic over all bundles).
    pub version: u64,
    /// The bundle's name.
    pub bundle: String,
    /// Content digest of the resolved bundle.
    pub digest: String,
    /// The resolved bundle document (profile merged, version set).
    pub text: String,
    /// Its detached signature file.
    pub sig: String,
    /// Unix seconds.
    pub created: i64,
}

/// The rollout of one bundle revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rollout {
    /// The bundle.
    pub bundle: String,
    /// The revision rolled out.
    pub version: u64,
    /// `AllAtOnce` or `Staged`.
    pub strategy: String,
    /// Device ids per batch, canary first.
    pub batches: Vec<Vec<String>>,
    /// The batch now rolling out (index).
    pub batch: usize,
    /// `Progressing`, `Complete`, `Halted`, `Superseded`.
    pub phase: String,
    /// Why (halted: which devices failed).
    pub message: String,
    /// Unix seconds the current batch started.
    pub batch_started: i64,
    /// Seconds a batch may take to converge.
    pub progress_deadline: u64,
    /// Unix seconds.
    pub started: i64,
    /// Unix seconds.
    pub updated: i64,
}

/// One telemetry sample as received (the encoded `Sample` message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSample {
    /// The agent's sequence number.
    pub seq: u64,
    /// Unix milliseconds.
    pub ts_ms: i64,
    /// The encoded `onprem.v1.Sample`.
    pub data: Vec<u8>,
}

/// One write of a [`Store::commit`].
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived, built in small lists
pub enum Write {
    /// Insert or replace a declarative record.
    PutObject(Object),
    /// Delete one.
    DeleteObject(Kind, String),
    /// Insert or replace a device.
    PutDevice(Device),
    /// Delete a device (and its telemetry).
    DeleteDevice(String),
    /// Insert or replace a token.
    PutToken(Token),
    /// Mark an enrolment token used: fails the whole commit with
    /// [`Error::Conflict`] if it was used already.
    ConsumeToken {
        /// Token id.
        id: String,
        /// The device it enrols.
        device: String,
        /// Unix seconds.
        at: i64,
    },
    /// Record an API token's last use (its `usedAt`); a token no longer
    /// there is skipped, not an error.
    TokenUsed {
        /// Token id.
        id: String,
        /// Unix seconds.
        at: i64,
    },
    /// Insert or replace a user.
    PutUser(User),
    /// Append to the audit log.
    Audit(AuditEntry),
    /// Append an event.
    Event(Event),
    /// Insert or replace an alert.
    PutAlert(Alert),
    /// Store a revision.
    PutRevision(Revision),
    /// Insert or replace a bundle's rollout.
    PutRollout(Rollout),
    /// Delete a bundle's rollout.
    DeleteRollout(String),
}

/// The control plane's storage.
pub trait Store: Send + Sync + 'static {
    /// Every record of `kind`, by name.
    fn objects(&self, kind: Kind) -> Result<Vec<Object>>;
    /// Every device, by name.
    fn devices(&self) -> Result<Vec<Device>>;
    /// Every token.
    fn tokens(&self) -> Result<Vec<Token>>;
    /// Every user.
    fn users(&self) -> Result<Vec<User>>;
    /// The last `limit` audit entries, oldest first.
    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>>;
    /// The last `limit` events (of one device, when given), oldest first.
    fn events(&self, device: Option<&str>, limit: usize) -> Result<Vec<Event>>;
    /// Every alert.
    fn alerts(&self) -> Result<Vec<Alert>>;
    /// A revision.
    fn revision(&self, version: u64) -> Result<Option<Revision>>;
    /// The highest revision version (0: none).
    fn last_version(&self) -> Result<u64>;
    /// Every rollout.
    fn rollouts(&self) -> Result<Vec<Rollout>>;
    /// Applies `writes` in one transaction: all or none.
    fn commit(&self, writes: Vec<Write>) -> Result<()>;
    /// The highest telemetry sequence stored for `device` (0: none).
    fn telemetry_cursor(&self, device: &str) -> Result<u64>;
    /// Stores the samples with a sequence above the device's cursor, in
    /// one transaction with the new cursor, and keeps only the last
    /// `window` of them. Returns the new cursor and how many were new.
    fn append_samples(
        &self,
        device: &str,
        samples: &[StoredSample],
        window: usize,
    ) -> Result<(u64, usize)>;
    /// Stored samples of `device` after `after`, in order, at most `limit`.
    fn samples(&self, device: &str, after: u64, limit: usize) -> Result<Vec<StoredSample>>;
}
