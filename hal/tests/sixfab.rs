//! Sixfab UPS HAT driver: request and reply frames byte-exact (typed in
//! from the hardware reference §2, CRCs included), the delay before each
//! reply and between attempts, garbage, CRC failures and bus NACKs per
//! transaction; then a battery, mains, watchdog and RTC with state and
//! faults in the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use embedded_hal::i2c::{ErrorKind as BusError, NoAcknowledgeSource};
use embedded_hal_mock::eh1::delay::{CheckedDelay, NoopDelay, Transaction as Wait};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
use onprem_hal::devices::{Battery, PowerMonitor, TemperatureSensor};
use onprem_hal::drivers::sixfab::{
    FanHealth, PowerOutageParams, Rail, Retry, Sixfab, StdDelay, WorkingMode, battery_sensor,
};
use onprem_hal::sim::SimBus;
use onprem_hal::sim::chips::lm75::Lm75 as Lm75Chip;
use onprem_hal::sim::chips::sixfab::{self as chip, ReplyFault};
use onprem_hal::{Error, ErrorKind};

const ADDR: u8 = 0x41;

// Frames typed in from the reference (CRC-16/XMODEM, high byte first).
const REQ_INPUT_VOLTAGE: [u8; 7] = [0xCD, 0x02, 0x01, 0x00, 0x00, 0xC8, 0x9A];
const REP_5123_MV: [u8; 11] = [
    0xDC, 0x02, 0x02, 0x00, 0x04, 0x00, 0x00, 0x14, 0x03, 0x9F, 0x12,
];

/// `0x01` (the SMBus command byte), then the frame, in one write.
fn request(frame: &[u8]) -> Transaction {
    let mut bytes = vec![0x01];
    bytes.extend_from_slice(frame);
    Transaction::write(ADDR, bytes)
}

/// One SMBus receive-byte (a 1-byte read) per reply byte.
fn reply(bytes: &[u8]) -> Vec<Transaction> {
    bytes
        .iter()
        .map(|&b| Transaction::read(ADDR, vec![b]))
        .collect()
}

fn script(parts: Vec<Vec<Transaction>>) -> Mock {
    Mock::new(&parts.concat())
}

fn waits(ms: &[u32]) -> CheckedDelay {
    let w: Vec<Wait> = ms.iter().map(|&m| Wait::delay_ms(m)).collect();
    CheckedDelay::new(&w)
}

fn finish(d: Sixfab<Mock, CheckedDelay>) {
    let (mut i2c, mut delay) = d.release();
    i2c.done();
    delay.done();
}

#[test]
fn can_read_input_voltage_byte_exact() {
    let mut d = Sixfab::new(
        script(vec![vec![request(&REQ_INPUT_VOLTAGE)], reply(&REP_5123_MV)]),
        waits(&[10]),
        ADDR,
    );
    assert_eq!(d.input_volts().unwrap(), 5.123);
    finish(d);
}

#[test]
fn can_wait_50_ms_for_system_power() {
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&[0xCD, 0x08, 0x01, 0x00, 0x00, 0xA0, 0x31])],
            reply(&[
                0xDC, 0x08, 0x02, 0x00, 0x04, 0x00, 0x00, 0x15, 0x7C, 0xB2, 0x27,
            ]),
        ]),
        waits(&[50]),
        ADDR,
    )
    .with_rail(Rail::System);
    assert_eq!(d.power_watts().unwrap(), 5.5);
    finish(d);
}

#[test]
fn can_decode_signed_battery_current() {
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&[0xCD, 0x0B, 0x01, 0x00, 0x00, 0x3B, 0xED])],
            reply(&[
                0xDC, 0x0B, 0x02, 0x00, 0x04, 0xFF, 0xFF, 0xFA, 0x24, 0x25, 0xE3,
            ]),
        ]),
        waits(&[10]),
        ADDR,
    );
    assert_eq!(d.battery_amps().unwrap(), -1.5);
    finish(d);
}

