//! The bundle's types: what a node is told to be.
//!
//! Every field has a doc comment: `onprem explain spec.fans.zones` prints
//! it (through the JSON Schema these types derive). Unknown fields are
//! rejected; defaults are named constants. Field names are camelCase, as
//! in Kubernetes objects.

use std::collections::BTreeMap;

use onprem_hal::inventory::Device;
use onprem_hal::inventory::spec::SimSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Dur;

/// The only `apiVersion` this agent reads.
pub const API_VERSION: &str = "onprem/v1";
/// The only `kind` a bundle has.
pub const KIND: &str = "Bundle";

/// A bundle: the whole desired state of one node.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bundle {
    /// Schema version of this document: `onprem/v1`.
    pub api_version: String,
    /// Always `Bundle`.
    pub kind: String,
    /// Name, labels and version.
    pub metadata: Metadata,
    /// What the node should be.
    pub spec: Spec,
}

/// Who this bundle is.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// The bundle's name: 1–63 letters, digits, `-`, `.` and `_`,
    /// starting and ending with a letter or digit (never `.` or `..`).
    pub name: String,
    /// Labels, `key: value`, for selecting and grouping (the control
    /// plane matches them against device labels).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Revision number. The control plane assigns a monotonically
    /// increasing one to each revision it serves; a local bundle may set
    /// its own. Shown as the observed version in every loop's condition.
    #[serde(default)]
    pub version: Option<u64>,
}

/// The desired state, one section per subsystem. A new bundle restarts
/// only the loops whose section changed; a change to `hardware` rebuilds
/// them all.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// The node's devices: a profile from `bundles/profiles/` and
    /// changes to it.
    #[serde(default)]
    pub hardware: Hardware,
    /// Fan zones and their controllers.
    #[serde(default)]
    pub fans: Fans,
    /// UPS policy, critical temperature, power switches, GPU power caps,
    /// button and reset requests.
    #[serde(default)]
    pub power: Power,
    /// Signal acquisition: sampled inputs, scaled, with window statistics.
    #[serde(default)]
    pub signals: Signals,
    /// Alert rules on the node's own metrics.
    #[serde(default)]
    pub checks: Checks,
    /// What the agent samples for upload to the control plane.
    #[serde(default)]
    pub telemetry: Telemetry,
    /// The node's Redfish service.
    #[serde(default)]
    pub redfish: Redfish,
    /// Reverse tunnels through the control plane to this node.
    #[serde(default)]
    pub tunnel: Tunnel,
}

/// The `hardware` section: a profile plus changes, or devices alone.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hardware {
    /// A built-in profile (`onprem hw profiles`) or a profile file, relative
    /// to the bundle's own file. Without one, `devices` is the whole
    /// hardware.
    #[serde(default)]
    pub profile: Option<String>,
    /// The board, as a profile names it (`raspberry-pi-5`,
    /// `jetson-nano`, `gpu-server`): replaces the profile's. The
    /// simulated world builds this board's sysfs tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// What this hardware is, one line: replaces the profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Acknowledges devices whose protocol is not confirmed (BitScope's
    /// BMC), as a profile's `provisional: true` does; a profile that is
    /// provisional stays so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
    /// Devices added to the profile's; one with the name of a profile
    /// device replaces it.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// Names of profile devices to leave out.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Parameters of the simulated world (`--hardware sim`), replacing the
    /// profile's.
    #[serde(default)]
    pub sim: Option<SimSpec>,
}

/// Default period of the fans loop.
pub const DEFAULT_FANS_PERIOD: Dur = Dur::secs(1);
/// Default fail-safe duty, percent.
pub const DEFAULT_FAILSAFE_PERCENT: f64 = 100.0;
/// Default time without a new reading before a sensor is stale.
pub const DEFAULT_SENSOR_TIMEOUT: Dur = Dur::secs(5);
/// Default plausible range of a temperature, °C.
pub const DEFAULT_SENSOR_RANGE: [f64; 2] = [-40.0, 150.0];
/// Default largest plausible rate of change, °C per second.
pub const DEFAULT_SENSOR_MAX_RATE: f64 = 20.0;
/// Default kick-start duty, percent.
pub const DEFAULT_KICK_PERCENT: f64 = 100.0;
/// Default kick-start length.
pub const DEFAULT_KICK_DURATION: Dur = Dur::secs(2);
/// Default time a driven fan may read 0 RPM before it is a fault.
pub const DEFAULT_STALL_AFTER: Dur = Dur::secs(5);

