//! Telemetry: samples of the agent's own metrics into the on-disk
//! [`Buffer`], and their upload.
//!
//! Every `spec.telemetry.interval` the sampler scrapes the agent's
//! metrics (the same families `/metrics` serves), keeps those the
//! bundle's `include`/`exclude` select (default: every `onprem_*`
//! metric) and appends one encoded `Sample` to the buffer; the buffer
//! gives it its sequence number. The uploader sends what is not yet
//! acknowledged, oldest first, in batches; the control plane answers with
//! the highest sequence it holds, and the buffer lets go of everything up
//! to it. A sample is sent again only if its acknowledgement was lost,
//! and the control plane keeps it once.
//!
//! What each family is (its type, HELP and unit) goes up beside the
//! samples, not in them: the sampler keeps the metadata of the families
//! it selects (taken once at start too, so that samples buffered before a
//! restart go up typed), and each session's uploader sends every
//! family's metadata with its first accepted batch, then only what is
//! new or changed.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::dialhome::connect::Channel;
use prost::Message as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::buffer::{self, Buffer};
use crate::bundle::schema;
use crate::exporter::metrics::{Family, Kind, Value};
use crate::proto::Families;
use crate::proto::v1 as pb;
use crate::proto::v1::agent_service_client::AgentServiceClient;

/// Samples per upload, at most.
pub const BATCH_SAMPLES: usize = 500;
/// Bytes per upload, about.
pub const BATCH_BYTES: usize = 1 << 20;

/// The agent's metrics now.
pub type MetricsFn = Arc<dyn Fn() -> Vec<Family> + Send + Sync>;
/// The running bundle's telemetry section.
pub type SpecFn = Arc<dyn Fn() -> schema::Telemetry + Send + Sync>;

/// The buffer, shared by the sampler and the uploader.
#[derive(Clone)]
pub struct Telemetry {
    buffer: Arc<Mutex<Buffer>>,
    pushed: Arc<Notify>,
    /// The metadata of the families the sampler selects, as of its last
    /// scrape.
    families: Arc<Mutex<Families>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// Which metric names a bundle's telemetry section selects.
#[derive(Debug)]
pub struct Filter {
    include: Vec<regex::Regex>,
    exclude: Vec<regex::Regex>,
}

impl Filter {
    /// From the bundle's section (patterns are anchored); a pattern that
    /// does not compile selects nothing (validation refuses it earlier).
    pub fn new(spec: &schema::Telemetry) -> Filter {
        let compile = |v: &[String]| {
            v.iter()
                .filter_map(|p| regex::Regex::new(&format!("^(?:{p})$")).ok())
                .collect::<Vec<_>>()
        };
        let mut include = compile(&spec.include);
        if spec.include.is_empty() {
            include = compile(&["onprem_.*".to_owned()]);
        }
        Filter {
            include,
            exclude: compile(&spec.exclude),
        }
    }

    /// Whether `name` is uploaded.
    pub fn wants(&self, name: &str) -> bool {
        self.include.iter().any(|r| r.is_match(name))
            && !self.exclude.iter().any(|r| r.is_match(name))
    }
}

fn series(
    name: &str,
    labels: &[(String, String)],
    extra: Option<(&str, String)>,
    value: f64,
) -> pb::Series {
    let mut l: Vec<pb::Label> = labels
        .iter()
        .map(|(k, v)| pb::Label {
            name: k.clone(),
            value: v.clone(),
        })
        .collect();
    if let Some((k, v)) = extra {
        l.push(pb::Label {
            name: k.into(),
            value: v,
        });
    }
    pb::Series {
        name: name.to_owned(),
        labels: l,
        value,
    }
}

/// The metadata (type, HELP, unit) of the families that `filter`
/// selects.
pub fn metadata(families: &[Family], filter: &Filter) -> Vec<pb::MetricMetadata> {
    families
        .iter()
        .filter(|f| filter.wants(&f.name))
        .map(|f| pb::MetricMetadata {
            family: f.name.clone(),
            r#type: match f.kind {
                Kind::Counter => pb::MetricType::Counter,
                Kind::Gauge => pb::MetricType::Gauge,
                Kind::Untyped => pb::MetricType::Untyped,
                Kind::Summary => pb::MetricType::Summary,
                Kind::Histogram => pb::MetricType::Histogram,
            } as i32,
            help: f.help.clone(),
            // The exposition declares no units (yet): nothing to carry.
            unit: String::new(),
        })
        .collect()
}