#[test]
fn can_read_working_mode_as_on_battery() {
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&[0xCD, 0x1E, 0x01, 0x00, 0x00, 0x9C, 0x0F])],
            reply(&[0xDC, 0x1E, 0x02, 0x00, 0x01, 0x03, 0x8A, 0x9F]),
        ]),
        waits(&[10]),
        ADDR,
    );
    assert!(!d.on_mains().unwrap());
    finish(d);
}

#[test]
fn can_read_firmware_version_from_15_bytes() {
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&[0xCD, 0xC8, 0x01, 0x00, 0x00, 0x13, 0x95])],
            reply(&[
                0xDC, 0xC8, 0x02, 0x00, 0x08, b'v', b'2', b'.', b'0', b'1', b'.', b'0', b'0', 0x56,
                0x86,
            ]),
        ]),
        waits(&[10]),
        ADDR,
    );
    assert_eq!(d.firmware_version().unwrap(), "v2.01.00");
    finish(d);
}

#[test]
fn can_set_watchdog_interval_and_kick() {
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&[0xCD, 0x34, 0x01, 0x00, 0x01, 0x0A, 0x91, 0x54])],
            reply(&[0xDC, 0x34, 0x02, 0x00, 0x01, 0x01, 0xE4, 0xC7]),
            vec![request(&[0xCD, 0x27, 0x01, 0x00, 0x01, 0x01, 0xCA, 0xB7])],
            reply(&[0xDC, 0x27, 0x02, 0x00, 0x01, 0x01, 0x0E, 0x4F]),
        ]),
        waits(&[10, 10]),
        ADDR,
    );
    d.set_watchdog_interval_minutes(10).unwrap();
    d.kick_watchdog().unwrap();
    finish(d);
}

#[test]
fn can_set_power_outage_params_big_endian() {
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&[
                0xCD, 0x39, 0x01, 0x00, 0x04, 0x00, 0x1E, 0x00, 0x78, 0x37, 0x17,
            ])],
            reply(&[0xDC, 0x39, 0x02, 0x00, 0x01, 0x01, 0xC5, 0xBD]),
        ]),
        waits(&[10]),
        ADDR,
    );
    d.set_power_outage_params(PowerOutageParams {
        sleep_minutes: 30,
        run_minutes: 120,
    })
    .unwrap();
    finish(d);
}

#[test]
fn can_poll_and_acknowledge_soft_power_off() {
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&[0xCD, 0x24, 0x01, 0x00, 0x00, 0xD8, 0x4D])],
            reply(&[0xDC, 0x24, 0x02, 0x00, 0x01, 0x01, 0xE0, 0x9D]),
            vec![request(&[0xCD, 0x24, 0x01, 0x00, 0x01, 0x01, 0x24, 0x65])],
            reply(&[0xDC, 0x24, 0x02, 0x00, 0x01, 0x01, 0xE0, 0x9D]),
        ]),
        waits(&[10, 10]),
        ADDR,
    );
    assert!(d.soft_power_off_requested().unwrap());
    d.acknowledge_soft_power_off().unwrap();
    finish(d);
}

#[test]
fn can_reset_mcu_without_reading_a_reply() {
    let mut d = Sixfab::new(
        script(vec![vec![request(&[
            0xCD, 0xCB, 0x01, 0x00, 0x00, 0x88, 0x49,
        ])]]),
        waits(&[]),
        ADDR,
    );
    d.reset_mcu().unwrap();
    finish(d);
}

#[test]
fn can_retry_when_garbage_precedes_the_start_byte() {
    // Two bytes of garbage push the frame past the 11 bytes the host
    // reads: that attempt fails, the next one succeeds.
    let mut cut = vec![0x00, 0xFF];
    cut.extend_from_slice(&REP_5123_MV[..9]);
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&REQ_INPUT_VOLTAGE)],
            reply(&cut),
            vec![request(&REQ_INPUT_VOLTAGE)],
            reply(&REP_5123_MV),
        ]),
        waits(&[10, 100, 10]),
        ADDR,
    );
    assert_eq!(d.input_volts().unwrap(), 5.123);
    finish(d);
}

