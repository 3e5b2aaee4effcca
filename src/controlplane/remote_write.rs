//! Forwarding: a Prometheus remote-write 1.0 client, so that a fleet's
//! samples reach any receiver that keeps history (Prometheus with
//! `--web.enable-remote-write-receiver`, VictoriaMetrics, Mimir).
//!
//! [`Forwarder::start`] checks the [`Config`] and spawns one sender task;
//! [`Forwarder::send`] queues points without blocking (a bounded queue:
//! the oldest points are dropped, and counted, when it is full). The
//! sender takes up to `batch_max_samples` points every `flush_interval`,
//! or as soon as that many are queued, and POSTs them as one
//! `prometheus.WriteRequest`: points grouped into series by name and
//! labels (the config's `extra_labels` added, a point's own label winning
//! over an extra one of the same name), labels sorted by name, samples
//! sorted by time, the protobuf compressed with snappy's block format.
//! Each request also carries the metadata (type, HELP, unit) of the
//! families its series belong to, once per family, as the nodes said it
//! ([`Forwarder::learn`]); a family the nodes said nothing of goes without.
//!
//! Answers, as the remote-write spec asks: 2xx is done; 5xx, 429, a
//! timeout or a connection error is retried with capped exponential
//! backoff and jitter (`min_backoff` → `max_backoff`, at most
//! `max_retries` times, then the batch is given up); any other status
//! (4xx: the receiver refuses the data, retrying cannot help) drops the
//! batch at once, logging what the receiver said. [`Forwarder::stats`]
//! counts all of it.
//!
//! The client speaks plain `http://` only (hyper's HTTP/1.1 client over a
//! TCP connector); `https://` receivers are a follow-up.
//!
//! ## Troubleshooting
//!
//! - `failed_batches` grows, `last_error` says `404 … remote write
//!   receiver needs to be enabled`: start Prometheus with
//!   `--web.enable-remote-write-receiver` (before 2.33:
//!   `--enable-feature=remote-write-receiver`), and point `url` at
//!   `/api/v1/write`.
//! - `400 … out of order sample`: two senders write the same series, or
//!   a node's clock went back; give each sender a distinguishing
//!   `extra_labels` entry.
//! - `retries` grows with `connection refused`: nothing listens at `url`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent::reconcile::Backoff;
use crate::exporter::textparse::{valid_label_name, valid_metric_name};
use crate::proto::Families;
use crate::proto::v1 as pb;

/// Default for [`Config::batch_max_samples`].
pub const DEFAULT_BATCH_MAX_SAMPLES: usize = 2000;
/// Default for [`Config::queue_max_samples`].
pub const DEFAULT_QUEUE_MAX_SAMPLES: usize = 100_000;
/// Default for [`Config::flush_interval`].
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Default for [`Config::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`Config::min_backoff`].
pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Default for [`Config::max_backoff`].
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Default for [`Config::max_retries`].
pub const DEFAULT_MAX_RETRIES: u32 = 10;

/// The remote-write protocol version this client speaks.
const PROTOCOL_VERSION: &str = "0.1.0";
/// The most of a receiver's answer that is read (and logged).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most of a receiver's error text kept in `last_error`.
const MAX_ERROR_TEXT: usize = 512;

/// Where and how to forward.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The receiver's write endpoint, `http://host:port/path` (Prometheus:
    /// `http://prometheus:9090/api/v1/write`).
    pub url: String,
    /// The most samples in one request.
    pub batch_max_samples: usize,
    /// The most samples waiting to be sent; beyond it the oldest are
    /// dropped.
    pub queue_max_samples: usize,
    /// How often queued samples are sent when fewer than a batch wait.
    pub flush_interval: Duration,
    /// How long one request may take, connecting included.
    pub timeout: Duration,
    /// Labels added to every series (a point's own label of the same
    /// name wins), e.g. `("fleet", "eu-1")`.
    pub extra_labels: Vec<(String, String)>,
    /// First delay before retrying a failed request.
    pub min_backoff: Duration,
    /// Longest delay between retries.
    pub max_backoff: Duration,
    /// How often one batch is retried before it is given up.
    pub max_retries: u32,
}

