//! Entry points of the fuzz targets in `fuzz/` (`cargo fuzz`): one
//! function per parser that reads outside input, each taking the raw
//! bytes the parser would get and running it as its caller does, then
//! checking what must hold of its result (what the node writes reads
//! back; what the control plane accepts it can hand on). A panic is a
//! finding.
//!
//! `tests/fuzz_regressions.rs` runs every file of `fuzz/corpus/<target>/`
//! and `fuzz/regressions/<target>/` through the same functions in the
//! normal `cargo test`, so the corpora and every crash ever found stay
//! checked without the fuzzer. [`TARGETS`] names them all.
//!
//! Nothing here reads the network or a path the input names: the agent
//! config's listen address is not looked up in DNS, and hardware
//! profiles named by path are refused rather than read. Targets that need
//! files (the collectors, the textfile collector) write the input below
//! a scratch directory of this process ([`scratch`]).

#![allow(clippy::expect_used, clippy::unwrap_used)] // A panic here is a finding.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use prost::Message as _;

use crate::exporter::{self, Collector as _, MetricWriter, Paths, encode};

/// A fuzz target: its name (the file in `fuzz/fuzz_targets/` and the
/// directory of its corpus) and its entry function.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target, by name.
pub const TARGETS: &[Target] = &[
    ("bundle_yaml", bundle_yaml),
    ("bundle_json", bundle_json),
    ("record", record),
    ("label_selector", label_selector),
    ("agent_config", agent_config),
    ("textfile_prom", textfile_prom),
    ("redfish_body", redfish_body),
    ("tunnel_first_frame", tunnel_first_frame),
    ("procfs", procfs),
    ("sysfs", sysfs),
];

/// Where [`scratch`] directories are made, when set; else `/dev/shm`
/// where there is one (a tree is made and removed on every input, which
/// a disk makes about ten times slower), else the temporary directory.
pub const SCRATCH_ENV: &str = "ONPREM_FUZZ_SCRATCH";

/// This process's scratch directory (`onprem-fuzz-<pid>` below
/// [`SCRATCH_ENV`]), created on first use.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = match std::env::var_os(SCRATCH_ENV) {
            Some(d) => PathBuf::from(d),
            None if shm.is_dir() => shm.to_owned(),
            None => std::env::temp_dir(),
        };
        let d = base.join(format!("onprem-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        d
    })
}

/// Removes [`scratch`] (tests call it when done).
pub fn remove_scratch() {
    let _ = std::fs::remove_dir_all(scratch());
}

/// A hardware-profile lookup that refuses profiles named by path (built-in
/// names fall through to the built-in profiles), so that no input makes
/// the target read a file.
fn no_profile_files(name: &str) -> Option<Result<onprem_hal::inventory::Spec, String>> {
    (name.contains('/') || name.ends_with(".yaml") || name.ends_with(".yml"))
        .then(|| Err("profile files are not read under fuzzing".to_owned()))
}

/// Parses and validates a bundle as the agent does, then checks that it
/// writes out as YAML that reads back as the same bundle.
fn bundle_text(text: &str) {
    let Ok(b) = crate::bundle::parse(text) else {
        return;
    };
    let valid = crate::bundle::validate::validate_in(&b, None, &no_profile_files).is_ok();
    let out = serde_yaml_ng::to_string(&b).expect("a parsed bundle serializes");
    let again = match crate::bundle::parse(&out) {
        Ok(a) => a,
        Err(e) => panic!("a parsed bundle, written out, does not parse: {e}\n{out}"),
    };
    assert_eq!(
        serde_yaml_ng::to_string(&again).ok().as_deref(),
        Some(out.as_str()),
        "a bundle read back differs"
    );
    if valid {
        let _ = crate::bundle::diff::Diff::between(None, &b);
    }
}

/// `bundle_yaml`: a bundle file (YAML, which includes JSON), as the agent
/// reads it from its bundle path or the control plane hands it on.
pub fn bundle_yaml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        bundle_text(text);
    }
}

