//! Building handles from spec entries, generic over the bus so the same
//! code serves `/dev/i2c-N` and the simulated bus.

#[cfg(any(feature = "linux-i2c", feature = "sim"))]
use embedded_hal::delay::DelayNs;
#[cfg(any(feature = "linux-i2c", feature = "sim"))]
use embedded_hal::i2c::I2c;

use super::spec::Device;
use super::{Entry, Handle, Hardware};
use crate::drivers;
use crate::{Error, Result};

pub(super) fn ads_variant(s: &str) -> Option<drivers::ads1x15::Variant> {
    match s {
        "ads1115" => Some(drivers::ads1x15::Variant::Ads1115),
        "ads1015" => Some(drivers::ads1x15::Variant::Ads1015),
        _ => None,
    }
}

pub(super) fn ads_input(s: &str) -> Option<drivers::ads1x15::Input> {
    use drivers::ads1x15::Input;
    Some(match s {
        "a0-a1" => Input::Diff01,
        "a0-a3" => Input::Diff03,
        "a1-a3" => Input::Diff13,
        "a2-a3" => Input::Diff23,
        "a0" => Input::Ain0,
        "a1" => Input::Ain1,
        "a2" => Input::Ain2,
        "a3" => Input::Ain3,
        _ => return None,
    })
}

pub(super) fn ads_pga(full_scale: f64) -> Option<u8> {
    drivers::ads1x15::FULL_SCALE
        .iter()
        .take(6)
        .position(|v| (v - full_scale).abs() < 1e-9)
        .and_then(|i| u8::try_from(i).ok())
}

/// Adds the entries of one device.
pub(super) fn device(dev: &Device, hw: &Hardware, out: &mut Vec<Entry>) {
    let name = dev.name().to_string();
    let driver = dev.driver();
    if let Some((bus, addr)) = dev.i2c() {
        match hw {
            Hardware::Real { .. } => {
                // One file handle per part, as several drivers may share a
                // chip (an EMC2101's fan and its diode).
                #[cfg(feature = "linux-i2c")]
                i2c_device(
                    dev,
                    addr,
                    || open_linux(bus),
                    &mut drivers::sixfab::StdDelay,
                    out,
                );
                #[cfg(not(feature = "linux-i2c"))]
                let _ = addr;
                #[cfg(not(feature = "linux-i2c"))]
                out.push(Entry {
                    name,
                    driver,
                    handle: Err(Error::Unsupported {
                        chip: "i2c",
                        what: format!("/dev/i2c-{bus} (built without the linux-i2c feature)"),
                    }),
                });
            }
            #[cfg(feature = "sim")]
            Hardware::Sim(world) => {
                let bus = world.i2c(bus);
                // Emulators need no settling time: detection runs at once.
                i2c_device(dev, addr, || Ok(bus.clone()), &mut NoDelay, out);
            }
        }
        return;
    }
    let sysfs = match hw {
        Hardware::Real { sysfs } => sysfs.clone(),
        #[cfg(feature = "sim")]
        Hardware::Sim(world) => world.sysfs(),
    };
    let handle = match dev {
        Device::ThermalZone(d) => crate::sysfs::thermal::Zone::open(&sysfs, &d.zone_type)
            .map(|z| Handle::Temperature(Box::new(z))),
        Device::Pi5Fan(_) => {
            drivers::pi5_fan::Pi5Fan::open(&sysfs).map(|f| Handle::Fan(Box::new(f)))
        }
        Device::HwmonFan(d) => crate::sysfs::hwmon::Hwmon::open(&sysfs, selector(d))
            .and_then(|h| crate::sysfs::hwmon::HwmonFan::new(h, d.index))
            .map(|f| Handle::Fan(Box::new(f))),
        Device::HwmonTemperature(d) => {
            crate::sysfs::hwmon::Hwmon::open(&sysfs, selector(d)).map(|h| {
                Handle::Temperature(Box::new(crate::sysfs::hwmon::HwmonTemp::new(h, d.index)))
            })
        }
        Device::HwmonRail(d) => crate::sysfs::hwmon::Hwmon::open(&sysfs, selector(d))
            .map(|h| Handle::Power(Box::new(crate::sysfs::hwmon::HwmonRail::new(h, d.index)))),
        Device::SysfsPwmFan(d) => sysfs_pwm_fan(&sysfs, d.chip, d.channel, d.period_ns, d.inverted),
        Device::RpiPwmFan(d) => match hw {
            Hardware::Real { .. } => rpi_pwm_fan(d),
            // rppal drives the same sysfs PWM class; in simulation the
            // channel is a simulated pwmchip (Pi 5 numbering: pwmchip2).
            #[cfg(feature = "sim")]
            Hardware::Sim(_) => sysfs_pwm_fan(
                &sysfs,
                2,
                u32::from(d.channel),
                (1e9 / d.frequency_hz) as u64,
                d.inverted,
            ),
        },
        Device::JetsonFan(_) => {
            crate::jetson::JetsonFan::open(&sysfs).map(|f| Handle::Fan(Box::new(f)))
        }
        Device::JetsonRails(_) => {
            return jetson_rails(&name, &sysfs, out);
        }
        Device::JetsonGpu(d) => crate::jetson::JetsonGpu::open(&sysfs, d.power_rail.as_deref())
            .map(|g| Handle::Gpu(Box::new(g))),
        Device::ArgonButton(d) => button(d.pin, hw),
        Device::GpioRelay(d) => relay(d, hw),
        Device::GpioCounter(d) => counter(d, hw),
        #[cfg(feature = "modbus")]
        Device::ModbusMeter(d) => modbus_meter(d, hw),
        #[cfg(feature = "serial")]
        Device::BitscopeBmc(d) => {
            return bitscope(d, hw, out);
        }
        #[cfg(feature = "nvml")]
        Device::Nvml(d) => {
            return nvml(d, hw, out);
        }
        // Only reached in a build without the driver's feature (nvml,
        // serial, modbus).
        other => Err(Error::Unsupported {
            chip: other.driver(),
            what: "this driver (onprem was built without its feature)".into(),
        }),
    };
    out.push(Entry {
        name,
        driver,
        handle,
    });
}

