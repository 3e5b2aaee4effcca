//! Serial ports on real pty pairs: opening by path, errors naming the
//! path, line and exact reads with an overall deadline, reopening, and an
//! emulator that hangs up when dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use onprem_hal::serial::{self, Config, Transport, read_exact_by, read_until, write_all};
use onprem_hal::sim::serial::LineResponder;
use onprem_hal::{Error, ErrorKind};

fn ping() -> LineResponder {
    let r = LineResponder::spawn().unwrap();
    r.answer("PING", "PONG {n}");
    r.set_value("n", 7.0);
    r
}

#[test]
fn returns_io_not_found_when_port_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ttyUSB9");
    let e = serial::open(&Config::new(path.to_str().unwrap(), 9600)).unwrap_err();
    match &e {
        Error::Io { path: p, kind, .. } => {
            assert_eq!(*kind, std::io::ErrorKind::NotFound);
            assert!(p.ends_with("ttyUSB9"), "{p}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.kind(), ErrorKind::Fatal);
    assert!(e.to_string().contains("ttyUSB9"), "{e}");
}

#[test]
fn can_open_pty_by_path_and_read_a_line() {
    let r = ping();
    let mut p = serial::open(&Config::new(r.path(), 9600)).unwrap();
    assert_eq!(p.port_name(), r.path());
    write_all(&mut p, b"PING\n").unwrap();
    let line = read_until(
        &mut p,
        b'\n',
        64,
        Instant::now() + Duration::from_secs(2),
        "test",
    )
    .unwrap();
    assert_eq!(line, b"PONG 7\r\n");
    assert_eq!(r.received(), vec!["PING"]);
}

#[test]
fn can_read_exact_bytes_across_the_line_end() {
    let r = ping();
    let mut p = serial::open_native(&Config::new(r.path(), 9600)).unwrap();
    write_all(&mut p, b"PING\r\n").unwrap();
    let mut buf = [0u8; 4];
    read_exact_by(
        &mut p,
        &mut buf,
        Instant::now() + Duration::from_secs(2),
        "test",
    )
    .unwrap();
    assert_eq!(&buf, b"PONG");
    let rest = read_until(
        &mut p,
        b'\n',
        64,
        Instant::now() + Duration::from_secs(2),
        "test",
    )
    .unwrap();
    assert_eq!(rest, b" 7\r\n");
}

#[test]
fn returns_protocol_error_when_deadline_passes() {
    let r = ping();
    let mut p = serial::open(&Config::new(r.path(), 9600)).unwrap();
    write_all(&mut p, b"NOBODY KNOWS\n").unwrap();
    let t = Instant::now();
    let e = read_until(&mut p, b'\n', 64, t + Duration::from_millis(150), "test").unwrap_err();
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    assert!(matches!(e, Error::Protocol { chip: "test", .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.to_string().contains(r.path()), "{e}");
}

#[test]
fn returns_protocol_error_when_line_is_too_long() {
    let r = ping();
    r.answer("LONG", "0123456789abcdef");
    let mut p = serial::open(&Config::new(r.path(), 9600)).unwrap();
    write_all(&mut p, b"LONG\n").unwrap();
    let e = read_until(
        &mut p,
        b'\n',
        8,
        Instant::now() + Duration::from_secs(2),
        "test",
    )
    .unwrap_err();
    assert!(e.to_string().contains("8 bytes without a line end"), "{e}");
}

#[test]
fn can_discard_pending_input() {
    let r = ping();
    let mut p = serial::open(&Config::new(r.path(), 9600)).unwrap();
    write_all(&mut p, b"PING\n").unwrap();
    // The reply arrives in one write: once its first byte is here, so is
    // the rest.
    let mut first = [0u8; 1];
    read_exact_by(
        &mut p,
        &mut first,
        Instant::now() + Duration::from_secs(2),
        "test",
    )
    .unwrap();
    assert_eq!(&first, b"P");
    p.clear_input().unwrap();
    let e = read_until(
        &mut p,
        b'\n',
        64,
        Instant::now() + Duration::from_millis(100),
        "test",
    )
    .unwrap_err();
    assert!(e.to_string().contains("0 bytes received"), "{e}");
}

#[test]
fn can_reopen_pty_after_closing_it() {
    let r = ping();
    for _ in 0..3 {
        let mut p = serial::open(&Config::new(r.path(), 9600)).unwrap();
        write_all(&mut p, b"PING\n").unwrap();
        let line = read_until(
            &mut p,
            b'\n',
            64,
            Instant::now() + Duration::from_secs(2),
            "test",
        )
        .unwrap();
        assert_eq!(line, b"PONG 7\r\n");
    }
}

#[test]
fn can_stop_emulator_and_hang_up_on_drop() {
    let r = ping();
    let mut p = serial::open(&Config::new(r.path(), 9600)).unwrap();
    let t = Instant::now();
    drop(r);
    assert!(t.elapsed() < Duration::from_secs(1));
    // The master is closed once the thread is joined: the port hangs up
    // instead of timing out.
    let e = read_until(
        &mut p,
        b'\n',
        64,
        Instant::now() + Duration::from_secs(2),
        "test",
    )
    .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
}