/// The `fans` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fans {
    /// Time between two ticks of the fans loop.
    #[serde(default = "default_fans_period")]
    pub period: Dur,
    /// Duty, percent, written to every fan at agent start before any
    /// bundle is loaded, at agent stop, and by a zone that fails safe
    /// without a level of its own (default 100).
    #[serde(default = "default_failsafe_percent")]
    pub failsafe_percent: f64,
    /// The zones. Each fan belongs to at most one zone.
    #[serde(default)]
    pub zones: Vec<Zone>,
}

const fn default_fans_period() -> Dur {
    DEFAULT_FANS_PERIOD
}
const fn default_failsafe_percent() -> f64 {
    DEFAULT_FAILSAFE_PERCENT
}

impl Default for Fans {
    fn default() -> Self {
        Fans {
            period: DEFAULT_FANS_PERIOD,
            failsafe_percent: DEFAULT_FAILSAFE_PERCENT,
            zones: Vec::new(),
        }
    }
}

/// A fan zone: fans it owns, sensors it reads, controllers that turn
/// readings into a duty. The zone writes the highest duty any controller
/// asks for.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Zone {
    /// The zone's name (metric label `zone`).
    pub name: String,
    /// Fan devices this zone drives, by name.
    pub fans: Vec<String>,
    /// Temperature sensors this zone reads, and how each one is judged
    /// healthy.
    pub sensors: Vec<ZoneSensor>,
    /// Controllers; the zone takes the maximum of their demands.
    pub controllers: Vec<Controller>,
    /// Fail-safe duty per cause of failure; the highest applicable level
    /// wins and acts as a floor (a healthy controller may still ask for
    /// more).
    #[serde(default)]
    pub failsafe: Failsafe,
    /// Lowest duty written while the fans run, percent: demands between
    /// 0 and this are raised to it.
    #[serde(default)]
    pub min_percent: f64,
    /// Whether a demand of 0 % may stop the fans; otherwise `minPercent`
    /// is the floor at all times.
    #[serde(default)]
    pub allow_stop: bool,
    /// Spin-up from standstill: a high duty for a short time before the
    /// asked-for low duty (fans often do not start at low PWM).
    #[serde(default)]
    pub kick_start: Option<KickStart>,
    /// Time a driven fan may report 0 RPM before it counts as stalled (a
    /// fault on `/metrics`, in the log and in the condition). Fans without
    /// a tachometer are not checked.
    #[serde(default = "default_stall_after")]
    pub stall_after: Dur,
}

const fn default_stall_after() -> Dur {
    DEFAULT_STALL_AFTER
}

/// One sensor of a zone, with the bounds that make its reading healthy.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZoneSensor {
    /// A temperature device of the hardware section (or a part such as
    /// `ups/temperature`).
    pub name: String,
    /// Stale when no new reading succeeded for this long.
    #[serde(default = "default_sensor_timeout")]
    pub timeout: Dur,
    /// Stuck when the value has not changed at all for this long (unset:
    /// not checked; sensors with coarse resolution can sit still for
    /// minutes).
    #[serde(default)]
    pub stuck_after: Option<Dur>,
    /// Plausible range, °C: a reading outside it is implausible.
    #[serde(default = "default_sensor_range")]
    pub range: [f64; 2],
    /// Largest plausible change, °C per second: a faster jump is
    /// implausible.
    #[serde(default = "default_sensor_max_rate")]
    pub max_rate: f64,
}

const fn default_sensor_timeout() -> Dur {
    DEFAULT_SENSOR_TIMEOUT
}
const fn default_sensor_range() -> [f64; 2] {
    DEFAULT_SENSOR_RANGE
}
const fn default_sensor_max_rate() -> f64 {
    DEFAULT_SENSOR_MAX_RATE
}

/// Fail-safe duty per cause, percent; unset levels use
/// `spec.fans.failsafePercent`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Failsafe {
    /// A sensor cannot be read at all (absent, wrong chip, gone).
    #[serde(default)]
    pub missing: Option<f64>,
    /// No new reading within the sensor's `timeout`.
    #[serde(default)]
    pub stale: Option<f64>,
    /// The value has not changed for the sensor's `stuckAfter`.
    #[serde(default)]
    pub stuck: Option<f64>,
    /// Out of range, or changing faster than `maxRate`.
    #[serde(default)]
    pub implausible: Option<f64>,
}