/// `bundle_json`: a bundle in JSON, as a file (the YAML reader reads it)
/// and as the JSON spec of a Bundle record that the control plane turns
/// into a node's bundle ([`crate::controlplane::records::node_bundle`]).
pub fn bundle_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    bundle_text(text);
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let spec = v.get("spec").cloned().unwrap_or(v);
    if let Ok(b) = crate::controlplane::records::node_bundle("fuzz", &BTreeMap::new(), &spec) {
        let _ = crate::bundle::validate::validate_in(&b, None, &no_profile_files);
    }
    let _ = crate::controlplane::records::targeting(&spec);
}

/// `record`: the documents of `onprem apply -f` (Facility, Chassis,
/// Profile, Bundle, Device records, several per file); a Bundle record
/// that is accepted must turn into a node bundle.
pub fn record(data: &[u8]) {
    use crate::controlplane::records::{self, RecordKind};
    use crate::controlplane::store::Kind;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (ok, _refused) = records::parse_documents("fuzz.yaml", text);
    for r in ok {
        if r.kind == RecordKind::Object(Kind::Bundle) {
            let b = match records::node_bundle(&r.name, &r.labels, &r.spec) {
                Ok(b) => b,
                Err(e) => panic!("an accepted Bundle record is not a node bundle: {e}"),
            };
            let _ = crate::bundle::validate::validate_in(&b, None, &no_profile_files);
            let _ = records::targeting(&r.spec);
        }
    }
}

/// `label_selector`: a label selector (`-l` of the CLI, `?selector=` of
/// the REST API); one that parses prints as one that parses the same.
pub fn label_selector(data: &[u8]) {
    use crate::controlplane::labels::Selector;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(s) = Selector::parse(text) else {
        return;
    };
    let shown = s.to_string();
    match Selector::parse(&shown) {
        Ok(again) => assert_eq!(
            again.to_string(),
            shown,
            "a selector printed reads back otherwise"
        ),
        Err(e) => panic!("selector {text:?} prints as {shown:?}, which does not parse: {e}"),
    }
    let labels: BTreeMap<String, String> = [("a", "b"), ("zone", "x")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let _ = s.matches(&labels);
}

/// `agent_config`: the agent's config file (`/etc/onprem/agent.yaml`),
/// parsed and validated with no flags. A listen address that is a host
/// name, and a hardware profile named by path, are replaced first: the
/// first would be looked up in DNS, the second read.
pub fn agent_config(data: &[u8]) {
    use crate::agent::config;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut file) = config::parse_file(text, Path::new("agent.yaml")) else {
        return;
    };
    let listen = file.web.listen_address.trim();
    if !listen.starts_with(':') && listen.parse::<std::net::SocketAddr>().is_err() {
        file.web.listen_address = config::DEFAULT_LISTEN_ADDRESS.to_owned();
    }
    if file
        .hardware
        .profile
        .as_deref()
        .is_some_and(|p| no_profile_files(p).is_some())
    {
        file.hardware.profile = None;
    }
    let _ = crate::agent::flags::Flags::default().apply(&mut file, None);
}

/// Encodes `families` both ways; the text form must parse as Prometheus
/// text again (the textfile reader is a Prometheus text reader).
fn encode_both(families: &[exporter::Family]) {
    let mut om = String::new();
    encode::encode(&mut om, families, encode::Format::OpenMetrics);
    let mut text = String::new();
    encode::encode(&mut text, families, encode::Format::Text);
    if let Err(e) = exporter::textparse::parse(&text) {
        panic!("the text the exporter wrote does not parse: {e}\n{text}");
    }
}

/// `textfile_prom`: a `*.prom` file in the textfile collector's
/// directory, read by the real collector, then encoded.
pub fn textfile_prom(data: &[u8]) {
    let dir = scratch().join("textfile");
    let _ = std::fs::create_dir_all(&dir);
    if std::fs::write(dir.join("fuzz.prom"), data).is_err() {
        return;
    }
    let c = exporter::textfile::Textfile::new(&exporter::textfile::Settings {
        directory: dir.clone(),
    });
    let mut out = MetricWriter::new();
    let _ = c.update(&mut out);
    encode_both(&out.finish());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = exporter::textparse::parse(text);
    }
}

