//! `onprem watch` as a user runs it: the real binary against a control
//! plane that is a child process, stopped and started again on the same
//! port while the watches run, with an enrolled simulated node whose
//! bundle changes.
//!
//! `watch devices` prints a row only when what it shows changed;
//! `watch events` starts with the recent events, names devices by name;
//! columns stay under their headers; a restart of the control plane is
//! one line on stderr each way (no library's documentation URL) and the
//! watch carries on without repeating what it showed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Agent;
use common::cli::{Run, onprem};
use common::fleet::bundle_record;
use serde_json::Value;

/// How long any one condition may take to come true.
const LIMIT: Duration = Duration::from_secs(60);

/// Polls `f` every 100 ms until it gives a value; panics after [`LIMIT`].
async fn poll<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {LIMIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs and insists on success.
async fn ok(config: &Path, args: &[&str]) -> Run {
    let r = onprem(config, args).await;
    assert_eq!(r.code, 0, "onprem {args:?}: {}{}", r.stdout, r.stderr);
    r
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `onprem control-plane` on a fixed loopback port, kept across restarts.
struct Cp {
    state: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Cp {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_onprem"))
            .arg("control-plane")
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["--heartbeat-seconds", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Starts it and logs `config` in as its first admin.
    async fn start(dir: &Path, config: &Path) -> Cp {
        let mut cp = Cp {
            state: dir.join("cp"),
            log: dir.join("cp.log"),
            port: free_port(),
            child: None,
        };
        cp.spawn();
        let state = cp.state.clone();
        let admin = poll("the control plane's CA and admin token", || {
            let state = state.clone();
            async move {
                std::fs::read_to_string(state.join("ca.crt")).ok()?;
                let admin = std::fs::read_to_string(state.join("admin.token")).ok()?;
                Some(admin.trim().to_owned())
            }
        })
        .await;
        let ca = cp.state.join("ca.crt");
        let url = cp.url();
        poll("the control plane to take a login", || async {
            let r = onprem(
                config,
                &["login", &url, "--token", &admin, "--ca-file", ca.to_str()?],
            )
            .await;
            (r.code == 0).then_some(())
        })
        .await;
        cp
    }

    /// SIGTERM, and a clean exit.
    async fn term(&mut self) {
        let mut c = self.child.take().unwrap();
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = poll("the control plane to stop on SIGTERM", || {
            let s = c.try_wait().unwrap();
            async move { s }
        })
        .await;
        assert!(status.success(), "control plane exited with {status}");
    }

    /// Starts it again on the same port and state; waits until it serves.
    async fn restart(&mut self, config: &Path) {
        self.spawn();
        poll("the control plane to serve again", || async {
            (onprem(config, &["get", "devices"]).await.code == 0).then_some(())
        })
        .await;
    }
}

impl Drop for Cp {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- control plane log (last lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// A running `onprem watch …`, its output collected line by line.
struct Watch {
    what: String,
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn start(config: &Path, args: &[&str]) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_onprem"))
            .arg("watch")
            .args(args)
            .env("ONPREM_CONFIG", config)
            .env_remove("ONPREM_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |r: Box<dyn std::io::Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let l = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { break };
                    l.lock().unwrap().push(line);
                }
            });
            lines
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        Watch {
            what: format!("watch {}", args.join(" ")),
            child,
            out,
            err,
        }
    }

    fn out(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }

    fn err(&self) -> Vec<String> {
        self.err.lock().unwrap().clone()
    }

    /// Waits until a line of standard output satisfies `f`.
    async fn until_out(&self, what: &str, f: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        while !self.out().iter().any(|l| f(l)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: timed out after {LIMIT:?} waiting for {what}; stdout {:#?} stderr {:#?}",
                self.what,
                self.out(),
                self.err()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until standard error holds a line containing `needle`.
    async fn until_err(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        while !self.err().iter().any(|l| l.contains(needle)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: timed out after {LIMIT:?} waiting for {needle:?} on stderr; stdout {:#?} stderr {:#?}",
                self.what,
                self.out(),
                self.err()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM: it stops at once, exit 0.
    async fn stop(mut self) -> (Vec<String>, Vec<String>) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let status: ExitStatus = poll(&format!("{} to stop", self.what), || {
            let s = self.child.try_wait().unwrap();
            async move { s }
        })
        .await;
        assert!(
            status.success(),
            "{} exited with {status}; stderr {:#?}",
            self.what,
            self.err()
        );
        // Its pipes close with it: what the readers hold is all there is.
        poll(&format!("{}'s output to end", self.what), || {
            let done = Arc::strong_count(&self.out) == 1 && Arc::strong_count(&self.err) == 1;
            async move { done.then_some(()) }
        })
        .await;
        (self.out(), self.err())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The start of each column of a header line (by its words).
fn column_starts(header: &str) -> Vec<(String, usize)> {
    let mut starts = Vec::new();
    let mut prev = ' ';
    for (i, c) in header.char_indices() {
        if c != ' ' && prev == ' ' {
            let word: String = header[i..].chars().take_while(|c| *c != ' ').collect();
            starts.push((word, i));
        }
        prev = c;
    }
    starts
}

/// Table rows under their header (the latest header line above each
/// row): every cell starts where its header does, after a space; cells of
/// `may_be_empty` columns may be blank. Returns the rows as maps from
/// header to cell.
fn parse_aligned(
    what: &str,
    lines: &[String],
    first: &str,
    may_be_empty: &[&str],
) -> Vec<BTreeMap<String, String>> {
    let mut header: Option<Vec<(String, usize)>> = None;
    let mut rows = Vec::new();
    for l in lines {
        if l.starts_with(first) {
            header = Some(column_starts(l));
            continue;
        }
        let h = header
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: a row before any header: {l:?}\n{lines:#?}"));
        let mut row = BTreeMap::new();
        for (i, (name, at)) in h.iter().enumerate() {
            let end = h.get(i + 1).map_or(l.len(), |(_, e)| (*e).min(l.len()));
            let cell = l.get(*at..end).unwrap_or_default();
            let blank_ok = may_be_empty.contains(&name.as_str());
            assert!(
                *at == 0 || l.as_bytes().get(at - 1) == Some(&b' '),
                "{what}: column {name} does not start under its header in {l:?}\n{lines:#?}"
            );
            assert!(
                blank_ok || cell.starts_with(|c: char| c != ' '),
                "{what}: column {name} does not start under its header in {l:?}\n{lines:#?}"
            );
            row.insert(name.clone(), cell.trim().to_owned());
        }
        rows.push(row);
    }
    rows
}

/// The JSON record of device `name`, as `get` shows it.
async fn device(config: &Path, name: &str) -> Value {
    let r = onprem(config, &["get", "device", name, "-o", "json"]).await;
    if r.code != 0 {
        return Value::Null;
    }
    // `get KIND NAME -o json` prints the record (metadata, status).
    serde_json::from_str(&r.stdout).unwrap_or(Value::Null)
}

/// The bundle version device `name` runs, when online.
async fn running(config: &Path, name: &str) -> Option<u64> {
    let d = device(config, name).await;
    let s = &d["status"];
    (s["online"] == true).then(|| s["current"]["version"].as_u64().unwrap_or(0))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The fan bundle for `board=pi5` with the fans' period `period`.
fn fan_bundle(period: &str) -> String {
    bundle_record("fans", "{matchLabels: {board: pi5}}", "").replacen(
        "period: 1s",
        &format!("period: {period}"),
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_changes_only_starts_with_recent_events_and_rides_out_a_control_plane_restart()
{
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("admin.yaml");
    let mut cp = Cp::start(dir.path(), &config).await;
    let url = cp.url();
    let fingerprint = {
        let pem = std::fs::read_to_string(cp.state.join("ca.crt")).unwrap();
        let der = onprem::controlplane::pki::parse_certs(&pem, "ca.crt")
            .unwrap()
            .remove(0);
        format!("sha256:{}", onprem::controlplane::pki::fingerprint(&der))
    };

    // A bundle, and a node that runs it.
    let b1 = write(dir.path(), "b1.yaml", &fan_bundle("1s"));
    ok(&config, &["apply", "-f", b1.to_str().unwrap()]).await;
    let enrol = ok(
        &config,
        &["token", "create", "--enrol", "--label", "board=pi5"],
    )
    .await
    .stdout
    .trim()
    .to_owned();
    let state = dir.path().join("pi-w");
    let agent_args = vec![
        "--hardware=sim".to_owned(),
        format!("--state-dir={}", state.display()),
        format!("--control-plane={url}"),
        format!("--enrol-token={enrol}"),
        format!("--ca-fingerprint={fingerprint}"),
        "--device-name=pi-w".to_owned(),
        "--collector.disable-defaults".to_owned(),
        "--collector.devices".to_owned(),
    ];
    let _agent = tokio::task::spawn_blocking(move || Agent::start(&agent_args))
        .await
        .unwrap();
    poll("pi-w to run version 1", || async {
        (running(&config, "pi-w").await == Some(1)).then_some(())
    })
    .await;
    let id = device(&config, "pi-w").await["metadata"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!id.is_empty() && id != "pi-w");

    // Events: the recent ones first (the enrolment happened before the
    // watch began), the device by its name.
    let events = Watch::start(&config, &["events"]);
    let devices = Watch::start(&config, &["devices"]);
    let devices_json = Watch::start(&config, &["devices", "-o", "json"]);
    events
        .until_out("the enrolment, from before the watch", |l| {
            l.contains("Enrolled")
        })
        .await;
    devices
        .until_out("pi-w at version 1", |l| {
            l.contains("pi-w") && l.contains("fans@1")
        })
        .await;

    // Changes: a new bundle version, rolled out and applied.
    let b2 = write(dir.path(), "b2.yaml", &fan_bundle("2s"));
    ok(&config, &["apply", "-f", b2.to_str().unwrap()]).await;
    devices
        .until_out("pi-w at version 2", |l| {
            l.contains("pi-w") && l.contains("fans@2 ")
        })
        .await;
    events
        .until_out("version 2 applied", |l| {
            l.contains("BundleApplied") && l.contains("version 2")
        })
        .await;
    poll("pi-w to run version 2", || async {
        (running(&config, "pi-w").await == Some(2)).then_some(())
    })
    .await;

    // The control plane restarts: each watch says so once each way and
    // goes on.
    cp.term().await;
    cp.restart(&config).await;
    for w in [&events, &devices, &devices_json] {
        w.until_err("reconnected").await;
    }
    poll("pi-w back online", || async {
        running(&config, "pi-w").await.is_some().then_some(())
    })
    .await;
    let b3 = write(dir.path(), "b3.yaml", &fan_bundle("3s"));
    ok(&config, &["apply", "-f", b3.to_str().unwrap()]).await;
    devices
        .until_out("pi-w at version 3, after the restart", |l| {
            l.contains("pi-w") && l.contains("fans@3 ")
        })
        .await;
    devices_json
        .until_out("pi-w at version 3, after the restart", |l| {
            l.contains("\"pi-w\"") && l.contains("\"version\":3")
        })
        .await;
    events
        .until_out("version 3 applied, after the restart", |l| {
            l.contains("BundleApplied") && l.contains("version 3")
        })
        .await;

    let (ev_out, ev_err) = events.stop().await;
    let (dev_out, dev_err) = devices.stop().await;
    let (json_out, json_err) = devices_json.stop().await;

    // stderr: one line lost, one reconnected, plain words, no URL but the
    // control plane's own.
    for (what, err) in [
        ("events", &ev_err),
        ("devices", &dev_err),
        ("devices -o json", &json_err),
    ] {
        let lost: Vec<&String> = err
            .iter()
            .filter(|l| l.starts_with(&format!("onprem: connection to {url} lost (")))
            .collect();
        assert_eq!(lost.len(), 1, "watch {what}: {err:#?}");
        assert!(
            lost[0].ends_with("; reconnecting"),
            "watch {what}: {err:#?}"
        );
        assert_eq!(
            err.iter().filter(|l| l.contains("reconnected")).count(),
            1,
            "watch {what}: {err:#?}"
        );
        for l in err {
            let mut rest = l.as_str();
            while let Some(i) = rest.find("http") {
                assert!(
                    rest[i..].starts_with(&url),
                    "watch {what}: a URL that is not the control plane's: {l:?}"
                );
                rest = &rest[i + url.len()..];
            }
        }
    }

    // Events: aligned, named, none twice (the restart repeats none).
    let rows = parse_aligned("watch events", &ev_out, "AGE", &["DEVICE"]);
    assert!(
        ev_out.iter().all(|l| !l.contains(&id)),
        "a device id instead of its name: {ev_out:#?}"
    );
    let enrolled: Vec<_> = rows.iter().filter(|r| r["REASON"] == "Enrolled").collect();
    assert_eq!(enrolled.len(), 1, "{ev_out:#?}");
    assert_eq!(enrolled[0]["DEVICE"], "pi-w", "{ev_out:#?}");
    for v in [2, 3] {
        let applied = rows
            .iter()
            .filter(|r| {
                r["REASON"] == "BundleApplied"
                    && r["MESSAGE"].starts_with(&format!("bundle version {v}:"))
            })
            .count();
        assert_eq!(applied, 1, "version {v} applied, once: {ev_out:#?}");
    }
    // The enrolment came first: the recent events before the new ones.
    assert_eq!(rows[0]["REASON"], "Enrolled", "{ev_out:#?}");

    // Devices: aligned; a row per change, never the same row twice in a
    // row for a device.
    let rows = parse_aligned("watch devices", &dev_out, "ID", &[]);
    assert!(rows.len() >= 3, "{dev_out:#?}");
    let mut last: BTreeMap<String, &BTreeMap<String, String>> = BTreeMap::new();
    for r in &rows {
        if let Some(prev) = last.insert(r["NAME"].clone(), r) {
            assert_ne!(prev, r, "the same row twice in a row:\n{dev_out:#?}");
        }
    }
    // JSON: one object per line, never the same one twice in a row.
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for l in &json_out {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
        assert!(v.is_object(), "{l}");
        if let Some(prev) = last.insert(v["id"].as_str().unwrap().to_owned(), v.clone()) {
            assert_ne!(prev, v, "the same object twice in a row:\n{json_out:#?}");
        }
    }
}
