//! The `hardware` spec: which devices a node has and how to reach them.
//!
//! A bundle's `spec.hardware` and every file of `bundles/profiles/` hold
//! one [`Spec`]. Each device names its driver (`driver:`), gets a name that
//! fans, power and signal sections refer to, and the bus coordinates the
//! driver needs. The same spec builds real handles (`--hardware real`) or
//! handles on the simulated world (`--hardware sim`), where every device
//! is emulated where the real one would be.
//!
//! Unknown fields are rejected; every field is documented here, and these
//! comments are what `onprem explain` prints.

use serde::{Deserialize, Serialize};

/// The hardware of one node.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// The board, for people and for `onprem hw probe` (e.g.
    /// `raspberry-pi-5`, `jetson-orin-nano`, `gpu-server`).
    #[serde(default)]
    pub board: Option<String>,
    /// What this profile is for, one line.
    #[serde(default)]
    pub description: Option<String>,
    /// The profile relies on a protocol that is not confirmed (BitScope's
    /// BMC): its commands come from the profile and must be checked
    /// against the vendor's documentation before use on real hardware.
    #[serde(default)]
    pub provisional: bool,
    /// Parameters of the simulated world (`--hardware sim`).
    #[serde(default)]
    pub sim: SimSpec,
    /// The devices.
    pub devices: Vec<Device>,
}

/// Most discrete GPUs a simulated node has (`sim.gpus`): the fake NVML
/// library builds a device for each.
pub const SIM_MAX_GPUS: u32 = 16;
/// Plausible ambient air temperature of a simulated node
/// (`sim.ambientCelsius`), °C: an industrial part's range.
pub const SIM_AMBIENT_CELSIUS: [f64; 2] = [-40.0, 85.0];
/// Most power a simulated board draws (`sim.boardWatts`), W.
pub const SIM_MAX_BOARD_WATTS: f64 = 5_000.0;
/// Most power one simulated GPU draws (`sim.gpuWatts`), W.
pub const SIM_MAX_GPU_WATTS: f64 = 2_000.0;
/// Largest simulated battery (`sim.batteryWh`), Wh.
pub const SIM_MAX_BATTERY_WH: f64 = 100_000.0;
/// Most simulated mains outages, and most simulated ADC signals.
pub const SIM_MAX_ENTRIES: usize = 256;
/// Latest moment a simulated outage may end, and longest period of a
/// simulated signal, seconds (a year).
pub const SIM_MAX_SECONDS: f64 = 366.0 * 86_400.0;
/// Largest simulated signal voltage, either sign, and largest amplitude, V
/// (an ADS1x15 reads ±6.144 V at most).
pub const SIM_MAX_VOLTS: f64 = 100.0;
/// Longest device name.
pub const NAME_MAX: usize = 63;

/// Parameters of the physical model when the spec runs in simulation.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimSpec {
    /// Seed of the load and noise generator: the same seed replays the
    /// same run.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Ambient air temperature, °C.
    #[serde(default = "default_ambient")]
    pub ambient_celsius: f64,
    /// Mean CPU load, 0–1.
    #[serde(default = "default_load")]
    pub load: f64,
    /// Board power at idle and at full load, W.
    #[serde(default = "default_board_watts")]
    pub board_watts: [f64; 2],
    /// Battery capacity, Wh (0: none).
    #[serde(default)]
    pub battery_wh: f64,
    /// Mains outages: `[from, until]` in seconds since the start.
    #[serde(default)]
    pub mains_outages: Vec<[f64; 2]>,
    /// Discrete GPU power at idle and at full load, W (0, 0: none).
    #[serde(default)]
    pub gpu_watts: [f64; 2],
    /// Number of discrete GPUs the fake NVML library enumerates.
    #[serde(default)]
    pub gpus: u32,
    /// Waveforms on ADC inputs, there from the first conversion (without
    /// one an ADS1x15 reads the model: a0 the supply through a 1:2
    /// divider, a1 the load as 0–3.3 V).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<SimSignal>,
}

