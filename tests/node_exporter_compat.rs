//! Compatibility with the real node_exporter (Debian's
//! `prometheus-node-exporter`, 1.5), run beside the agent with the same
//! collectors, on the fixture tree and on this machine: every family it
//! exposes must be in ours with the same type, HELP and label names, and
//! values that do not move must agree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::expo::{self, Fam};
use common::{Agent, Client, fixture_flags, fixtures, require};

/// The collectors both implement (node_exporter 1.5 has no watchdog, and
/// `rpi` is onprem's own).
pub const SHARED: &[&str] = &[
    "cpu",
    "cpufreq",
    "diskstats",
    "filesystem",
    "hwmon",
    "loadavg",
    "meminfo",
    "netclass",
    "netdev",
    "os",
    "powersupplyclass",
    "pressure",
    "stat",
    "textfile",
    "thermal_zone",
    "time",
    "uname",
    "vmstat",
];

struct NodeExporter {
    child: Child,
    addr: SocketAddr,
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn start_node_exporter(extra: &[String]) -> NodeExporter {
    let bin = require(
        "prometheus-node-exporter",
        "Debian's prometheus-node-exporter",
    );
    let addr = free_port();
    let mut cmd = Command::new(bin);
    cmd.arg("--collector.disable-defaults")
        .args(SHARED.iter().map(|c| format!("--collector.{c}")))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--collector.netdev.device-exclude=")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().unwrap();
    let ne = NodeExporter { child, addr };
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "node_exporter did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ne
}

fn ours(extra: &[String]) -> Agent {
    let mut args: Vec<String> = vec!["--collector.disable-defaults".into()];
    args.extend(SHARED.iter().map(|c| format!("--collector.{c}")));
    args.extend_from_slice(extra);
    Agent::start(&args)
}

fn scrape(addr: SocketAddr) -> String {
    let r = Client::new(addr)
        .get("/metrics", &[("Accept", "text/plain;version=0.0.4")])
        .unwrap();
    assert_eq!(r.status, 200);
    r.text()
}

fn theirs_relevant(name: &str) -> bool {
    !(name.starts_with("go_")
        || name.starts_with("promhttp_")
        || name == "node_exporter_build_info")
}

/// Checks family shape; returns the list of problems.
fn compare_shape(theirs: &BTreeMap<String, Fam>, ours: &BTreeMap<String, Fam>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, t) in theirs.iter().filter(|(n, _)| theirs_relevant(n)) {
        let Some(o) = ours.get(name) else {
            problems.push(format!("{name}: missing"));
            continue;
        };
        if t.kind != o.kind {
            problems.push(format!("{name}: type {} vs ours {}", t.kind, o.kind));
        }
        if t.help != o.help && !name.starts_with("process_") {
            problems.push(format!("{name}: HELP {:?} vs ours {:?}", t.help, o.help));
        }
        // Info metrics whose labels depend on what the device reports
        // (power supply) are compared per sample below; others by name set.
        if t.label_names != o.label_names && name != "node_power_supply_info" {
            problems.push(format!(
                "{name}: labels {:?} vs ours {:?}",
                t.label_names, o.label_names
            ));
        }
    }
    problems
}

fn compare_values(
    theirs: &BTreeMap<String, Fam>,
    ours: &BTreeMap<String, Fam>,
    families: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    for name in families {
        let (Some(t), Some(o)) = (theirs.get(*name), ours.get(*name)) else {
            continue;
        };
        if t.samples != o.samples {
            problems.push(format!(
                "{name}: values differ\n  theirs: {:?}\n  ours:   {:?}",
                t.samples, o.samples
            ));
        }
    }
    problems
}