#[test]
fn can_retry_after_a_crc_failure() {
    let mut bad = REP_5123_MV;
    bad[8] = 0x04; // 5124 mV under the CRC of 5123 mV
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&REQ_INPUT_VOLTAGE)],
            reply(&bad),
            vec![request(&REQ_INPUT_VOLTAGE)],
            reply(&REP_5123_MV),
        ]),
        waits(&[10, 100, 10]),
        ADDR,
    );
    assert_eq!(d.input_volts().unwrap(), 5.123);
    finish(d);
}

#[test]
fn stops_reading_at_a_crc_failure() {
    // A 1-byte frame with a bad CRC inside an 11-byte read: the host stops
    // after its 8th byte, as the official API does, and tries again.
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&REQ_INPUT_VOLTAGE)],
            reply(&[0xDC, 0x02, 0x02, 0x00, 0x01, 0x05, 0x00, 0x00]),
            vec![request(&REQ_INPUT_VOLTAGE)],
            reply(&REP_5123_MV),
        ]),
        waits(&[10, 100, 10]),
        ADDR,
    );
    assert_eq!(d.input_volts().unwrap(), 5.123);
    finish(d);
}

#[test]
fn can_retry_a_bus_nack_in_any_transaction() {
    let nack = BusError::NoAcknowledge(NoAcknowledgeSource::Address);
    let mut d = Sixfab::new(
        script(vec![
            // Attempt 1: the request is not acknowledged; no reply wait.
            vec![request(&REQ_INPUT_VOLTAGE).with_error(nack)],
            // Attempt 2: the second reply byte is not acknowledged.
            vec![request(&REQ_INPUT_VOLTAGE)],
            reply(&REP_5123_MV[..1]),
            vec![Transaction::read(ADDR, vec![0x02]).with_error(nack)],
            // Attempt 3: fine.
            vec![request(&REQ_INPUT_VOLTAGE)],
            reply(&REP_5123_MV),
        ]),
        waits(&[100, 10, 100, 10]),
        ADDR,
    );
    assert_eq!(d.input_volts().unwrap(), 5.123);
    finish(d);
}

#[test]
fn can_retry_a_reply_to_another_command() {
    // A valid frame, but for GET_BATTERY_VOLTAGE (10): not our answer.
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&REQ_INPUT_VOLTAGE)],
            reply(&[
                0xDC, 0x0A, 0x02, 0x00, 0x04, 0x00, 0x00, 0x0F, 0xA0, 0xDB, 0xC8,
            ]),
            vec![request(&REQ_INPUT_VOLTAGE)],
            reply(&REP_5123_MV),
        ]),
        waits(&[10, 100, 10]),
        ADDR,
    );
    assert_eq!(d.input_volts().unwrap(), 5.123);
    finish(d);
}

#[test]
fn returns_protocol_error_when_retries_are_exhausted() {
    let zeros = [0u8; 11];
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&REQ_INPUT_VOLTAGE)],
            reply(&zeros),
            vec![request(&REQ_INPUT_VOLTAGE)],
            reply(&zeros),
            vec![request(&REQ_INPUT_VOLTAGE)],
            reply(&zeros),
        ]),
        waits(&[10, 5, 10, 5, 10]),
        ADDR,
    )
    .with_retry(Retry {
        attempts: 3,
        pause: Duration::from_millis(5),
    });
    let e = d.input_volts().unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Transient);
    let msg = e.to_string();
    assert!(msg.contains("GET_INPUT_VOLTAGE (2)"), "{msg}");
    assert!(msg.contains("3 attempts"), "{msg}");
    assert!(msg.contains("0xdc"), "{msg}");
    finish(d);
}

#[test]
fn returns_protocol_error_when_mcu_answers_set_failed() {
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&[0xCD, 0x34, 0x01, 0x00, 0x01, 0x0A, 0x91, 0x54])],
            reply(&[0xDC, 0x34, 0x02, 0x00, 0x01, 0x02, 0xD4, 0xA4]),
        ]),
        waits(&[10]),
        ADDR,
    );
    let e = d.set_watchdog_interval_minutes(10).unwrap_err();
    assert!(e.to_string().contains("SET_FAILED"), "{e}");
    assert!(e.to_string().contains("SET_WATCHDOG_INTERVAL"), "{e}");
    finish(d);
}

