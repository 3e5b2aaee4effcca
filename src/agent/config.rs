//! The agent's configuration: a YAML file (`/etc/onprem/agent.yaml`, or
//! `--config`) and command-line flags that override it. Flags keep
//! node_exporter's names (`--web.listen-address`, `--collector.<name>`,
//! `--path.sysfs`, …) so operators moving from node_exporter keep their
//! unit files' habits.
//!
//! Loading is parse, then validate: parsing rejects unknown fields and
//! wrong types, every one with its field path and line; validation
//! compiles every pattern and collects every problem, naming the field or
//! the flag that set it. A file with both kinds of problem reports both
//! at once (the rest of the file, without the fields that did not parse,
//! is validated too). Nothing binds before the whole configuration is
//! valid.

use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::flags::Flags;
use crate::exporter::{self, Paths};
use crate::validate::{FieldError, FieldErrors};

/// Where the agent looks for its config file unless `--config` says.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/onprem/agent.yaml";
/// node_exporter's port, on loopback: nothing listens beyond loopback
/// unless configured to.
pub const DEFAULT_LISTEN_ADDRESS: &str = "127.0.0.1:9100";

/// The config file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct File {
    /// The HTTP listener.
    pub web: Web,
    /// Where to read host state from (for containers and test trees).
    pub paths: PathsFile,
    /// Which collectors run, and their options.
    pub collectors: exporter::Settings,
    /// Logging.
    pub log: Log,
    /// The node's hardware: where the device inventory comes from.
    pub hardware: HardwareFile,
    /// Standalone bundle and the state directory.
    pub bundle: BundleFile,
    /// The control plane this agent dials home to.
    pub control_plane: ControlPlaneFile,
}

/// The `control_plane:` section: where the agent dials home to. Without
/// a URL it runs on its own.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ControlPlaneFile {
    /// `https://host:port` of the control plane (`--control-plane`).
    pub url: Option<String>,
    /// A one-time enrolment token (`--enrol-token`); needed only until the
    /// agent has enrolled (its identity is then in the state directory).
    pub enrol_token: Option<String>,
    /// A file holding the enrolment token (kept out of the unit file).
    pub enrol_token_file: Option<PathBuf>,
    /// The control plane's CA certificate (`--ca-file`).
    pub ca_file: Option<PathBuf>,
    /// The control plane's CA fingerprint, `sha256:<hex>`
    /// (`--ca-fingerprint`), as `onprem token create --enrol` prints it.
    pub ca_fingerprint: Option<String>,
    /// The name to enrol under (`--device-name`; default: the host name).
    pub device_name: Option<String>,
}

/// The `bundle:` section: where the node's desired state comes from when
/// it runs on its own (without a control plane), and where applied
/// bundles are kept.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BundleFile {
    /// A bundle file to run (`--bundle`); re-read on SIGHUP and when it
    /// changes on disk. Its `hardware` section replaces this file's.
    pub path: Option<PathBuf>,
    /// Where the agent keeps the applied bundle, the last-known-good one
    /// and loop state such as switch states (`--state-dir`).
    pub state_dir: PathBuf,
    /// Public key files of bundle signers (`onprem bundle keygen`).
    pub trusted_keys: Vec<PathBuf>,
    /// Refuse bundles without a valid signature by a trusted key.
    pub require_signatures: bool,
    /// Seconds between checks of the bundle file for changes.
    pub watch_interval: f64,
}

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/onprem";
/// Default seconds between checks of the bundle file.
pub const DEFAULT_WATCH_INTERVAL: f64 = 2.0;

impl Default for BundleFile {
    fn default() -> Self {
        BundleFile {
            path: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            trusted_keys: Vec::new(),
            require_signatures: false,
            watch_interval: DEFAULT_WATCH_INTERVAL,
        }
    }
}

/// The `hardware:` section: which devices the agent reads (and, with the
/// reconcile loops, controls). Without a profile or spec the agent has no
/// devices and serves the node collectors only.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HardwareFile {
    /// `real` (the node's buses) or `sim` (the simulated world built from
    /// the same spec) (`--hardware`).
    pub source: String,
    /// A built-in profile name (`onprem hw profiles`) or a YAML file
    /// (`--hardware.profile`).
    pub profile: Option<String>,
    /// The hardware spec inline, instead of a profile.
    pub spec: Option<onprem_hal::inventory::Spec>,
    /// Seconds between reads of every device.
    pub poll_interval: f64,
}

