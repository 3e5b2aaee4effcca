//! GPIO pulse counter: edges of the chosen polarity counted from the
//! simulated line, a read failure that keeps the count, and the counter
//! built from a spec on the simulated world.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use onprem_hal::devices::SignalSource;
use onprem_hal::drivers::gpio_counter::{Count, GpioCounter};
use onprem_hal::inventory::{self, Handle, Hardware, Inventory, Spec};
use onprem_hal::sim::gpio::SimLine;
use onprem_hal::sim::world::World;

const PULSE: Duration = Duration::from_millis(2);

#[test]
fn can_count_pulses_on_each_edge() {
    for (count, want) in [
        (Count::Rising, 5.0),
        (Count::Falling, 5.0),
        (Count::Both, 10.0),
    ] {
        let line = SimLine::new();
        let mut c = GpioCounter::new(line.clone(), count);
        assert_eq!(c.poll_sample().unwrap(), Some(0.0));
        for _ in 0..5 {
            line.pulse(PULSE);
            line.advance(PULSE);
        }
        assert_eq!(c.poll_sample().unwrap(), Some(want), "{count:?}");
        assert_eq!(line.pending(), 0, "every edge taken");
        // Nothing new: the count stays.
        assert_eq!(c.poll_sample().unwrap(), Some(want), "{count:?}");
    }
}

#[test]
fn can_keep_the_count_across_a_failed_read() {
    let line = SimLine::new();
    let mut c = GpioCounter::new(line.clone(), Count::Rising);
    line.pulse(PULSE);
    assert_eq!(c.poll_sample().unwrap(), Some(1.0));
    line.pulse(PULSE);
    line.fail_next();
    assert!(c.poll_sample().is_err());
    assert_eq!(c.total(), 1);
    line.pulse(PULSE);
    assert_eq!(c.poll_sample().unwrap(), Some(3.0));
}

#[test]
fn can_build_a_counter_from_a_spec_on_the_simulated_world() {
    let spec: Spec = serde_yaml_ng::from_str(
        "devices:\n  - { driver: gpio-counter, name: flow, pin: 17, edge: falling, bias: pull-up }\n",
    )
    .unwrap();
    assert_eq!(inventory::validate(&spec), []);
    assert_eq!(spec.devices[0].parts(), [("flow".to_owned(), "signal")]);
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&spec, dir.path()).unwrap();
    let mut inv = Inventory::build(&spec, &Hardware::Sim(world.clone()));
    let line = world.gpio_line(17);
    for _ in 0..3 {
        line.pulse(PULSE);
    }
    let Handle::Signal(s) = inv.get_mut("flow").unwrap().handle.as_mut().unwrap() else {
        panic!("flow is not a signal")
    };
    assert_eq!(s.poll_sample().unwrap(), Some(3.0));

    let bad: Spec =
        serde_yaml_ng::from_str("devices:\n  - { driver: gpio-counter, name: f, pin: 60 }\n")
            .unwrap();
    let errs = inventory::validate(&bad);
    assert!(
        errs[0].to_string().starts_with("devices[0].pin: GPIO 60"),
        "{errs:?}"
    );
    let e = serde_yaml_ng::from_str::<Spec>(
        "devices:\n  - { driver: gpio-counter, name: f, pin: 5, edge: up }\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("up"), "{e}");
}