impl Config {
    /// Every setting at its default, sending to `url`.
    pub fn new(url: impl Into<String>) -> Config {
        Config {
            url: url.into(),
            batch_max_samples: DEFAULT_BATCH_MAX_SAMPLES,
            queue_max_samples: DEFAULT_QUEUE_MAX_SAMPLES,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            extra_labels: Vec::new(),
            min_backoff: DEFAULT_MIN_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }

    /// The parsed URL, or the first setting that is out of range.
    fn check(&self) -> Result<Uri, Error> {
        let bad = |field: &str, problem: String| Error::Config {
            field: field.to_owned(),
            problem,
        };
        let uri: Uri = self
            .url
            .parse()
            .map_err(|e| bad("url", format!("{:?} is not a URL: {e}", self.url)))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(
                    "url",
                    format!(
                        "{:?}: https is not supported yet, use an http:// URL",
                        self.url
                    ),
                ));
            }
            _ => {
                return Err(bad(
                    "url",
                    format!("{:?} must start with http://", self.url),
                ));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("url", format!("{:?} has no host", self.url)));
        }
        if self.batch_max_samples == 0 {
            return Err(bad("batch_max_samples", "must be at least 1".into()));
        }
        if self.queue_max_samples < self.batch_max_samples {
            return Err(bad(
                "queue_max_samples",
                format!(
                    "must be at least batch_max_samples ({})",
                    self.batch_max_samples
                ),
            ));
        }
        if self.flush_interval.is_zero() {
            return Err(bad("flush_interval", "must be above zero".into()));
        }
        if self.timeout.is_zero() {
            return Err(bad("timeout", "must be above zero".into()));
        }
        if self.min_backoff.is_zero() || self.max_backoff < self.min_backoff {
            return Err(bad(
                "max_backoff",
                "min_backoff must be above zero and max_backoff at least min_backoff".into(),
            ));
        }
        for (i, (k, v)) in self.extra_labels.iter().enumerate() {
            if !valid_label_name(k) || k == "__name__" {
                return Err(bad(
                    &format!("extra_labels[{i}]"),
                    format!("{k:?} is not a label name"),
                ));
            }
            if v.is_empty() {
                return Err(bad(
                    &format!("extra_labels[{i}]"),
                    format!("label {k:?} has an empty value"),
                ));
            }
        }
        Ok(uri)
    }
}

/// One sample to forward.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Metric name (`onprem_temperature_celsius`).
    pub name: String,
    /// Labels, in any order; an empty value means the label is absent.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// What the forwarder has done since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Samples the receiver accepted.
    pub sent_samples: u64,
    /// Batches given up: refused by the receiver (4xx) or out of retries.
    pub failed_batches: u64,
    /// Samples that will never be sent: pushed out of a full queue,
    /// invalid (a bad metric or label name), in a failed batch, or left
    /// over at shutdown.
    pub dropped_samples: u64,
    /// Requests retried after a 5xx, 429, timeout or connection error.
    pub retries: u64,
    /// The latest problem, as logged.
    pub last_error: Option<String>,
}

/// Why the forwarder cannot start, or a body cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range; `field` names it. Fix the setting.
    #[error("{field}: {problem}")]
    Config {
        /// The setting (`url`, `batch_max_samples`, `extra_labels[0]`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// [`Forwarder::start`] was called outside a tokio runtime (a bug in
    /// the caller).
    #[error("the remote-write forwarder must be started inside a tokio runtime")]
    NoRuntime,
    /// A body is not snappy-compressed protobuf of a `WriteRequest`.
    #[error("remote-write body: {0}")]
    Body(String),
}

/// `prometheus.WriteRequest` (`prompb/remote.proto`; field 2 is
/// reserved).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// What the series' families are, one entry per family.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.MetricMetadata` (`prompb/types.proto`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MetricMetadata {
    /// `prometheus.MetricMetadata.MetricType`: 0 unknown, 1 counter,
    /// 2 gauge, 3 histogram, 5 summary.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// The family's name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// HELP.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Unit, empty when none.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// The metadata of the families `req`'s series belong to, one entry per
