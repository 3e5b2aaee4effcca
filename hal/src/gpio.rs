//! GPIO lines: edges with kernel timestamps, and relays on output lines.
//!
//! - [`EdgeSource`]: a digital input that reports its level changes as
//!   [`Edge`]s stamped with the time the kernel saw them. Pulse decoders
//!   (the Argon power button, [`crate::drivers::argon_button`]) measure
//!   widths from those stamps, never from when the agent got round to
//!   reading them, so a busy agent still decodes a 20 ms pulse.
//! - [`Relay`]: a [`PowerSwitch`] on any embedded-hal 1.0
//!   [`StatefulOutputPin`], active-high or active-low.
//! - With the `rppal` feature, the Raspberry Pi backends: [`RppalInput`]
//!   (a BCM input line with edge interrupts) and [`open_output`] (a BCM
//!   output line for a [`Relay`]; rppal's `OutputPin` implements the
//!   embedded-hal 1.0 digital traits when rppal's `hal` feature is on,
//!   which `hal/Cargo.toml` enables).
//! - The simulated lines for tests and `--hardware sim` are in
//!   `sim::gpio`.
//!
//! Facts (hardware reference §1.3): rppal's `Event.timestamp` is the
//! kernel's event time (time since boot), read through the gpiochip
//! character device \[V\]. Do not set a debounce of 20 ms or more on a line
//! that carries the Argon pulses: it swallows them \[V\]. So [`RppalInput`]
//! sets no debounce at all, and decoders ignore glitches by width instead.
//!
//! To add a GPIO backend: implement [`EdgeSource`] for inputs, and the
//! embedded-hal 1.0 `digital` traits for outputs (then [`Relay`] works on
//! it unchanged); map the backend's errors into [`crate::Error`] with the
//! device node in the message.
//!
//! ## Troubleshooting
//!
//! - `Permission denied` on `/dev/gpiomem` (`/dev/gpiomem0` on a Pi 5) or
//!   `/dev/gpiochipN`: the agent's user needs the `gpio` group, or the
//!   unit's `DeviceAllow=` must list those nodes.
//! - `already in use`: the line is configured twice in this process (two
//!   devices on one BCM number in the hardware section).
//! - `busy` from the kernel: another process holds the line (the vendor's
//!   `argononed`, a `gpio-key` overlay on the same pin); stop it.
//! - `unknown Raspberry Pi model`: rppal cannot identify the board (not a
//!   Pi, or `/proc/device-tree/compatible` is not visible in a container).

use std::time::Duration;

use embedded_hal::digital::StatefulOutputPin;

use crate::devices::PowerSwitch;
use crate::{Error, Result};

/// One level change of an input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// `true` for low → high, `false` for high → low.
    pub rising: bool,
    /// When the kernel saw it (time since boot on Linux; the test clock in
    /// the simulator). Only differences between two stamps mean anything.
    pub timestamp: Duration,
}

/// A digital input that reports its edges.
pub trait EdgeSource: Send {
    /// The next edge, waiting at most `timeout` (zero: only what is already
    /// queued); `None` when none came. Edges that arrived while nobody was
    /// waiting are kept and returned in order.
    fn next_edge(&mut self, timeout: Duration) -> Result<Option<Edge>>;
}

impl<E: EdgeSource + ?Sized> EdgeSource for Box<E> {
    fn next_edge(&mut self, timeout: Duration) -> Result<Option<Edge>> {
        (**self).next_edge(timeout)
    }
}

/// The internal resistor on an input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bias {
    /// None: the line floats unless something drives it.
    Off,
    /// Pull-down (the vendor's RPi.GPIO button script uses this on BCM 4
    /// \[V\] `[S-ARGPB]`).
    #[default]
    PullDown,
    /// Pull-up.
    PullUp,
}

/// Which output level switches a relay on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActiveLevel {
    /// A high output switches on (most bare relay modules with a
    /// transistor driver).
    #[default]
    High,
    /// A low output switches on (many opto-isolated relay boards).
    Low,
}

impl ActiveLevel {
    /// The output level (`true` = high) that puts the relay in state `on`.
    pub fn level_for(self, on: bool) -> bool {
        match self {
            ActiveLevel::High => on,
            ActiveLevel::Low => !on,
        }
    }
}

