//! The HTTP face of the exporter: `/metrics` (format negotiation, gzip,
//! `collect[]`/`exclude[]` filters, a bound on requests in flight), a
//! landing page at `/`, and `/-/healthy` and `/-/ready`.
//!
//! The collector set sits behind [`Shared::swap`], so a reload replaces it
//! between requests without touching the listener; a scrape already
//! running finishes with the set it started with.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;

use super::Exporter;
use super::encode::{self, Format};

/// node_exporter's default bound on parallel scrapes.
pub const DEFAULT_MAX_REQUESTS: usize = 40;

/// Figures of the last completed scrape, for `STATUS=` and `onprem demo`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LastScrape {
    /// Metric families served.
    pub families: usize,
    /// Samples served.
    pub samples: usize,
    /// Time spent collecting and encoding.
    pub duration: Duration,
    /// Collectors that failed.
    pub failed: usize,
}

/// State shared by the handlers and the supervisor.
pub struct Shared {
    exporter: RwLock<Arc<Exporter>>,
    limit: Semaphore,
    max_requests: usize,
    ready: AtomicBool,
    last: Mutex<LastScrape>,
    scrapes: AtomicU64,
    inflight: Mutex<HashMap<u64, Instant>>,
    next_id: AtomicU64,
    stall: Mutex<Duration>,
    status: RwLock<Option<StatusFn>>,
}

/// What `/-/status` serves: the agent's bundle, loops and events as JSON.
pub type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

impl Shared {
    /// State serving `exporter`, with at most `max_requests` scrapes at
    /// once (0 = no bound).
    pub fn new(exporter: Exporter, max_requests: usize) -> Arc<Shared> {
        let permits = if max_requests == 0 {
            Semaphore::MAX_PERMITS
        } else {
            max_requests
        };
        Arc::new(Shared {
            exporter: RwLock::new(Arc::new(exporter)),
            limit: Semaphore::new(permits),
            max_requests,
            ready: AtomicBool::new(false),
            last: Mutex::new(LastScrape::default()),
            scrapes: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            stall: Mutex::new(DEFAULT_STALL),
            status: RwLock::new(None),
        })
    }

    /// The collector set requests use now.
    pub fn exporter(&self) -> Arc<Exporter> {
        Arc::clone(&self.exporter.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the collector set; scrapes in flight keep the old one.
    pub fn swap(&self, exporter: Exporter) {
        *self.exporter.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(exporter);
    }

    /// Sets what `/-/status` serves.
    pub fn set_status(&self, f: StatusFn) {
        *self.status.write().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    /// Marks the service ready (`/-/ready` answers 200).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The last scrape's figures.
    pub fn last(&self) -> LastScrape {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Scrapes served since start.
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::Relaxed)
    }

    /// Sets how long a scrape may run before the scrape path counts as
    /// wedged (`/-/healthy` answers 503 and the watchdog stops).
    pub fn set_stall(&self, stall: Duration) {
        *self.stall.lock().unwrap_or_else(|e| e.into_inner()) = stall;
    }

    /// The age of the oldest scrape still running, if any.
    pub fn oldest_inflight(&self) -> Option<Duration> {
        let m = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        m.values().min().map(|t| t.elapsed())
    }

    /// Runs one scrape and encodes it; used by the handler and by the
    /// supervisor's first collection.
    pub fn render(
        &self,
        only: Option<&BTreeSet<String>>,
        format: Format,
        gzip: bool,
    ) -> std::io::Result<Vec<u8>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, start);
        let exporter = self.exporter();
        let scrape = exporter.scrape(only);
        let mut text = String::with_capacity(64 * 1024);
        encode::encode(&mut text, &scrape.families, format);
        let body = if gzip {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(text.len() / 4),
                flate2::Compression::fast(),
            );
            enc.write_all(text.as_bytes())?;
            enc.finish()?
        } else {
            text.into_bytes()
        };
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = LastScrape {
            families: scrape.families.len(),
            samples: scrape.samples(),
            duration: start.elapsed(),
            failed: scrape.failed.len(),
        };
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        Ok(body)
    }
}

/// The router serving `shared`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/status", get(status))
        .with_state(shared)
}

const LANDING: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>onprem agent</title></head>
<body><h1>onprem agent</h1>
<p>Edge agent for Raspberry Pi, Jetson, cluster-blade and GPU nodes.</p>
<ul><li><a href="/metrics">Metrics</a></li><li><a href="/-/healthy">Health</a></li><li><a href="/-/ready">Readiness</a></li></ul>
</body></html>
"#;

async fn landing() -> Html<&'static str> {
    Html(LANDING)
}