/// Spin-up from standstill.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KickStart {
    /// Duty during the kick, percent.
    #[serde(default = "default_kick_percent")]
    pub percent: f64,
    /// How long the kick lasts.
    #[serde(default = "default_kick_duration")]
    pub duration: Dur,
}

const fn default_kick_percent() -> f64 {
    DEFAULT_KICK_PERCENT
}
const fn default_kick_duration() -> Dur {
    DEFAULT_KICK_DURATION
}

/// A controller: turns sensor readings into a demanded duty.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Controller {
    /// Linear interpolation between `[°C, %]` points.
    Curve(Curve),
    /// Steps: the duty of the highest step at or below the temperature.
    Stepwise(Stepwise),
    /// PID towards a setpoint.
    Pid(Pid),
}

/// A fan curve.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Curve {
    /// Sensors whose maximum drives this controller (default: all the
    /// zone's sensors).
    #[serde(default)]
    pub sensors: Vec<String>,
    /// `[temperature °C, duty %]` pairs, temperatures strictly rising and
    /// duties not falling. Below the first point the first duty applies,
    /// above the last the last.
    pub points: Vec<[f64; 2]>,
    /// °C the temperature must fall below the one that set the current
    /// duty before the duty goes down (stops a fan hunting around a point).
    #[serde(default)]
    pub hysteresis: f64,
}

/// Stepwise control, as phosphor-pid-control's `stepwise`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Stepwise {
    /// Sensors whose maximum drives this controller (default: all the
    /// zone's sensors).
    #[serde(default)]
    pub sensors: Vec<String>,
    /// `[temperature °C, duty %]` steps, temperatures strictly rising and
    /// duties not falling (at most 20). Below the first step: 0 %.
    pub steps: Vec<[f64; 2]>,
    /// °C above the current step's edge the temperature must rise before
    /// the output steps up.
    #[serde(default)]
    pub positive_hysteresis: f64,
    /// °C below the current step's edge the temperature must fall before
    /// the output steps down.
    #[serde(default)]
    pub negative_hysteresis: f64,
}

/// PID control towards a temperature setpoint: hotter than the setpoint
/// asks for more duty.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pid {
    /// Sensors whose maximum drives this controller (default: all the
    /// zone's sensors).
    #[serde(default)]
    pub sensors: Vec<String>,
    /// Target temperature, °C.
    pub setpoint: f64,
    /// Proportional gain, % per °C.
    pub kp: f64,
    /// Integral gain, % per °C·s.
    #[serde(default)]
    pub ki: f64,
    /// Derivative gain, % per °C/s.
    #[serde(default)]
    pub kd: f64,
    /// Feed-forward offset added to the output, %.
    #[serde(default)]
    pub feed_forward: f64,
    /// Bounds of the integral term's contribution, %.
    #[serde(default = "default_output_limits")]
    pub integral_limits: [f64; 2],
    /// Bounds of the output, %.
    #[serde(default = "default_output_limits")]
    pub output_limits: [f64; 2],
    /// Largest rise of the output, % per second (unset: unlimited).
    #[serde(default)]
    pub slew_up: Option<f64>,
    /// Largest fall of the output, % per second (unset: unlimited).
    #[serde(default)]
    pub slew_down: Option<f64>,
}

const fn default_output_limits() -> [f64; 2] {
    [0.0, 100.0]
}

/// Default period of the power loop.
pub const DEFAULT_POWER_PERIOD: Dur = Dur::secs(1);
/// Default battery charge at which a node on battery shuts down, percent.
pub const DEFAULT_SHUTDOWN_PERCENT: f64 = 20.0;
/// Default time a critical temperature must last before its action.
pub const DEFAULT_CRITICAL_FOR: Dur = Dur::secs(10);