/// `redfish_body`: the body of a Redfish POST or PATCH; the first byte
/// picks the handler that checks it (login, a PATCH of an account, of
/// the account service, of the system, `ComputerSystem.Reset`,
/// `Chassis.Reset`), the rest is the body. Error bodies are rendered as
/// the service would send them.
pub fn redfish_body(data: &[u8]) {
    use crate::redfish::{BodyCheck, check_body};
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let account = serde_json::json!({
        "@odata.id": "/redfish/v1/AccountService/Accounts/admin",
        "Id": "admin", "UserName": "admin", "RoleId": "Administrator",
        "Locked": false, "Enabled": true,
    });
    let service = serde_json::json!({
        "@odata.id": "/redfish/v1/AccountService",
        "AccountLockoutThreshold": 5, "AccountLockoutDuration": 300,
    });
    let system = serde_json::json!({
        "@odata.id": "/redfish/v1/Systems/1", "Id": "1", "PowerState": "On",
        "Boot": {"BootSourceOverrideTarget": "None"},
    });
    let what = match pick % 6 {
        0 => BodyCheck::Login,
        1 => BodyCheck::Patch {
            uri: &["AccountService", "Accounts", "admin"],
            current: &account,
        },
        2 => BodyCheck::Patch {
            uri: &["AccountService"],
            current: &service,
        },
        3 => BodyCheck::Patch {
            uri: &["Systems", "1"],
            current: &system,
        },
        4 => BodyCheck::SystemReset(&["On", "GracefulRestart", "ForceRestart"]),
        _ => BodyCheck::ChassisReset,
    };
    if let Err(e) = check_body(body, what) {
        let _ = serde_json::to_vec(&e.body()).expect("an error body serializes");
    }
}

/// `tunnel_first_frame`: the first frame of a tunnel stream, as protobuf
/// bytes. The agent reads a control plane's first frame on a warm stream
/// for the tunnel it names (its id goes into metadata, its port is
/// checked against the bundle's); the control plane reads the agent's for
/// `open` or a refusal, which it hands to the user in a gRPC status.
pub fn tunnel_first_frame(data: &[u8]) {
    use crate::dialhome::tunnel as agent;
    use crate::tunnel::TunnelFrame;
    let Ok(f) = TunnelFrame::decode(data) else {
        return;
    };
    let again = TunnelFrame::decode(f.encode_to_vec().as_slice());
    assert_eq!(
        again.as_ref().ok(),
        Some(&f),
        "a frame re-encoded reads back otherwise"
    );
    if let Some(open) = &f.open {
        let _ = agent::header(&open.id);
        match agent::open_port(open) {
            Ok(port) => {
                let redfish = "127.0.0.1:8443".parse().ok();
                let local = std::net::IpAddr::from([127, 0, 0, 1]);
                if let Err(why) = agent::target(&[22, 8443, 9100], redfish, port, local) {
                    let _ = agent::header(&why);
                }
            }
            Err(why) => {
                let _ = agent::header(&why);
            }
        }
    } else if !f.refused.is_empty() {
        let status = tonic::Status::failed_precondition(format!(
            "device fuzz refused the tunnel: {}",
            f.refused
        ));
        let _ = status.into_http::<()>();
    }
}