async fn healthy(State(s): State<Arc<Shared>>) -> Response {
    let stall = *s.stall.lock().unwrap_or_else(|e| e.into_inner());
    match s.oldest_inflight() {
        Some(age) if age > stall => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("a scrape has been running for {:.1}s\n", age.as_secs_f64()),
        )
            .into_response(),
        _ => (StatusCode::OK, "Healthy\n").into_response(),
    }
}

/// A scrape running longer than this marks the scrape path unhealthy,
/// unless systemd's watchdog period says otherwise.
pub const DEFAULT_STALL: Duration = Duration::from_secs(30);

async fn status(State(s): State<Arc<Shared>>) -> Response {
    let f = s.status.read().unwrap_or_else(|e| e.into_inner()).clone();
    match f {
        Some(f) => {
            let body = tokio::task::spawn_blocking(move || f()).await;
            match body {
                Ok(v) => (
                    StatusCode::OK,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    v.to_string(),
                )
                    .into_response(),
                Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "status failed\n").into_response(),
            }
        }
        None => (
            StatusCode::NOT_FOUND,
            "no loops run: the agent has no bundle (--bundle)\n",
        )
            .into_response(),
    }
}

async fn ready(State(s): State<Arc<Shared>>) -> Response {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "Ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Not ready\n").into_response()
    }
}

/// Parses `collect[]=` and `exclude[]=` against the enabled collectors.
pub fn parse_filter(
    query: Option<&str>,
    enabled: &[&'static str],
) -> Result<Option<BTreeSet<String>>, String> {
    let Some(q) = query else { return Ok(None) };
    let mut collect = Vec::new();
    let mut exclude = Vec::new();
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        match &*k {
            "collect[]" => collect.push(v.into_owned()),
            "exclude[]" => exclude.push(v.into_owned()),
            _ => {}
        }
    }
    if collect.is_empty() && exclude.is_empty() {
        return Ok(None);
    }
    if !collect.is_empty() && !exclude.is_empty() {
        return Err("collect[] and exclude[] cannot be combined\n".to_owned());
    }
    for n in collect.iter().chain(&exclude) {
        if !enabled.contains(&n.as_str()) {
            return Err(format!(
                "couldn't create filtered metrics handler: missing collector: {n}\n"
            ));
        }
    }
    Ok(Some(if collect.is_empty() {
        enabled
            .iter()
            .filter(|n| !exclude.iter().any(|e| e == *n))
            .map(|n| (*n).to_owned())
            .collect()
    } else {
        collect.into_iter().collect()
    }))
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut it = part.split(';').map(str::trim);
            let coding = it.next().unwrap_or("");
            let q = it
                .find_map(|p| p.strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && q > 0.0
        })
}

async fn metrics(State(s): State<Arc<Shared>>, headers: HeaderMap, uri: Uri) -> Response {
    let Ok(_permit) = s.limit.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Limit of concurrent requests reached ({}), try again later.\n",
                s.max_requests
            ),
        )
            .into_response();
    };
    let names = s.exporter().names();
    let only = match parse_filter(uri.query(), &names) {
        Ok(o) => o,
        Err(msg) => return (StatusCode::BAD_REQUEST, msg).into_response(),
    };
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let gzip = accepts_gzip(&headers);
    let shared = Arc::clone(&s);
    let body =
        tokio::task::spawn_blocking(move || shared.render(only.as_ref(), format, gzip)).await;
    match body {
        Ok(Ok(body)) => {
            let mut resp = body.into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            if gzip {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            resp
        }
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding failed: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("scrape failed: {e}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_filter_with_collect_and_exclude() {
        let en = ["cpu", "meminfo", "time"];
        let c = parse_filter(Some("collect[]=cpu&collect[]=time"), &en)
            .expect("ok")
            .expect("some");
        assert_eq!(c.into_iter().collect::<Vec<_>>(), ["cpu", "time"]);
        let e = parse_filter(Some("exclude%5B%5D=cpu"), &en)
            .expect("ok")
            .expect("some");
        assert_eq!(e.into_iter().collect::<Vec<_>>(), ["meminfo", "time"]);
        assert_eq!(parse_filter(Some("foo=bar"), &en), Ok(None));
    }

    #[test]
    fn returns_error_when_collector_is_not_enabled() {
        let en = ["cpu"];
        assert!(parse_filter(Some("collect[]=wifi"), &en).is_err());
        assert!(parse_filter(Some("collect[]=cpu&exclude[]=cpu"), &en).is_err());
    }

    #[test]
    fn can_read_accept_encoding() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("deflate, gzip;q=0.5"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        assert!(!accepts_gzip(&h));
    }
}