/// A sine on the input of an ADC device in simulation: what the sensor
/// wired to it would put there.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimSignal {
    /// The `ads1x15` device (its name) whose single-ended input carries it.
    pub device: String,
    /// Volts at the middle of the swing.
    pub volts: f64,
    /// Volts from the middle to a peak (0: steady).
    #[serde(default)]
    pub amplitude: f64,
    /// Seconds per cycle, at the device's data rate.
    #[serde(default = "default_signal_period")]
    pub period_seconds: f64,
}

const fn default_signal_period() -> f64 {
    10.0
}

const fn default_seed() -> u64 {
    1
}
const fn default_ambient() -> f64 {
    25.0
}
const fn default_load() -> f64 {
    0.35
}
const fn default_board_watts() -> [f64; 2] {
    [2.7, 7.0]
}

impl Default for SimSpec {
    fn default() -> Self {
        SimSpec {
            seed: default_seed(),
            ambient_celsius: default_ambient(),
            load: default_load(),
            board_watts: default_board_watts(),
            battery_wh: 0.0,
            mains_outages: Vec::new(),
            gpu_watts: [0.0, 0.0],
            gpus: 0,
            signals: Vec::new(),
        }
    }
}

/// One device: a driver and where it sits.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "driver", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Device {
    /// LM75 family temperature sensor (LM75A/B, PCT2075, TCN75).
    Lm75(Lm75),
    /// TI TMP102 temperature sensor.
    Tmp102(I2cOnly),
    /// TI INA219 current, voltage and power monitor.
    Ina219(Ina219),
    /// One channel of a TI INA3221 three-channel monitor.
    Ina3221(Ina3221),
    /// Microchip EMC2101 fan controller with temperature diode: a fan
    /// `<name>` and a sensor `<name>/temperature`.
    Emc2101(I2cOnly),
    /// One fan of a Microchip EMC2301/2302/2303/2305 (the CM4 IO board's
    /// fan controller).
    Emc230x(Emc230x),
    /// One input of a TI ADS1115/ADS1015 ADC.
    Ads1x15(Ads1x15),
    /// Argon ONE case fan (Pi 4 V2 legacy firmware, Pi 5 V3 register
    /// firmware).
    ArgonOne(ArgonOne),
    /// Argon Fan HAT (write-only: a read stops its fan).
    ArgonFanHat(I2cOnly),
    /// Argon ONE power button on a GPIO line (pulses → reboot or shutdown
    /// requests to the power loop).
    ArgonButton(ArgonButton),
    /// Sixfab UPS HAT: battery `<name>`, rails `<name>/input` and
    /// `<name>/system`, sensor `<name>/temperature`.
    SixfabUps(I2cOnly),
    /// Raspberry Pi 5 official fan (hwmon `pwmfan`), taken over from the
    /// thermal governor.
    Pi5Fan(Named),
    /// A hwmon fan (`pwmN`, `fanN_input`).
    HwmonFan(Hwmon),
    /// A hwmon temperature (`tempN_input`).
    HwmonTemperature(Hwmon),
    /// A hwmon rail (`inN_input`, `currN_input`).
    HwmonRail(Hwmon),
    /// A thermal zone, by type.
    ThermalZone(ThermalZone),
    /// A fan on a sysfs PWM channel.
    SysfsPwmFan(SysfsPwm),
    /// A fan on the Pi's hardware PWM through rppal.
    RpiPwmFan(RpiPwm),
    /// A relay or power switch on a GPIO line.
    GpioRelay(GpioRelay),
    /// A pulse counter on a GPIO line (a flow meter, a fan tachometer): a
    /// signal whose sample is the running count of edges.
    GpioCounter(GpioCounter),
    /// The Jetson's fan (JetPack 4 `pwm-fan`, JetPack 5/6 hwmon).
    JetsonFan(Named),
    /// The Jetson's INA3221 rails, each as `<name>/<RAIL>`.
    JetsonRails(Named),
    /// The Jetson's integrated GPU (load, frequency, temperature) and
    /// nvpmodel.
    JetsonGpu(JetsonGpu),
    /// NVIDIA GPUs through NVML, each as `<name>/<index>`.
    Nvml(Nvml),
    /// A Modbus RTU power meter or PDU on a serial port.
    ModbusMeter(Box<ModbusMeter>),
    /// BitScope Cluster Blade BMC on the Pi's UART (provisional: commands
    /// come from the profile).
    BitscopeBmc(Box<BitscopeBmc>),
}

