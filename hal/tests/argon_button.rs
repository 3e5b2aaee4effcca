//! Argon ONE power button on the simulated BCM 4 line: reboot and
//! shutdown pulses, glitches, the OLED pulse, a 5 s hold that sends
//! nothing, pulses split across calls, configurable windows and line
//! errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use onprem_hal::ErrorKind;
use onprem_hal::devices::{Button, ButtonRequest};
use onprem_hal::drivers::argon_button::{ArgonButton, Windows};
use onprem_hal::gpio::Edge;
use onprem_hal::sim::gpio::SimLine;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn button() -> (SimLine, ArgonButton<SimLine>) {
    let line = SimLine::new();
    line.advance(Duration::from_secs(100)); // kernel time since boot
    (line.clone(), ArgonButton::new(line))
}

macro_rules! pulse_cases {
    ($($name:ident: $width_ms:expr => $want:expr,)*) => {$(
        #[test]
        fn $name() {
            let (line, mut b) = button();
            line.pulse(ms($width_ms));
            assert_eq!(b.next_request(ms(100)).unwrap(), $want);
            assert_eq!(line.pending(), 0, "both edges consumed");
        }
    )*};
}

pulse_cases! {
    can_decode_a_20_ms_pulse_as_reboot: 20 => Some(ButtonRequest::Reboot),
    can_decode_a_30_ms_pulse_as_reboot: 30 => Some(ButtonRequest::Reboot),
    can_decode_a_40_ms_pulse_as_shutdown: 40 => Some(ButtonRequest::Shutdown),
    can_decode_a_50_ms_pulse_as_shutdown: 50 => Some(ButtonRequest::Shutdown),
    can_ignore_a_5_ms_pulse: 5 => None,
    can_ignore_the_65_ms_oled_pulse: 65 => None,
}

#[test]
fn can_ignore_glitches_around_a_real_pulse() {
    let (line, mut b) = button();
    line.glitch();
    line.advance(ms(3));
    line.glitch();
    line.advance(ms(200));
    line.pulse(ms(45));
    line.glitch();
    assert_eq!(
        b.next_request(ms(100)).unwrap(),
        Some(ButtonRequest::Shutdown)
    );
    assert_eq!(b.next_request(ms(100)).unwrap(), None, "trailing glitch");
}

#[test]
fn can_drain_queued_pulses_with_a_zero_timeout() {
    // A poller that never waits still gets every press queued behind
    // glitches and ignored pulses, one per call.
    let (line, mut b) = button();
    line.glitch();
    line.pulse(ms(65));
    line.pulse(ms(5));
    line.pulse(ms(25));
    line.glitch();
    line.pulse(ms(45));
    let zero = Duration::ZERO;
    assert_eq!(b.next_request(zero).unwrap(), Some(ButtonRequest::Reboot));
    assert_eq!(b.next_request(zero).unwrap(), Some(ButtonRequest::Shutdown));
    assert_eq!(b.next_request(zero).unwrap(), None);
    assert_eq!(line.pending(), 0);
}

#[test]
fn can_report_nothing_for_a_hold_without_pulse() {
    let (line, mut b) = button();
    line.hold(Duration::from_secs(5));
    assert_eq!(b.next_request(ms(100)).unwrap(), None);
    assert_eq!(line.edges_total(), 0);
}

#[test]
fn can_decode_a_pulse_whose_falling_edge_comes_in_a_later_call() {
    let (line, mut b) = button();
    line.set_level(true);
    assert_eq!(b.next_request(ms(10)).unwrap(), None);
    // The reader waited 10 ms of line time; the MCU ends the pulse 15 ms
    // after that: 25 ms in all.
    line.advance(ms(15));
    line.set_level(false);
    assert_eq!(b.next_request(ms(10)).unwrap(), Some(ButtonRequest::Reboot));
}

#[test]
fn can_restart_a_pulse_after_a_lost_falling_edge() {
    let mut b = ArgonButton::new(SimLine::new());
    let at = |t: u64, rising: bool| Edge {
        rising,
        timestamp: ms(t),
    };
    assert_eq!(b.feed(at(1000, true)), None);
    // The falling edge was lost; the next pulse starts the width over.
    assert_eq!(b.feed(at(1500, true)), None);
    assert_eq!(b.feed(at(1522, false)), Some(ButtonRequest::Reboot));
    assert_eq!(b.feed(at(1600, false)), None, "falling without rising");
    assert_eq!(b.feed(at(1700, true)), None);
    assert_eq!(b.feed(at(1650, false)), None, "time running backwards");
}

#[test]
fn can_use_vendor_windows() {
    let line = SimLine::new();
    let windows = Windows {
        reboot: ms(20)..ms(31),
        shutdown: ms(40)..ms(51),
    };
    let mut b = ArgonButton::with_windows(line.clone(), windows).unwrap();
    line.pulse(ms(17));
    assert_eq!(b.next_request(ms(10)).unwrap(), None);
    line.pulse(ms(35));
    assert_eq!(b.next_request(ms(10)).unwrap(), None);
    line.pulse(ms(41));
    assert_eq!(
        b.next_request(ms(10)).unwrap(),
        Some(ButtonRequest::Shutdown)
    );
}

#[test]
fn returns_invalid_when_windows_overlap() {
    let windows = Windows {
        reboot: ms(15)..ms(45),
        shutdown: ms(40)..ms(55),
    };
    let e = ArgonButton::with_windows(SimLine::new(), windows)
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("overlap"), "{e}");
}

#[test]
fn returns_line_error_and_keeps_decoding_after_it() {
    let (line, mut b) = button();
    line.fail_next();
    line.pulse(ms(25));
    assert_eq!(
        b.next_request(ms(10)).unwrap_err().kind(),
        ErrorKind::Transient
    );
    assert_eq!(b.next_request(ms(10)).unwrap(), Some(ButtonRequest::Reboot));
}