/// The series of `families` that `filter` selects.
pub fn select(families: &[Family], filter: &Filter) -> Vec<pb::Series> {
    let mut out = Vec::new();
    for f in families.iter().filter(|f| filter.wants(&f.name)) {
        for m in &f.metrics {
            match &m.value {
                Value::Single(v) => out.push(series(&f.name, &m.labels, None, *v)),
                Value::Summary {
                    quantiles,
                    sum,
                    count,
                } => {
                    for (q, v) in quantiles {
                        out.push(series(
                            &f.name,
                            &m.labels,
                            Some(("quantile", q.to_string())),
                            *v,
                        ));
                    }
                    out.push(series(&format!("{}_sum", f.name), &m.labels, None, *sum));
                    out.push(series(
                        &format!("{}_count", f.name),
                        &m.labels,
                        None,
                        *count,
                    ));
                }
                Value::Histogram {
                    buckets,
                    sum,
                    count,
                } => {
                    for (le, v) in buckets {
                        let le = if le.is_infinite() {
                            "+Inf".to_owned()
                        } else {
                            le.to_string()
                        };
                        out.push(series(
                            &format!("{}_bucket", f.name),
                            &m.labels,
                            Some(("le", le)),
                            *v,
                        ));
                    }
                    out.push(series(&format!("{}_sum", f.name), &m.labels, None, *sum));
                    out.push(series(
                        &format!("{}_count", f.name),
                        &m.labels,
                        None,
                        *count,
                    ));
                }
            }
        }
    }
    out
}

