//! Hostile and careless input never stalls a node's loops: the real
//! binary, an agent on a simulated Pi 5 running a bundle file, is given a
//! bundle nested 100,000 levels deep, a FIFO, a 50 MB file and one whose
//! errors would be megabytes long, in place of its bundle; each is refused
//! with the limit it hit named, while the fans loop keeps ticking and
//! `/metrics` answers, and SIGTERM still stops it. `onprem validate` says
//! the same in a few lines and stops on SIGTERM in the middle of its
//! files; the control plane refuses a nested or oversized apply itself,
//! whatever the client checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Client, value};

/// How long any one condition may take to come true.
const LIMIT: Duration = Duration::from_secs(60);

/// The fans loop's runs, as `/metrics` counts them.
const FANS_RUNS: &str = "onprem_loop_runs_total{loop=\"fans\"}";

/// A bundle for the simulated Pi 5's fan.
fn bundle(version: u64) -> String {
    format!(
        "apiVersion: onprem/v1
kind: Bundle
metadata: {{ name: hostile, version: {version} }}
spec:
  hardware:
    profile: pi5-fan
  fans:
    period: 200ms
    zones:
      - name: cpu
        fans: [fan]
        sensors: [{{ name: cpu }}]
        controllers: [{{ type: curve, points: [[40, 20], [80, 60]] }}]
"
    )
}

/// A flow mapping nested `n` deep: `{a: {a: … 1 … }}`.
fn nested(n: usize) -> String {
    format!("{}1{}\n", "{a: ".repeat(n), "}".repeat(n))
}