/// The entry name of one part of a device: `<device>` for the device
/// itself, `<device>/<part>` for one of several parts.
fn part_name(device: &str, part: &str) -> String {
    if part.is_empty() {
        device.to_string()
    } else {
        format!("{device}/{part}")
    }
}

/// No delay, for emulators.
#[cfg(feature = "sim")]
struct NoDelay;

#[cfg(feature = "sim")]
impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _: u32) {}
}

fn button(pin: u8, hw: &Hardware) -> Result<Handle> {
    match hw {
        #[cfg(feature = "sim")]
        Hardware::Sim(world) => Ok(Handle::Button(Box::new(
            drivers::argon_button::ArgonButton::new(world.gpio_line(pin)),
        ))),
        Hardware::Real { .. } => real_button(pin),
    }
}

#[cfg(feature = "rppal")]
fn real_button(pin: u8) -> Result<Handle> {
    let edges = crate::gpio::RppalInput::open(pin, crate::gpio::Bias::PullDown)?;
    Ok(Handle::Button(Box::new(
        drivers::argon_button::ArgonButton::new(edges),
    )))
}

#[cfg(not(feature = "rppal"))]
fn real_button(pin: u8) -> Result<Handle> {
    Err(Error::Unsupported {
        chip: "argon-button",
        what: format!("GPIO {pin} (built without the rppal feature)"),
    })
}

fn relay(d: &super::spec::GpioRelay, hw: &Hardware) -> Result<Handle> {
    use crate::gpio::ActiveLevel;
    let level = if d.active_low {
        ActiveLevel::Low
    } else {
        ActiveLevel::High
    };
    match hw {
        #[cfg(feature = "sim")]
        Hardware::Sim(world) => Ok(Handle::Switch(Box::new(crate::gpio::Relay::new(
            world.gpio_output(d.pin),
            level,
        )))),
        Hardware::Real { .. } => real_relay(d.pin, level),
    }
}

#[cfg(feature = "rppal")]
fn real_relay(pin: u8, level: crate::gpio::ActiveLevel) -> Result<Handle> {
    // Keep the line's level: a restart of the agent never switches power.
    let out = crate::gpio::open_output(pin, None)?;
    Ok(Handle::Switch(Box::new(crate::gpio::Relay::new(
        out, level,
    ))))
}

#[cfg(not(feature = "rppal"))]
fn real_relay(pin: u8, _: crate::gpio::ActiveLevel) -> Result<Handle> {
    Err(Error::Unsupported {
        chip: "gpio-relay",
        what: format!("GPIO {pin} (built without the rppal feature)"),
    })
}