#[test]
fn returns_invalid_without_bus_traffic_when_arguments_are_out_of_range() {
    let mut d = Sixfab::new(Mock::new(&[]), waits(&[]), ADDR);
    for m in [0, 3, 181, 255] {
        let e = d.set_watchdog_interval_minutes(m).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Fatal);
        assert!(e.to_string().contains(&format!("interval {m} min")), "{e}");
    }
    assert!(d.set_battery_max_charge_level(59).is_err());
    assert!(d.set_battery_max_charge_level(101).is_err());
    assert!(
        d.set_power_outage_params(PowerOutageParams {
            sleep_minutes: 1,
            run_minutes: 0
        })
        .is_err()
    );
    assert!(
        d.set_power_outage_params(PowerOutageParams {
            sleep_minutes: 2,
            run_minutes: 1438
        })
        .is_err()
    );
    finish(d);
}

#[test]
fn returns_invalid_when_battery_level_is_over_100() {
    let mut d = Sixfab::new(
        script(vec![
            vec![request(&[0xCD, 0x0D, 0x01, 0x00, 0x00, 0x1C, 0x74])],
            reply(&[
                0xDC, 0x0D, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x65, 0x85, 0x07,
            ]),
            vec![request(&[0xCD, 0x0D, 0x01, 0x00, 0x00, 0x1C, 0x74])],
            reply(&[
                0xDC, 0x0D, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x40, 0xF1, 0xC0,
            ]),
        ]),
        waits(&[10, 10]),
        ADDR,
    );
    let e = d.charge_percent().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("101"), "{e}");
    assert_eq!(d.charge_percent().unwrap(), 64.0);
    finish(d);
}

#[test]
fn can_run_with_a_noop_delay() {
    let mut d = Sixfab::new(
        script(vec![vec![request(&REQ_INPUT_VOLTAGE)], reply(&REP_5123_MV)]),
        NoopDelay::new(),
        ADDR,
    );
    assert_eq!(d.input_volts().unwrap(), 5.123);
    let (mut i2c, _) = d.release();
    i2c.done();
}

// --- emulator ---

fn fast() -> Retry {
    Retry {
        attempts: 4,
        pause: Duration::from_millis(1),
    }
}

fn emulated() -> (SimBus, Sixfab<SimBus, StdDelay>) {
    let bus = SimBus::new();
    bus.attach(ADDR, chip::Sixfab::new());
    let d = Sixfab::new(bus.clone(), StdDelay, ADDR).with_retry(fast());
    (bus, d)
}

fn on_chip<R>(bus: &SimBus, f: impl FnOnce(&mut chip::Sixfab) -> R) -> R {
    bus.with_chip(ADDR, f).expect("emulator attached")
}

#[test]
fn can_follow_a_battery_discharging_through_the_battery_trait() {
    let (bus, mut d) = emulated();
    on_chip(&bus, |c| c.set_mains(false));
    let mut seen = Vec::new();
    for (level, volts) in [(80.0, 4.0), (50.0, 3.7), (10.0, 3.3)] {
        on_chip(&bus, |c| {
            c.set_battery_level(level);
            c.set_battery_volts(volts);
        });
        seen.push((d.charge_percent().unwrap(), d.volts().unwrap()));
    }
    assert_eq!(seen, [(80.0, 4.0), (50.0, 3.7), (10.0, 3.3)]);
    assert!(!d.on_mains().unwrap());
}