/// Default seconds between device reads.
pub const DEFAULT_POLL_INTERVAL: f64 = 5.0;

impl Default for HardwareFile {
    fn default() -> Self {
        HardwareFile {
            source: "real".to_owned(),
            profile: None,
            spec: None,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

/// The hardware part of a validated [`Config`].
#[derive(Debug, Clone, PartialEq)]
pub struct Hardware {
    /// The spec.
    pub spec: onprem_hal::inventory::Spec,
    /// Simulated.
    pub sim: bool,
    /// Period of device reads.
    pub poll_interval: std::time::Duration,
}

/// The `web:` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Web {
    /// Address to listen on, `host:port` (`--web.listen-address`);
    /// `:9100` means every interface.
    pub listen_address: String,
    /// Scrapes served at once before answering 503; 0 for no bound
    /// (`--web.max-requests`).
    pub max_requests: usize,
    /// Most connections open at once on each of the agent's listeners
    /// (`/metrics`, Redfish); unset: 256, at most a quarter of the
    /// open-file limit (`--web.max-connections`).
    pub max_connections: Option<usize>,
    /// Seconds a request head (and a TLS handshake) may take
    /// (`--web.header-timeout`).
    pub header_timeout: f64,
    /// Seconds a connection with no request in flight stays open
    /// (`--web.idle-timeout`).
    pub idle_timeout: f64,
    /// Leave out the `process_*` and `onprem_build_info` metrics
    /// (`--web.disable-exporter-metrics`).
    pub disable_exporter_metrics: bool,
}

impl Default for Web {
    fn default() -> Self {
        Web {
            listen_address: DEFAULT_LISTEN_ADDRESS.to_owned(),
            max_requests: exporter::http::DEFAULT_MAX_REQUESTS,
            max_connections: None,
            header_timeout: crate::serverlimits::HEADER_TIMEOUT.as_secs_f64(),
            idle_timeout: crate::serverlimits::IDLE_TIMEOUT.as_secs_f64(),
            disable_exporter_metrics: false,
        }
    }
}

/// The `paths:` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PathsFile {
    /// procfs mount point (`--path.procfs`).
    pub procfs: PathBuf,
    /// sysfs mount point (`--path.sysfs`).
    pub sysfs: PathBuf,
    /// The host's root filesystem (`--path.rootfs`).
    pub rootfs: PathBuf,
}

impl Default for PathsFile {
    fn default() -> Self {
        let p = Paths::default();
        PathsFile {
            procfs: p.procfs,
            sysfs: p.sysfs,
            rootfs: p.rootfs,
        }
    }
}

/// The `log:` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// One of error, warn, info, debug, trace (`--log.level`).
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".to_owned(),
        }
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file came from, if one was read.
    pub source: Option<PathBuf>,
    /// The listen address.
    pub listen: SocketAddr,
    /// Bound on parallel scrapes.
    pub max_requests: usize,
    /// Connection cap and timeouts of each listener (`/metrics`, Redfish).
    pub server: crate::serverlimits::Limits,
    /// Whether to serve process_* and onprem_build_info.
    pub exporter_metrics: bool,
    /// Read roots.
    pub paths: Paths,
    /// Collector selection and options.
    pub collectors: exporter::Settings,
    /// Log level.
    pub log_level: tracing::Level,
    /// The device inventory, if the node has one configured.
    pub hardware: Option<Hardware>,
    /// Devices are simulated (`hardware.source: sim`), also for a
    /// bundle's hardware.
    pub sim: bool,
    /// Seconds between device reads, also for a bundle's hardware.
    pub poll_interval: std::time::Duration,
    /// The `bundle:` section.
    pub bundle: BundleFile,
    /// The `control_plane:` section.
    pub control_plane: ControlPlaneFile,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read: check the path and permissions.
    #[error("reading config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML for this schema: the message names
    /// every field that is unknown or of the wrong type, with its line
    /// (one per line when there are several), and the other problems of
    /// the file.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Field path and problem, one per line.
        message: String,
    },
    /// Values are well-formed but wrong: every problem, each with its field
    /// or flag.
    #[error("invalid configuration:\n{0}")]
    Invalid(FieldErrors),
}