impl Device {
    /// The device's name.
    pub fn name(&self) -> &str {
        match self {
            Device::Lm75(d) => &d.name,
            Device::Tmp102(d)
            | Device::Emc2101(d)
            | Device::ArgonFanHat(d)
            | Device::SixfabUps(d) => &d.name,
            Device::Ina219(d) => &d.name,
            Device::Ina3221(d) => &d.name,
            Device::Emc230x(d) => &d.name,
            Device::Ads1x15(d) => &d.name,
            Device::ArgonOne(d) => &d.name,
            Device::ArgonButton(d) => &d.name,
            Device::Pi5Fan(d) | Device::JetsonFan(d) | Device::JetsonRails(d) => &d.name,
            Device::HwmonFan(d) | Device::HwmonTemperature(d) | Device::HwmonRail(d) => &d.name,
            Device::ThermalZone(d) => &d.name,
            Device::SysfsPwmFan(d) => &d.name,
            Device::RpiPwmFan(d) => &d.name,
            Device::GpioRelay(d) => &d.name,
            Device::GpioCounter(d) => &d.name,
            Device::JetsonGpu(d) => &d.name,
            Device::Nvml(d) => &d.name,
            Device::ModbusMeter(d) => &d.name,
            Device::BitscopeBmc(d) => &d.name,
        }
    }