#[test]
fn can_see_mains_loss_in_working_mode_and_input_rail() {
    let (bus, d) = emulated();
    let mut d = d.with_rail(Rail::Input);
    on_chip(&bus, |c| {
        c.set_battery_level(100.0);
        c.set_input(5.2, 2.0);
    });
    assert_eq!(d.working_mode().unwrap(), WorkingMode::FullyCharged);
    assert!(d.on_mains().unwrap());
    assert_eq!(d.bus_volts().unwrap(), 5.2);
    assert_eq!(d.power_watts().unwrap(), 10.4);
    on_chip(&bus, |c| c.set_mains(false));
    assert_eq!(d.working_mode().unwrap(), WorkingMode::OnBattery);
    assert!(!d.on_mains().unwrap());
    assert_eq!(d.bus_volts().unwrap(), 0.0);
    on_chip(&bus, |c| {
        c.set_mains(true);
        c.set_battery_level(70.0);
    });
    assert_eq!(d.working_mode().unwrap(), WorkingMode::Charging);
}

#[test]
fn can_read_system_rail_temperatures_and_fan() {
    let (bus, mut d) = emulated();
    on_chip(&bus, |c| {
        c.set_system(5.05, 0.8);
        c.set_input_temperature(-5.25);
        c.set_battery_temperature(41.5);
        c.set_fan_rpm(4200);
        c.set_fan_broken(true);
        c.set_battery_amps(-0.75);
        c.set_battery_volts(4.0);
    });
    assert_eq!(d.bus_volts().unwrap(), 5.05);
    assert_eq!(d.current_amps().unwrap(), 0.8);
    assert_eq!(d.power_watts().unwrap(), 4.04);
    assert_eq!(d.temperature_celsius().unwrap(), -5.25);
    assert_eq!(d.battery_temperature_celsius().unwrap(), 41.5);
    assert_eq!(d.fan_rpm().unwrap(), 4200);
    assert_eq!(d.fan_health().unwrap(), FanHealth::Broken);
    assert_eq!(d.battery_amps().unwrap(), -0.75);
    assert_eq!(d.battery_watts().unwrap(), -3.0);
    assert_eq!(d.firmware_version().unwrap(), "v1.00.00");
}

#[test]
fn can_trigger_recovery_when_the_watchdog_is_not_kicked() {
    let (bus, mut d) = emulated();
    d.set_watchdog_interval_minutes(4).unwrap();
    d.set_watchdog_enabled(true).unwrap();
    assert!(d.watchdog_enabled().unwrap());
    assert_eq!(d.watchdog_interval_minutes().unwrap(), 4);
    on_chip(&bus, |c| c.advance(Duration::from_secs(3 * 60 + 59)));
    assert_eq!(on_chip(&bus, |c| c.watchdog_recoveries()), 0);
    on_chip(&bus, |c| c.advance(Duration::from_secs(1)));
    assert_eq!(on_chip(&bus, |c| c.watchdog_recoveries()), 1);
}

#[test]
fn can_keep_the_watchdog_from_acting_by_kicking_it() {
    let (bus, mut d) = emulated();
    d.set_watchdog_interval_minutes(4).unwrap();
    d.set_watchdog_enabled(true).unwrap();
    for _ in 0..10 {
        on_chip(&bus, |c| c.advance(Duration::from_secs(3 * 60)));
        d.kick_watchdog().unwrap();
    }
    assert_eq!(on_chip(&bus, |c| c.watchdog_recoveries()), 0);
    d.set_watchdog_enabled(false).unwrap();
    on_chip(&bus, |c| c.advance(Duration::from_secs(3600)));
    assert_eq!(on_chip(&bus, |c| c.watchdog_recoveries()), 0);
    assert!(!on_chip(&bus, |c| c.watchdog_enabled()));
}

#[test]
fn returns_invalid_and_keeps_the_interval_when_it_is_out_of_range() {
    let (bus, mut d) = emulated();
    d.set_watchdog_interval_minutes(180).unwrap();
    let e = d.set_watchdog_interval_minutes(181).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    assert!(e.to_string().contains("181"), "{e}");
    assert_eq!(on_chip(&bus, |c| c.watchdog_interval_minutes()), 180);
    assert_eq!(d.watchdog_interval_minutes().unwrap(), 180);
}

