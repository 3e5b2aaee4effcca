//! GPIO: a relay as a power switch, byte-exact on a mock pin for both
//! polarities and with a failing pin, and on the simulated output pin; the
//! simulated input line's clock and edges.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use embedded_hal_mock::eh1::MockError;
use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as Pin};
use onprem_hal::ErrorKind;
use onprem_hal::devices::PowerSwitch;
use onprem_hal::gpio::{ActiveLevel, Edge, EdgeSource, Relay};
use onprem_hal::sim::gpio::{GLITCH_WIDTH, SimLine, SimOutputPin};

#[test]
fn can_switch_an_active_high_relay() {
    let mut r = Relay::new(
        PinMock::new(&[
            Pin::set(State::High),
            Pin::get_state(State::High),
            Pin::set(State::Low),
            Pin::get_state(State::Low),
        ]),
        ActiveLevel::High,
    );
    r.set_on(true).unwrap();
    assert_eq!(r.is_on().unwrap(), Some(true));
    r.set_on(false).unwrap();
    assert_eq!(r.is_on().unwrap(), Some(false));
    r.release().done();
}

#[test]
fn can_switch_an_active_low_relay() {
    let mut r = Relay::new(
        PinMock::new(&[
            Pin::set(State::Low),
            Pin::get_state(State::Low),
            Pin::set(State::High),
            Pin::get_state(State::High),
        ]),
        ActiveLevel::Low,
    );
    r.set_on(true).unwrap();
    assert_eq!(r.is_on().unwrap(), Some(true));
    r.set_on(false).unwrap();
    assert_eq!(r.is_on().unwrap(), Some(false));
    r.release().done();
}

#[test]
fn returns_io_error_when_the_pin_fails() {
    let err = MockError::Io(std::io::ErrorKind::NotConnected);
    let mut r = Relay::new(
        PinMock::new(&[
            Pin::set(State::High).with_error(err.clone()),
            Pin::get_state(State::High).with_error(err),
        ]),
        ActiveLevel::High,
    );
    let e = r.set_on(true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("switching on"), "{e}");
    assert!(r.is_on().is_err());
    r.release().done();
}

#[test]
fn can_drive_a_relay_on_the_simulated_pin() {
    let pin = SimOutputPin::with_level(true); // active-low relay: off
    let mut r = Relay::new(pin.clone(), ActiveLevel::Low);
    assert_eq!(r.is_on().unwrap(), Some(false));
    r.set_on(true).unwrap();
    assert!(!pin.is_high());
    assert_eq!(r.is_on().unwrap(), Some(true));
    r.set_on(false).unwrap();
    assert!(pin.is_high());
    assert_eq!(pin.writes(), 2);

    pin.set_failing(true);
    assert_eq!(r.set_on(true).unwrap_err().kind(), ErrorKind::Transient);
    assert!(pin.is_high(), "a failed write leaves the level");
    pin.set_failing(false);
    r.set_on(true).unwrap();
    assert!(!pin.is_high());
}

#[test]
fn can_stamp_simulated_edges_with_the_test_clock() {
    let line = SimLine::new();
    let mut reader = line.clone();
    line.advance(Duration::from_secs(10));
    line.pulse(Duration::from_millis(25));
    line.glitch();
    assert_eq!(line.pending(), 4);
    let t0 = Duration::from_secs(10);
    let t1 = t0 + Duration::from_millis(25);
    let zero = Duration::ZERO;
    assert_eq!(
        reader.next_edge(zero).unwrap(),
        Some(Edge {
            rising: true,
            timestamp: t0
        })
    );
    assert_eq!(
        reader.next_edge(zero).unwrap(),
        Some(Edge {
            rising: false,
            timestamp: t1
        })
    );
    assert_eq!(
        reader.next_edge(zero).unwrap(),
        Some(Edge {
            rising: true,
            timestamp: t1
        })
    );
    assert_eq!(
        reader.next_edge(zero).unwrap(),
        Some(Edge {
            rising: false,
            timestamp: t1 + GLITCH_WIDTH
        })
    );
    assert_eq!(reader.next_edge(Duration::from_secs(2)).unwrap(), None);
    assert_eq!(
        line.now(),
        t1 + GLITCH_WIDTH + Duration::from_secs(2),
        "waiting on an empty line moves its clock"
    );
}

#[test]
fn can_hold_the_simulated_line_without_edges_and_fail_once() {
    let line = SimLine::new();
    let mut reader = line.clone();
    line.hold(Duration::from_secs(5));
    line.set_level(false);
    assert_eq!(line.edges_total(), 0);
    line.fail_next();
    assert_eq!(
        reader.next_edge(Duration::ZERO).unwrap_err().kind(),
        ErrorKind::Transient
    );
    assert_eq!(reader.next_edge(Duration::ZERO).unwrap(), None);
}