    /// The driver's name, as `driver:` spells it.
    pub fn driver(&self) -> &'static str {
        match self {
            Device::Lm75(_) => "lm75",
            Device::Tmp102(_) => "tmp102",
            Device::Ina219(_) => "ina219",
            Device::Ina3221(_) => "ina3221",
            Device::Emc2101(_) => "emc2101",
            Device::Emc230x(_) => "emc230x",
            Device::Ads1x15(_) => "ads1x15",
            Device::ArgonOne(_) => "argon-one",
            Device::ArgonFanHat(_) => "argon-fan-hat",
            Device::ArgonButton(_) => "argon-button",
            Device::SixfabUps(_) => "sixfab-ups",
            Device::Pi5Fan(_) => "pi5-fan",
            Device::HwmonFan(_) => "hwmon-fan",
            Device::HwmonTemperature(_) => "hwmon-temperature",
            Device::HwmonRail(_) => "hwmon-rail",
            Device::ThermalZone(_) => "thermal-zone",
            Device::SysfsPwmFan(_) => "sysfs-pwm-fan",
            Device::RpiPwmFan(_) => "rpi-pwm-fan",
            Device::GpioRelay(_) => "gpio-relay",
            Device::GpioCounter(_) => "gpio-counter",
            Device::JetsonFan(_) => "jetson-fan",
            Device::JetsonRails(_) => "jetson-rails",
            Device::JetsonGpu(_) => "jetson-gpu",
            Device::Nvml(_) => "nvml",
            Device::ModbusMeter(_) => "modbus-meter",
            Device::BitscopeBmc(_) => "bitscope-bmc",
        }
    }

    /// The entries this device gives once opened, by name and handle kind
    /// (as [`Handle::kind`](super::Handle::kind) names them), known without
    /// touching hardware: what a bundle may refer to. A part whose name is
    /// `<device>/*` stands for parts found only when the device opens (one
    /// per GPU, one per Jetson rail).
    pub fn parts(&self) -> Vec<(String, &'static str)> {
        let n = self.name();
        let at = |part: &str| format!("{n}/{part}");
        let one = |kind: &'static str| vec![(n.to_string(), kind)];
        match self {
            Device::Lm75(_)
            | Device::Tmp102(_)
            | Device::HwmonTemperature(_)
            | Device::ThermalZone(_) => one("temperature"),
            Device::Ina219(_) | Device::Ina3221(_) | Device::HwmonRail(_) => one("rail"),
            Device::ModbusMeter(_) => one("rail"),
            Device::Emc2101(_) => vec![(n.to_string(), "fan"), (at("temperature"), "temperature")],
            Device::Emc230x(_)
            | Device::ArgonOne(_)
            | Device::ArgonFanHat(_)
            | Device::Pi5Fan(_)
            | Device::HwmonFan(_)
            | Device::SysfsPwmFan(_)
            | Device::RpiPwmFan(_)
            | Device::JetsonFan(_) => one("fan"),
            Device::Ads1x15(_) | Device::GpioCounter(_) => one("signal"),
            Device::ArgonButton(_) => one("button"),
            Device::SixfabUps(_) => vec![
                (n.to_string(), "battery"),
                (at("input"), "rail"),
                (at("system"), "rail"),
                (at("temperature"), "temperature"),
            ],
            Device::GpioRelay(_) => one("switch"),
            Device::JetsonRails(_) => vec![(at("*"), "rail")],
            Device::JetsonGpu(_) => one("gpu"),
            Device::Nvml(_) => vec![(at("*"), "gpu")],
            Device::BitscopeBmc(d) => {
                let mut v = Vec::new();
                if d.supply_volts.is_some() || d.supply_amps.is_some() {
                    v.push((at("supply"), "rail"));
                }
                if d.temperature.is_some() {
                    v.push((at("temperature"), "temperature"));
                }
                if d.power_on.is_some() || d.power_off.is_some() {
                    v.push((at("power"), "switch"));
                }
                v
            }
        }
    }

    /// The I²C bus and address, for devices on I²C.
    pub fn i2c(&self) -> Option<(u32, Option<u8>)> {
        match self {
            Device::Lm75(d) => Some((d.bus, d.address)),
            Device::Tmp102(d)
            | Device::Emc2101(d)
            | Device::ArgonFanHat(d)
            | Device::SixfabUps(d) => Some((d.bus, d.address)),
            Device::Ina219(d) => Some((d.bus, d.address)),
            Device::Ina3221(d) => Some((d.bus, d.address)),
            Device::Emc230x(d) => Some((d.bus, d.address)),
            Device::Ads1x15(d) => Some((d.bus, d.address)),
            Device::ArgonOne(d) => Some((d.bus, d.address)),
            _ => None,
        }
    }
}

const fn default_bus() -> u32 {
    1
}

/// A device with a name and nothing else to configure.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Named {
    /// The name other sections use.
    pub name: String,
}

/// An I²C device with no settings beyond its place on the bus.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct I2cOnly {
    /// The name other sections use.
    pub name: String,
    /// I²C bus number (`/dev/i2c-N`); 1 is the Pi's 40-pin header.
    #[serde(default = "default_bus")]
    pub bus: u32,
    /// 7-bit address; the chip's usual address when left out.
    #[serde(default)]
    pub address: Option<u8>,
}

/// LM75 family.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lm75 {
    /// The name other sections use.
    pub name: String,
    /// I²C bus number.
    #[serde(default = "default_bus")]
    pub bus: u32,
    /// 7-bit address (0x48–0x4F; default 0x48).
    #[serde(default)]
    pub address: Option<u8>,
    /// Resolution: 9 (LM75, 0.5 °C) or 11 (LM75A/B, PCT2075, 0.125 °C).
    #[serde(default = "default_lm75_bits")]
    pub resolution_bits: u8,
}

const fn default_lm75_bits() -> u8 {
    9
}

/// INA219.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ina219 {
    /// The name other sections use.
    pub name: String,
    /// I²C bus number.
    #[serde(default = "default_bus")]
    pub bus: u32,
    /// 7-bit address (0x40–0x4F; default 0x40).
    #[serde(default)]
    pub address: Option<u8>,
    /// Shunt resistance, Ω (0.1 on most breakout boards).
    #[serde(default = "default_shunt")]
    pub shunt_ohms: f64,
    /// Largest current expected, A (sets the calibration's resolution).
    #[serde(default = "default_max_amps")]
    pub max_amps: f64,
}

