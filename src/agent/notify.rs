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
///
/// As `sd_watchdog_enabled(3)`: `WATCHDOG_USEC` enables it, and a
/// `WATCHDOG_PID` that names another process disables it (an unset
/// `WATCHDOG_PID` does not).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
