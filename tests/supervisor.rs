//! The supervisor under systemd's eyes: `READY=1` after bind and first
//! collection, `WATCHDOG=1` only while the scrape path answers, SIGHUP
//! reloads without dropping a scrape in flight, SIGTERM stops cleanly.
//!
//! A FIFO in the textfile directory wedges a scrape on purpose: reading it
//! blocks until the test writes to it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Agent, fixture_flags, fixtures};

struct Notify {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Notify {
    fn bind(dir: &Path) -> Notify {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Notify { sock, path }
    }

    /// Datagrams received until `deadline`.
    fn collect_for(&self, d: Duration) -> Vec<String> {
        let end = Instant::now() + d;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut buf) {
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        out
    }

    /// Throws away what is queued (sent before now).
    fn drain(&self) {
        self.sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        while self.sock.recv(&mut buf).is_ok() {}
        self.sock.set_nonblocking(false).unwrap();
        self.sock
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
    }

    /// Waits up to 10 s for a datagram containing `needle`.
    fn wait_for(&self, needle: &str) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        while Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                if m.contains(needle) {
                    return m;
                }
                seen.push(m);
            }
        }
        panic!("no {needle:?} within 10 s; got {seen:?}");
    }
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// Starts a scrape that blocks on the FIFO; returns its thread.
fn wedged_scrape(agent: &Agent) -> std::thread::JoinHandle<(u16, String)> {
    let mut client = agent.client();
    std::thread::spawn(move || {
        let r = client.get("/metrics", &[]).unwrap();
        (r.status, r.text())
    })
}

/// A copy of the fixture tree in `dir`, and its `proc/loadavg`: made a
/// FIFO, it holds a scrape in the loadavg collector's read until
/// [`unwedge`] writes it (the textfile collector skips a FIFO; a file of
/// `/proc` cannot be refused for not being a regular one, procfs files
/// all say they are).
fn fixture_copy(dir: &Path) -> (PathBuf, PathBuf) {
    let root = dir.join("fixtures");
    common::copy_tree(&fixtures(), &root);
    let loadavg = root.join("proc/loadavg");
    (root, loadavg)
}

/// Lets the wedged scrape go on: `node_load1` reads 4.25.
fn unwedge(fifo: &Path) {
    std::fs::write(fifo, "4.25 0.41 0.37 2/241 31337\n").unwrap();
}

#[test]
fn notifies_ready_and_watchdog_only_while_scrape_path_is_alive() {
    let tmp = tempfile::tempdir().unwrap();
    let notify = Notify::bind(tmp.path());
    let (root, fifo) = fixture_copy(tmp.path());
    let args = fixture_flags(&root);
    let agent = Agent::start_with(&args, |cmd| {
        cmd.env("NOTIFY_SOCKET", &notify.path)
            .env("WATCHDOG_USEC", "400000");
    });
    let ready = notify.wait_for("READY=1");
    assert!(ready.contains("STATUS=serving"), "{ready}");
    notify.wait_for("WATCHDOG=1");

    // Wedge the scrape path for longer than the watchdog period.
    std::fs::remove_file(&fifo).unwrap();
    mkfifo(&fifo);
    let scrape = wedged_scrape(&agent);
    std::thread::sleep(Duration::from_millis(900));
    notify.drain();
    let during = notify.collect_for(Duration::from_millis(800));
    assert!(
        !during.iter().any(|m| m.contains("WATCHDOG=1")),
        "watchdog kept pinging while wedged: {during:?}"
    );
    assert_eq!(agent.client().get("/-/healthy", &[]).unwrap().status, 503);

    unwedge(&fifo);
    let (status, text) = scrape.join().unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("node_load1 4.25"), "{text}");
    notify.wait_for("WATCHDOG=1");
}

#[test]
fn sighup_reloads_without_dropping_a_scrape_and_sigterm_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let notify = Notify::bind(tmp.path());
    let cfg = tmp.path().join("agent.yaml");
    let (root, fifo) = fixture_copy(tmp.path());
    std::fs::write(&cfg, "collectors:\n  disable: [uname]\n").unwrap();
    let mut args = fixture_flags(&root);
    args.push(format!("--config={}", cfg.display()));
    let mut agent = Agent::start_with(&args, |cmd| {
        cmd.env("NOTIFY_SOCKET", &notify.path);
    });
    notify.wait_for("READY=1");
    assert!(!agent.scrape().contains("node_uname_info"));

    // A scrape in flight while the config changes.
    std::fs::remove_file(&fifo).unwrap();
    mkfifo(&fifo);
    let scrape = wedged_scrape(&agent);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&cfg, "collectors:\n  enable: [uname]\n").unwrap();
    agent.signal("HUP");
    notify.wait_for("RELOADING=1");
    agent.wait_log("configuration reloaded");
    unwedge(&fifo);
    let (status, old) = scrape.join().unwrap();
    assert_eq!(status, 200, "scrape in flight was dropped");
    assert!(
        !old.contains("node_uname_info"),
        "the scrape in flight finishes with the set it started with"
    );
    std::fs::remove_file(&fifo).unwrap();
    std::fs::write(&fifo, "0.52 0.41 0.37 2/241 31337\n").unwrap();
    assert!(
        agent.scrape().contains("node_uname_info"),
        "reload did not apply"
    );

    // A bad config is refused; the running one stays.
    std::fs::write(
        &cfg,
        "collectors:\n  enable: [uname]\n  vmstat:\n    fields: \"(\"\n",
    )
    .unwrap();
    agent.signal("HUP");
    let line = agent.wait_log("reload refused");
    assert!(line.contains("collectors.vmstat.fields"), "{line}");
    assert!(agent.scrape().contains("node_uname_info"));

    agent.signal("TERM");
    notify.wait_for("STOPPING=1");
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
}
