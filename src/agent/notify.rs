//! systemd notifications (`sd_notify`): `READY=1` once the listener is
//! bound and the first collection ran, `WATCHDOG=1` while the scrape path
//! answers, `STATUS=` with a one-line summary, `RELOADING=1` and
//! `STOPPING=1`. Without `NOTIFY_SOCKET` (not under systemd) every call is
//! a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// `READY=1` with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `WATCHDOG=1`.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// `STATUS=…`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// `RELOADING=1` with the monotonic timestamp systemd asks for.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(ts) => send(&[NotifyState::Reloading, ts]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// `STOPPING=1`.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when systemd
/// set a watchdog for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}