/// family, by name; series of families `families` does not know go
/// without.
pub fn metadata_for(req: &WriteRequest, families: &Families) -> Vec<MetricMetadata> {
    let mut out: BTreeMap<&str, MetricMetadata> = BTreeMap::new();
    for ts in &req.timeseries {
        let Some(name) = ts.labels.iter().find(|l| l.name == "__name__") else {
            continue;
        };
        let Some(m) = families.family_of(&name.value) else {
            continue;
        };
        out.entry(m.family.as_str())
            .or_insert_with(|| MetricMetadata {
                r#type: match m.r#type() {
                    pb::MetricType::Counter => 1,
                    pb::MetricType::Gauge => 2,
                    pb::MetricType::Histogram => 3,
                    pb::MetricType::Summary => 5,
                    pb::MetricType::Untyped | pb::MetricType::Unspecified => 0,
                },
                metric_family_name: m.family.clone(),
                help: m.help.clone(),
                unit: m.unit.clone(),
            });
    }
    out.into_values().collect()
}

/// `prometheus.TimeSeries` (`prompb/types.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, `__name__` included, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples, sorted by timestamp.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Groups points into series: the labels of each are `extra` overlaid
/// with the point's own and `__name__`, without empty values, sorted by
/// name (byte order, as the protocol requires: `__name__` comes first
/// unless a label name starts with an upper-case letter). Samples are
/// sorted by time; of two at the same time, the one sent later is kept.
/// Series come out sorted by their labels.
pub fn write_request(points: Vec<Point>, extra: &[(String, String)]) -> WriteRequest {
    let mut series: BTreeMap<Vec<(String, String)>, Vec<Sample>> = BTreeMap::new();
    for p in points {
        let mut labels: BTreeMap<String, String> = extra.iter().cloned().collect();
        labels.extend(p.labels);
        labels.insert("__name__".to_owned(), p.name);
        labels.retain(|_, v| !v.is_empty());
        series
            .entry(labels.into_iter().collect())
            .or_default()
            .push(Sample {
                value: p.value,
                timestamp: p.timestamp_ms,
            });
    }
    let timeseries = series
        .into_iter()
        .map(|(labels, mut samples)| {
            samples.sort_by_key(|s| s.timestamp);
            let mut kept: Vec<Sample> = Vec::with_capacity(samples.len());
            for s in samples {
                match kept.last_mut() {
                    Some(last) if last.timestamp == s.timestamp => *last = s,
                    _ => kept.push(s),
                }
            }
            TimeSeries {
                labels: labels
                    .into_iter()
                    .map(|(name, value)| Label { name, value })
                    .collect(),
                samples: kept,
            }
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
}

/// The request body: the protobuf, snappy block-compressed.
pub fn encode(req: &WriteRequest) -> Result<Vec<u8>, Error> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .map_err(|e| Error::Body(e.to_string()))
}

/// The inverse of [`encode`], for receivers and tests.
pub fn decode(body: &[u8]) -> Result<WriteRequest, Error> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| Error::Body(format!("snappy: {e}")))?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| Error::Body(format!("protobuf: {e}")))
}

/// Why a point cannot be sent, if it cannot.
fn check_point(p: &Point) -> Result<(), String> {
    if !valid_metric_name(&p.name) {
        return Err(format!("{:?} is not a metric name", p.name));
    }
    for (k, _) in &p.labels {
        if !valid_label_name(k) || k == "__name__" {
            return Err(format!("{}: {k:?} is not a label name", p.name));
        }
    }
    Ok(())
}

/// What the handle and the sender task share.
struct Shared {
    queue: Mutex<VecDeque<Point>>,
    /// What the nodes said their families are, fleet-wide.
    families: Mutex<Families>,
    stats: Mutex<Stats>,
    wake: Notify,
    batch_max: usize,
    queue_max: usize,
}

/// A poisoned lock still holds consistent data here (counters, a queue).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn take_batch(&self) -> Option<Vec<Point>> {
        let mut q = lock(&self.queue);
        if q.is_empty() {
            return None;
        }
        let n = q.len().min(self.batch_max);
        Some(q.drain(..n).collect())
    }

    fn stats(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut lock(&self.stats));
    }
}