fn count_edges(e: super::spec::CountEdge) -> drivers::gpio_counter::Count {
    use super::spec::CountEdge;
    use drivers::gpio_counter::Count;
    match e {
        CountEdge::Rising => Count::Rising,
        CountEdge::Falling => Count::Falling,
        CountEdge::Both => Count::Both,
    }
}

fn counter(d: &super::spec::GpioCounter, hw: &Hardware) -> Result<Handle> {
    let count = count_edges(d.edge);
    match hw {
        #[cfg(feature = "sim")]
        Hardware::Sim(world) => Ok(Handle::Signal(Box::new(
            drivers::gpio_counter::GpioCounter::new(world.gpio_line(d.pin), count),
        ))),
        Hardware::Real { .. } => real_counter(d, count),
    }
}

#[cfg(feature = "rppal")]
fn real_counter(
    d: &super::spec::GpioCounter,
    count: drivers::gpio_counter::Count,
) -> Result<Handle> {
    use super::spec::LineBias;
    use crate::gpio::Bias;
    let bias = match d.bias {
        LineBias::Off => Bias::Off,
        LineBias::PullUp => Bias::PullUp,
        LineBias::PullDown => Bias::PullDown,
    };
    let edges = crate::gpio::RppalInput::open(d.pin, bias)?;
    Ok(Handle::Signal(Box::new(
        drivers::gpio_counter::GpioCounter::new(edges, count),
    )))
}

#[cfg(not(feature = "rppal"))]
fn real_counter(d: &super::spec::GpioCounter, _: drivers::gpio_counter::Count) -> Result<Handle> {
    Err(Error::Unsupported {
        chip: "gpio-counter",
        what: format!("GPIO {} (built without the rppal feature)", d.pin),
    })
}

#[cfg(feature = "linux-i2c")]
fn open_linux(bus: u32) -> Result<crate::i2c::LinuxI2c> {
    crate::i2c::LinuxI2c::open(bus).map_err(Error::from)
}