/// The `power` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Power {
    /// Time between two ticks of the power loop.
    #[serde(default = "default_power_period")]
    pub period: Dur,
    /// Protective shutdown on battery.
    #[serde(default)]
    pub ups: Option<Ups>,
    /// What to do when the node runs too hot.
    #[serde(default)]
    pub critical_temperature: Option<CriticalTemperature>,
    /// Power switches (GPIO relays, blade power) and their restore policy.
    #[serde(default)]
    pub switches: Vec<Switch>,
    /// GPU power caps.
    #[serde(default)]
    pub gpus: Vec<GpuCap>,
    /// Host actions the agent may take on a request (power button,
    /// Redfish `ComputerSystem.Reset`) or a policy (UPS, critical
    /// temperature).
    #[serde(default)]
    pub host: HostActions,
}

const fn default_power_period() -> Dur {
    DEFAULT_POWER_PERIOD
}

impl Default for Power {
    fn default() -> Self {
        Power {
            period: DEFAULT_POWER_PERIOD,
            ups: None,
            critical_temperature: None,
            switches: Vec::new(),
            gpus: Vec::new(),
            host: HostActions::default(),
        }
    }
}

/// Protective shutdown on battery.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ups {
    /// The battery device (e.g. a `sixfab-ups`).
    pub battery: String,
    /// On battery, shut down when the charge falls to this, percent.
    #[serde(default = "default_shutdown_percent")]
    pub shutdown_at_percent: f64,
    /// On battery, shut down when the estimated runtime left (from the
    /// rate the charge falls) drops to this (unset: not used).
    #[serde(default)]
    pub shutdown_at_runtime: Option<Dur>,
    /// Wait this long on battery before any action (rides through short
    /// dips); a shutdown already decided is cancelled if mains returns
    /// before it runs.
    #[serde(default)]
    pub grace: Dur,
}

const fn default_shutdown_percent() -> f64 {
    DEFAULT_SHUTDOWN_PERCENT
}

/// A critical-temperature action.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CriticalTemperature {
    /// Temperature sensors watched; the hottest counts.
    pub sensors: Vec<String>,
    /// Threshold, °C.
    pub celsius: f64,
    /// How long the threshold must be exceeded.
    #[serde(rename = "for", default = "default_critical_for")]
    pub for_: Dur,
    /// What to do: `shutdown`, `reboot`, or `none` (alert only).
    #[serde(default)]
    pub action: HostAction,
}

const fn default_critical_for() -> Dur {
    DEFAULT_CRITICAL_FOR
}

/// A host action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HostAction {
    /// Power the host off (systemd `poweroff`).
    #[default]
    Shutdown,
    /// Reboot the host (systemd `reboot`).
    Reboot,
    /// Record and alert only.
    None,
}

/// A power switch and what it does at agent start.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Switch {
    /// The switch device (`gpio-relay`, a blade's `power` part).
    pub name: String,
    /// After a power loss of the node: `always-on`, `always-off` or
    /// `last-state`. A restart of the agent alone never changes a switch.
    #[serde(default)]
    pub restore: RestorePolicy,
}

/// Restore policy of a switch after the node lost power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestorePolicy {
    /// Switch on.
    AlwaysOn,
    /// Switch off.
    AlwaysOff,
    /// As it was before the power loss (recorded in the state directory).
    #[default]
    LastState,
}

/// A GPU power cap.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GpuCap {
    /// A GPU part (`gpu/0`) or an NVML device (`gpu`: all its GPUs).
    pub name: String,
    /// Power limit, W (clamped to what the GPU allows, with a warning).
    pub power_limit_watts: f64,
}

/// Which host actions the agent may take.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostActions {
    /// Whether the agent may reboot the host.
    #[serde(default = "yes")]
    pub allow_reboot: bool,
    /// Whether the agent may power the host off.
    #[serde(default = "yes")]
    pub allow_shutdown: bool,
    /// Whether power-button presses become requests.
    #[serde(default = "yes")]
    pub buttons: bool,
}

const fn yes() -> bool {
    true
}

impl Default for HostActions {
    fn default() -> Self {
        HostActions {
            allow_reboot: true,
            allow_shutdown: true,
            buttons: true,
        }
    }
}

/// Default window of signal statistics.
pub const DEFAULT_SIGNAL_WINDOW: Dur = Dur::secs(60);
/// Default sample rate of a signal, Hz.
pub const DEFAULT_SIGNAL_RATE_HZ: f64 = 1.0;

/// The `signals` section.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Signals {
    /// The signals.
    #[serde(default)]
    pub sources: Vec<Signal>,
}