/// A handle on the forwarder: cheap to clone, every clone feeds the same
/// queue. The sender task runs until the stop token is cancelled, then
/// makes one last attempt (no retries, within `timeout`) to send what is
/// queued; points sent after that stay queued.
#[derive(Clone)]
pub struct Forwarder {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// Checks `cfg` (the error names the setting) and spawns the sender
    /// task on the current tokio runtime.
    pub fn start(cfg: Config, stop: CancellationToken) -> Result<Forwarder, Error> {
        let uri = cfg.check()?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            families: Mutex::new(Families::default()),
            stats: Mutex::new(Stats::default()),
            wake: Notify::new(),
            batch_max: cfg.batch_max_samples,
            queue_max: cfg.queue_max_samples,
        });
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cfg.timeout));
        connector.set_nodelay(true);
        let sender = Sender {
            client: Client::builder(TokioExecutor::new()).build(connector),
            uri,
            user_agent: format!("onprem/{}", crate::VERSION),
            shared: shared.clone(),
            cfg,
        };
        rt.spawn(sender.run(stop));
        Ok(Forwarder { shared })
    }

    /// Queues `points` without blocking. Invalid points (a bad metric or
    /// label name) are dropped and counted; when the queue is full, the
    /// oldest points make room.
    pub fn send(&self, points: Vec<Point>) {
        let mut invalid = 0u64;
        let mut problem = None;
        let (overflow, full) = {
            let mut q = lock(&self.shared.queue);
            for p in points {
                match check_point(&p) {
                    Ok(()) => q.push_back(p),
                    Err(why) => {
                        invalid += 1;
                        problem.get_or_insert(why);
                    }
                }
            }
            let overflow = q.len().saturating_sub(self.shared.queue_max);
            q.drain(..overflow);
            (overflow as u64, q.len() >= self.shared.batch_max)
        };
        if let Some(why) = &problem {
            tracing::warn!(invalid, "remote write: dropping invalid points: {why}");
        }
        if overflow > 0 {
            tracing::debug!(
                overflow,
                "remote write: queue full, dropped the oldest points"
            );
        }
        if invalid + overflow > 0 {
            self.shared.stats(|s| {
                s.dropped_samples += invalid + overflow;
                if let Some(why) = problem {
                    s.last_error = Some(why);
                }
            });
        }
        if full {
            self.shared.wake.notify_one();
        }
    }

    /// Takes what a node said its families are (type, HELP, unit), for
    /// the requests from now on.
    pub fn learn(&self, metadata: &[pb::MetricMetadata]) {
        if !metadata.is_empty() {
            lock(&self.shared.families).learn(metadata);
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).clone()
    }
}

/// How one request failed.
enum Failure {
    /// Worth retrying: 5xx, 429, timeout, connection error.
    Retry(String),
    /// Not worth retrying: the receiver refused the data.
    Refused(String),
}

/// How delivering one batch ended.
enum Outcome {
    /// Sent, or given up (counted either way).
    Settled,
    /// Stopped while waiting to retry; the batch is not counted yet.
    Stopped,
}

/// The sender task.
struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    user_agent: String,
    shared: Arc<Shared>,
    cfg: Config,
}

