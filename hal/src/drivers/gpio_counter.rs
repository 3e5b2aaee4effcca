//! A pulse counter on a GPIO input line: a flow meter, a fan tachometer,
//! an energy meter's S0 output.
//!
//! The line's edges come from an [`EdgeSource`] (rppal on a Pi, the
//! simulated line in tests), which queues them with kernel timestamps
//! while nobody reads. Each [`SignalSource::poll_sample`] takes what is
//! queued, counts the edges of the chosen polarity and answers the running
//! count since the driver was opened, so a sample is never `None` and a
//! slow reader loses no pulses as long as the queue does not overflow.
//! Rates (pulses per second, litres per minute) are the signal's business:
//! differences of the count over time, scaled.
//!
//! Facts: the kernel's GPIO character device keeps a bounded event FIFO
//! per line (16 events per requested line by default on Linux), so a line
//! pulsing faster than the reader drains it loses edges; sample a counter
//! at a rate well above the pulse rate divided by 16 \[U\]. No debounce is
//! set (as for [`crate::gpio::RppalInput`]); a bouncy contact needs a
//! hardware filter.
//!
//! To extend: a glitch filter would compare the stamps of a rising and
//! the following falling edge, as [`crate::drivers::argon_button`] does.

use std::time::Duration;

use crate::Result;
use crate::devices::SignalSource;
use crate::gpio::EdgeSource;

/// Most edges taken from the source in one sample, so that a line stuck
/// oscillating cannot hold a sampler forever.
pub const MAX_EDGES_PER_SAMPLE: usize = 65_536;

/// Which edges count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Count {
    /// Low → high.
    #[default]
    Rising,
    /// High → low.
    Falling,
    /// Both (two counts per pulse).
    Both,
}

impl Count {
    /// Whether an edge (`rising` or not) counts.
    pub fn counts(self, rising: bool) -> bool {
        match self {
            Count::Rising => rising,
            Count::Falling => !rising,
            Count::Both => true,
        }
    }
}

/// A pulse counter on an edge source.
pub struct GpioCounter<E> {
    edges: E,
    count: Count,
    total: u64,
}

impl<E: EdgeSource> GpioCounter<E> {
    /// A counter of `count` edges on `edges`, starting at zero.
    pub fn new(edges: E, count: Count) -> Self {
        GpioCounter {
            edges,
            count,
            total: 0,
        }
    }

    /// Takes the queued edges and returns the running count.
    pub fn update(&mut self) -> Result<u64> {
        for _ in 0..MAX_EDGES_PER_SAMPLE {
            match self.edges.next_edge(Duration::ZERO)? {
                Some(e) => {
                    if self.count.counts(e.rising) {
                        self.total += 1;
                    }
                }
                None => break,
            }
        }
        Ok(self.total)
    }

    /// The count as of the last update.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Gives the edge source back.
    pub fn release(self) -> E {
        self.edges
    }
}

impl<E: EdgeSource> SignalSource for GpioCounter<E> {
    /// The running count of edges (never `None`).
    fn poll_sample(&mut self) -> Result<Option<f64>> {
        self.update().map(|n| Some(n as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_select_edges_by_polarity() {
        assert!(Count::Rising.counts(true) && !Count::Rising.counts(false));
        assert!(!Count::Falling.counts(true) && Count::Falling.counts(false));
        assert!(Count::Both.counts(true) && Count::Both.counts(false));
    }
}