/// One acquired signal.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Signal {
    /// The signal's name (metric label `signal`).
    pub name: String,
    /// The device read: a `signal` (ADC input, edge counter) or a `rail`
    /// (power monitor, Modbus meter).
    pub device: String,
    /// Which value of a rail: `volts`, `amps` or `watts` (signals have one).
    #[serde(default)]
    pub field: Option<String>,
    /// Samples per second (an ADS1115 converts at most 860).
    #[serde(default = "default_signal_rate")]
    pub rate_hz: f64,
    /// Value = raw × scale + offset.
    #[serde(default = "one")]
    pub scale: f64,
    /// Value = raw × scale + offset.
    #[serde(default)]
    pub offset: f64,
    /// Unit of the scaled value, for people (`V`, `bar`, `m3/h`).
    #[serde(default)]
    pub unit: String,
    /// Window of the statistics (min, max, mean, rms, count).
    #[serde(default = "default_signal_window")]
    pub window: Dur,
}

const fn default_signal_rate() -> f64 {
    DEFAULT_SIGNAL_RATE_HZ
}
const fn default_signal_window() -> Dur {
    DEFAULT_SIGNAL_WINDOW
}
const fn one() -> f64 {
    1.0
}

/// Default period of the checks loop.
pub const DEFAULT_CHECKS_PERIOD: Dur = Dur::secs(15);

/// The `checks` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Checks {
    /// Time between two evaluations of the rules.
    #[serde(default = "default_checks_period")]
    pub period: Dur,
    /// The rules (at most 1000).
    #[serde(default)]
    pub rules: Vec<Rule>,
}

const fn default_checks_period() -> Dur {
    DEFAULT_CHECKS_PERIOD
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            period: DEFAULT_CHECKS_PERIOD,
            rules: Vec::new(),
        }
    }
}

/// An alert rule on the node's own metrics.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// The alert's name (metric label `check`).
    pub name: String,
    /// A series selector, PromQL-style: `node_load1`,
    /// `onprem_temperature_celsius{sensor="cpu"}`, `{…=~"re"}`, `!=`, `!~`.
    pub metric: String,
    /// Comparison: `>`, `>=`, `<`, `<=`, `==`, `!=`.
    pub op: String,
    /// The threshold the value is compared with.
    pub threshold: f64,
    /// How long the condition must hold before the alert fires.
    #[serde(rename = "for", default)]
    pub for_: Dur,
    /// `info`, `warning` or `critical`.
    #[serde(default)]
    pub severity: Severity,
    /// Labels added to the alert.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// One line for people; `{{ value }}` and `{{ labels.NAME }}` are
    /// replaced.
    #[serde(default)]
    pub summary: String,
}

/// How bad an alert is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// For information.
    Info,
    /// Needs attention.
    #[default]
    Warning,
    /// Needs action now.
    Critical,
}

impl Severity {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Default telemetry sampling interval.
pub const DEFAULT_TELEMETRY_INTERVAL: Dur = Dur::secs(60);
/// Default bound of the on-disk telemetry buffer, bytes.
pub const DEFAULT_TELEMETRY_BUFFER_BYTES: u64 = 64 * 1024 * 1024;

/// The `telemetry` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Telemetry {
    /// Time between two samples of the agent's metrics for upload.
    #[serde(default = "default_telemetry_interval")]
    pub interval: Dur,
    /// Metric names to upload (regular expressions, anchored; empty: all
    /// `onprem_*` metrics).
    #[serde(default)]
    pub include: Vec<String>,
    /// Metric names never uploaded (regular expressions, anchored).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Largest size of the on-disk buffer, bytes (64 KiB to 1 GiB); the
    /// oldest samples are dropped (and counted) beyond it.
    #[serde(default = "default_telemetry_buffer")]
    pub buffer_bytes: u64,
}

const fn default_telemetry_interval() -> Dur {
    DEFAULT_TELEMETRY_INTERVAL
}
const fn default_telemetry_buffer() -> u64 {
    DEFAULT_TELEMETRY_BUFFER_BYTES
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            interval: DEFAULT_TELEMETRY_INTERVAL,
            include: Vec::new(),
            exclude: Vec::new(),
            buffer_bytes: DEFAULT_TELEMETRY_BUFFER_BYTES,
        }
    }
}

/// Default address of the Redfish service.
pub const DEFAULT_REDFISH_LISTEN: &str = "127.0.0.1:8443";