impl Sender {
    async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.cfg.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pending = None;
        'run: loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
                _ = self.shared.wake.notified() => {}
            }
            while let Some(batch) = self.shared.take_batch() {
                let n = batch.len() as u64;
                let Some(body) = self.body(batch) else {
                    continue;
                };
                if let Outcome::Stopped = self
                    .deliver(body.clone(), n, self.cfg.max_retries, &stop)
                    .await
                {
                    pending = Some((body, n));
                    break 'run;
                }
                if stop.is_cancelled() {
                    break 'run;
                }
            }
        }
        self.last_flush(pending).await;
    }

    /// One attempt for what is left, within `timeout` overall; what does
    /// not make it is counted as dropped.
    async fn last_flush(&self, pending: Option<(Bytes, u64)>) {
        if pending.is_none() && lock(&self.shared.queue).is_empty() {
            return;
        }
        let never = CancellationToken::new();
        let mut in_flight = 0u64;
        let flush = async {
            if let Some((body, n)) = pending {
                in_flight = n;
                self.deliver(body, n, 0, &never).await;
            }
            while let Some(batch) = self.shared.take_batch() {
                in_flight = batch.len() as u64;
                if let Some(body) = self.body(batch) {
                    self.deliver(body, in_flight, 0, &never).await;
                }
            }
            in_flight = 0;
        };
        if tokio::time::timeout(self.cfg.timeout, flush).await.is_err() {
            let lost = lock(&self.shared.queue).drain(..).count() as u64 + in_flight;
            tracing::warn!(lost, "remote write: stopped before the queue was sent");
            self.shared.stats(|s| s.dropped_samples += lost);
        }
    }

    /// The encoded batch (None, counted, if it cannot be encoded).
    fn body(&self, batch: Vec<Point>) -> Option<Bytes> {
        let n = batch.len() as u64;
        let mut req = write_request(batch, &self.cfg.extra_labels);
        req.metadata = metadata_for(&req, &lock(&self.shared.families));
        match encode(&req) {
            Ok(b) => Some(Bytes::from(b)),
            Err(e) => {
                tracing::error!("remote write: {e}");
                self.shared.stats(|s| {
                    s.failed_batches += 1;
                    s.dropped_samples += n;
                    s.last_error = Some(e.to_string());
                });
                None
            }
        }
    }

    /// Sends one batch of `n` samples, retrying up to `retries` times.
    async fn deliver(
        &self,
        body: Bytes,
        n: u64,
        retries: u32,
        stop: &CancellationToken,
    ) -> Outcome {
        let mut backoff = Backoff::new(seed());
        backoff.initial = self.cfg.min_backoff;
        backoff.max = self.cfg.max_backoff;
        let mut attempt = 0;
        loop {
            let why = match self.post(body.clone()).await {
                Ok(()) => {
                    self.shared.stats(|s| s.sent_samples += n);
                    return Outcome::Settled;
                }
                Err(Failure::Refused(why)) => why,
                Err(Failure::Retry(why)) if attempt < retries => {
                    attempt += 1;
                    let delay = backoff.next(Instant::now());
                    tracing::warn!(
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "remote write: {why}; retrying"
                    );
                    self.shared.stats(|s| {
                        s.retries += 1;
                        s.last_error = Some(why);
                    });
                    tokio::select! {
                        _ = stop.cancelled() => return Outcome::Stopped,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    continue;
                }
                Err(Failure::Retry(why)) => format!("{why} (gave up after {attempt} retries)"),
            };
            tracing::error!(samples = n, "remote write: dropping a batch: {why}");
            self.shared.stats(|s| {
                s.failed_batches += 1;
                s.dropped_samples += n;
                s.last_error = Some(why);
            });
            return Outcome::Settled;
        }
    }

    /// One POST, within `timeout`.
    async fn post(&self, body: Bytes) -> Result<(), Failure> {
        let req = Request::post(self.uri.clone())
            .header(CONTENT_ENCODING, "snappy")
            .header(CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", PROTOCOL_VERSION)
            .header(USER_AGENT, self.user_agent.as_str())
            .body(Full::new(body))
            .map_err(|e| Failure::Refused(format!("building the request: {e}")))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| Failure::Retry(format!("{}: {}", self.uri, chain(&e))))?;
            let status = resp.status();
            // Read the answer (bounded) so the connection can be reused.
            let text = match Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
            {
                Ok(c) => String::from_utf8_lossy(&c.to_bytes()).trim().to_owned(),
                Err(e) => format!("(answer unreadable: {e})"),
            };
            if status.is_success() {
                return Ok(());
            }
            let text: String = text.chars().take(MAX_ERROR_TEXT).collect();
            let why = format!("{} answered {status}: {text}", self.uri);
            if status.is_server_error() || status.as_u16() == 429 {
                Err(Failure::Retry(why))
            } else {
                Err(Failure::Refused(why))
            }
        };
        tokio::time::timeout(self.cfg.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(Failure::Retry(format!(
                    "{}: no answer within {:?}",
                    self.uri, self.cfg.timeout
                )))
            })
    }
}