/// `procfs`: one procfs file's text; the first byte picks the parser
/// (`/proc/stat`, `meminfo`, `diskstats`, `net/dev`, `loadavg`,
/// `pressure/*`, `mounts`, the cpu lines of `stat`, `os-release`,
/// `self/stat` and `self/limits`, sysfs integers and hwmon file names,
/// the Raspberry Pi throttling word). Invalid UTF-8 is replaced, as
/// [`exporter::paths::read_file`] does.
pub fn procfs(data: &[u8]) {
    use crate::exporter::*;
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let text = text.as_ref();
    match pick % 12 {
        0 => drop(stat::parse_stat(text)),
        1 => drop(meminfo::parse_meminfo(text)),
        2 => text.lines().for_each(|l| drop(diskstats::parse_line(l))),
        3 => drop(netdev::parse_net_dev(text)),
        4 => drop(loadavg::parse_loadavg(text)),
        5 => drop(pressure::parse_psi(text)),
        6 => {
            let _ = filesystem::parse_mounts(text, "/");
            let _ = filesystem::parse_mounts(text, "/host");
        }
        7 => drop(cpu::parse_cpu_lines(text)),
        8 => {
            let os = os::parse_os_release(text);
            if let Some(v) = os.get("VERSION_ID") {
                let _ = os::version_number(v);
            }
        }
        9 => {
            let _ = process::parse_self_stat(text, 100.0);
            let _ = process::parse_limit(text, "Max open files");
        }
        10 => {
            for l in text.lines() {
                let _ = paths::parse_int(l);
                let _ = hwmon::explode(l);
                let _ = hwmon::clean_name(l);
            }
        }
        _ => drop(onprem_hal::rpi::parse_throttled(text)),
    }
}

/// Most files one `sysfs` input makes.
const MOST_FILES: usize = 64;

/// Whether `rel` may be made below the scratch tree: 1 to 12 plain
/// components (no `.`, `..` or empty one) of `[A-Za-z0-9_.:+-]`, the
/// first one of `proc`, `sys`, `rootfs`, `udev`.
fn tree_path_ok(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    matches!(parts[0], "proc" | "sys" | "rootfs" | "udev")
        && parts.len() <= 12
        && parts.iter().all(|p| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.:+-".contains(&b))
        })
}

/// The collectors that read the scratch tree and keep no state between
/// scrapes that matters here, built once (their patterns compile once).
fn tree_collectors(
    paths: &Paths,
    settings: &exporter::Settings,
) -> &'static [Box<dyn exporter::Collector>] {
    static BUILT: OnceLock<Vec<Box<dyn exporter::Collector>>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut errors = Vec::new();
        exporter::COLLECTORS
            .iter()
            .filter(|(n, _, _)| !matches!(*n, "cpu" | "devices" | "loops" | "textfile" | "uname"))
            .filter_map(|(n, _, _)| exporter::build(n, settings, paths, &mut errors))
            .collect()
    })
}

/// `sysfs`: a procfs, sysfs and root filesystem tree, read by every
/// collector that reads one, then encoded. The input is files separated
/// by NUL bytes, each its path (`proc/stat`, `sys/class/hwmon/hwmon0/
/// temp1_input`, `rootfs/etc/os-release`, `udev/b8:0`), a newline and its
/// content; at most [`MOST_FILES`], paths as [`tree_path_ok`] allows.
pub fn sysfs(data: &[u8]) {
    let root = scratch().join("tree");
    let _ = std::fs::remove_dir_all(&root);
    for rec in data.split(|b| *b == 0).take(MOST_FILES) {
        let (path, content) = match rec.iter().position(|b| *b == b'\n') {
            Some(i) => (&rec[..i], &rec[i + 1..]),
            None => (rec, &[][..]),
        };
        let Ok(rel) = std::str::from_utf8(path) else {
            continue;
        };
        if !tree_path_ok(rel) {
            continue;
        }
        let full = root.join(rel);
        if let Some(dir) = full.parent() {
            if std::fs::create_dir_all(dir).is_err() {
                continue;
            }
        }
        let _ = std::fs::write(&full, content);
    }
    let paths = Paths {
        procfs: root.join("proc"),
        sysfs: root.join("sys"),
        rootfs: root.join("rootfs"),
    };
    let mut settings = exporter::Settings::default();
    settings.diskstats.udev_data = root.join("udev");
    let mut out = MetricWriter::new();
    for c in tree_collectors(&paths, &settings) {
        let _ = c.update(&mut out);
    }
    // The cpu collector keeps counters between scrapes: a fresh one, so
    // that an input does the same every time.
    let mut errors = Vec::new();
    if let Some(cpu) = exporter::build("cpu", &settings, &paths, &mut errors) {
        let _ = cpu.update(&mut out);
    }
    encode_both(&out.finish());
}