/// A relay (or any power switch) on a GPIO output.
///
/// [`PowerSwitch::is_on`] reports the level the output is set to (the
/// pin's output latch), not the relay contacts: a relay with a broken coil
/// still reads as on.
pub struct Relay<P> {
    pin: P,
    active: ActiveLevel,
}

impl<P: StatefulOutputPin> Relay<P> {
    /// A relay on `pin`. Leaves the pin as it is: open the pin at the level
    /// you want the relay in (see [`open_output`]) so that taking it over
    /// does not glitch the load.
    pub fn new(pin: P, active: ActiveLevel) -> Self {
        Relay { pin, active }
    }

    /// Gives the pin back.
    pub fn release(self) -> P {
        self.pin
    }
}

fn pin_error<E: embedded_hal::digital::Error>(what: &str, e: &E) -> Error {
    Error::Io {
        path: "GPIO relay output".to_owned(),
        kind: std::io::ErrorKind::Other,
        detail: format!("{what}: {:?}", e.kind()),
    }
}

impl<P: StatefulOutputPin + Send> PowerSwitch for Relay<P> {
    fn set_on(&mut self, on: bool) -> Result<()> {
        let r = if self.active.level_for(on) {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        };
        r.map_err(|e| pin_error(if on { "switching on" } else { "switching off" }, &e))
    }

    fn is_on(&mut self) -> Result<Option<bool>> {
        let high = self
            .pin
            .is_set_high()
            .map_err(|e| pin_error("reading the output level", &e))?;
        Ok(Some(self.active.level_for(high)))
    }
}

/// The device nodes rppal opens, for error messages.
#[cfg(feature = "rppal")]
const RPPAL_NODES: &str = "/dev/gpiomem or /dev/gpiochipN";

/// Maps an rppal GPIO error on BCM line `bcm` into [`crate::Error`].
///
/// - permission denied → [`Error::Io`] (`PermissionDenied`, fatal) naming
///   the node rppal could not open;
/// - line already taken in this process, or no such line → [`Error::Invalid`]
///   (fatal: a configuration mistake);
/// - unknown model → [`Error::Unsupported`] (not a Raspberry Pi);
/// - other I/O (e.g. `EBUSY` when another process holds the line) →
///   [`Error::Io`], classified by its kind.
#[cfg(feature = "rppal")]
pub fn map_rppal_error(bcm: u8, e: rppal::gpio::Error) -> Error {
    use rppal::gpio::Error as E;
    match e {
        E::PermissionDenied(path) => Error::Io {
            path: if path.is_empty() {
                RPPAL_NODES.to_owned()
            } else {
                path
            },
            kind: std::io::ErrorKind::PermissionDenied,
            detail: format!(
                "permission denied opening GPIO for BCM {bcm}: add the agent's user to the \
                 gpio group or allow the node in the unit's DeviceAllow="
            ),
        },
        E::PinUsed(pin) => Error::Invalid {
            chip: "gpio",
            detail: format!("BCM {pin} is already in use in this process (configured twice?)"),
        },
        E::PinNotAvailable(pin) => Error::Invalid {
            chip: "gpio",
            detail: format!("BCM {pin} does not exist on this board"),
        },
        E::UnknownModel => Error::Unsupported {
            chip: "gpio",
            what: format!("rppal GPIO (BCM {bcm}): unknown Raspberry Pi model or SoC"),
        },
        E::Io(io) => Error::Io {
            path: RPPAL_NODES.to_owned(),
            kind: io.kind(),
            detail: format!("BCM {bcm}: {io}"),
        },
        E::ThreadPanic => Error::Protocol {
            chip: "gpio",
            detail: format!("BCM {bcm}: rppal's interrupt thread panicked"),
        },
    }
}

/// A BCM input line with edge interrupts on both edges (rppal), as an
/// [`EdgeSource`].
///
/// Holds the line until dropped; rppal then puts it back in the mode it
/// found it in. No debounce is set (see the module docs).
#[cfg(feature = "rppal")]
pub struct RppalInput {
    pin: rppal::gpio::InputPin,
    bcm: u8,
}

