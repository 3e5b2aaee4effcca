//! The agent's command-line flags, named as node_exporter names them
//! (`--web.listen-address`, `--collector.<name>`, `--path.sysfs`, …).
//! `Flags::load` (in [`config`](super::config)) merges them over the config
//! file.

use std::path::PathBuf;

use crate::exporter;

/// The agent's command-line flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Flags {
    /// Config file; a missing file is an error only when this flag is given.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Check the configuration and exit (for systemd's ExecStartPre=).
    #[arg(long = "check-config")]
    pub check_config: bool,
    /// Address to listen on for web interface and telemetry.
    #[arg(long = "web.listen-address", value_name = "HOST:PORT")]
    pub listen_address: Option<String>,
    /// Maximum number of parallel scrape requests; 0 disables the limit.
    #[arg(long = "web.max-requests", value_name = "N")]
    pub max_requests: Option<usize>,
    /// Most connections open at once on each of the agent's listeners
    /// (`/metrics`, Redfish); at the cap, idle ones close to make room.
    /// Default: 256, at most a quarter of the open-file limit.
    #[arg(long = "web.max-connections", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Seconds a request head (and a TLS handshake) may take on the
    /// agent's listeners.
    #[arg(long = "web.header-timeout", value_name = "SECONDS")]
    pub header_timeout: Option<f64>,
    /// Seconds a connection with no request in flight stays open on the
    /// agent's listeners.
    #[arg(long = "web.idle-timeout", value_name = "SECONDS")]
    pub idle_timeout: Option<f64>,
    /// Exclude the process_* and onprem_build_info metrics.
    #[arg(long = "web.disable-exporter-metrics")]
    pub disable_exporter_metrics: bool,
    /// procfs mountpoint.
    #[arg(long = "path.procfs", value_name = "PATH")]
    pub procfs: Option<PathBuf>,
    /// sysfs mountpoint.
    #[arg(long = "path.sysfs", value_name = "PATH")]
    pub sysfs: Option<PathBuf>,
    /// rootfs mountpoint.
    #[arg(long = "path.rootfs", value_name = "PATH")]
    pub rootfs: Option<PathBuf>,
    /// udev data path.
    #[arg(long = "path.udev.data", value_name = "PATH")]
    pub udev_data: Option<PathBuf>,
    /// Where devices come from: real (the node's buses) or sim (the
    /// simulated world built from the same hardware spec).
    #[arg(long = "hardware", value_name = "real|sim")]
    pub hardware: Option<String>,
    /// The hardware profile: a built-in name (`onprem hw profiles`) or a
    /// YAML file.
    #[arg(long = "hardware.profile", value_name = "NAME|FILE")]
    pub hardware_profile: Option<String>,
    /// Run on its own from this bundle file (re-read on SIGHUP and when it
    /// changes); its hardware section replaces `--hardware.profile`.
    #[arg(long = "bundle", value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Dial home to this control plane (`https://host:port`): enrol,
    /// take bundles from it, upload telemetry.
    #[arg(long = "control-plane", value_name = "URL")]
    pub control_plane: Option<String>,
    /// One-time enrolment token (`onprem token create --enrol`), used for
    /// the first connection only: after it the agent proves who it is with
    /// the certificate it keeps in the state directory. On the command
    /// line every user of the node sees it (`ps`): prefer
    /// `--enrol-token-file`.
    #[arg(long = "enrol-token", value_name = "TOKEN")]
    pub enrol_token: Option<String>,
    /// A file holding the enrolment token (`-`: standard input), so that
    /// it is not on the command line for `ps` to show; surrounding
    /// whitespace is ignored. Read only when the agent has not enrolled
    /// yet.
    #[arg(
        long = "enrol-token-file",
        value_name = "PATH",
        conflicts_with = "enrol_token"
    )]
    pub enrol_token_file: Option<PathBuf>,
    /// The control plane's CA certificate file.
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// The control plane's CA fingerprint (`sha256:<hex>`).
    #[arg(long = "ca-fingerprint", value_name = "SHA256")]
    pub ca_fingerprint: Option<String>,
    /// The name to enrol under (default: the host name).
    #[arg(long = "device-name", value_name = "NAME")]
    pub device_name: Option<String>,
    /// Where applied bundles, the last-known-good one and loop state are
    /// kept (default /var/lib/onprem).
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Only log messages with the given severity or above: error, warn, info, debug, trace.
    #[arg(long = "log.level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Collector selection: `--collector.<name>`, `--no-collector.<name>`, `--collector.disable-defaults`.
    #[command(flatten)]
    pub toggles: Toggles,
    /// Regexp of mount points to exclude for filesystem collector.
    #[arg(long = "collector.filesystem.mount-points-exclude", value_name = "RE")]
    pub fs_mount_points_exclude: Option<String>,
    /// Regexp of filesystem types to exclude for filesystem collector.
    #[arg(long = "collector.filesystem.fs-types-exclude", value_name = "RE")]
    pub fs_types_exclude: Option<String>,
    /// Seconds to wait for statfs on a network filesystem before marking it stuck.
    #[arg(long = "collector.filesystem.mount-timeout", value_name = "SECONDS")]
    pub fs_mount_timeout: Option<f64>,
    /// Regexp of net devices to include (mutually exclusive to device-exclude).
    #[arg(long = "collector.netdev.device-include", value_name = "RE")]
    pub netdev_include: Option<String>,
    /// Regexp of net devices to exclude (mutually exclusive to device-include).
    #[arg(long = "collector.netdev.device-exclude", value_name = "RE")]
    pub netdev_exclude: Option<String>,
    /// Regexp of net devices to ignore for netclass collector.
    #[arg(long = "collector.netclass.ignored-devices", value_name = "RE")]
    pub netclass_ignored: Option<String>,
    /// Ignore devices where the speed is invalid (-1).
    #[arg(long = "collector.netclass.ignore-invalid-speed")]
    pub netclass_ignore_invalid_speed: bool,
    /// Regexp of diskstats devices to include (mutually exclusive to device-exclude).
    #[arg(long = "collector.diskstats.device-include", value_name = "RE")]
    pub diskstats_include: Option<String>,
    /// Regexp of diskstats devices to exclude (mutually exclusive to device-include).
    #[arg(long = "collector.diskstats.device-exclude", value_name = "RE")]
    pub diskstats_exclude: Option<String>,
    /// Regexp of hwmon chips to include (mutually exclusive to chip-exclude).
    #[arg(long = "collector.hwmon.chip-include", value_name = "RE")]
    pub hwmon_chip_include: Option<String>,
    /// Regexp of hwmon chips to exclude (mutually exclusive to chip-include).
    #[arg(long = "collector.hwmon.chip-exclude", value_name = "RE")]
    pub hwmon_chip_exclude: Option<String>,
    /// Regexp of power supplies to ignore for powersupplyclass collector.
    #[arg(long = "collector.powersupply.ignored-supplies", value_name = "RE")]
    pub powersupply_ignored: Option<String>,
    /// Directory to read text files with metrics from.
    #[arg(long = "collector.textfile.directory", value_name = "DIR")]
    pub textfile_directory: Option<PathBuf>,
    /// Regexp of fields to return for vmstat collector.
    #[arg(long = "collector.vmstat.fields", value_name = "RE")]
    pub vmstat_fields: Option<String>,
    /// Disable node_cpu_guest_seconds_total.
    #[arg(long = "no-collector.cpu.guest")]
    pub no_cpu_guest: bool,
}