/// Parses a config file's text. An empty file means all defaults.
pub fn parse_file(text: &str, path: &Path) -> Result<File, Error> {
    parse_partial(text).map_err(|p| parse_error(path, p.errors))
}

/// Parses a config file's text: the file, or every unknown field and
/// wrong type with the rest of the file read without them.
fn parse_partial(text: &str) -> Result<File, crate::validate::Partial<File>> {
    if text.trim().is_empty() {
        return Ok(File::default());
    }
    crate::validate::from_yaml(text)
}

/// [`Error::Parse`] for `errors`: one on the same line, several one per
/// line.
fn parse_error(path: &Path, errors: Vec<FieldError>) -> Error {
    let message = match errors.as_slice() {
        [one] => one.to_string(),
        _ => format!("{} problems:\n{}", errors.len(), FieldErrors(errors)),
    };
    Error::Parse {
        path: path.to_owned(),
        message,
    }
}

/// Field paths and the flags that override them, so that an error caused
/// by a flag names the flag.
const FLAG_NAMES: &[(&str, &str)] = &[
    (
        "collectors.filesystem.mount_points_exclude",
        "--collector.filesystem.mount-points-exclude",
    ),
    (
        "collectors.filesystem.fs_types_exclude",
        "--collector.filesystem.fs-types-exclude",
    ),
    (
        "collectors.filesystem.mount_timeout",
        "--collector.filesystem.mount-timeout",
    ),
    (
        "collectors.netdev.device",
        "--collector.netdev.device-include/--collector.netdev.device-exclude",
    ),
    (
        "collectors.netdev.device_include",
        "--collector.netdev.device-include",
    ),
    (
        "collectors.netdev.device_exclude",
        "--collector.netdev.device-exclude",
    ),
    (
        "collectors.netclass.ignored_devices",
        "--collector.netclass.ignored-devices",
    ),
    (
        "collectors.diskstats.device",
        "--collector.diskstats.device-include/--collector.diskstats.device-exclude",
    ),
    (
        "collectors.diskstats.device_include",
        "--collector.diskstats.device-include",
    ),
    (
        "collectors.diskstats.device_exclude",
        "--collector.diskstats.device-exclude",
    ),
    (
        "collectors.hwmon.chip",
        "--collector.hwmon.chip-include/--collector.hwmon.chip-exclude",
    ),
    (
        "collectors.hwmon.chip_include",
        "--collector.hwmon.chip-include",
    ),
    (
        "collectors.hwmon.chip_exclude",
        "--collector.hwmon.chip-exclude",
    ),
    (
        "collectors.powersupplyclass.ignored_supplies",
        "--collector.powersupply.ignored-supplies",
    ),
    ("collectors.vmstat.fields", "--collector.vmstat.fields"),
    ("web.listen_address", "--web.listen-address"),
    ("web.max_connections", "--web.max-connections"),
    ("web.header_timeout", "--web.header-timeout"),
    ("web.idle_timeout", "--web.idle-timeout"),
    ("hardware.source", "--hardware"),
    ("hardware.profile", "--hardware.profile"),
    ("bundle.path", "--bundle"),
    ("bundle.state_dir", "--state-dir"),
    ("control_plane.url", "--control-plane"),
    ("control_plane.enrol_token", "--enrol-token"),
    ("control_plane.enrol_token_file", "--enrol-token-file"),
    ("control_plane.ca_file", "--ca-file"),
    ("control_plane.ca_fingerprint", "--ca-fingerprint"),
    ("control_plane.device_name", "--device-name"),
    ("log.level", "--log.level"),
];

fn set<T: Clone>(
    flag: &Option<T>,
    slot: &mut T,
    field: &'static str,
    by_flag: &mut BTreeSet<&'static str>,
) {
    if let Some(v) = flag {
        *slot = v.clone();
        by_flag.insert(field);
    }
}

fn set_opt<T: Clone>(
    flag: &Option<T>,
    slot: &mut Option<T>,
    field: &'static str,
    by_flag: &mut BTreeSet<&'static str>,
) {
    if let Some(v) = flag {
        *slot = Some(v.clone());
        by_flag.insert(field);
    }
}

