//! The simulated world from the `onprem` binary alone: copied into an
//! empty directory (no `target/`, no `deps/`, no fake-library variable),
//! it still simulates a GPU server, whose fake `libnvidia-ml.so` it
//! carries inside itself and loads through the real NVML code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Client, samples};

/// The variables that would point the simulated world at a built library.
const FAKE_LIB_VARS: [&str; 2] = ["ONPREM_FAKE_NVML_LIB", "ONPREM_FAKE_NVML_OLD_LIB"];

/// An empty directory holding only a copy of the `onprem` binary.
fn lone_binary() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("onprem");
    let built = Path::new(env!("CARGO_BIN_EXE_onprem"));
    // A hard link is a copy as far as the binary can tell (its path is
    // the link's); copy where the link cannot be made.
    if std::fs::hard_link(built, &exe).is_err() {
        std::fs::copy(built, &exe).unwrap();
    }
    (dir, exe)
}

/// `exe ARGS` run in `dir`, without the fake-library variables.
fn command(exe: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(args).current_dir(dir);
    for var in FAKE_LIB_VARS {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn can_probe_a_simulated_gpu_server_from_the_binary_alone() {
    let (dir, exe) = lone_binary();
    let out = command(
        &exe,
        dir.path(),
        &[
            "hw",
            "probe",
            "--hardware",
            "sim",
            "--profile",
            "gpu-server",
        ],
    )
    .output()
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for (gpu, uuid) in [
        ("gpu/0", "GPU-00000000-0000-4000-8000-000000000001"),
        ("gpu/1", "GPU-00000000-0000-4000-8000-000000000002"),
    ] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(gpu))
            .unwrap_or_else(|| panic!("no {gpu} line:\n{text}"));
        let reading: Vec<&str> = line.split_whitespace().skip(1).take(2).collect();
        assert_eq!(reading, ["nvml", "gpu"], "{gpu} did not open:\n{text}");
        assert!(
            line.contains(&format!("NVIDIA H100 80GB HBM3 ({uuid}): ")) && line.contains(" °C"),
            "{gpu} without a reading:\n{text}"
        );
    }
}

/// An agent process started from the lone binary.
struct Agent {
    child: Child,
    addr: SocketAddr,
}

impl Agent {
    /// Starts `exe agent ARGS` on 127.0.0.1:0 and waits until it logs the
    /// address it listens on.
    fn start(exe: &Path, dir: &Path, args: &[&str]) -> Agent {
        let mut cmd = command(exe, dir, &["agent"]);
        cmd.args(args)
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[agent] {line}");
                // The receiver goes once the address is known; keep
                // draining so that the agent never blocks on its log.
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "agent did not report its address (exit: {status:?}); log:\n{}",
                    seen.join("\n")
                );
            };
            if line.contains("listening") {
                if let Some(rest) = line.split("address=").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
                    return Agent { child, addr };
                }
            }
            seen.push(line);
        }
    }

    fn scrape(&self) -> String {
        let r = Client::new(self.addr).get("/metrics", &[]).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the GPU example runs as it should: both GPUs up and read, every
/// loop ready, the fan zone controlled rather than in fail-safe.
fn gpu_node_runs(m: &str) -> bool {
    let up = samples(m, "onprem_device_up");
    let gpus_up = ["gpu/0", "gpu/1"].iter().all(|g| {
        up.iter()
            .any(|l| l.contains(&format!("device=\"{g}\"")) && l.ends_with(" 1"))
    });
    let conds = samples(m, "onprem_loop_condition");
    let ready = !conds.is_empty() && conds.iter().all(|l| l.contains("status=\"True\""));
    let zones = samples(m, "onprem_fan_zone_failsafe");
    let controlled = !zones.is_empty() && zones.iter().all(|l| l.ends_with(" 0"));
    gpus_up && ready && controlled && samples(m, "onprem_gpu_temperature_celsius").len() == 2
}

#[test]
fn can_run_the_gpu_server_example_from_the_binary_alone() {
    let (dir, exe) = lone_binary();
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/examples/gpu-server-pid.yaml");
    let bundle = dir.path().join("gpu-server-pid.yaml");
    std::fs::copy(&example, &bundle).unwrap();
    // An empty file: every setting at its default, whatever the machine's
    // /etc/onprem holds.
    let config = dir.path().join("agent.yaml");
    std::fs::write(&config, "").unwrap();
    let agent = Agent::start(
        &exe,
        dir.path(),
        &[
            "--hardware=sim",
            &format!("--bundle={}", bundle.display()),
            &format!("--state-dir={}", dir.path().join("state").display()),
            &format!("--config={}", config.display()),
            "--collector.disable-defaults",
            "--collector.devices",
            "--collector.loops",
        ],
    );
    // Polls the scrape (the loops become ready on their first periods).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = agent.scrape();
        if gpu_node_runs(&m) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "GPUs up, loops ready and the zone out of fail-safe within 60 s; last scrape:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