#[cfg(feature = "rppal")]
impl RppalInput {
    /// Opens BCM line `bcm` as an input with `bias` and enables interrupts
    /// on both edges.
    pub fn open(bcm: u8, bias: Bias) -> Result<Self> {
        let gpio = rppal::gpio::Gpio::new().map_err(|e| map_rppal_error(bcm, e))?;
        let pin = gpio.get(bcm).map_err(|e| map_rppal_error(bcm, e))?;
        let mut pin = match bias {
            Bias::Off => pin.into_input(),
            Bias::PullDown => pin.into_input_pulldown(),
            Bias::PullUp => pin.into_input_pullup(),
        };
        // No debounce: a debounce of 20 ms or more swallows the pulses.
        pin.set_interrupt(rppal::gpio::Trigger::Both, None)
            .map_err(|e| map_rppal_error(bcm, e))?;
        Ok(RppalInput { pin, bcm })
    }

    /// The BCM line number.
    pub fn bcm(&self) -> u8 {
        self.bcm
    }
}

#[cfg(feature = "rppal")]
impl EdgeSource for RppalInput {
    fn next_edge(&mut self, timeout: Duration) -> Result<Option<Edge>> {
        use rppal::gpio::Trigger;
        // `reset = false`: keep events that arrived since the last call.
        let Some(ev) = self
            .pin
            .poll_interrupt(false, Some(timeout))
            .map_err(|e| map_rppal_error(self.bcm, e))?
        else {
            return Ok(None);
        };
        let rising = match ev.trigger {
            Trigger::RisingEdge => true,
            Trigger::FallingEdge => false,
            other => {
                return Err(Error::Protocol {
                    chip: "gpio",
                    detail: format!("BCM {}: event with trigger {other}", self.bcm),
                });
            }
        };
        Ok(Some(Edge {
            rising,
            timestamp: ev.timestamp,
        }))
    }
}

/// Opens BCM line `bcm` as an output for a [`Relay`].
///
/// `initial`: `Some(level)` sets the level (`true` = high) before the line
/// becomes an output, so the load does not glitch; `None` keeps the level
/// the output latch already holds (an agent restart does not switch the
/// load). The line stays an output at its last level when the pin is
/// dropped (rppal's reset-on-drop is turned off), for the same reason.
#[cfg(feature = "rppal")]
pub fn open_output(bcm: u8, initial: Option<bool>) -> Result<rppal::gpio::OutputPin> {
    let gpio = rppal::gpio::Gpio::new().map_err(|e| map_rppal_error(bcm, e))?;
    let pin = gpio.get(bcm).map_err(|e| map_rppal_error(bcm, e))?;
    let mut out = match initial {
        Some(true) => pin.into_output_high(),
        Some(false) => pin.into_output_low(),
        None => pin.into_output(),
    };
    out.set_reset_on_drop(false);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_map_levels_for_both_polarities() {
        assert!(ActiveLevel::High.level_for(true));
        assert!(!ActiveLevel::High.level_for(false));
        assert!(!ActiveLevel::Low.level_for(true));
        assert!(ActiveLevel::Low.level_for(false));
    }

    #[cfg(feature = "rppal")]
    #[test]
    fn can_use_rppal_lines_as_device_traits() {
        fn switch<T: PowerSwitch>() {}
        fn edges<T: EdgeSource>() {}
        switch::<Relay<rppal::gpio::OutputPin>>();
        edges::<RppalInput>();
    }

    #[cfg(feature = "rppal")]
    #[test]
    fn can_map_rppal_errors_to_classified_errors() {
        use crate::ErrorKind;
        use rppal::gpio::Error as E;

        let e = map_rppal_error(4, E::PermissionDenied("/dev/gpiochip0".into()));
        assert_eq!(e.kind(), ErrorKind::Fatal);
        assert!(e.to_string().contains("/dev/gpiochip0"), "{e}");
        assert!(e.to_string().contains("BCM 4"), "{e}");

        let e = map_rppal_error(4, E::PinUsed(4));
        assert_eq!(e.kind(), ErrorKind::Fatal);
        assert!(e.to_string().contains("already in use"), "{e}");

        let e = map_rppal_error(60, E::PinNotAvailable(60));
        assert!(e.to_string().contains("BCM 60"), "{e}");

        assert_eq!(
            map_rppal_error(4, E::UnknownModel).kind(),
            ErrorKind::Unsupported
        );

        let busy = std::io::Error::from(std::io::ErrorKind::ResourceBusy);
        let e = map_rppal_error(4, E::Io(busy));
        assert_eq!(e.kind(), ErrorKind::Transient);
        assert!(e.to_string().contains("/dev/gpiochipN"), "{e}");
    }
}