const fn default_shunt() -> f64 {
    0.1
}
const fn default_max_amps() -> f64 {
    3.2
}

/// One channel of an INA3221.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ina3221 {
    /// The name other sections use.
    pub name: String,
    /// I²C bus number.
    #[serde(default = "default_bus")]
    pub bus: u32,
    /// 7-bit address (0x40–0x43; default 0x40).
    #[serde(default)]
    pub address: Option<u8>,
    /// Channel, 1–3.
    pub channel: u8,
    /// Shunt resistance of this channel, Ω.
    #[serde(default = "default_shunt")]
    pub shunt_ohms: f64,
}

/// One fan of an EMC230x.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Emc230x {
    /// The name other sections use.
    pub name: String,
    /// I²C bus number (the CM4 IO board's fan controller is on bus 10,
    /// `i2c_csi_dsi`, with `dtoverlay=i2c-fan,emc2301,i2c_csi_dsi`).
    #[serde(default = "default_bus")]
    pub bus: u32,
    /// 7-bit address (default 0x2F).
    #[serde(default)]
    pub address: Option<u8>,
    /// Fan number, 1–5 (1 on an EMC2301).
    #[serde(default = "default_fan")]
    pub fan: u8,
}

const fn default_fan() -> u8 {
    1
}

/// One input of an ADS1x15.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ads1x15 {
    /// The name other sections use.
    pub name: String,
    /// I²C bus number.
    #[serde(default = "default_bus")]
    pub bus: u32,
    /// 7-bit address (0x48–0x4B; default 0x48).
    #[serde(default)]
    pub address: Option<u8>,
    /// `ads1115` (16-bit) or `ads1015` (12-bit).
    #[serde(default = "default_variant")]
    pub variant: String,
    /// Input: `a0`–`a3` (single-ended) or `a0-a1`, `a0-a3`, `a1-a3`,
    /// `a2-a3` (differential).
    pub input: String,
    /// Full-scale range, V: 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256.
    #[serde(default = "default_fsr")]
    pub full_scale_volts: f64,
    /// Data rate code 0–7 (ADS1115: 8…860 samples/s).
    #[serde(default = "default_rate")]
    pub rate: u8,
}

fn default_variant() -> String {
    "ads1115".into()
}
const fn default_fsr() -> f64 {
    2.048
}
const fn default_rate() -> u8 {
    4
}

/// Argon ONE firmware generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ArgonFirmware {
    /// Detect as Argon's own scripts do (read 0x80, write, read back).
    #[default]
    Detect,
    /// Legacy send-byte firmware (Pi 4 V2 and earlier).
    Legacy,
    /// Register firmware (Pi 5 V3).
    Register,
}

/// Argon ONE case.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArgonOne {
    /// The name other sections use.
    pub name: String,
    /// I²C bus number.
    #[serde(default = "default_bus")]
    pub bus: u32,
    /// 7-bit address (default 0x1A).
    #[serde(default)]
    pub address: Option<u8>,
    /// Firmware generation: `detect`, `legacy` or `register`.
    #[serde(default)]
    pub firmware: ArgonFirmware,
}

/// Argon power button.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArgonButton {
    /// The name other sections use.
    pub name: String,
    /// BCM GPIO number of the button line (4 on every Argon ONE).
    #[serde(default = "default_button_pin")]
    pub pin: u8,
}

const fn default_button_pin() -> u8 {
    4
}

