//! Argon ONE power button: pulses on a GPIO line decoded into reboot and
//! shutdown requests.
//!
//! The device (hardware reference §1.3): the case MCU drives **BCM 4**
//! (physical pin 7) high for a while when the button is used; the width of
//! the high pulse is the message \[V\] `[S-ARGCASE]` `[S-ARGPB]`:
//!
//! | Pulse (vendor) | Meaning | Decoded here (default windows) |
//! |---|---|---|
//! | 20–30 ms | double tap → reboot | 15 ms ≤ w < 35 ms → [`ButtonRequest::Reboot`] |
//! | 40–50 ms | held ≥ 3 s and released → shutdown | 35 ms ≤ w < 55 ms → [`ButtonRequest::Shutdown`] |
//! | 60–70 ms | OLED models: switch screen | ignored |
//! | none | held ≥ 5 s: the MCU cuts power itself | nothing to decode |
//!
//! The vendor daemon counts 10 ms polling ticks; a third-party daemon
//! takes kernel timestamps and accepts ±1 ms around 20/40 ms \[T\]
//! `[S-DEA]`. Our windows are wider, gap-free and our own choice \[U\]
//! ([`Windows::default`]); a profile may set others
//! ([`ArgonButton::with_windows`]). Anything outside them (glitches,
//! OLED pulses, a falling edge without a rising one) is ignored.
//!
//! Width is the falling edge's kernel timestamp minus the rising edge's
//! ([`crate::gpio::Edge`]), so a late reader still measures right. The
//! line needs no debounce (and must not have one of 20 ms or more); on a
//! Pi open it with [`crate::gpio::RppalInput`] at [`LINE`] with a
//! pull-down, as the vendor's script does.
//!
//! The driver never acts: the power loop decides what a request means.
//!
//! To extend: the OLED "switch screen" pulse would be a third window and a
//! new [`ButtonRequest`] variant.

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::devices::{Button, ButtonRequest};
use crate::gpio::{Edge, EdgeSource};
use crate::{Error, Result};

/// The BCM line the case MCU pulses.
pub const LINE: u8 = 4;

/// Queued edges one [`Button::next_request`] reads after its timeout, so
/// that a chattering line cannot hold the caller.
pub const MAX_LATE_EDGES: usize = 64;

/// Which pulse widths mean what; each range includes its start and
/// excludes its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    /// Widths that ask for a reboot.
    pub reboot: Range<Duration>,
    /// Widths that ask for a shutdown.
    pub shutdown: Range<Duration>,
}

impl Default for Windows {
    /// 15–35 ms reboot, 35–55 ms shutdown \[U\]: around the vendor's
    /// 20–30 / 40–50 ms, with the gap between them split evenly and the
    /// 60–70 ms OLED pulse outside both.
    fn default() -> Self {
        Windows {
            reboot: Duration::from_millis(15)..Duration::from_millis(35),
            shutdown: Duration::from_millis(35)..Duration::from_millis(55),
        }
    }
}

impl Windows {
    /// Checks that both windows are non-empty and do not overlap.
    pub fn validate(&self) -> Result<()> {
        let (r, s) = (&self.reboot, &self.shutdown);
        let problem = if r.is_empty() {
            Some("the reboot window is empty")
        } else if s.is_empty() {
            Some("the shutdown window is empty")
        } else if r.start < s.end && s.start < r.end {
            Some("the reboot and shutdown windows overlap")
        } else {
            None
        };
        match problem {
            Some(p) => Err(Error::Invalid {
                chip: "argon_button",
                detail: format!("{p} (reboot {r:?}, shutdown {s:?})"),
            }),
            None => Ok(()),
        }
    }

    /// What a high pulse of `width` asks for, if anything.
    pub fn classify(&self, width: Duration) -> Option<ButtonRequest> {
        if self.reboot.contains(&width) {
            Some(ButtonRequest::Reboot)
        } else if self.shutdown.contains(&width) {
            Some(ButtonRequest::Shutdown)
        } else {
            None
        }
    }
}

/// The Argon ONE power button on an edge source.
pub struct ArgonButton<E> {
    edges: E,
    windows: Windows,
    rose_at: Option<Duration>,
}

impl<E: EdgeSource> ArgonButton<E> {
    /// A decoder with the default windows.
    pub fn new(edges: E) -> Self {
        ArgonButton {
            edges,
            windows: Windows::default(),
            rose_at: None,
        }
    }

    /// A decoder with `windows` ([`Error::Invalid`] if they are empty or
    /// overlap).
    pub fn with_windows(edges: E, windows: Windows) -> Result<Self> {
        windows.validate()?;
        Ok(ArgonButton {
            edges,
            windows,
            rose_at: None,
        })
    }

    /// The windows in use.
    pub fn windows(&self) -> &Windows {
        &self.windows
    }

    /// Gives the edge source back.
    pub fn release(self) -> E {
        self.edges
    }

    /// Feeds one edge; a request when it ends a pulse of a known width.
    pub fn feed(&mut self, edge: Edge) -> Option<ButtonRequest> {
        if edge.rising {
            // A second rising edge (the falling one was lost) starts over.
            self.rose_at = Some(edge.timestamp);
            return None;
        }
        let rose = self.rose_at.take()?;
        let width = edge.timestamp.checked_sub(rose)?;
        self.windows.classify(width)
    }
}

impl<E: EdgeSource> Button for ArgonButton<E> {
    /// Reads edges until one completes a pulse that means something, or
    /// `timeout` passes. Edges already queued are still read after the
    /// timeout (without waiting, at most [`MAX_LATE_EDGES`] of them), so a
    /// poll with a zero timeout drains a glitch in front of a press. A
    /// pulse whose falling edge has not come yet is remembered for the
    /// next call.
    fn next_request(&mut self, timeout: Duration) -> Result<Option<ButtonRequest>> {
        let start = Instant::now();
        let mut late = 0;
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                if late == MAX_LATE_EDGES {
                    return Ok(None);
                }
                late += 1;
            }
            let Some(edge) = self.edges.next_edge(left)? else {
                return Ok(None);
            };
            if let Some(r) = self.feed(edge) {
                return Ok(Some(r));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn can_classify_widths_at_the_window_edges() {
        let w = Windows::default();
        assert_eq!(w.classify(ms(14)), None);
        assert_eq!(w.classify(ms(15)), Some(ButtonRequest::Reboot));
        assert_eq!(w.classify(ms(20)), Some(ButtonRequest::Reboot));
        assert_eq!(
            w.classify(ms(35) - Duration::from_micros(1)),
            Some(ButtonRequest::Reboot)
        );
        assert_eq!(w.classify(ms(35)), Some(ButtonRequest::Shutdown));
        assert_eq!(w.classify(ms(40)), Some(ButtonRequest::Shutdown));
        assert_eq!(w.classify(ms(55)), None);
        assert_eq!(w.classify(ms(65)), None, "OLED screen switch");
    }

    #[test]
    fn returns_invalid_when_windows_overlap_or_are_empty() {
        let overlap = Windows {
            reboot: ms(15)..ms(40),
            shutdown: ms(35)..ms(55),
        };
        assert!(overlap.validate().is_err());
        let empty = Windows {
            reboot: ms(20)..ms(20),
            shutdown: ms(35)..ms(55),
        };
        assert!(empty.validate().is_err());
        let swapped = Windows {
            reboot: ms(40)..ms(50),
            shutdown: ms(20)..ms(30),
        };
        assert!(swapped.validate().is_ok());
        assert!(Windows::default().validate().is_ok());
    }
}