/// What the agent warns when `--enrol-token` is on its command line.
pub const ENROL_TOKEN_ARGUMENT: &str = "--enrol-token puts the token on the command line, where every user of this node sees it (ps, /proc/PID/cmdline) and the shell history and unit files keep it: use --enrol-token-file PATH (mode 0600), --enrol-token-file - (standard input) or control_plane.enrol_token_file in the config file";

impl Flags {
    /// The warning for a secret given on the command line, if one was
    /// (the agent logs it once, at start).
    pub fn secret_on_command_line(&self) -> Option<&'static str> {
        self.enrol_token.as_ref().map(|_| ENROL_TOKEN_ARGUMENT)
    }
}

/// `--collector.<name>`, `--no-collector.<name>` for every collector, and
/// `--collector.disable-defaults`, built from [`exporter::COLLECTORS`].
#[derive(Debug, Clone, Default)]
pub struct Toggles {
    /// Collectors turned on by flag.
    pub enable: Vec<String>,
    /// Collectors turned off by flag.
    pub disable: Vec<String>,
    /// `--collector.disable-defaults` was given.
    pub disable_defaults: bool,
}

impl clap::FromArgMatches for Toggles {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut t = Toggles {
            disable_defaults: m.get_flag("collector.disable-defaults"),
            ..Default::default()
        };
        for (name, _, _) in exporter::COLLECTORS {
            if m.get_flag(&format!("collector.{name}")) {
                t.enable.push((*name).to_owned());
            }
            if m.get_flag(&format!("no-collector.{name}")) {
                t.disable.push((*name).to_owned());
            }
        }
        Ok(t)
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for Toggles {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        use clap::{Arg, ArgAction};
        cmd = cmd.arg(
            Arg::new("collector.disable-defaults")
                .long("collector.disable-defaults")
                .action(ArgAction::SetTrue)
                .help("Set all collectors to disabled by default."),
        );
        for (name, default, what) in exporter::COLLECTORS {
            let state = if *default { "enabled" } else { "disabled" };
            cmd = cmd
                .arg(
                    Arg::new(format!("collector.{name}"))
                        .long(format!("collector.{name}"))
                        .action(ArgAction::SetTrue)
                        .help(format!(
                            "Enable the {name} collector: {what} (default: {state}; \
                             --no-collector.{name} disables it)."
                        )),
                )
                .arg(
                    Arg::new(format!("no-collector.{name}"))
                        .long(format!("no-collector.{name}"))
                        .action(ArgAction::SetTrue)
                        .hide(true),
                );
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}
