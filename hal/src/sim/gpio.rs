//! Simulated GPIO lines that tests pulse and read.
//!
//! - [`SimLine`]: an input line implementing [`EdgeSource`]. Tests (or the
//!   physical model) drive it with [`SimLine::pulse`], [`SimLine::glitch`],
//!   [`SimLine::hold`] and [`SimLine::set_level`]; each edge is stamped
//!   with the line's own clock, which only moves when the test moves it
//!   ([`SimLine::advance`]) or when a reader waits on an empty line. No
//!   wall-clock sleeps anywhere.
//! - [`SimOutputPin`]: an embedded-hal 1.0 `OutputPin` /
//!   `StatefulOutputPin` whose level tests read ([`SimOutputPin::is_high`]),
//!   for relays ([`crate::gpio::Relay`]).
//!
//! Both are handles: clones share the line, so a test keeps one clone and
//! gives the other to the driver.
//!
//! Faults: [`SimLine::fail_next`] and [`SimOutputPin::set_failing`] make the
//! next read or every write fail, as a line lost to another process would.
//!
//! To extend: a new stimulus is a method that queues edges at the current
//! clock and advances it (see [`SimLine::pulse`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use embedded_hal::digital;

use crate::gpio::{Edge, EdgeSource};
use crate::{Error, Result};

/// Width of [`SimLine::glitch`]: far below any Argon pulse window.
pub const GLITCH_WIDTH: Duration = Duration::from_micros(300);

#[derive(Debug, Default)]
struct LineState {
    now: Duration,
    high: bool,
    queue: VecDeque<Edge>,
    fail_next: bool,
    edges_total: u64,
}

/// A simulated input line; clones share it.
#[derive(Debug, Clone, Default)]
pub struct SimLine {
    state: Arc<Mutex<LineState>>,
}

impl SimLine {
    /// A low line at time zero with nothing queued.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, LineState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The line's clock.
    pub fn now(&self) -> Duration {
        self.lock().now
    }

    /// The level now (`true` = high).
    pub fn is_high(&self) -> bool {
        self.lock().high
    }

    /// Moves the clock on without touching the line.
    pub fn advance(&self, d: Duration) {
        self.lock().now += d;
    }

    /// Drives the line to `high`; queues an edge stamped now if the level
    /// changes.
    pub fn set_level(&self, high: bool) {
        let mut s = self.lock();
        if s.high != high {
            s.high = high;
            let edge = Edge {
                rising: high,
                timestamp: s.now,
            };
            s.queue.push_back(edge);
            s.edges_total += 1;
        }
    }

    /// A high pulse of `width` starting now (rising now, falling `width`
    /// later); the clock ends at the falling edge.
    pub fn pulse(&self, width: Duration) {
        self.set_level(true);
        self.advance(width);
        self.set_level(false);
    }

    /// A spurious pulse of [`GLITCH_WIDTH`].
    pub fn glitch(&self) {
        self.pulse(GLITCH_WIDTH);
    }

    /// A button held for `d` that produces no pulse (the Argon MCU's forced
    /// power-off after 5 s sends nothing to the Pi): only time passes.
    pub fn hold(&self, d: Duration) {
        self.advance(d);
    }

    /// Edges queued and not yet read.
    pub fn pending(&self) -> usize {
        self.lock().queue.len()
    }

    /// Edges ever queued.
    pub fn edges_total(&self) -> u64 {
        self.lock().edges_total
    }

    /// Makes the next [`EdgeSource::next_edge`] fail (an I/O error on the
    /// line), once.
    pub fn fail_next(&self) {
        self.lock().fail_next = true;
    }
}

impl EdgeSource for SimLine {
    /// The oldest queued edge; on an empty line the clock moves on by
    /// `timeout` (the reader waited that long) and the answer is `None`.
    fn next_edge(&mut self, timeout: Duration) -> Result<Option<Edge>> {
        let mut s = self.lock();
        if s.fail_next {
            s.fail_next = false;
            return Err(Error::Io {
                path: "sim gpio line".to_owned(),
                kind: std::io::ErrorKind::Other,
                detail: "injected read failure".to_owned(),
            });
        }
        match s.queue.pop_front() {
            Some(e) => Ok(Some(e)),
            None => {
                s.now += timeout;
                Ok(None)
            }
        }
    }
}

/// The error of a [`SimOutputPin`] set to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimPinError;

impl digital::Error for SimPinError {
    fn kind(&self) -> digital::ErrorKind {
        digital::ErrorKind::Other
    }
}

#[derive(Debug, Default)]
struct PinState {
    high: bool,
    writes: u64,
    failing: bool,
}

/// A simulated output pin; clones share it.
#[derive(Debug, Clone, Default)]
pub struct SimOutputPin {
    state: Arc<Mutex<PinState>>,
}

impl SimOutputPin {
    /// A pin set low.
    pub fn new() -> Self {
        Self::default()
    }

    /// A pin set to `high`.
    pub fn with_level(high: bool) -> Self {
        let p = Self::default();
        p.lock().high = high;
        p
    }

    fn lock(&self) -> MutexGuard<'_, PinState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The level the pin drives (`true` = high).
    pub fn is_high(&self) -> bool {
        self.lock().high
    }

    /// Writes made (each set counts, whether it changed the level or not).
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Makes every operation fail (`true`) or work again.
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }

    fn set(&self, high: bool) -> std::result::Result<(), SimPinError> {
        let mut s = self.lock();
        if s.failing {
            return Err(SimPinError);
        }
        s.high = high;
        s.writes += 1;
        Ok(())
    }

    fn get(&self) -> std::result::Result<bool, SimPinError> {
        let s = self.lock();
        if s.failing {
            Err(SimPinError)
        } else {
            Ok(s.high)
        }
    }
}

impl digital::ErrorType for SimOutputPin {
    type Error = SimPinError;
}

impl digital::OutputPin for SimOutputPin {
    fn set_low(&mut self) -> std::result::Result<(), SimPinError> {
        self.set(false)
    }

    fn set_high(&mut self) -> std::result::Result<(), SimPinError> {
        self.set(true)
    }
}

impl digital::StatefulOutputPin for SimOutputPin {
    fn is_set_high(&mut self) -> std::result::Result<bool, SimPinError> {
        self.get()
    }

    fn is_set_low(&mut self) -> std::result::Result<bool, SimPinError> {
        self.get().map(|h| !h)
    }
}