#[test]
fn can_recover_from_corrupt_crc_garbage_and_lost_replies_by_retrying() {
    let (bus, mut d) = emulated();
    on_chip(&bus, |c| {
        c.set_battery_level(42.0);
        c.inject(ReplyFault::CorruptCrc);
        c.inject(ReplyFault::Garbage(vec![0x00, 0x13, 0x37]));
        c.inject(ReplyFault::NoReply);
    });
    assert_eq!(d.charge_percent().unwrap(), 42.0);
    assert_eq!(on_chip(&bus, |c| c.requests()), 4, "three faults, one good");
}

#[test]
fn returns_protocol_error_when_the_emulator_never_replies() {
    let (bus, mut d) = emulated();
    on_chip(&bus, |c| {
        for _ in 0..4 {
            c.inject(ReplyFault::NoReply);
        }
    });
    let e = d.battery_volts().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains("GET_BATTERY_VOLTAGE (10)"), "{e}");
    assert_eq!(on_chip(&bus, |c| c.requests()), 4);
    assert_eq!(d.battery_volts().unwrap(), 3.9, "the next call works");
}

#[test]
fn returns_protocol_error_when_replies_are_not_ready_in_time() {
    let (bus, mut d) = emulated();
    on_chip(&bus, |c| c.set_reply_delay(Duration::from_secs(60)));
    let e = d.input_volts().unwrap_err();
    assert!(e.to_string().contains("no reply start byte"), "{e}");
    on_chip(&bus, |c| c.set_reply_delay(chip::REPLY_DELAY));
    assert_eq!(d.input_volts().unwrap(), 5.1);
}

#[test]
fn keeps_settings_when_the_mcu_answers_set_failed() {
    let (bus, mut d) = emulated();
    d.set_battery_max_charge_level(90).unwrap();
    on_chip(&bus, |c| c.inject(ReplyFault::SetFailed));
    assert!(d.set_battery_max_charge_level(70).is_err());
    assert_eq!(on_chip(&bus, |c| c.max_charge_level()), 90);
    assert_eq!(d.battery_max_charge_level().unwrap(), 90);
    d.set_battery_max_charge_level(70).unwrap();
    assert_eq!(on_chip(&bus, |c| c.max_charge_level()), 70);
}

#[test]
fn can_set_rtc_and_see_it_advance() {
    let (bus, mut d) = emulated();
    d.set_rtc_epoch(1_700_000_000).unwrap();
    on_chip(&bus, |c| c.advance(Duration::from_secs(90)));
    assert_eq!(d.rtc_epoch().unwrap(), 1_700_000_090);
}

#[test]
fn can_store_power_outage_params() {
    let (bus, mut d) = emulated();
    let p = PowerOutageParams {
        sleep_minutes: 30,
        run_minutes: 120,
    };
    d.set_power_outage_params(p).unwrap();
    assert_eq!(on_chip(&bus, |c| c.power_outage_params()), (30, 120));
    assert_eq!(d.power_outage_params().unwrap(), p);
}

#[test]
fn can_acknowledge_a_soft_power_off_request() {
    let (bus, mut d) = emulated();
    assert!(!d.soft_power_off_requested().unwrap());
    assert!(
        d.acknowledge_soft_power_off().is_err(),
        "nothing to acknowledge"
    );
    on_chip(&bus, |c| c.request_soft_power_off());
    assert!(d.soft_power_off_requested().unwrap());
    d.acknowledge_soft_power_off().unwrap();
    assert!(on_chip(&bus, |c| c.soft_power_off_acknowledged()));
    assert!(!d.soft_power_off_requested().unwrap());
}

#[test]
fn can_reset_the_emulated_mcu() {
    let (bus, mut d) = emulated();
    d.reset_mcu().unwrap();
    assert_eq!(on_chip(&bus, |c| c.resets()), 1);
}

#[test]
fn can_read_the_battery_sensor_at_0x48_through_the_lm75_driver() {
    let bus = SimBus::new();
    bus.attach(0x48, Lm75Chip::new(11, 27.125));
    let mut s = battery_sensor(bus.clone());
    assert_eq!(s.temperature_celsius().unwrap(), 27.125);
}