/// Puts `path` in place at once, as `mv` does (the watch never sees a
/// half-written file).
fn put(dir: &Path, name: &str, make: impl FnOnce(&Path)) {
    let tmp = dir.join(format!("{name}.new"));
    let _ = std::fs::remove_file(&tmp);
    make(&tmp);
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn write(text: String) -> impl FnOnce(&Path) {
    move |p: &Path| std::fs::write(p, text).unwrap()
}

fn fifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

/// A file of `size` bytes that takes no room (zeros).
fn sparse(size: u64) -> impl FnOnce(&Path) {
    move |p: &Path| std::fs::File::create(p).unwrap().set_len(size).unwrap()
}

/// An agent process on simulated hardware running `dir/bundle.yaml`, with
/// every line of its log kept.
struct Node {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn start(dir: &Path) -> Node {
        let config = dir.join("agent.yaml");
        std::fs::write(&config, "bundle:\n  watch_interval: 0.2\n").unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_onprem"))
            .arg("agent")
            .arg(format!("--config={}", config.display()))
            .arg("--hardware=sim")
            .arg(format!("--bundle={}", dir.join("bundle.yaml").display()))
            .arg(format!("--state-dir={}", dir.join("state").display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .env("TMPDIR", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[agent] {}", line.chars().take(400).collect::<String>());
                lines.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + LIMIT;
        let addr = loop {
            let found = log.lock().unwrap().iter().find_map(|l| {
                let rest = l
                    .split("address=")
                    .nth(1)
                    .filter(|_| l.contains("listening"))?;
                rest.split_whitespace().next()?.parse::<SocketAddr>().ok()
            });
            if let Some(a) = found {
                break a;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the agent exited: {status}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the agent did not listen within {LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Node { child, addr, log }
    }

    fn get(&self, path: &str) -> String {
        let r = Client::new(self.addr).get(path, &[]).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.text()
    }

    /// Polls `/metrics` until `f` finds what it wants.
    fn until<T>(&self, what: &str, mut f: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + LIMIT;
        loop {
            let m = self.get("/metrics");
            if let Some(t) = f(&m) {
                return t;
            }
            assert!(Instant::now() < deadline, "{what}: not within {LIMIT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `/-/status` until it contains `needle`; returns it.
    fn status_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let s = self.get("/-/status");
            if s.contains(needle) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in /-/status within {LIMIT:?}: {}",
                s.chars().take(2000).collect::<String>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn runs(&self) -> f64 {
        value(&self.get("/metrics"), FANS_RUNS).unwrap_or(0.0)
    }

    /// Waits until the fans loop has run `n` more times.
    fn fans_tick(&self, n: f64) {
        let from = self.runs();
        self.until("the fans loop ticking", |m| {
            value(m, FANS_RUNS).filter(|r| *r >= from + n)
        });
    }

    fn rejected(&self, n: u32) {
        let line = format!("onprem_bundle_updates_total{{result=\"rejected\"}} {n}");
        self.until(&line, |m| m.lines().any(|l| l == line).then_some(()));
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, and the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {LIMIT:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node running version 1 of [`bundle`] in `dir`.
fn running(dir: &Path) -> Node {
    std::fs::write(dir.join("bundle.yaml"), bundle(1)).unwrap();
    let node = Node::start(dir);
    node.until("version 1 running", |m| {
        m.lines()
            .any(|l| l.starts_with("onprem_bundle_info") && l.contains("version=\"1\""))
            .then_some(())
    });
    node.fans_tick(1.0);
    node
}

#[test]
fn a_bundle_nested_100000_deep_is_refused_at_once_while_the_loops_run() {
    let dir = tempfile::tempdir().unwrap();
    let node = running(dir.path());
    put(dir.path(), "bundle.yaml", write(nested(100_000)));
    let status = node.status_with("MAX_DEPTH");
    assert!(
        status.contains("line 1: nesting deeper than 32 levels (limit MAX_DEPTH)"),
        "{status}"
    );
    node.rejected(1);
    // The loops and /metrics never stopped: the fans loop goes on.
    node.fans_tick(3.0);
    let m = node.get("/metrics");
    assert!(
        m.lines()
            .any(|l| l.starts_with("onprem_bundle_info") && l.contains("version=\"1\"")),
        "the running bundle stays"
    );
    assert!(node.stop().success());
}

#[test]
fn a_fifo_at_the_bundle_path_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let node = running(dir.path());
    put(dir.path(), "bundle.yaml", fifo);
    let status = node.status_with("not a regular file");
    assert!(status.contains("not a regular file (a FIFO)"), "{status}");
    node.rejected(1);
    node.fans_tick(3.0);
    // Said once by the watch, and again on SIGHUP.
    node.signal("HUP");
    node.rejected(2);
    node.fans_tick(2.0);
    // A bundle in its place runs.
    put(dir.path(), "bundle.yaml", write(bundle(2)));
    node.until("version 2 running", |m| {
        m.lines()
            .any(|l| l.starts_with("onprem_bundle_info") && l.contains("version=\"2\""))
            .then_some(())
    });
    assert!(node.stop().success());
}

#[test]
fn a_50_mb_bundle_is_refused_by_its_size_and_no_error_grows_with_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let node = running(dir.path());
    put(dir.path(), "bundle.yaml", sparse(50 << 20));
    let status = node.status_with("MAX_BUNDLE_BYTES");
    assert!(
        status.contains("52428800 bytes, over the limit of 1048576 bytes (MAX_BUNDLE_BYTES)"),
        "{status}"
    );
    node.rejected(1);
    node.fans_tick(2.0);

    // Just under the size limit, a 900,000-character value quoted in its
    // error, then 20,000 unknown fields: what the status, the events and
    // the log say stays short.
    let long = bundle(3).replacen(
        "period: 200ms",
        &format!("period: {}", "x".repeat(900_000)),
        1,
    );
    assert!(long.len() < 1 << 20);
    put(dir.path(), "bundle.yaml", write(long));
    node.rejected(2);
    let status = node.get("/-/status");
    assert!(
        status.len() < 100_000,
        "/-/status is {} bytes",
        status.len()
    );
    assert!(status.contains("characters left out"), "{status}");
    let mut many = bundle(4);
    for i in 0..20_000 {
        many.push_str(&format!("  x{i}: 1\n"));
    }
    put(dir.path(), "bundle.yaml", write(many));
    node.rejected(3);
    let status = node.get("/-/status");
    assert!(
        status.len() < 200_000,
        "/-/status is {} bytes",
        status.len()
    );
    assert!(status.contains("limit MAX_REREAD_BYTES"), "{status}");
    let refused: Vec<String> = node
        .log()
        .into_iter()
        .filter(|l| l.contains("bundle refused"))
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    // Each refusal's problems are logged once.
    let said = node.log();
    assert_eq!(
        said.iter().filter(|l| l.contains("52428800 bytes")).count(),
        1,
        "{said:?}"
    );
    let longest = said.iter().map(String::len).max().unwrap_or(0);
    assert!(longest < 100_000, "a log line of {longest} bytes");
    node.fans_tick(2.0);
    assert!(node.stop().success());
}

#[test]
fn at_start_the_fail_safe_duty_is_written_before_the_bundle_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // A first run leaves its bundle in the state directory.
    assert!(running(dir.path()).stop().success());

    // Restarted on a file nested 100,000 deep: it listens at once, runs
    // the last-known-good bundle, and the fail-safe duty was written
    // before the file was refused.
    std::fs::write(dir.path().join("bundle.yaml"), nested(100_000)).unwrap();
    let node = Node::start(dir.path());
    let status = node.status_with("\"source\":\"last-known-good\"");
    assert!(status.contains("\"rejectedTotal\":1"), "{status}");
    let m = node.get("/metrics");
    assert!(
        m.lines()
            .any(|l| l.starts_with("onprem_bundle_info") && l.contains("version=\"1\"")),
        "{m}"
    );
    let log = node.log();
    let at = |needle: &str| {
        log.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{}", log.join("\n")))
    };
    assert!(
        at("fail-safe duty written") < at("bundle refused"),
        "{}",
        log.join("\n")
    );
    assert!(log[at("reason=\"Rejected\"")].contains("MAX_DEPTH"));
    node.fans_tick(2.0);
    assert!(node.stop().success());
}

// ---- onprem validate -----------------------------------------------------

/// `onprem ARGS`, killed (and the test failed) if it has not ended within
/// [`LIMIT`].
fn onprem(args: &[&Path]) -> std::process::Output {
    let child = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("onprem {args:?} did not end within {LIMIT:?}");
        }
    }
}

fn validate(files: &[&Path]) -> (i32, String) {
    let mut args: Vec<&Path> = vec![Path::new("validate")];
    args.extend_from_slice(files);
    let out = onprem(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_refuses_a_nested_a_huge_and_a_fifo_file_in_a_few_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    put(d, "nested.yaml", write(nested(100_000)));
    put(d, "huge.yaml", sparse(50 << 20));
    put(d, "fifo.yaml", fifo);
    let (code, err) = validate(&[&d.join("nested.yaml")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "nested.yaml: not a bundle: line 1: nesting deeper than 32 levels (limit MAX_DEPTH)"
        ),
        "{err}"
    );
    assert!(err.len() < 1000, "{err}");

    let (code, err) = validate(&[&d.join("huge.yaml")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot read the file: 52428800 bytes, over the limit of 1048576 bytes (MAX_BUNDLE_BYTES)"),
        "{err}"
    );
    assert!(err.len() < 1000, "{err}");

    let (code, err) = validate(&[&d.join("fifo.yaml")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a regular file (a FIFO)"), "{err}");
}

#[test]
fn validate_prints_at_most_max_errors_problems_and_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = bundle(1);
    for i in 0..1000 {
        text.push_str(&format!("  x{i}: 1\n"));
    }
    put(dir.path(), "many.yaml", write(text));
    let (code, err) = validate(&[&dir.path().join("many.yaml")]);
    assert_eq!(code, 1, "{err}");
    let problems: Vec<&str> = err.lines().filter(|l| l.contains("many.yaml: ")).collect();
    assert_eq!(problems.len(), 51, "{err}");
    assert!(
        problems[50].contains("more problems not listed (the first 50 are; limit MAX_ERRORS)"),
        "{}",
        problems[50]
    );
}

#[test]
fn validate_stops_at_once_on_sigterm_in_the_middle_of_its_files() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MB of unknown fields: seconds of parsing each, a hundred times.
    let mut text =
        "apiVersion: onprem/v1\nkind: Bundle\nmetadata: {name: slow}\nspec:\n".to_owned();
    let mut i = 0;
    while text.len() < 1_000_000 {
        text.push_str(&format!("  x{i:06}: 1\n"));
        i += 1;
    }
    let file = dir.path().join("slow.yaml");
    std::fs::write(&file, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .arg("validate")
        .args(std::iter::repeat_n(&file, 100))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    // One file done: it is in the middle of the next.
    let first = rx.recv_timeout(Duration::from_secs(300));
    if first.is_err() {
        let _ = child.kill();
        panic!("no file checked within 300 s");
    }
    let ok = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("onprem validate still running {LIMIT:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(143), "{status}");
    let said: Vec<String> = rx.try_iter().collect();
    assert!(
        said.iter().any(|l| l.contains("stopped by a signal")),
        "{said:?}"
    );
}

// ---- the control plane ---------------------------------------------------

/// A Bundle record named `name` whose spec holds `extra` lines.
fn record(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: onprem/v1\nkind: Bundle\nmetadata: {{name: {name}}}\nspec:\n  selector: all\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_refuses_a_nested_or_oversized_apply_itself() {
    use onprem::proto::v1 as pb;
    use tokio_util::sync::CancellationToken;
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = common::fleet::control_plane(dir.path(), &stop).await;
    let admin = common::fleet::admin(&cp);
    let doc = |text: String| pb::Document {
        source: "f.yaml".into(),
        text,
    };

    // Nested 20,000 deep inside a record: refused before it is parsed,
    // nothing stored.
    let deep = record("deep", &format!("  fans: {}", nested(20_000)));
    let core = std::sync::Arc::clone(&cp.core);
    let a = admin.clone();
    let r = tokio::task::spawn_blocking(move || core.apply(&a, &[doc(deep)], false))
        .await
        .unwrap()
        .unwrap();
    assert!(!r.applied);
    let message = &r.results[0].errors[0].message;
    assert_eq!(
        message, "line 6: nesting deeper than 32 levels (limit MAX_DEPTH)",
        "{r:?}"
    );

    // A record over MAX_RECORD_BYTES; documents over MAX_APPLY_BYTES.
    let big = format!(
        "apiVersion: onprem/v1\nkind: Facility\nmetadata: {{name: big}}\nspec:\n  description: '{}'\n",
        "y".repeat(1_500_000)
    );
    let core = std::sync::Arc::clone(&cp.core);
    let a = admin.clone();
    let r = tokio::task::spawn_blocking(move || core.apply(&a, &[doc(big)], false))
        .await
        .unwrap()
        .unwrap();
    assert!(!r.applied);
    assert!(
        r.results[0].errors[0]
            .message
            .contains("(MAX_RECORD_BYTES)"),
        "{:?}",
        r.results[0].errors
    );
    let huge = vec![doc("#".repeat(3 << 20)), doc("#".repeat(2 << 20))];
    let core = std::sync::Arc::clone(&cp.core);
    let a = admin.clone();
    let e = tokio::task::spawn_blocking(move || core.apply(&a, &huge, false))
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("(MAX_APPLY_BYTES)"), "{e}");

    // The CLI over gRPC: refused (exit 7), the limit named.
    let config = dir.path().join("login.yaml");
    let token = cp.admin_token.clone().unwrap();
    common::cli::expect(
        &config,
        &[
            "login",
            &cp.url(),
            "--token",
            &token,
            "--ca-fingerprint",
            &cp.ca_fingerprint,
        ],
        0,
    )
    .await;
    let file = dir.path().join("deep.yaml");
    std::fs::write(
        &file,
        record("deep", &format!("  fans: {}", nested(20_000))),
    )
    .unwrap();
    let r = common::cli::expect(&config, &["apply", "-f", file.to_str().unwrap()], 7).await;
    assert!(r.stderr.contains("MAX_DEPTH"), "{r:?}");
    // Too much for one apply: refused before it is sent (exit 2).
    let file: PathBuf = dir.path().join("huge.yaml");
    std::fs::write(&file, "#".repeat(5 << 20)).unwrap();
    let r = common::cli::expect(&config, &["apply", "-f", file.to_str().unwrap()], 2).await;
    assert!(r.stderr.contains("(MAX_APPLY_BYTES)"), "{r:?}");
    stop.cancel();
}