#[cfg(any(feature = "linux-i2c", feature = "sim"))]
fn i2c_device<B, F>(
    dev: &Device,
    addr: Option<u8>,
    open: F,
    delay: &mut impl DelayNs,
    out: &mut Vec<Entry>,
) where
    B: I2c + Send + 'static,
    F: Fn() -> Result<B>,
{
    let name = dev.name();
    let driver = dev.driver();
    let mut push = |part: &str, handle: Result<Handle>| {
        out.push(Entry {
            name: part_name(name, part),
            driver,
            handle,
        })
    };
    match dev {
        Device::Lm75(d) => push(
            "",
            open().map(|b| {
                let res = if d.resolution_bits == 11 {
                    drivers::lm75::Resolution::Bits11
                } else {
                    drivers::lm75::Resolution::Bits9
                };
                Handle::Temperature(Box::new(drivers::lm75::Lm75::new(
                    b,
                    addr.unwrap_or(drivers::lm75::DEFAULT_ADDRESS),
                    res,
                )))
            }),
        ),
        Device::Tmp102(_) => push(
            "",
            open().and_then(|b| {
                let mut t = drivers::tmp102::Tmp102::new(
                    b,
                    addr.unwrap_or(drivers::tmp102::DEFAULT_ADDRESS),
                );
                t.init()?;
                Ok(Handle::Temperature(Box::new(t)))
            }),
        ),
        Device::Ina219(d) => push(
            "",
            open().and_then(|b| {
                let mut m = drivers::ina219::Ina219::new(
                    b,
                    addr.unwrap_or(drivers::ina219::DEFAULT_ADDRESS),
                    d.shunt_ohms,
                    d.max_amps,
                );
                m.init()?;
                Ok(Handle::Power(Box::new(m)))
            }),
        ),
        Device::Ina3221(d) => push(
            "",
            open().and_then(|b| {
                let mut shunts = [0.1; 3];
                shunts[usize::from(d.channel.clamp(1, 3) - 1)] = d.shunt_ohms;
                let mut m = drivers::ina3221::Ina3221::new(
                    b,
                    addr.unwrap_or(drivers::ina3221::DEFAULT_ADDRESS),
                    shunts,
                );
                m.init()?;
                Ok(Handle::Power(Box::new(drivers::ina3221::Channel::new(
                    m, d.channel,
                ))))
            }),
        ),
        Device::Emc2101(_) => {
            let a = addr.unwrap_or(drivers::emc2101::ADDRESS);
            push(
                "",
                open().and_then(|b| {
                    let mut f = drivers::emc2101::Emc2101::new(b, a);
                    f.init()?;
                    Ok(Handle::Fan(Box::new(f)))
                }),
            );
            push(
                "temperature",
                open().map(|b| Handle::Temperature(Box::new(drivers::emc2101::Emc2101::new(b, a)))),
            );
        }
        Device::Emc230x(d) => push(
            "",
            open().and_then(|b| {
                let mut f = drivers::emc230x::Emc230x::new(
                    b,
                    addr.unwrap_or(drivers::emc230x::DEFAULT_ADDRESS),
                    d.fan,
                );
                f.init()?;
                Ok(Handle::Fan(Box::new(f)))
            }),
        ),
        Device::Ads1x15(d) => push(
            "",
            open().and_then(|b| {
                let (Some(variant), Some(input), Some(pga)) = (
                    ads_variant(&d.variant),
                    ads_input(&d.input),
                    ads_pga(d.full_scale_volts),
                ) else {
                    return Err(Error::Invalid {
                        chip: "ads1x15",
                        detail: "variant, input or full scale not valid (validate the spec)".into(),
                    });
                };
                Ok(Handle::Signal(Box::new(drivers::ads1x15::Ads1x15::new(
                    b,
                    addr.unwrap_or(drivers::ads1x15::DEFAULT_ADDRESS),
                    variant,
                    input,
                    pga,
                    d.rate,
                ))))
            }),
        ),
        Device::ArgonOne(d) => push(
            "",
            open().and_then(|b| {
                use drivers::argon_one::ArgonOne;
                let a = addr.unwrap_or(drivers::argon_one::ADDRESS);
                let fan = match d.firmware {
                    super::spec::ArgonFirmware::Legacy => ArgonOne::legacy(b, a),
                    super::spec::ArgonFirmware::Register => ArgonOne::register(b, a),
                    super::spec::ArgonFirmware::Detect => ArgonOne::detect(b, a, delay)?,
                };
                Ok(Handle::Fan(Box::new(fan)))
            }),
        ),
        Device::ArgonFanHat(_) => push(
            "",
            open().map(|b| {
                Handle::Fan(Box::new(drivers::argon_fan_hat::ArgonFanHat::new(
                    b,
                    addr.unwrap_or(drivers::argon_one::ADDRESS),
                )))
            }),
        ),
        Device::SixfabUps(_) => {
            use drivers::sixfab::{Rail, Sixfab, StdDelay};
            let a = addr.unwrap_or(drivers::sixfab::ADDRESS);
            push(
                "",
                open().map(|b| Handle::Battery(Box::new(Sixfab::new(b, StdDelay, a)))),
            );
            push(
                "input",
                open().map(|b| {
                    Handle::Power(Box::new(Sixfab::new(b, StdDelay, a).with_rail(Rail::Input)))
                }),
            );
            push(
                "system",
                open().map(|b| {
                    Handle::Power(Box::new(
                        Sixfab::new(b, StdDelay, a).with_rail(Rail::System),
                    ))
                }),
            );
            push(
                "temperature",
                open().map(|b| Handle::Temperature(Box::new(Sixfab::new(b, StdDelay, a)))),
            );
        }
        other => push(
            "",
            Err(Error::Unsupported {
                chip: other.driver(),
                what: "this device on I²C (not an I²C driver)".into(),
            }),
        ),
    }
}

/// The serial port a spec names, or the emulator's pty in simulation.
#[cfg(feature = "serial")]
fn serial_config(
    name: &str,
    line: &super::spec::SerialLine,
    hw: &Hardware,
) -> Result<crate::serial::Config> {
    use crate::serial::{Config, Parity, StopBits};
    #[cfg(not(feature = "sim"))]
    let _ = name;
    let path = match hw {
        Hardware::Real { .. } => line.port.clone(),
        #[cfg(feature = "sim")]
        Hardware::Sim(world) => world.serial_path(name).ok_or_else(|| Error::Unsupported {
            chip: "sim",
            what: format!("a serial emulator for {name}"),
        })?,
    };
    let mut c = Config::new(path, line.baud);
    c.parity = match line.parity.as_str() {
        "even" => Parity::Even,
        "odd" => Parity::Odd,
        _ => Parity::None,
    };
    c.stop_bits = if line.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    c.timeout = std::time::Duration::from_millis(line.timeout_ms);
    Ok(c)
}

