//! Simulated GPIO lines that tests pulse.
