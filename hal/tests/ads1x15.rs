//! ADS1x15 driver: the single-shot start word, busy polling and scaling,
//! byte-exact; then emulated inputs through MUX and PGA, clipping, and a
//! sampling loop that never blocks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
use onprem_hal::devices::SignalSource;
use onprem_hal::drivers::ads1x15::{Ads1x15, Input, Variant};
use onprem_hal::sim::SimBus;
use onprem_hal::sim::chips::ads1x15 as chip;

const ADDR: u8 = 0x48;
const REG_CONVERSION: u8 = 0x00;
const REG_CONFIG: u8 = 0x01;

#[test]
fn can_start_poll_and_scale_a_single_shot() {
    // AIN1 single-ended (MUX 101), ±4.096 V (PGA 001), single-shot, 128 SPS
    // (DR 100), comparator off: 0xD383. Result 0x2000 = 1.024 V.
    let mut d = Ads1x15::new(
        Mock::new(&[
            Transaction::write(ADDR, vec![REG_CONFIG, 0xD3, 0x83]),
            Transaction::write_read(ADDR, vec![REG_CONFIG], vec![0x53, 0x83]),
            Transaction::write_read(ADDR, vec![REG_CONFIG], vec![0xD3, 0x83]),
            Transaction::write_read(ADDR, vec![REG_CONVERSION], vec![0x20, 0x00]),
        ]),
        ADDR,
        Variant::Ads1115,
        Input::Ain1,
        1,
        4,
    );
    assert_eq!(
        d.poll_sample().unwrap(),
        None,
        "first call starts the conversion"
    );
    assert_eq!(d.poll_sample().unwrap(), None, "OS = 0: still converting");
    assert_eq!(d.poll_sample().unwrap(), Some(1.024));
    d.release().done();
}

#[test]
fn can_sample_emulated_inputs_without_blocking() {
    let bus = SimBus::new();
    bus.attach(ADDR, chip::Ads1x15::new(Variant::Ads1115, 2));
    bus.with_chip(ADDR, |c: &mut chip::Ads1x15| {
        c.set_input(0, 3.3);
        c.set_input(1, 1.25);
        c.set_input(3, 0.5);
    })
    .unwrap();
    let sample = |input, pga| {
        let mut d = Ads1x15::new(bus.clone(), ADDR, Variant::Ads1115, input, pga, 7);
        let mut polls = 0;
        loop {
            polls += 1;
            if let Some(v) = d.poll_sample().unwrap() {
                return (v, polls);
            }
            assert!(polls < 10, "conversion never finished");
        }
    };
    let (v, polls) = sample(Input::Ain1, 1);
    assert!((v - 1.25).abs() < 0.001, "{v}");
    assert_eq!(polls, 4, "start, two busy reads, result");
    let (v, _) = sample(Input::Diff13, 1);
    assert!((v - 0.75).abs() < 0.001, "{v}");
    // 3.3 V on a ±2.048 V range clips at full scale.
    let (v, _) = sample(Input::Ain0, 2);
    assert!((v - 2.048).abs() < 0.001, "{v}");
}

#[test]
fn can_sample_an_ads1015() {
    let bus = SimBus::new();
    bus.attach(ADDR, chip::Ads1x15::new(Variant::Ads1015, 0));
    bus.with_chip(ADDR, |c: &mut chip::Ads1x15| c.set_input(2, 0.9))
        .unwrap();
    let mut d = Ads1x15::new(bus, ADDR, Variant::Ads1015, Input::Ain2, 2, 4);
    assert_eq!(d.poll_sample().unwrap(), None);
    let v = d.poll_sample().unwrap().unwrap();
    assert!((v - 0.9).abs() < 0.001, "{v}"); // 1 mV LSB at ±2.048 V
}

#[test]
fn can_put_a_sine_on_an_emulated_input() {
    let bus = SimBus::new();
    bus.attach(ADDR, chip::Ads1x15::new(Variant::Ads1115, 0));
    let sine = chip::Sine {
        offset: 1.0,
        amplitude: 0.5,
        period: 8,
    };
    bus.with_chip(ADDR, |c: &mut chip::Ads1x15| c.set_sine(3, Some(sine)))
        .unwrap();
    let mut d = Ads1x15::new(bus.clone(), ADDR, Variant::Ads1115, Input::Ain3, 2, 7);
    let mut got = Vec::new();
    while got.len() < 8 {
        if let Some(v) = d.poll_sample().unwrap() {
            got.push(v);
        }
    }
    for (k, v) in got.iter().enumerate() {
        assert!((v - sine.at(k as u64)).abs() < 0.0001, "{k}: {v}");
    }
    assert!((got[2] - 1.5).abs() < 0.0001 && (got[6] - 0.5).abs() < 0.0001);
    let n = bus
        .with_chip(ADDR, |c: &mut chip::Ads1x15| c.conversions())
        .unwrap();
    assert_eq!(n, 8);
}