/// How to find a hwmon device: by stable identity, never by `hwmonN`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hwmon {
    /// The name other sections use.
    pub name: String,
    /// The hwmon `name` attribute (e.g. `pwmfan`, `ina3221`, `emc2305`).
    #[serde(default)]
    pub chip: Option<String>,
    /// The device path the hwmon node belongs to, relative to sysfs
    /// (e.g. `bus/i2c/devices/1-002f`, `devices/platform/cooling_fan`).
    #[serde(default)]
    pub device: Option<String>,
    /// The kernel driver bound to the device (e.g. `emc2305`).
    #[serde(default)]
    pub kernel_driver: Option<String>,
    /// Channel number N of `pwmN`, `tempN_input`, `inN_input`.
    #[serde(default = "default_index")]
    pub index: u32,
}

const fn default_index() -> u32 {
    1
}

/// Thermal zone.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThermalZone {
    /// The name other sections use.
    pub name: String,
    /// The zone's `type` (e.g. `cpu-thermal`, `GPU-therm`, `x86_pkg_temp`).
    #[serde(rename = "type")]
    pub zone_type: String,
}

/// A sysfs PWM channel driving a fan.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SysfsPwm {
    /// The name other sections use.
    pub name: String,
    /// `pwmchipN`.
    pub chip: u32,
    /// Channel within the chip.
    pub channel: u32,
    /// PWM period, ns (40 000 = 25 kHz, the 4-pin fan standard).
    #[serde(default = "default_period")]
    pub period_ns: u64,
    /// The fan runs faster at lower duty (inverted drive).
    #[serde(default)]
    pub inverted: bool,
}

const fn default_period() -> u64 {
    40_000
}

/// The Pi's hardware PWM through rppal.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RpiPwm {
    /// The name other sections use.
    pub name: String,
    /// PWM channel: 0 or 1 on Pi ≤4 (GPIO 12/18, 13/19), 0–3 on Pi 5
    /// (GPIO 12, 13, 18, 19). Needs `dtoverlay=pwm` or `pwm-2chan`.
    pub channel: u8,
    /// PWM frequency, Hz.
    #[serde(default = "default_frequency")]
    pub frequency_hz: f64,
    /// The fan runs faster at lower duty.
    #[serde(default)]
    pub inverted: bool,
}

const fn default_frequency() -> f64 {
    25_000.0
}

/// A GPIO relay.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpioRelay {
    /// The name other sections use.
    pub name: String,
    /// BCM GPIO number.
    pub pin: u8,
    /// The relay closes when the line is low.
    #[serde(default)]
    pub active_low: bool,
}

/// Which edges a [`GpioCounter`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum CountEdge {
    /// Low → high: one count per pulse.
    #[default]
    Rising,
    /// High → low: one count per pulse.
    Falling,
    /// Both: two counts per pulse.
    Both,
}

/// The internal resistor of a GPIO input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum LineBias {
    /// None: the sensor drives the line both ways.
    Off,
    /// Pull-up: open-collector outputs (fan tachometers, most hall-effect
    /// flow meters) only pull the line low.
    #[default]
    PullUp,
    /// Pull-down: outputs that only drive the line high.
    PullDown,
}

/// A pulse counter on a GPIO input line.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpioCounter {
    /// The name other sections use.
    pub name: String,
    /// BCM GPIO number.
    pub pin: u8,
    /// Which edges count: `rising` (default), `falling` or `both`.
    #[serde(default)]
    pub edge: CountEdge,
    /// The line's internal resistor: `pull-up` (default), `pull-down` or
    /// `off`.
    #[serde(default)]
    pub bias: LineBias,
}

/// The Jetson's GPU.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JetsonGpu {
    /// The name other sections use.
    pub name: String,
    /// The INA3221 rail whose power counts as the GPU's (e.g.
    /// `POM_5V_GPU` on a Nano; Orin has no GPU-only rail).
    #[serde(default)]
    pub power_rail: Option<String>,
    /// Path of the `nvpmodel` tool.
    #[serde(default = "default_nvpmodel")]
    pub nvpmodel: String,
}

fn default_nvpmodel() -> String {
    "/usr/sbin/nvpmodel".into()
}

/// NVML.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Nvml {
    /// The name other sections use; GPUs are `<name>/<index>`.
    pub name: String,
    /// Path of `libnvidia-ml.so.1` when it is not on the loader's path.
    #[serde(default)]
    pub library: Option<String>,
}