/// Parses a listen address: `host:port`, `[v6]:port`, or `:port` for
/// every interface.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| format!("invalid port in {s:?}"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    match s.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| format!("{s:?} resolves to no address")),
        Err(e) => Err(format!("{s:?} is not host:port ({e})")),
    }
}

fn parse_level(s: &str) -> Option<tracing::Level> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Some(tracing::Level::ERROR),
        "warn" | "warning" => Some(tracing::Level::WARN),
        "info" => Some(tracing::Level::INFO),
        "debug" => Some(tracing::Level::DEBUG),
        "trace" => Some(tracing::Level::TRACE),
        _ => None,
    }
}

impl Flags {
    /// Reads the config file (if any), applies the flags over it, and
    /// validates the result.
    pub fn load(&self) -> Result<Config, Error> {
        let (path, explicit) = match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let read = crate::limits::read_regular_text(&path, crate::limits::MAX_CONFIG_BYTES);
        let (mut file, source) = match read {
            Ok(text) => match parse_partial(&text) {
                Ok(file) => (file, Some(path)),
                Err(p) => {
                    // Every problem of the file at once: what did parse is
                    // validated too.
                    let mut errors = p.errors;
                    if let Some(mut rest) = p.rest {
                        if let Err(Error::Invalid(more)) = self.apply(&mut rest, Some(path.clone()))
                        {
                            errors.extend(more.0);
                        }
                    }
                    return Err(parse_error(&path, errors));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                (File::default(), None)
            }
            Err(source) => return Err(Error::Read { path, source }),
        };
        self.apply(&mut file, source)
    }

    /// Applies the flags over `file` and validates.
    pub fn apply(&self, file: &mut File, source: Option<PathBuf>) -> Result<Config, Error> {
        let mut by_flag = BTreeSet::new();
        set(
            &self.listen_address,
            &mut file.web.listen_address,
            "web.listen_address",
            &mut by_flag,
        );
        set(
            &self.max_requests,
            &mut file.web.max_requests,
            "web.max_requests",
            &mut by_flag,
        );
        set_opt(
            &self.max_connections,
            &mut file.web.max_connections,
            "web.max_connections",
            &mut by_flag,
        );
        set(
            &self.header_timeout,
            &mut file.web.header_timeout,
            "web.header_timeout",
            &mut by_flag,
        );
        set(
            &self.idle_timeout,
            &mut file.web.idle_timeout,
            "web.idle_timeout",
            &mut by_flag,
        );
        file.web.disable_exporter_metrics |= self.disable_exporter_metrics;
        set(
            &self.procfs,
            &mut file.paths.procfs,
            "paths.procfs",
            &mut by_flag,
        );
        set(
            &self.sysfs,
            &mut file.paths.sysfs,
            "paths.sysfs",
            &mut by_flag,
        );
        set(
            &self.rootfs,
            &mut file.paths.rootfs,
            "paths.rootfs",
            &mut by_flag,
        );
        set(
            &self.log_level,
            &mut file.log.level,
            "log.level",
            &mut by_flag,
        );
        set(
            &self.hardware,
            &mut file.hardware.source,
            "hardware.source",
            &mut by_flag,
        );
        set_opt(
            &self.hardware_profile,
            &mut file.hardware.profile,
            "hardware.profile",
            &mut by_flag,
        );
        set_opt(
            &self.bundle,
            &mut file.bundle.path,
            "bundle.path",
            &mut by_flag,
        );
        set(
            &self.state_dir,
            &mut file.bundle.state_dir,
            "bundle.state_dir",
            &mut by_flag,
        );
        let cp = &mut file.control_plane;
        set_opt(
            &self.control_plane,
            &mut cp.url,
            "control_plane.url",
            &mut by_flag,
        );
        set_opt(
            &self.enrol_token,
            &mut cp.enrol_token,
            "control_plane.enrol_token",
            &mut by_flag,
        );
        set_opt(
            &self.enrol_token_file,
            &mut cp.enrol_token_file,
            "control_plane.enrol_token_file",
            &mut by_flag,
        );
        // A token file given by flag wins over a token in the file.
        if self.enrol_token_file.is_some() && self.enrol_token.is_none() {
            cp.enrol_token = None;
        }
        set_opt(
            &self.ca_file,
            &mut cp.ca_file,
            "control_plane.ca_file",
            &mut by_flag,
        );
        set_opt(
            &self.ca_fingerprint,
            &mut cp.ca_fingerprint,
            "control_plane.ca_fingerprint",
            &mut by_flag,
        );
        set_opt(
            &self.device_name,
            &mut cp.device_name,
            "control_plane.device_name",
            &mut by_flag,
        );
        let c = &mut file.collectors;
        set(
            &self.udev_data,
            &mut c.diskstats.udev_data,
            "collectors.diskstats.udev_data",
            &mut by_flag,
        );
        set(
            &self.fs_mount_points_exclude,
            &mut c.filesystem.mount_points_exclude,
            "collectors.filesystem.mount_points_exclude",
            &mut by_flag,
        );
        set(
            &self.fs_types_exclude,
            &mut c.filesystem.fs_types_exclude,
            "collectors.filesystem.fs_types_exclude",
            &mut by_flag,
        );
        set(
            &self.fs_mount_timeout,
            &mut c.filesystem.mount_timeout,
            "collectors.filesystem.mount_timeout",
            &mut by_flag,
        );
        set_opt(
            &self.netdev_include,
            &mut c.netdev.device_include,
            "collectors.netdev.device_include",
            &mut by_flag,
        );
        set_opt(
            &self.netdev_exclude,
            &mut c.netdev.device_exclude,
            "collectors.netdev.device_exclude",
            &mut by_flag,
        );
        set(
            &self.netclass_ignored,
            &mut c.netclass.ignored_devices,
            "collectors.netclass.ignored_devices",
            &mut by_flag,
        );
        c.netclass.ignore_invalid_speed |= self.netclass_ignore_invalid_speed;
        set_opt(
            &self.diskstats_include,
            &mut c.diskstats.device_include,
            "collectors.diskstats.device_include",
            &mut by_flag,
        );
        set_opt(
            &self.diskstats_exclude,
            &mut c.diskstats.device_exclude,
            "collectors.diskstats.device_exclude",
            &mut by_flag,
        );
        set_opt(
            &self.hwmon_chip_include,
            &mut c.hwmon.chip_include,
            "collectors.hwmon.chip_include",
            &mut by_flag,
        );
        set_opt(
            &self.hwmon_chip_exclude,
            &mut c.hwmon.chip_exclude,
            "collectors.hwmon.chip_exclude",
            &mut by_flag,
        );
        set(
            &self.powersupply_ignored,
            &mut c.powersupplyclass.ignored_supplies,
            "collectors.powersupplyclass.ignored_supplies",
            &mut by_flag,
        );
        set(
            &self.textfile_directory,
            &mut c.textfile.directory,
            "collectors.textfile.directory",
            &mut by_flag,
        );
        set(
            &self.vmstat_fields,
            &mut c.vmstat.fields,
            "collectors.vmstat.fields",
            &mut by_flag,
        );
        if self.no_cpu_guest {
            c.cpu.guest = false;
        }
        // Flags act after the file: a flag-enabled collector wins over the
        // file's disable list, and the other way round.
        if self.toggles.disable_defaults {
            c.disable_defaults = true;
        }
        c.disable.retain(|n| !self.toggles.enable.contains(n));
        c.enable.retain(|n| !self.toggles.disable.contains(n));
        c.enable.extend(self.toggles.enable.iter().cloned());
        c.disable.extend(self.toggles.disable.iter().cloned());

        let mut errors = Vec::new();
        let listen = match parse_listen(&file.web.listen_address) {
            Ok(a) => Some(a),
            Err(m) => {
                errors.push(FieldError::new("web.listen_address", m));
                None
            }
        };
        let server = server_limits(&file.web, &mut errors);
        let log_level = parse_level(&file.log.level);
        if log_level.is_none() {
            errors.push(FieldError::new(
                "log.level",
                format!(
                    "unknown level {:?} (error, warn, info, debug, trace)",
                    file.log.level
                ),
            ));
        }
        let paths = Paths {
            procfs: file.paths.procfs.clone(),
            sysfs: file.paths.sysfs.clone(),
            rootfs: file.paths.rootfs.clone(),
        };
        if let Err(mut e) = exporter::Exporter::new(&file.collectors, &paths, true) {
            errors.append(&mut e);
        }
        let hardware = hardware(&file.hardware, &mut errors);
        let w = file.bundle.watch_interval;
        if !(w.is_finite() && (0.1..=3600.0).contains(&w)) {
            errors.push(FieldError::new(
                "bundle.watch_interval",
                format!("{w} is not a period of 0.1–3600 s"),
            ));
        }
        for e in &mut errors {
            if let Some((_, flag)) = FLAG_NAMES
                .iter()
                .find(|(f, _)| *f == e.path && by_flag.iter().any(|b| b.starts_with(*f)))
            {
                e.path = (*flag).to_owned();
            }
        }
        match (listen, log_level) {
            (Some(listen), Some(log_level)) if errors.is_empty() => Ok(Config {
                source,
                listen,
                max_requests: file.web.max_requests,
                server,
                exporter_metrics: !file.web.disable_exporter_metrics,
                paths,
                collectors: file.collectors.clone(),
                log_level,
                hardware,
                sim: file.hardware.source == "sim",
                poll_interval: std::time::Duration::from_secs_f64(
                    file.hardware.poll_interval.clamp(0.1, 3600.0),
                ),
                bundle: file.bundle.clone(),
                control_plane: file.control_plane.clone(),
            }),
            _ => Err(Error::Invalid(FieldErrors(errors))),
        }
    }
}

/// The listeners' limits from the `web:` section; problems go to
/// `errors`.
fn server_limits(web: &Web, errors: &mut Vec<FieldError>) -> crate::serverlimits::Limits {
    use crate::serverlimits::{Limits, timeout_secs};
    let mut l = Limits::agent(web.max_connections);
    errors.extend(l.check("web.max_connections"));
    match timeout_secs("web.header_timeout", web.header_timeout) {
        Ok(t) => l.header_timeout = t,
        Err(e) => errors.push(e),
    }
    match timeout_secs("web.idle_timeout", web.idle_timeout) {
        Ok(t) => l.idle_timeout = t,
        Err(e) => errors.push(e),
    }
    l
}

/// Validates the `hardware:` section: the source, the profile or inline
/// spec (every problem of the spec, under `hardware.spec.…`), the period.
fn hardware(h: &HardwareFile, errors: &mut Vec<FieldError>) -> Option<Hardware> {
    let sim = match h.source.as_str() {
        "real" => false,
        "sim" => true,
        other => {
            errors.push(FieldError::new(
                "hardware.source",
                format!("{other:?} is not real or sim"),
            ));
            false
        }
    };
    if !(h.poll_interval.is_finite() && h.poll_interval >= 0.1) {
        errors.push(FieldError::new(
            "hardware.poll_interval",
            format!("{} is not a period of at least 0.1 s", h.poll_interval),
        ));
    }
    let spec = match (&h.profile, &h.spec) {
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "hardware",
                "give either profile or spec, not both",
            ));
            return None;
        }
        (Some(p), None) => match crate::hw::load_profile(p) {
            Ok(s) => s,
            Err(e) => {
                errors.push(FieldError::new("hardware.profile", format!("{e:#}")));
                return None;
            }
        },
        (None, Some(s)) => {
            let problems = onprem_hal::inventory::validate(s);
            if !problems.is_empty() {
                for p in problems {
                    errors.push(FieldError::new(
                        format!("hardware.spec.{}", p.path),
                        p.message,
                    ));
                }
                return None;
            }
            s.clone()
        }
        (None, None) => return None,
    };
    Some(Hardware {
        spec,
        sim,
        poll_interval: std::time::Duration::from_secs_f64(h.poll_interval.clamp(0.1, 3600.0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::flags::Toggles;

    fn load_text(text: &str, flags: Flags) -> Result<Config, Error> {
        let mut f = parse_file(text, Path::new("agent.yaml"))?;
        flags.apply(&mut f, None)
    }

    #[test]
    fn can_load_defaults_from_empty_file() {
        let c = load_text("", Flags::default()).expect("valid");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN_ADDRESS);
        assert!(c.collectors.enabled().expect("valid").contains("hwmon"));
    }

    #[test]
    fn returns_field_path_when_field_is_unknown() {
        let e = load_text(
            "collectors:\n  filesystem:\n    mount_point_exclude: x\n",
            Flags::default(),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("collectors.filesystem"), "{msg}");
        assert!(msg.contains("mount_point_exclude"), "{msg}");
    }

    #[test]
    fn returns_every_error_with_its_field() {
        let e = load_text(
            "web:\n  listen_address: nowhere\ncollectors:\n  enable: [wifi]\n  vmstat:\n    fields: \"(\"\nlog:\n  level: loud\n",
            Flags::default(),
        )
        .unwrap_err();
        let Error::Invalid(FieldErrors(errs)) = e else {
            panic!("expected Invalid")
        };
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"web.listen_address"), "{paths:?}");
        assert!(paths.contains(&"collectors.enable[0]"), "{paths:?}");
        assert!(paths.contains(&"collectors.vmstat.fields"), "{paths:?}");
        assert!(paths.contains(&"log.level"), "{paths:?}");
    }

    #[test]
    fn returns_every_parse_error_at_once_each_path_once_with_the_other_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.yaml");
        std::fs::write(
            &path,
            "web:\n  max_requests: many\n  listen_address: nowhere\ncollectors:\n  colour: red\n  vmstat:\n    fields: [1]\n  enable: [wifi]\nlog:\n  level: [loud]\n",
        )
        .expect("write");
        let flags = Flags {
            config: Some(path.clone()),
            ..Default::default()
        };
        let e = flags.load().unwrap_err();
        let Error::Parse { message, .. } = &e else {
            panic!("expected Parse, got {e}")
        };
        let (count, list) = message.split_once('\n').unwrap_or_default();
        assert_eq!(count, "6 problems:", "{e}");
        let lines: Vec<&str> = list.lines().collect();
        let paths: Vec<&str> = lines
            .iter()
            .map(|l| l.split(": ").next().unwrap_or_default())
            .collect();
        assert_eq!(
            paths,
            [
                "web.max_requests",
                "collectors.colour",
                "collectors.vmstat.fields",
                "log.level",
                "web.listen_address",
                "collectors.enable[0]",
            ],
            "{e}"
        );
        assert!(
            lines[0].contains("invalid type") && lines[0].contains("line 2"),
            "{e}"
        );
        assert!(lines[1].contains("unknown field `colour`"), "{e}");
        for (line, path) in lines.iter().zip(&paths) {
            assert_eq!(line.matches(path).count(), 1, "path repeated: {line}");
        }
    }

    #[test]
    fn returns_flag_name_when_flag_is_bad() {
        let flags = Flags {
            vmstat_fields: Some("(".into()),
            ..Default::default()
        };
        let e = load_text("", flags).unwrap_err().to_string();
        assert!(e.contains("--collector.vmstat.fields"), "{e}");
    }

    #[test]
    fn can_override_file_with_flags() {
        let flags = Flags {
            listen_address: Some(":9200".into()),
            toggles: Toggles {
                enable: vec!["textfile".into()],
                disable: vec!["hwmon".into()],
                disable_defaults: false,
            },
            ..Default::default()
        };
        let c = load_text("collectors:\n  disable: [textfile]\n", flags).expect("valid");
        assert_eq!(c.listen.to_string(), "0.0.0.0:9200");
        let en = c.collectors.enabled().expect("valid");
        assert!(en.contains("textfile"));
        assert!(!en.contains("hwmon"));
    }

    #[test]
    fn server_limits_come_from_web_and_flags_and_are_checked() {
        let c = load_text("", Flags::default()).expect("valid");
        assert_eq!(c.server, crate::serverlimits::Limits::agent(None));
        let c = load_text(
            "web:\n  max_connections: 32\n  header_timeout: 2.5\n  idle_timeout: 30\n",
            Flags {
                idle_timeout: Some(0.5),
                ..Default::default()
            },
        )
        .expect("valid");
        assert_eq!(c.server.max_connections, 32);
        assert_eq!(
            c.server.header_timeout,
            std::time::Duration::from_millis(2500)
        );
        assert_eq!(c.server.idle_timeout, std::time::Duration::from_millis(500));
        let e = load_text(
            "web:\n  max_connections: 0\n  idle_timeout: -1\n",
            Flags {
                header_timeout: Some(f64::INFINITY),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("web.max_connections: 0 is not a connection cap"),
            "{e}"
        );
        assert!(e.contains("web.idle_timeout: -1 is not a timeout"), "{e}");
        assert!(
            e.contains("--web.header-timeout: inf is not a timeout"),
            "{e}"
        );
    }
}
