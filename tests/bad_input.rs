//! Bad input never takes the agent down: malformed or unreadable files
//! fail only their own collector, malformed requests get a 4xx, and a bad
//! configuration is refused before anything binds, naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use common::{Agent, copy_tree, fixture_flags, fixtures, value};

fn success(text: &str, collector: &str) -> f64 {
    value(
        text,
        &format!("node_scrape_collector_success{{collector=\"{collector}\"}}"),
    )
    .unwrap_or_else(|| panic!("no success metric for {collector}"))
}

fn write(root: &Path, rel: &str, text: &str) {
    std::fs::write(root.join(rel), text).unwrap();
}

#[test]
fn malformed_files_fail_only_their_collector() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    copy_tree(&fixtures(), root);
    write(root, "proc/stat", "cpu0 1 2 x\nctxt lots\n");
    write(root, "proc/loadavg", "");
    write(root, "proc/net/dev", "h\nh\n eth0: 1 2 3\n");
    write(root, "proc/meminfo", "MemTotal: lots kB\n");
    write(root, "proc/diskstats", "8 0 sda 1 2\n");
    write(root, "proc/1/mounts", "/dev/root\n");
    write(root, "proc/pressure/cpu", "some avg10=0.00\n");
    write(
        root,
        "sys/devices/platform/soc/soc:firmware/get_throttled",
        "zz\n",
    );
    write(root, "textfile/bad.prom", "this is not { valid\n");
    write(
        root,
        "textfile/stamped.prom",
        "stamped_metric 1 1700000000000\n",
    );
    std::fs::remove_file(root.join("sys/class/hwmon/hwmon0/temp1_input")).unwrap();
    std::fs::create_dir(root.join("sys/class/hwmon/hwmon0/temp1_input")).unwrap();

    let agent = Agent::start(&fixture_flags(root));
    let text = agent.scrape();
    for c in [
        "cpu",
        "stat",
        "loadavg",
        "netdev",
        "meminfo",
        "diskstats",
        "filesystem",
        "pressure",
        "rpi",
    ] {
        assert_eq!(success(&text, c), 0.0, "{c} should fail on malformed input");
    }
    for c in [
        "hwmon",
        "textfile",
        "thermal_zone",
        "netclass",
        "powersupplyclass",
        "os",
        "time",
        "uname",
        "vmstat",
        "watchdog",
        "cpufreq",
    ] {
        assert_eq!(success(&text, c), 1.0, "{c} should still succeed");
    }
    // The textfile collector skipped the two bad files, kept the good ones.
    assert_eq!(value(&text, "node_textfile_scrape_error"), Some(1.0));
    assert_eq!(
        value(&text, "onprem_ups_runtime_seconds{ups=\"hat0\"}"),
        Some(5400.0)
    );
    assert!(!text.contains("stamped_metric"));
    // hwmon lost one unreadable attribute, not the chip.
    assert_eq!(
        value(
            &text,
            "node_hwmon_temp_crit_celsius{chip=\"cpu_thermal\",sensor=\"temp1\"}"
        ),
        Some(110.0)
    );
    // And the agent is still serving.
    assert_eq!(agent.client().get("/-/healthy", &[]).unwrap().status, 200);
}

fn euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn unreadable_files_fail_only_their_collector() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy_tree(&fixtures(), root);
    std::fs::set_permissions(
        root.join("proc/meminfo"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("sys/class/thermal"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    // Permissions do not bind root: run the agent as nobody then.
    let as_root = euid() == 0;
    let agent = Agent::start_with(&fixture_flags(root), |cmd| {
        if as_root {
            cmd.uid(65534).gid(65534);
        }
    });
    let text = agent.scrape();
    assert_eq!(success(&text, "meminfo"), 0.0);
    assert_eq!(success(&text, "thermal_zone"), 0.0);
    for c in [
        "cpu",
        "stat",
        "loadavg",
        "hwmon",
        "netdev",
        "diskstats",
        "textfile",
    ] {
        assert_eq!(success(&text, c), 1.0, "{c} should still succeed");
    }
}

fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn malformed_requests_get_4xx() {
    let agent = Agent::start(&fixture_flags(&fixtures()));
    let mut c = agent.client();
    let r = c.get("/metrics?collect[]=wifi", &[]).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("missing collector: wifi"));
    assert_eq!(
        c.get("/metrics?collect[]=cpu&exclude[]=cpu", &[])
            .unwrap()
            .status,
        400
    );
    assert_eq!(c.get("/nothing-here", &[]).unwrap().status, 404);
    let garbage = raw(agent.addr, b"BLAH BLAH\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    let post = raw(
        agent.addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    // Filters select collectors.
    let only = c.get("/metrics?collect[]=loadavg", &[]).unwrap().text();
    assert!(only.contains("node_load1 0.52"));
    assert!(!only.contains("node_cpu_seconds_total"));
    // Still alive.
    assert_eq!(c.get("/-/ready", &[]).unwrap().status, 200);
}

#[test]
fn gzip_is_served_when_accepted() {
    let agent = Agent::start(&fixture_flags(&fixtures()));
    let r = agent
        .client()
        .get("/metrics", &[("Accept-Encoding", "gzip")])
        .unwrap();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("node_load1 0.52"));
}

fn onprem(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_config_is_refused_before_binding() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("agent.yaml");
    std::fs::write(
        &cfg,
        "collectors:\n  filesystem:\n    mount_point_exclude: \"^/boot\"\n",
    )
    .unwrap();
    // Hold the port: an agent that bound before validating would report
    // "address in use" instead of the config error.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = format!("--web.listen-address={}", held.local_addr().unwrap());
    let out = onprem(&["agent", &format!("--config={}", cfg.display()), &listen]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("collectors.filesystem") && err.contains("mount_point_exclude"),
        "{err}"
    );
    assert!(!err.contains("in use"), "{err}");

    std::fs::write(&cfg, "collectors:\n  enable: [wifi]\n  vmstat:\n    fields: \"(\"\nweb:\n  listen_address: nowhere\n").unwrap();
    let out = onprem(&[
        "agent",
        &format!("--config={}", cfg.display()),
        "--check-config",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for field in [
        "collectors.enable[0]",
        "collectors.vmstat.fields",
        "web.listen_address",
    ] {
        assert!(err.contains(field), "{field} not named in:\n{err}");
    }
}

#[test]
fn unknown_flags_and_bad_flag_values_are_named() {
    let out = onprem(&["agent", "--collector.wifi"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--collector.wifi"));
    let cfg = fixtures().join("agent-empty.yaml");
    let out = onprem(&[
        "agent",
        &format!("--config={}", cfg.display()),
        "--collector.netdev.device-include=[",
        "--check-config",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--collector.netdev.device-include"));
    let out = onprem(&[
        "agent",
        &format!("--config={}", cfg.display()),
        "--check-config",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
}

#[test]
fn shipped_agent_config_is_valid() {
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/agent.yaml");
    let out = onprem(&["agent", &format!("--config={cfg}"), "--check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("listen 127.0.0.1:9100"), "{stdout}");
}