/// Serial line settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SerialLine {
    /// Device node (e.g. `/dev/ttyUSB0`, `/dev/serial0`).
    pub port: String,
    /// Baud rate.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Parity: `none`, `even` or `odd`.
    #[serde(default = "default_parity")]
    pub parity: String,
    /// Stop bits: 1 or 2.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// How long to wait for a reply, ms.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

const fn default_baud() -> u32 {
    9600
}
fn default_parity() -> String {
    "none".into()
}
const fn default_stop_bits() -> u8 {
    1
}
const fn default_timeout() -> u64 {
    500
}

/// One Modbus register value.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModbusPoint {
    /// Register table: `holding` (function 0x03) or `input` (0x04).
    #[serde(default = "default_table")]
    pub table: String,
    /// Register address (0-based, as on the wire).
    pub address: u16,
    /// Value type: `u16`, `i16`, `u32`, `i32` or `f32`.
    #[serde(rename = "type", default = "default_point_type")]
    pub value_type: String,
    /// Word order of 32-bit values: `big` (high word first) or `little`.
    #[serde(default = "default_word_order")]
    pub word_order: String,
    /// Multiplier from the raw value to the unit.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Added after scaling.
    #[serde(default)]
    pub offset: f64,
}

fn default_table() -> String {
    "holding".into()
}
fn default_point_type() -> String {
    "u16".into()
}
fn default_word_order() -> String {
    "big".into()
}
const fn default_scale() -> f64 {
    1.0
}

/// A Modbus RTU power meter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModbusMeter {
    /// The name other sections use.
    pub name: String,
    /// The serial line.
    pub serial: SerialLine,
    /// Modbus unit (slave) id, 1–247.
    pub unit: u8,
    /// Voltage, V.
    pub volts: ModbusPoint,
    /// Current, A.
    pub amps: ModbusPoint,
    /// Power, W (computed as V × A when left out).
    #[serde(default)]
    pub watts: Option<ModbusPoint>,
}

/// One BitScope BMC request, as the profile defines it (provisional).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BmcCommand {
    /// The line sent to the BMC (without the line ending).
    pub send: String,
    /// A prefix the reply must start with.
    #[serde(default)]
    pub expect: Option<String>,
    /// Which number of the reply to take (0 = the first).
    #[serde(default)]
    pub field: usize,
    /// Multiplier to the unit.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Added after scaling.
    #[serde(default)]
    pub offset: f64,
}

/// BitScope Cluster Blade BMC (provisional).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BitscopeBmc {
    /// The name other sections use.
    pub name: String,
    /// The serial line (`/dev/serial0`: the Pi's primary UART, with the
    /// serial console disabled).
    pub serial: SerialLine,
    /// Line ending the BMC expects: `cr`, `lf` or `crlf`.
    #[serde(default = "default_eol")]
    pub line_ending: String,
    /// This node's slot on the blade; `{node}` in a command stands for it
    /// (onprem's placeholder, not BitScope's syntax).
    #[serde(default)]
    pub node: u32,
    /// Sent once, in order, when the device opens (an unlock sequence).
    #[serde(default)]
    pub init: Vec<BmcCommand>,
    /// Supply voltage, V.
    #[serde(default)]
    pub supply_volts: Option<BmcCommand>,
    /// Supply current, A.
    #[serde(default)]
    pub supply_amps: Option<BmcCommand>,
    /// This node's current, A.
    #[serde(default)]
    pub node_amps: Option<BmcCommand>,
    /// Board temperature, °C.
    #[serde(default)]
    pub temperature: Option<BmcCommand>,
    /// This node's power state (a non-zero number: on).
    #[serde(default)]
    pub power_state: Option<BmcCommand>,
    /// Switches this node's power on.
    #[serde(default)]
    pub power_on: Option<BmcCommand>,
    /// Switches this node's power off.
    #[serde(default)]
    pub power_off: Option<BmcCommand>,
}

fn default_eol() -> String {
    "crlf".into()
}