impl Telemetry {
    /// Opens the buffer in `<state_dir>/telemetry/`.
    pub fn open(state_dir: &Path, max_bytes: u64) -> Result<Telemetry, buffer::Error> {
        let b = Buffer::open(&state_dir.join("telemetry"), max_bytes)?;
        Ok(Telemetry {
            buffer: Arc::new(Mutex::new(b)),
            pushed: Arc::new(Notify::new()),
            families: Arc::new(Mutex::new(Families::default())),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one sample of `series` taken at `ts_ms`; returns its
    /// sequence number.
    pub fn push(&self, ts_ms: i64, series: Vec<pb::Series>) -> Result<u64, buffer::Error> {
        let payload = pb::Sample {
            seq: 0,
            timestamp_ms: ts_ms,
            series,
        }
        .encode_to_vec();
        let seq = self.lock().push(&payload)?;
        self.pushed.notify_one();
        Ok(seq)
    }

    /// The families sampled now: their metadata replaces what was known.
    pub fn set_metadata(&self, metadata: &[pb::MetricMetadata]) {
        let mut known = Families::default();
        known.learn(metadata);
        *self.families.lock().unwrap_or_else(|e| e.into_inner()) = known;
    }

    /// The metadata known now that `sent` does not hold as it is: new
    /// families, and those whose type, HELP or unit changed.
    pub fn unsent_metadata(&self, sent: &Families) -> Vec<pb::MetricMetadata> {
        self.families
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|m| sent.get(&m.family) != Some(*m))
            .cloned()
            .collect()
    }

    /// Follows the bundle's bound.
    pub fn set_max_bytes(&self, max: u64) {
        let mut b = self.lock();
        if b.max_bytes() != max {
            b.set_max_bytes(max);
        }
    }

    /// Samples dropped from the full buffer, in total.
    pub fn dropped_total(&self) -> u64 {
        self.lock().dropped_total()
    }

    /// `(pending, bytes, dropped_total, acked)` in one look.
    pub fn figures(&self) -> (u64, u64, u64, u64) {
        let b = self.lock();
        (b.pending(), b.bytes(), b.dropped_total(), b.acked())
    }

    /// Samples held, not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.lock().pending()
    }

    /// The highest sequence acknowledged.
    pub fn acked(&self) -> u64 {
        self.lock().acked()
    }

    /// The control plane holds everything up to `seq`.
    pub fn ack(&self, seq: u64) {
        let mut b = self.lock();
        let seq = seq.min(b.last_seq());
        if seq > b.acked() {
            if let Err(e) = b.ack(seq) {
                tracing::error!(error = %e, "cannot record the telemetry acknowledgement");
            }
        }
    }

    fn batch(&self) -> Result<pb::TelemetryBatch, buffer::Error> {
        let b = self.lock();
        let records = b.read(b.acked(), BATCH_SAMPLES, BATCH_BYTES)?;
        let mut samples = Vec::with_capacity(records.len());
        for (seq, payload) in records {
            match pb::Sample::decode(payload.as_slice()) {
                Ok(mut s) => {
                    s.seq = seq;
                    samples.push(s);
                }
                Err(e) => {
                    tracing::warn!(seq, error = %e, "a buffered sample does not decode; skipped")
                }
            }
        }
        Ok(pb::TelemetryBatch {
            samples,
            dropped_total: b.dropped_total(),
            metadata: Vec::new(),
        })
    }

    /// Uploads until `stop` or an error (the session then reconnects).
    /// Each call is one session's uploader: the control plane it talks to
    /// is sent every family's metadata once, then what changes.
    pub async fn upload(
        &self,
        client: &mut AgentServiceClient<Channel>,
        stop: &CancellationToken,
    ) -> Result<(), tonic::Status> {
        let mut sent = Families::default();
        loop {
            let mut batch = self
                .batch()
                .map_err(|e| tonic::Status::internal(format!("telemetry buffer: {e}")))?;
            if batch.samples.is_empty() {
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = self.pushed.notified() => continue,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
            let last = batch.samples.last().map_or(0, |s| s.seq);
            batch.metadata = self.unsent_metadata(&sent);
            let metadata = batch.metadata.clone();
            let ack = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                r = client.upload(batch) => r?.into_inner(),
            };
            sent.learn(&metadata);
            self.ack(ack.acked_seq);
            if ack.acked_seq < last {
                // The control plane kept less than was sent: do not spin.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// How often the sampler looks at the bundle's telemetry section again
/// while it waits: a new bundle's interval (and bound) holds from then
/// on, not only after the previous interval (one minute by default, before
/// any bundle) has run out.
pub const SPEC_RECHECK: Duration = Duration::from_secs(1);

/// Samples the agent's metrics into `t` at the bundle's interval until
/// `stop`.
pub async fn sample(t: Telemetry, metrics: MetricsFn, spec: SpecFn, stop: CancellationToken) {
    let mut last = tokio::time::Instant::now();
    // What the families are, before the first sample is due: samples
    // buffered before a restart go up with it.
    let m = Arc::clone(&metrics);
    if let Ok(fams) = tokio::task::spawn_blocking(move || m()).await {
        t.set_metadata(&metadata(&fams, &Filter::new(&spec())));
    }
    loop {
        let s = spec();
        t.set_max_bytes(s.buffer_bytes);
        let every = s.interval.get().max(Duration::from_millis(100));
        let now = tokio::time::Instant::now();
        let due = last + every;
        if now < due {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep((due - now).min(SPEC_RECHECK)) => {}
            }
            continue;
        }
        last = now;
        let m = Arc::clone(&metrics);
        let fams = match tokio::task::spawn_blocking(move || m()).await {
            Ok(f) => f,
            Err(_) => continue,
        };
        let filter = Filter::new(&s);
        t.set_metadata(&metadata(&fams, &filter));
        let series = select(&fams, &filter);
        let ts = crate::clock::now_ms();
        let t2 = t.clone();
        match tokio::task::spawn_blocking(move || t2.push(ts, series)).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot buffer a telemetry sample"),
            Err(e) => tracing::warn!(error = %e, "telemetry sampling failed"),
            Ok(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::duration::Dur;

    #[test]
    fn each_familys_metadata_goes_up_once_then_when_it_changes() {
        use crate::exporter::metrics::Metric;
        let dir = tempfile::tempdir().unwrap();
        let t = Telemetry::open(dir.path(), 1 << 20).unwrap();
        let fam = |name: &str, help: &str, kind: Kind| Family {
            name: name.into(),
            help: help.into(),
            kind,
            metrics: vec![Metric {
                labels: Vec::new(),
                value: Value::Single(1.0),
            }],
        };
        let mut fams = vec![
            fam("onprem_fan_rpm", "Fan speed.", Kind::Gauge),
            fam("onprem_loop_runs_total", "Loop runs.", Kind::Counter),
            fam("node_load1", "1m load average.", Kind::Gauge),
        ];
        let filter = Filter::new(&schema::Telemetry::default());
        t.set_metadata(&metadata(&fams, &filter));
        let mut sent = Families::default();
        let first = t.unsent_metadata(&sent);
        let names: Vec<&str> = first.iter().map(|m| m.family.as_str()).collect();
        assert_eq!(names, ["onprem_fan_rpm", "onprem_loop_runs_total"]);
        assert_eq!(first[0].r#type(), pb::MetricType::Gauge);
        assert_eq!(first[1].r#type(), pb::MetricType::Counter);
        assert_eq!(first[1].help, "Loop runs.");
        sent.learn(&first);
        assert!(t.unsent_metadata(&sent).is_empty(), "sent once");
        // A HELP that changed goes up again, alone.
        fams[0].help = "Fan speed, RPM.".into();
        t.set_metadata(&metadata(&fams, &filter));
        let again = t.unsent_metadata(&sent);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].help, "Fan speed, RPM.");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_interval_holds_before_the_old_one_ran_out() {
        let dir = tempfile::tempdir().unwrap();
        let t = Telemetry::open(dir.path(), 1 << 20).unwrap();
        // Before any bundle: the default, one minute.
        let spec = Arc::new(Mutex::new(schema::Telemetry::default()));
        let s2 = Arc::clone(&spec);
        let spec_fn: SpecFn = Arc::new(move || s2.lock().unwrap().clone());
        let metrics: MetricsFn = Arc::new(Vec::new);
        let stop = CancellationToken::new();
        tokio::spawn(sample(t.clone(), metrics, spec_fn, stop.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(t.pending(), 0);
        // A bundle with a short interval arrives.
        spec.lock().unwrap().interval = Dur::millis(100);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while t.pending() < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the new interval did not hold: {} samples",
                t.pending()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
    }
}