#[test]
fn fixture_tree_matches_node_exporter() {
    let root = fixtures();
    let mut flags = fixture_flags(&root);
    let ne = start_node_exporter(&{
        let mut f = flags.clone();
        f.push("--no-collector.netdev.netlink".into());
        f
    });
    flags.push("--collector.filesystem.mount-timeout=5".into());
    let agent = ours(&flags);
    let theirs = expo::read(&scrape(ne.addr));
    let ours = expo::read(&scrape(agent.addr));
    assert!(
        theirs.len() > 150,
        "node_exporter exposed only {} families",
        theirs.len()
    );

    let mut problems = compare_shape(&theirs, &ours);
    // On a fixed tree every value agrees, except what is read from the live
    // system at scrape time.
    let moving = [
        "node_scrape_collector_duration_seconds",
        "node_time_seconds",
        "node_filesystem_avail_bytes",
        "node_filesystem_free_bytes",
        "node_filesystem_files_free",
    ];
    let all: Vec<&str> = theirs
        .keys()
        .map(String::as_str)
        .filter(|n| theirs_relevant(n) && !n.starts_with("process_") && !moving.contains(n))
        .collect();
    problems.extend(compare_values(&theirs, &ours, &all));
    assert!(
        problems.is_empty(),
        "{} differences from node_exporter:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn this_machine_matches_node_exporter() {
    let textfiles = fixtures().join("textfile");
    let tf = format!("--collector.textfile.directory={}", textfiles.display());
    let ne = start_node_exporter(std::slice::from_ref(&tf));
    let agent = ours(&[tf]);
    let theirs = expo::read(&scrape(ne.addr));
    let ours = expo::read(&scrape(agent.addr));
    let mut problems = compare_shape(&theirs, &ours);
    // Values that do not move while the test runs.
    problems.extend(compare_values(
        &theirs,
        &ours,
        &[
            "node_memory_MemTotal_bytes",
            "node_memory_SwapTotal_bytes",
            "node_memory_Hugepagesize_bytes",
            "node_boot_time_seconds",
            "node_filesystem_size_bytes",
            "node_filesystem_files",
            "node_filesystem_readonly",
            "node_uname_info",
            "node_os_info",
            "node_os_version",
            "node_network_mtu_bytes",
            "node_network_info",
            "node_network_iface_id",
            "node_disk_info",
            "node_time_clocksource_available_info",
            "node_time_clocksource_current_info",
            "node_time_zone_offset_seconds",
            "node_cpu_frequency_max_hertz",
            "node_hwmon_chip_names",
            "onprem_ups_runtime_seconds",
        ],
    ));
    let cpus = |f: &BTreeMap<String, Fam>| {
        f.get("node_cpu_seconds_total")
            .map_or(0, |f| f.samples.len())
    };
    assert_eq!(cpus(&theirs), cpus(&ours), "number of CPU time series");
    assert!(cpus(&ours) > 0);
    assert!(
        problems.is_empty(),
        "{} differences from node_exporter:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Writes `text` at `root/rel`, creating directories.
fn put(root: &std::path::Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn link(root: &std::path::Path, target: &str, rel: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, p).unwrap();
}

/// sysfs as the kernel lays it out: class entries are symlinks into
/// /sys/devices, hwmon chips have a `device` link, and stray files sit in
/// class directories. Chip labels must come from the device path, as
/// node_exporter derives them.
#[test]
fn symlinked_sysfs_tree_matches_node_exporter() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    common::copy_tree(&fixtures().join("proc"), &root.join("proc"));
    std::fs::create_dir_all(root.join("rootfs")).unwrap();
    let sys = root.join("sys");
    // SoC thermal sensor, platform device.
    put(
        &sys,
        "devices/platform/cpu_thermal/hwmon/hwmon0/name",
        "cpu_thermal\n",
    );
    put(
        &sys,
        "devices/platform/cpu_thermal/hwmon/hwmon0/temp1_input",
        "48312\n",
    );
    link(
        &sys,
        "../../../cpu_thermal",
        "devices/platform/cpu_thermal/hwmon/hwmon0/device",
    );
    link(
        &sys,
        "../../devices/platform/cpu_thermal/hwmon/hwmon0",
        "class/hwmon/hwmon0",
    );
    // EMC2301 fan controller on I²C bus 1, address 0x2f.
    let emc = "devices/platform/soc/fe804000.i2c/i2c-1/1-002f";
    put(&sys, &format!("{emc}/name"), "emc2301\n");
    put(&sys, &format!("{emc}/hwmon/hwmon1/name"), "emc2301\n");
    put(&sys, &format!("{emc}/hwmon/hwmon1/fan1_input"), "3120\n");
    put(&sys, &format!("{emc}/hwmon/hwmon1/pwm1"), "153\n");
    put(&sys, &format!("{emc}/hwmon/hwmon1/pwm1_enable"), "1\n");
    link(
        &sys,
        "../../../1-002f",
        &format!("{emc}/hwmon/hwmon1/device"),
    );
    link(
        &sys,
        &format!("../../{emc}/hwmon/hwmon1"),
        "class/hwmon/hwmon1",
    );
    // Ethernet through its device path, and the bonding file beside it.
    let eth = "devices/platform/scb/fd580000.ethernet/net/eth0";
    for (f, v) in [
        ("operstate", "up"),
        ("mtu", "1500"),
        ("address", "dc:a6:32:00:00:01"),
        ("carrier", "1"),
        ("speed", "1000"),
        ("type", "1"),
        ("ifindex", "2"),
        ("iflink", "2"),
    ] {
        put(&sys, &format!("{eth}/{f}"), &format!("{v}\n"));
    }
    link(&sys, &format!("../../{eth}"), "class/net/eth0");
    put(&sys, "class/net/bonding_masters", "\n");
    // A UPS battery reached through its I²C device.
    let bat = "devices/platform/soc/fe804000.i2c/i2c-1/1-0036/power_supply/ups-battery";
    for (f, v) in [
        ("type", "Battery"),
        ("status", "Discharging"),
        ("capacity", "64"),
        ("voltage_now", "3712000"),
        ("present", "1"),
    ] {
        put(&sys, &format!("{bat}/{f}"), &format!("{v}\n"));
    }
    link(
        &sys,
        &format!("../../{bat}"),
        "class/power_supply/ups-battery",
    );

    let flags = vec![
        format!("--path.procfs={}", root.join("proc").display()),
        format!("--path.sysfs={}", sys.display()),
        format!("--path.rootfs={}", root.join("rootfs").display()),
        format!(
            "--collector.textfile.directory={}",
            root.join("textfile").display()
        ),
    ];
    let ne = start_node_exporter(&{
        let mut f = flags.clone();
        f.push("--no-collector.netdev.netlink".into());
        f
    });
    let agent = ours(&flags);
    let text = scrape(agent.addr);
    let theirs = expo::read(&scrape(ne.addr));
    let ours = expo::read(&text);
    assert!(
        text.contains(
            "node_hwmon_temp_celsius{chip=\"platform_cpu_thermal\",sensor=\"temp1\"} 48.312"
        ),
        "{text}"
    );
    assert!(text.contains("node_hwmon_fan_rpm{chip=\"i2c_1_1_002f\",sensor=\"fan1\"} 3120"));
    assert!(text.contains("node_power_supply_capacity{power_supply=\"ups-battery\"} 64"));
    assert!(!text.contains("bonding_masters"));
    let mut problems = compare_shape(&theirs, &ours);
    let fams: Vec<&str> = theirs
        .keys()
        .map(String::as_str)
        .filter(|n| {
            n.starts_with("node_hwmon_")
                || n.starts_with("node_network_")
                || n.starts_with("node_power_supply_")
        })
        .collect();
    assert!(
        fams.len() > 10,
        "node_exporter saw too little of the tree: {fams:?}"
    );
    problems.extend(compare_values(&theirs, &ours, &fams));
    assert!(
        problems.is_empty(),
        "{} differences from node_exporter:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