/// A Modbus point from the spec (validated).
#[cfg(feature = "modbus")]
pub(crate) fn modbus_point(unit: u8, p: &super::spec::ModbusPoint) -> drivers::modbus::Point {
    use drivers::modbus::{Format, Point, Table, WordOrder};
    let table = if p.table == "input" {
        Table::Input
    } else {
        Table::Holding
    };
    let format = match p.value_type.as_str() {
        "i16" => Format::I16,
        "u32" => Format::U32,
        "i32" => Format::I32,
        "f32" => Format::F32,
        _ => Format::U16,
    };
    let mut point = Point::new(unit, table, p.address, format);
    point.word_order = if p.word_order == "little" {
        WordOrder::Little
    } else {
        WordOrder::Big
    };
    point.scale = p.scale;
    point.offset = p.offset;
    point
}

#[cfg(feature = "modbus")]
fn modbus_meter(d: &super::spec::ModbusMeter, hw: &Hardware) -> Result<Handle> {
    use drivers::modbus::{Client, Meter, MeterConfig};
    let cfg = serial_config(&d.name, &d.serial, hw)?;
    let port = crate::serial::open(&cfg)?;
    let client = Client::new(port, d.serial.baud).with_timeout(cfg.timeout);
    let meter = Meter::new(
        client,
        MeterConfig {
            volts: modbus_point(d.unit, &d.volts),
            amps: modbus_point(d.unit, &d.amps),
            watts: d.watts.as_ref().map(|w| modbus_point(d.unit, w)),
        },
    );
    Ok(Handle::Power(Box::new(meter)))
}

#[cfg(feature = "serial")]
fn bitscope(d: &super::spec::BitscopeBmc, hw: &Hardware, out: &mut Vec<Entry>) {
    use drivers::bitscope::{Bmc, Command, Profile, Reading};
    use std::sync::{Arc, Mutex};
    let reading = |c: &Option<super::spec::BmcCommand>| {
        c.as_ref().map(|c| {
            let mut r = Reading::new(c.send.clone());
            r.expect = c.expect.clone();
            r.field = c.field;
            r.scale = c.scale;
            r.offset = c.offset;
            r
        })
    };
    let command = |c: &super::spec::BmcCommand| Command {
        send: c.send.clone(),
        expect: c.expect.clone(),
    };
    let opened = serial_config(&d.name, &d.serial, hw).and_then(|cfg| {
        let port = crate::serial::open(&cfg)?;
        let profile = Profile {
            line_ending: match d.line_ending.as_str() {
                "cr" => "\r",
                "lf" => "\n",
                _ => "\r\n",
            }
            .to_string(),
            timeout: cfg.timeout,
            init: d.init.iter().map(command).collect(),
            supply_volts: reading(&d.supply_volts),
            supply_amps: reading(&d.supply_amps),
            node_amps: reading(&d.node_amps),
            temperature: reading(&d.temperature),
            power_state: reading(&d.power_state),
            power_on: d.power_on.as_ref().map(command),
            power_off: d.power_off.as_ref().map(command),
        };
        let mut bmc = Bmc::new(port, profile, d.node);
        bmc.init()?;
        Ok(Arc::new(Mutex::new(bmc)))
    });
    let mut push = |part: &str, handle: Result<Handle>| {
        out.push(Entry {
            name: part_name(&d.name, part),
            driver: "bitscope-bmc",
            handle,
        })
    };
    match opened {
        Ok(bmc) => {
            if d.supply_volts.is_some() || d.supply_amps.is_some() {
                push("supply", Ok(Handle::Power(Box::new(Arc::clone(&bmc)))));
            }
            if d.temperature.is_some() {
                push(
                    "temperature",
                    Ok(Handle::Temperature(Box::new(Arc::clone(&bmc)))),
                );
            }
            if d.power_on.is_some() || d.power_off.is_some() {
                push("power", Ok(Handle::Switch(Box::new(bmc))));
            }
        }
        Err(e) => push("", Err(e)),
    }
}

