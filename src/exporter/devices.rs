//! `devices`: the readings of the node's hardware inventory (the
//! `hardware:` section) as `onprem_*` metrics. Every family carries a
//! `device` label with the device's name from the spec; GPUs also carry
//! `index`, `uuid` and `name`, one scheme for NVML and Jetson alike (see
//! `docs/metrics.md` for the DCGM field each maps to).
//!
//! The collector never touches a bus: it renders the latest readings the
//! device poller took (`hw::poller`), so a slow or hung device cannot
//! stall a scrape. A device that failed to read shows
//! `onprem_device_up 0` and counts in `onprem_device_errors_total`; its
//! other values stay out rather than go stale.
//!
//! To add a family: a field in `hw::poller::Reading`, read in the poller,
//! written here, and a row in `docs/metrics.md`.

use crate::hw::poller::{Hub, Reading};

use super::{CollectError, Collector, MetricWriter};

/// Renders the device hub's readings.
pub struct Devices {
    hub: Hub,
}

impl Devices {
    /// A collector over `hub`.
    pub fn new(hub: Hub) -> Self {
        Devices { hub }
    }
}

/// NVML's clock throttle reason bits and the names the metric gives them.
const THROTTLE_REASONS: &[(u64, &str)] = &[
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

impl Collector for Devices {
    fn name(&self) -> &'static str {
        "devices"
    }

    fn update(&self, out: &mut MetricWriter) -> Result<(), CollectError> {
        let r = self.hub.readings();
        if r.devices.is_empty() {
            return Err(CollectError::NoData);
        }
        if let Some(at) = r.at {
            let secs = at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            out.gauge(
                "onprem_devices_last_poll_timestamp_seconds",
                "When the device poller last read every device, seconds since the epoch.",
                &[],
                secs,
            );
        }
        out.gauge(
            "onprem_devices_poll_duration_seconds",
            "How long the last pass over every device took.",
            &[],
            r.duration.as_secs_f64(),
        );
        for d in &r.devices {
            let dev = d.name.as_str();
            let base = [("device", dev), ("driver", d.driver), ("kind", d.kind)];
            out.gauge(
                "onprem_device_up",
                "Whether the device's last read succeeded (1) or failed (0).",
                &base,
                if d.up { 1.0 } else { 0.0 },
            );
            out.counter(
                "onprem_device_errors_total",
                "Reads of the device that failed (a device that did not open counts once per attempt).",
                &base,
                d.errors_total as f64,
            );
            let l = [("device", dev)];
            match &d.reading {
                Reading::Fan { duty, rpm } => {
                    if let Some(v) = duty {
                        out.gauge(
                            "onprem_fan_duty_ratio",
                            "Fan drive as the device reports it, 0–1.",
                            &l,
                            v / 100.0,
                        );
                    }
                    if let Some(v) = rpm {
                        out.gauge(
                            "onprem_fan_speed_rpm",
                            "Fan speed from its tachometer, revolutions per minute.",
                            &l,
                            *v,
                        );
                    }
                }
                Reading::Temperature(Some(v)) => out.gauge(
                    "onprem_temperature_celsius",
                    "Temperature of a sensor device, degrees Celsius.",
                    &l,
                    *v,
                ),
                Reading::Rail { volts, amps, watts } => {
                    for (name, help, v) in [
                        (
                            "onprem_rail_voltage_volts",
                            "Bus voltage of a power rail, volts.",
                            volts,
                        ),
                        (
                            "onprem_rail_current_amperes",
                            "Current of a power rail, amperes.",
                            amps,
                        ),
                        (
                            "onprem_rail_power_watts",
                            "Power of a power rail, watts.",
                            watts,
                        ),
                    ] {
                        if let Some(v) = v {
                            out.gauge(name, help, &l, *v);
                        }
                    }
                }
                Reading::Battery {
                    percent,
                    volts,
                    on_mains,
                } => {
                    if let Some(v) = percent {
                        out.gauge(
                            "onprem_battery_charge_ratio",
                            "Battery state of charge, 0–1.",
                            &l,
                            v / 100.0,
                        );
                    }
                    if let Some(v) = volts {
                        out.gauge(
                            "onprem_battery_voltage_volts",
                            "Battery voltage, volts.",
                            &l,
                            *v,
                        );
                    }
                    if let Some(v) = on_mains {
                        out.gauge(
                            "onprem_battery_on_mains",
                            "Whether external power is present (1) or the node runs on battery (0).",
                            &l,
                            if *v { 1.0 } else { 0.0 },
                        );
                    }
                }
                Reading::Switch(Some(on)) => out.gauge(
                    "onprem_switch_on",
                    "Whether a power switch reports on (1) or off (0).",
                    &l,
                    if *on { 1.0 } else { 0.0 },
                ),
                Reading::Signal(Some(v)) => out.gauge(
                    "onprem_signal_value",
                    "Last sample of a signal source, in its unit (volts for an ADC).",
                    &l,
                    *v,
                ),
                Reading::Button { reboots, shutdowns } => {
                    for (req, n) in [("reboot", reboots), ("shutdown", shutdowns)] {
                        out.counter(
                            "onprem_button_requests_total",
                            "Requests made with a power button, by kind.",
                            &[("device", dev), ("request", req)],
                            *n as f64,
                        );
                    }
                }
                Reading::Gpu {
                    id,
                    sample: s,
                    xid_total,
                    last_xid,
                } => {
                    let index = id.index.to_string();
                    let g = [
                        ("device", dev),
                        ("index", index.as_str()),
                        ("uuid", id.uuid.as_str()),
                        ("name", id.name.as_str()),
                    ];
                    let gauges: [(&str, &str, Option<f64>); 10] = [
                        (
                            "onprem_gpu_temperature_celsius",
                            "GPU core temperature, degrees Celsius.",
                            s.temperature_celsius,
                        ),
                        (
                            "onprem_gpu_power_watts",
                            "GPU power draw, watts.",
                            s.power_watts,
                        ),
                        (
                            "onprem_gpu_utilization_ratio",
                            "GPU (SM) utilisation, 0–1.",
                            s.utilization_percent.map(|v| v / 100.0),
                        ),
                        (
                            "onprem_gpu_memory_utilization_ratio",
                            "GPU memory-controller utilisation, 0–1.",
                            s.memory_utilization_percent.map(|v| v / 100.0),
                        ),
                        (
                            "onprem_gpu_memory_used_bytes",
                            "GPU framebuffer memory in use, bytes.",
                            s.memory_used_bytes,
                        ),
                        (
                            "onprem_gpu_memory_total_bytes",
                            "GPU framebuffer memory, bytes.",
                            s.memory_total_bytes,
                        ),
                        (
                            "onprem_gpu_sm_clock_hertz",
                            "GPU SM (graphics) clock, hertz.",
                            s.sm_clock_hz,
                        ),
                        (
                            "onprem_gpu_memory_clock_hertz",
                            "GPU memory clock, hertz.",
                            s.memory_clock_hz,
                        ),
                        (
                            "onprem_gpu_power_limit_watts",
                            "GPU power limit in force, watts.",
                            s.power_limit_watts,
                        ),
                        (
                            "onprem_gpu_last_xid",
                            "The last XID (critical error) the GPU reported.",
                            last_xid.map(|v| v as f64),
                        ),
                    ];
                    for (name, help, v) in gauges {
                        if let Some(v) = v {
                            out.gauge(name, help, &g, v);
                        }
                    }
                    if let Some(v) = s.energy_joules {
                        out.counter(
                            "onprem_gpu_energy_joules_total",
                            "GPU energy since the driver loaded, joules.",
                            &g,
                            v,
                        );
                    }
                    out.counter(
                        "onprem_gpu_xid_errors_total",
                        "XID (critical error) events the GPU reported since the agent started.",
                        &g,
                        *xid_total as f64,
                    );
                    for (kind, v) in [
                        ("corrected", s.ecc_corrected_total),
                        ("uncorrected", s.ecc_uncorrected_total),
                    ] {
                        if let Some(v) = v {
                            let mut labels = g.to_vec();
                            labels.push(("type", kind));
                            out.counter(
                                "onprem_gpu_ecc_errors_total",
                                "GPU ECC errors since the driver loaded, by type.",
                                &labels,
                                v,
                            );
                        }
                    }
                    for (i, pct) in s.fan_percent.iter().enumerate() {
                        let fan = i.to_string();
                        let mut labels = g.to_vec();
                        labels.push(("fan", fan.as_str()));
                        out.gauge(
                            "onprem_gpu_fan_speed_ratio",
                            "GPU fan speed the driver targets, 0–1 of maximum.",
                            &labels,
                            pct / 100.0,
                        );
                    }
                    if let Some(bits) = s.throttle_reasons {
                        for (bit, reason) in THROTTLE_REASONS {
                            let mut labels = g.to_vec();
                            labels.push(("reason", reason));
                            out.gauge(
                                "onprem_gpu_throttled",
                                "Whether a clock throttle reason is active (1) or not (0).",
                                &labels,
                                if bits & bit != 0 { 1.0 } else { 0.0 },
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
