//! The remote-write forwarder against real receivers: Debian's
//! Prometheus (`/usr/bin/prometheus`, package `prometheus`) run by the
//! test with `--web.enable-remote-write-receiver`, the same without it
//! (a 404: the batch is dropped), a port where nothing listens (retries,
//! then the batch is given up), and a scripted server that answers 503
//! before it accepts (retries, and the request as sent on the wire).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use onprem::controlplane::remote_write::{self, Config, Forwarder, Point, Stats};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

/// A series' labels as (name, value) pairs.
type Labels = Vec<(String, String)>;

/// A Prometheus server on a loopback port, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with no scrape jobs, optionally accepting
    /// remote write, and waits until `/-/ready` answers 200.
    fn start(receiver: bool) -> Prometheus {
        let bin = common::require("prometheus", "the Debian package prometheus");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 1h\nscrape_configs: []\n",
        )
        .unwrap();
        let addr = free_addr();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"));
        if receiver {
            cmd.arg("--web.enable-remote-write-receiver");
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut p = Prometheus {
            child: cmd.spawn().expect("spawn prometheus"),
            addr,
            dir,
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(r) = common::Client::new(addr).get("/-/ready", &[]) {
                if r.status == 200 {
                    return p;
                }
            }
            if let Some(status) = p.child.try_wait().unwrap() {
                panic!("prometheus exited ({status}); log:\n{}", p.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {DEADLINE:?}; log:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    fn version(&self) -> String {
        let r = common::Client::new(self.addr)
            .get("/api/v1/status/buildinfo", &[])
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["data"]["version"].as_str().unwrap_or("?").to_owned()
    }

    /// The samples of a range-vector query, by series: (metric name,
    /// device) → [(timestamp ms, value)].
    fn samples(&self, selector: &str) -> BTreeMap<(String, String), Vec<(i64, f64)>> {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", selector)
            .finish();
        let r = common::Client::new(self.addr)
            .get(&format!("/api/v1/query?{q}"), &[])
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["data"]["resultType"], "matrix", "{v}");
        let mut out = BTreeMap::new();
        for series in v["data"]["result"].as_array().unwrap() {
            let m = &series["metric"];
            let key = (
                m["__name__"].as_str().unwrap().to_owned(),
                m["device"].as_str().unwrap().to_owned(),
            );
            let values = series["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| {
                    let ts = (pair[0].as_f64().unwrap() * 1000.0).round() as i64;
                    let value: f64 = pair[1].as_str().unwrap().parse().unwrap();
                    (ts, value)
                })
                .collect();
            out.insert(key, values);
        }
        out
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address where nothing listens (bound, then released).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn point(name: &str, device: &str, value: f64, timestamp_ms: i64) -> Point {
    Point {
        name: name.into(),
        labels: vec![
            ("facility".into(), "lab".into()),
            ("device".into(), device.into()),
        ],
        value,
        timestamp_ms,
    }
}

/// A gauge's metadata, as an agent uploads it.
fn gauge(family: &str, help: &str) -> onprem::proto::v1::MetricMetadata {
    onprem::proto::v1::MetricMetadata {
        family: family.into(),
        r#type: onprem::proto::v1::MetricType::Gauge as i32,
        help: help.into(),
        unit: String::new(),
    }
}

/// Polls `f` until it returns `Ok`, panicking with `what` and the last
/// state (its `Err`) after [`DEADLINE`].
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what} within {DEADLINE:?}; last: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_stats(fw: &Forwarder, what: &str, done: impl Fn(&Stats) -> bool) -> Stats {
    wait_for(what, || {
        let s = fw.stats();
        if done(&s) {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
}

fn fast(url: String) -> Config {
    Config {
        flush_interval: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_retries: 3,
        ..Config::new(url)
    }
}

#[test]
fn can_forward_points_into_prometheus() {
    let prom = Prometheus::start(true);
    eprintln!("prometheus {}", prom.version());
    let rt = runtime();
    let _rt = rt.enter();
    let stop = CancellationToken::new();
    let cfg = Config {
        extra_labels: vec![("source".into(), "onprem-test".into())],
        ..fast(prom.write_url())
    };
    let fw = Forwarder::start(cfg, stop.clone()).unwrap();

    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (t1, t2, t3) = (now - 30_000, now - 20_000, now - 10_000);
    let temp = "onprem_rw_test_temperature_celsius";
    let fan = "onprem_rw_test_fan_rpm";
    // Requests carry the families' metadata; Prometheus takes them.
    fw.learn(&[gauge(temp, "Temperature."), gauge(fan, "Fan speed.")]);
    // Out of order, split over calls: the forwarder sorts within a series.
    fw.send(vec![
        point(temp, "x", 41.5, t3),
        point(temp, "y", 38.25, t1),
        point(fan, "x", 2400.0, t2),
        point(temp, "x", 40.0, t1),
    ]);
    fw.send(vec![
        point(temp, "y", 39.0, t2),
        point(temp, "x", 40.75, t2),
        point(fan, "x", 2350.0, t1),
    ]);
    fw.send(vec![
        point(temp, "y", -1.5, t3),
        point(fan, "x", 2500.0, t3),
    ]);

    let want: BTreeMap<(String, String), Vec<(i64, f64)>> = [
        ((fan, "x"), vec![(t1, 2350.0), (t2, 2400.0), (t3, 2500.0)]),
        ((temp, "x"), vec![(t1, 40.0), (t2, 40.75), (t3, 41.5)]),
        ((temp, "y"), vec![(t1, 38.25), (t2, 39.0), (t3, -1.5)]),
    ]
    .into_iter()
    .map(|((n, d), v)| ((n.to_owned(), d.to_owned()), v))
    .collect();
    let selector = r#"{facility="lab", source="onprem-test"}[10m]"#;
    wait_for("prometheus to hold exactly the points sent", || {
        let got = prom.samples(selector);
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    // And by name, as a user would ask.
    let x = prom.samples(&format!(r#"{temp}{{device="x"}}[10m]"#));
    assert_eq!(x.len(), 1);
    let s = wait_stats(&fw, "9 samples counted as sent", |s| s.sent_samples == 9);
    assert_eq!(
        (s.failed_batches, s.dropped_samples, s.retries),
        (0, 0, 0),
        "{s:?}"
    );
    stop.cancel();
}

#[test]
fn drops_the_batch_when_the_receiver_refuses_it() {
    // Without the receiver flag, Prometheus answers 404 on /api/v1/write.
    let prom = Prometheus::start(false);
    let rt = runtime();
    let _rt = rt.enter();
    let stop = CancellationToken::new();
    let fw = Forwarder::start(fast(prom.write_url()), stop.clone()).unwrap();
    fw.send(vec![
        point("onprem_rw_test_refused", "x", 1.0, 1),
        point("onprem_rw_test_refused", "y", 2.0, 1),
    ]);
    let s = wait_stats(&fw, "a failed batch", |s| s.failed_batches == 1);
    assert_eq!(
        (s.retries, s.dropped_samples, s.sent_samples),
        (0, 2, 0),
        "{s:?}"
    );
    let e = s.last_error.unwrap_or_default();
    eprintln!("last_error: {e}");
    assert!(e.contains("404"), "{e}");
    assert!(
        e.contains("remote write receiver"),
        "the receiver's own text: {e}"
    );
    stop.cancel();
}

#[test]
fn retries_then_gives_up_when_nothing_listens() {
    let url = format!("http://{}/api/v1/write", free_addr());
    let rt = runtime();
    let _rt = rt.enter();
    let stop = CancellationToken::new();
    let fw = Forwarder::start(fast(url), stop.clone()).unwrap();
    fw.send(vec![point("onprem_rw_test_lost", "x", 1.0, 1)]);
    let s = wait_stats(&fw, "a batch given up", |s| s.failed_batches == 1);
    assert_eq!(
        (s.retries, s.dropped_samples, s.sent_samples),
        (3, 1, 0),
        "{s:?}"
    );
    let e = s.last_error.unwrap_or_default();
    eprintln!("last_error: {e}");
    assert!(
        e.contains("connect") && e.contains("gave up after 3 retries"),
        "{e}"
    );
    // The sender carries on with the next batch.
    fw.send(vec![point("onprem_rw_test_lost", "x", 2.0, 2)]);
    let s = wait_stats(&fw, "a second batch given up", |s| s.failed_batches == 2);
    assert_eq!((s.retries, s.dropped_samples), (6, 2), "{s:?}");
    stop.cancel();
}

/// One request as the scripted server saw it.
struct Seen {
    request_line: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A server that answers `statuses` in turn (then 204), over keep-alive
/// connections, reporting each request.
fn scripted_server(statuses: Vec<u16>) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut w = conn;
            while let Some(seen) = read_request(&mut r) {
                let status = statuses.next().unwrap_or(204);
                let text = if status == 204 { "" } else { "busy" };
                let answer = format!(
                    "HTTP/1.1 {status} Scripted\r\ncontent-length: {}\r\n\r\n{text}",
                    text.len()
                );
                // Reported before the answer, so the test has seen every
                // request by the time the forwarder counts the last one.
                if tx.send(seen).is_err() || w.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            }
        }
    });
    (addr, rx)
}

fn read_request(r: &mut impl BufRead) -> Option<Seen> {
    let mut request_line = String::new();
    if r.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Seen {
        request_line: request_line.trim_end().to_owned(),
        headers,
        body,
    })
}

#[test]
fn retries_on_5xx_and_sends_the_remote_write_headers() {
    let (addr, seen) = scripted_server(vec![503, 500]);
    let rt = runtime();
    let _rt = rt.enter();
    let stop = CancellationToken::new();
    let cfg = Config {
        extra_labels: vec![("fleet".into(), "eu".into())],
        ..fast(format!("http://{addr}/api/v1/write"))
    };
    let fw = Forwarder::start(cfg, stop.clone()).unwrap();
    fw.learn(&[
        gauge("onprem_rw_test_up", "1 when up."),
        gauge("onprem_rw_test_unsent", "No series of it is sent."),
    ]);
    fw.send(vec![
        point("onprem_rw_test_up", "b", 1.0, 2000),
        point("onprem_rw_test_up", "a", 0.5, 1000),
    ]);
    let s = wait_stats(&fw, "the batch sent", |s| s.sent_samples == 2);
    assert_eq!(
        (s.retries, s.failed_batches, s.dropped_samples),
        (2, 0, 0),
        "{s:?}"
    );
    assert!(
        s.last_error.as_deref().is_some_and(|e| e.contains("500")),
        "{s:?}"
    );

    let requests: Vec<Seen> = seen.try_iter().collect();
    assert_eq!(requests.len(), 3, "two refused, one accepted");
    let last = &requests[2];
    assert_eq!(last.request_line, "POST /api/v1/write HTTP/1.1");
    let h = |k: &str| last.headers.get(k).map(String::as_str);
    assert_eq!(h("content-encoding"), Some("snappy"));
    assert_eq!(h("content-type"), Some("application/x-protobuf"));
    assert_eq!(h("x-prometheus-remote-write-version"), Some("0.1.0"));
    assert_eq!(
        h("user-agent"),
        Some(format!("onprem/{}", onprem::VERSION).as_str())
    );
    assert!(
        requests.iter().all(|r| r.body == last.body),
        "same batch each time"
    );

    let req = remote_write::decode(&last.body).unwrap();
    let series: Vec<(Labels, Vec<(i64, f64)>)> = req
        .timeseries
        .iter()
        .map(|ts| {
            (
                ts.labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
                ts.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
            )
        })
        .collect();
    let labels = |device: &str| -> Labels {
        [
            ("__name__", "onprem_rw_test_up"),
            ("device", device),
            ("facility", "lab"),
            ("fleet", "eu"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    };
    assert_eq!(
        series,
        [
            (labels("a"), vec![(1000, 0.5)]),
            (labels("b"), vec![(2000, 1.0)])
        ]
    );
    // The family's metadata, once, as the node said it; none for a
    // family without series in the request.
    assert_eq!(
        req.metadata,
        [remote_write::MetricMetadata {
            r#type: 2,
            metric_family_name: "onprem_rw_test_up".into(),
            help: "1 when up.".into(),
            unit: String::new(),
        }]
    );
    stop.cancel();
}