/// One entry per GPU (`<name>/<index>`); NVML absent is one entry whose
/// error is "unsupported", a normal state.
#[cfg(feature = "nvml")]
fn nvml(d: &super::spec::Nvml, hw: &Hardware, out: &mut Vec<Entry>) {
    let lib: Result<Option<std::path::PathBuf>> = match hw {
        Hardware::Real { .. } => Ok(d.library.as_ref().map(std::path::PathBuf::from)),
        #[cfg(feature = "sim")]
        Hardware::Sim(world) => world.nvml_library(&d.name).map(Some),
    };
    let opened = lib.and_then(|lib| crate::nvml::Nvml::open(lib.as_deref()));
    let nvml = match opened {
        Ok(n) => n,
        Err(e) => {
            out.push(Entry {
                name: d.name.clone(),
                driver: "nvml",
                handle: Err(e),
            });
            return;
        }
    };
    if !nvml.is_present() {
        out.push(Entry {
            name: d.name.clone(),
            driver: "nvml",
            handle: Err(Error::Unsupported {
                chip: "nvml",
                what: format!(
                    "NVML ({})",
                    nvml.absent_reason().unwrap_or("library not present")
                ),
            }),
        });
        return;
    }
    match nvml.gpus() {
        Ok(e) => {
            let mut all: Vec<(u32, Result<Handle>)> = e
                .gpus
                .into_iter()
                .map(|g| {
                    use crate::devices::Gpu as _;
                    (g.identity().index, Ok(Handle::Gpu(Box::new(g))))
                })
                .collect();
            all.extend(e.failed.into_iter().map(|(i, err)| (i, Err(err))));
            all.sort_by_key(|(i, _)| *i);
            for (i, handle) in all {
                out.push(Entry {
                    name: part_name(&d.name, &i.to_string()),
                    driver: "nvml",
                    handle,
                });
            }
        }
        Err(e) => out.push(Entry {
            name: d.name.clone(),
            driver: "nvml",
            handle: Err(e),
        }),
    }
}

fn selector(d: &super::spec::Hwmon) -> crate::sysfs::hwmon::Selector {
    let mut s = crate::sysfs::hwmon::Selector::default();
    if let Some(n) = &d.chip {
        s = s.with_name(n.clone());
    }
    if let Some(p) = &d.device {
        s = s.with_device(p.clone());
    }
    if let Some(k) = &d.kernel_driver {
        s = s.with_driver(k.clone());
    }
    s
}

fn sysfs_pwm_fan(
    sysfs: &std::path::Path,
    chip: u32,
    channel: u32,
    period_ns: u64,
    inverted: bool,
) -> Result<Handle> {
    use crate::sysfs::pwm::{FanConfig, PwmChip, SysfsPwmFan};
    let chip = PwmChip::open(sysfs, chip)?;
    let ch = match chip.channel(channel) {
        Ok(c) => c,
        Err(_) => chip.export(channel, std::time::Duration::from_secs(1))?,
    };
    let fan = SysfsPwmFan::new(
        ch,
        FanConfig {
            period_ns,
            polarity: None,
            invert: inverted,
        },
    )?;
    Ok(Handle::Fan(Box::new(fan)))
}

#[cfg(feature = "rppal")]
fn rpi_pwm_fan(d: &super::spec::RpiPwm) -> Result<Handle> {
    use rppal::pwm::Channel;
    let channel = match d.channel {
        0 => Channel::Pwm0,
        1 => Channel::Pwm1,
        2 => Channel::Pwm2,
        _ => Channel::Pwm3,
    };
    let fan = crate::sysfs::pwm::RppalFan::new(channel, d.frequency_hz, d.inverted)?;
    Ok(Handle::Fan(Box::new(fan)))
}

#[cfg(not(feature = "rppal"))]
fn rpi_pwm_fan(d: &super::spec::RpiPwm) -> Result<Handle> {
    Err(Error::Unsupported {
        chip: "rpi-pwm-fan",
        what: format!(
            "hardware PWM channel {} (built without the rppal feature)",
            d.channel
        ),
    })
}

/// One entry per INA3221 rail the Jetson has (`<name>/<RAIL>`).
fn jetson_rails(name: &str, sysfs: &std::path::Path, out: &mut Vec<Entry>) {
    let rails = crate::jetson::rails(sysfs);
    match rails {
        Ok(list) if !list.is_empty() => {
            for r in list {
                out.push(Entry {
                    name: part_name(name, &r.name),
                    driver: "jetson-rails",
                    handle: crate::jetson::Rail::open(sysfs, &r.name)
                        .map(|rail| Handle::Power(Box::new(rail))),
                });
            }
        }
        Ok(_) => out.push(Entry {
            name: name.to_string(),
            driver: "jetson-rails",
            handle: Err(Error::Unsupported {
                chip: "jetson-rails",
                what: "INA3221 rails (none found: Jetson Nano 2GB has none)".into(),
            }),
        }),
        Err(e) => out.push(Entry {
            name: name.to_string(),
            driver: "jetson-rails",
            handle: Err(e),
        }),
    }
}