/// Default Redfish session timeout (idle time before a session ends).
pub const DEFAULT_REDFISH_SESSION_TIMEOUT: Dur = Dur::secs(1800);
/// Default number of failed logins that lock an account.
pub const DEFAULT_REDFISH_LOCKOUT_THRESHOLD: u32 = 5;
/// Default time a locked account stays locked.
pub const DEFAULT_REDFISH_LOCKOUT_DURATION: Dur = Dur::secs(300);
/// Default Redfish `ChassisType` of the node's own chassis.
pub const DEFAULT_REDFISH_CHASSIS_TYPE: &str = "StandAlone";

/// The `redfish` section: the node's own Redfish service (a software
/// BMC), served over TLS.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Redfish {
    /// Whether the node serves Redfish.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address and port (loopback unless set: the tunnel reaches it
    /// there). Port 0 picks a free one (`onprem status` shows it).
    #[serde(default = "default_redfish_listen")]
    pub listen: String,
    /// The TLS certificate and key, files on the node (PEM). Unset: a
    /// self-signed certificate made at first start and kept in the state
    /// directory.
    #[serde(default)]
    pub tls: Option<RedfishTls>,
    /// Accounts that may log in (Redfish `AccountService`). None: the
    /// service does not start (nobody could use it).
    #[serde(default)]
    pub accounts: Vec<RedfishAccount>,
    /// A session ends after this long without a request
    /// (`SessionService.SessionTimeout`, 30 s to 24 h).
    #[serde(default = "default_redfish_session_timeout")]
    pub session_timeout: Dur,
    /// Failed logins in a row that lock an account (0: never).
    #[serde(default = "default_redfish_lockout_threshold")]
    pub lockout_threshold: u32,
    /// How long a locked account stays locked; an administrator can
    /// unlock it sooner with `PATCH {"Locked": false}`.
    #[serde(default = "default_redfish_lockout_duration")]
    pub lockout_duration: Dur,
    /// Redfish `ChassisType` of the node's own chassis (`StandAlone`,
    /// `Blade`, `Module`, `Card`, `RackMount`, `Sled`, `Enclosure`, …).
    #[serde(default = "default_redfish_chassis_type")]
    pub chassis_type: String,
}

/// TLS files of the Redfish service.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedfishTls {
    /// Certificate chain, PEM.
    pub cert_file: std::path::PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: std::path::PathBuf,
}

/// A Redfish account.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedfishAccount {
    /// Login name.
    pub user_name: String,
    /// `Administrator`, `Operator` or `ReadOnly` (Redfish's predefined
    /// roles and their privileges).
    pub role: String,
    /// The password's Argon2 hash in PHC format (`$argon2id$v=19$…`),
    /// as `onprem hash-password` prints it. The password itself never
    /// appears in a bundle.
    pub password_hash: String,
    /// Whether the account may log in.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn default_redfish_listen() -> String {
    DEFAULT_REDFISH_LISTEN.to_owned()
}

const fn default_redfish_session_timeout() -> Dur {
    DEFAULT_REDFISH_SESSION_TIMEOUT
}

const fn default_redfish_lockout_threshold() -> u32 {
    DEFAULT_REDFISH_LOCKOUT_THRESHOLD
}

const fn default_redfish_lockout_duration() -> Dur {
    DEFAULT_REDFISH_LOCKOUT_DURATION
}

fn default_redfish_chassis_type() -> String {
    DEFAULT_REDFISH_CHASSIS_TYPE.to_owned()
}

impl Default for Redfish {
    fn default() -> Self {
        Redfish {
            enabled: true,
            listen: default_redfish_listen(),
            tls: None,
            accounts: Vec::new(),
            session_timeout: DEFAULT_REDFISH_SESSION_TIMEOUT,
            lockout_threshold: DEFAULT_REDFISH_LOCKOUT_THRESHOLD,
            lockout_duration: DEFAULT_REDFISH_LOCKOUT_DURATION,
            chassis_type: default_redfish_chassis_type(),
        }
    }
}

/// The `tunnel` section.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tunnel {
    /// Local TCP ports the control plane may open tunnels to (e.g. the
    /// Redfish port, SSH). Empty: none.
    #[serde(default)]
    pub allowed_ports: Vec<u16>,
}