/// An error and its causes, `: `-separated (hyper's own message is only
/// "client error (Connect)").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A seed for the backoff's jitter.
fn seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str, labels: &[(&str, &str)], value: f64, ts: i64) -> Point {
        Point {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            value,
            timestamp_ms: ts,
        }
    }

    fn names(ts: &TimeSeries) -> Vec<(&str, &str)> {
        ts.labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect()
    }

    #[test]
    fn can_group_points_into_sorted_series() {
        let extra = vec![
            ("fleet".to_owned(), "eu".to_owned()),
            ("device".to_owned(), "default".to_owned()),
        ];
        let req = write_request(
            vec![
                point("temp", &[("facility", "lab"), ("device", "b")], 3.0, 30),
                point("temp", &[("device", "a"), ("facility", "lab")], 2.0, 20),
                point("temp", &[("facility", "lab"), ("device", "a")], 1.0, 10),
                point("temp", &[("facility", "lab"), ("device", "a")], 1.5, 10),
                point("fan", &[("device", "a"), ("empty", "")], 900.0, 10),
                point("temp", &[("device", "b"), ("facility", "lab")], 4.0, 25),
            ],
            &extra,
        );
        assert_eq!(req.timeseries.len(), 3, "{req:?}");
        assert_eq!(
            names(&req.timeseries[0]),
            [("__name__", "fan"), ("device", "a"), ("fleet", "eu")]
        );
        let a = &req.timeseries[1];
        assert_eq!(
            names(a),
            [
                ("__name__", "temp"),
                ("device", "a"),
                ("facility", "lab"),
                ("fleet", "eu")
            ]
        );
        // Sorted by time; the later of two points at 10 ms wins.
        let samples: Vec<(i64, f64)> = a.samples.iter().map(|s| (s.timestamp, s.value)).collect();
        assert_eq!(samples, [(10, 1.5), (20, 2.0)]);
        let b = &req.timeseries[2];
        assert_eq!(names(b)[1], ("device", "b"));
        let samples: Vec<i64> = b.samples.iter().map(|s| s.timestamp).collect();
        assert_eq!(samples, [25, 30]);
    }

    #[test]
    fn can_encode_a_body_that_decodes_back() {
        let req = write_request(
            vec![
                point("up", &[("job", "x")], 1.0, 1_700_000_000_000),
                point("up", &[("job", "x")], f64::NAN, 1_700_000_001_000),
            ],
            &[],
        );
        let body = encode(&req).unwrap();
        // Snappy block format: a varint of the uncompressed length first,
        // no stream identifier.
        let raw = req.encode_to_vec();
        assert_eq!(
            snap::raw::decompress_len(&body).unwrap(),
            raw.len(),
            "block format"
        );
        assert_ne!(&body[..4], b"\xff\x06\x00\x00", "not the framed format");
        let back = decode(&body).unwrap();
        assert_eq!(back.timeseries.len(), 1);
        assert_eq!(
            names(&back.timeseries[0]),
            [("__name__", "up"), ("job", "x")]
        );
        assert_eq!(back.timeseries[0].samples[0].value, 1.0);
        assert!(back.timeseries[0].samples[1].value.is_nan());
        assert_eq!(back.timeseries[0].samples[1].timestamp, 1_700_000_001_000);
        assert!(matches!(decode(b"junk"), Err(Error::Body(_))));
    }

    /// The wire format, byte for byte, for one label and one sample:
    /// field numbers and types as in prompb/types.proto and remote.proto.
    #[test]
    fn can_encode_the_prompb_field_numbers() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "a".into(),
                    value: "b".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 2,
                }],
            }],
            metadata: vec![MetricMetadata {
                r#type: 2,
                metric_family_name: "a".into(),
                help: "h".into(),
                unit: "u".into(),
            }],
        };
        let want: Vec<u8> = vec![
            0x0a, 21, // WriteRequest.timeseries (1, length-delimited)
            0x0a, 6, // TimeSeries.labels (1)
            0x0a, 1, b'a', // Label.name (1, string)
            0x12, 1, b'b', // Label.value (2, string)
            0x12, 11, // TimeSeries.samples (2)
            0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // Sample.value (1, double)
            0x10, 2, // Sample.timestamp (2, varint)
            0x1a, 11, // WriteRequest.metadata (3, length-delimited)
            0x08, 2, // MetricMetadata.type (1, varint): GAUGE
            0x12, 1, b'a', // MetricMetadata.metric_family_name (2)
            0x22, 1, b'h', // MetricMetadata.help (4)
            0x2a, 1, b'u', // MetricMetadata.unit (5)
        ];
        assert_eq!(req.encode_to_vec(), want);
    }

    #[test]
    fn requests_carry_each_familys_metadata_once() {
        let meta = |family: &str, t: pb::MetricType| pb::MetricMetadata {
            family: family.into(),
            r#type: t as i32,
            help: format!("{family}."),
            unit: String::new(),
        };
        let mut families = Families::default();
        families.learn(&[
            meta("h_seconds", pb::MetricType::Histogram),
            meta("c_total", pb::MetricType::Counter),
            meta("u", pb::MetricType::Untyped),
            meta("absent", pb::MetricType::Gauge),
        ]);
        let mut req = write_request(
            vec![
                point("h_seconds_bucket", &[("le", "1"), ("d", "a")], 1.0, 1),
                point("h_seconds_bucket", &[("le", "+Inf"), ("d", "a")], 2.0, 1),
                point("h_seconds_sum", &[("d", "a")], 0.5, 1),
                point("h_seconds_count", &[("d", "b")], 2.0, 1),
                point("c_total", &[("d", "a")], 7.0, 1),
                point("c_total", &[("d", "b")], 8.0, 1),
                point("u", &[], 1.0, 1),
                point("unknown", &[], 1.0, 1),
            ],
            &[],
        );
        req.metadata = metadata_for(&req, &families);
        let got: Vec<(i32, &str, &str)> = req
            .metadata
            .iter()
            .map(|m| (m.r#type, m.metric_family_name.as_str(), m.help.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "c_total", "c_total."),
                (3, "h_seconds", "h_seconds."),
                (0, "u", "u."),
            ]
        );
    }

    #[test]
    fn returns_the_field_when_the_config_is_wrong() {
        let cases: [(Config, &str); 7] = [
            (Config::new("prometheus:9090"), "url"),
            (Config::new("https://p:9090/api/v1/write"), "url"),
            (Config::new("not a url"), "url"),
            (
                Config {
                    batch_max_samples: 0,
                    ..Config::new("http://p/")
                },
                "batch_max_samples",
            ),
            (
                Config {
                    queue_max_samples: 10,
                    ..Config::new("http://p/")
                },
                "queue_max_samples",
            ),
            (
                Config {
                    flush_interval: Duration::ZERO,
                    ..Config::new("http://p/")
                },
                "flush_interval",
            ),
            (
                Config {
                    extra_labels: vec![("ok".into(), "1".into()), ("bad-name".into(), "x".into())],
                    ..Config::new("http://p/")
                },
                "extra_labels[1]",
            ),
        ];
        for (cfg, field) in cases {
            match cfg.check() {
                Err(Error::Config { field: f, problem }) => {
                    assert_eq!(f, field, "{cfg:?}: {problem}");
                }
                other => panic!("{cfg:?}: {other:?}"),
            }
        }
        assert!(
            Config::new("http://127.0.0.1:9090/api/v1/write")
                .check()
                .is_ok()
        );
    }

    #[test]
    fn returns_no_runtime_outside_tokio() {
        let r = Forwarder::start(Config::new("http://p/"), CancellationToken::new());
        assert!(matches!(r, Err(Error::NoRuntime)), "{r:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn can_drop_the_oldest_points_when_the_queue_is_full() {
        let stop = CancellationToken::new();
        let cfg = Config {
            batch_max_samples: 4,
            queue_max_samples: 4,
            flush_interval: Duration::from_secs(3600),
            ..Config::new("http://127.0.0.1:9/")
        };
        let fw = Forwarder::start(cfg, stop.clone()).unwrap();
        // The first tick finds the queue empty; nothing is sent.
        tokio::task::yield_now().await;
        fw.send((0..3).map(|i| point("x", &[], 0.0, i)).collect());
        fw.send(vec![
            point("bad name", &[], 0.0, 0),
            point("x", &[("__name__", "y")], 0.0, 0),
        ]);
        fw.send((3..6).map(|i| point("x", &[], 0.0, i)).collect());
        let s = fw.stats();
        assert_eq!(s.dropped_samples, 4, "{s:?}");
        assert!(
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("\"bad name\"")),
            "{s:?}"
        );
        let q: Vec<i64> = lock(&fw.shared.queue)
            .iter()
            .map(|p| p.timestamp_ms)
            .collect();
        assert_eq!(q, [2, 3, 4, 5], "the oldest went");
        stop.cancel();
    }
}
