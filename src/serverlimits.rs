//! Server limits: what every listener of the agent (`/metrics`, Redfish)
//! and of the control plane bounds, so that no client, careless or
//! hostile, can take the file descriptors and memory the node's loops
//! need. The server loop ([`crate::tlsserver`]) applies them; one
//! [`Conns`] per listener keeps the books.
//!
//! - **Connection cap** ([`Limits::max_connections`], per listener): by
//!   default [`AGENT_MAX_CONNECTIONS`] on a node, at most a quarter of the
//!   process's open-file limit, so that two listeners at their caps still
//!   leave half the descriptors to the loops, the devices and the state
//!   directory; on the control plane, which holds one connection per
//!   agent, [`CONTROL_PLANE_MAX_CONNECTIONS`], leaving
//!   [`CONTROL_PLANE_RESERVED_FILES`] of the open-file limit to its
//!   database and state files.
//! - **At the cap** a new connection is still accepted, and the least
//!   useful idle one makes room for it: first connections that never
//!   completed a request (half-open floods, slow headers), the oldest
//!   first; then keep-alive connections, the one idle longest first. A
//!   connection with a request in flight (a scrape, a gRPC stream, a
//!   tunnel, a WebSocket) is never closed for room. So a Prometheus scrape
//!   gets through a flood of idle connections: its new connection sends
//!   its request at once and is the newest. Only when every connection has
//!   a request in flight does the listener stop accepting (new connections
//!   wait in the kernel's backlog) until one ends.
//! - **Header timeout** ([`Limits::header_timeout`], [`HEADER_TIMEOUT`]):
//!   from the moment a connection opens, or from the first byte of a new
//!   request on a keep-alive connection, the request head (TLS handshake
//!   included) must arrive within it. Slowloris clients that send a byte
//!   at a time are cut.
//! - **Idle timeout** ([`Limits::idle_timeout`], [`IDLE_TIMEOUT`]): a
//!   connection with no request in flight is closed this long after its
//!   last one ended (HTTP/1.1 keep-alive; HTTP/2 with no stream open, its
//!   PINGs notwithstanding). Longer than common scrape intervals, so a
//!   Prometheus keep-alive connection is reused from scrape to scrape.
//! - **HTTP/2 keep-alive**: the server PINGs an HTTP/2 peer after
//!   [`H2_KEEPALIVE_INTERVAL`] of silence and closes the connection when
//!   no answer comes within [`H2_KEEPALIVE_TIMEOUT`], so a dead peer does
//!   not keep its streams, and its slot, for ever.
//!
//! What these limits do not bound: a request in flight that reads its body
//! or writes its response slowly keeps its slot (the handlers bound what
//! they read, and `/metrics` bounds scrapes in flight); a connection
//! upgraded to another protocol (a WebSocket) is the upgraded protocol's
//! to end.
//!
//! The agent sets the limits of its listeners from `web.*` in its config
//! (`--web.max-connections`, `--web.header-timeout`, `--web.idle-timeout`)
//! with [`set_process`]; the control plane from `--max-connections`,
//! `--header-timeout-seconds` and `--idle-timeout-seconds`.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Default connection cap of each of the agent's listeners (before the
/// open-file limit lowers it).
pub const AGENT_MAX_CONNECTIONS: usize = 256;
/// Default connection cap of the control plane's listener (before the
/// open-file limit lowers it): one connection per agent, and the CLI's.
pub const CONTROL_PLANE_MAX_CONNECTIONS: usize = 65_536;
/// Open files the control plane's default cap leaves to the rest of it.
pub const CONTROL_PLANE_RESERVED_FILES: u64 = 256;
/// The smallest cap an open-file limit lowers a default to.
pub const MIN_AUTO_CONNECTIONS: usize = 4;
/// Largest cap a configuration may set.
pub const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;
/// How long a request head (and a new connection's TLS handshake) may take.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection with no request in flight stays open.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Shortest and longest header and idle timeouts a configuration may set,
/// seconds.
pub const TIMEOUT_RANGE: (f64, f64) = (0.05, 86_400.0);
/// Silence on an HTTP/2 connection after which the server PINGs the peer.
pub const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// How long the answer to that PING may take before the connection closes.
pub const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a listener at its cap waits for the connection it closed for
/// room to go before it closes another.
pub const EVICTION_WAIT: Duration = Duration::from_secs(1);
/// At most one warning per listener this often about its cap.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// The HTTP/2 connection preface.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The limits of one listener ([module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long a request head may take.
    pub header_timeout: Duration,
    /// How long a connection with no request in flight stays open.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::agent(None)
    }
}

impl Limits {
    /// The agent's: `max_connections`, or [`AGENT_MAX_CONNECTIONS`] at
    /// most a quarter of the open-file limit; the default timeouts.
    pub fn agent(max_connections: Option<usize>) -> Limits {
        Limits {
            max_connections: max_connections.unwrap_or_else(|| {
                let nofile = open_files_limit().unwrap_or(u64::MAX);
                cap_within(AGENT_MAX_CONNECTIONS, nofile / 4)
            }),
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }

    /// The control plane's: `max_connections`, or
    /// [`CONTROL_PLANE_MAX_CONNECTIONS`] at most the open-file limit less
    /// [`CONTROL_PLANE_RESERVED_FILES`]; the default timeouts.
    pub fn control_plane(max_connections: Option<usize>) -> Limits {
        Limits {
            max_connections: max_connections.unwrap_or_else(|| {
                let nofile = open_files_limit().unwrap_or(u64::MAX);
                cap_within(
                    CONTROL_PLANE_MAX_CONNECTIONS,
                    nofile.saturating_sub(CONTROL_PLANE_RESERVED_FILES),
                )
            }),
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }

    /// Checks the connection cap; the problem names `field`, the setting
    /// that set it.
    pub fn check(&self, field: &str) -> Vec<crate::validate::FieldError> {
        let mut errors = Vec::new();
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections) {
            errors.push(crate::validate::FieldError::new(
                field,
                format!(
                    "{} is not a connection cap of 1–{MAX_CONNECTIONS_LIMIT}",
                    self.max_connections
                ),
            ));
        }
        errors
    }
}

/// A timeout given in seconds, checked against [`TIMEOUT_RANGE`]; the
/// error names `field`.
pub fn timeout_secs(field: &str, secs: f64) -> Result<Duration, crate::validate::FieldError> {
    let (lo, hi) = TIMEOUT_RANGE;
    if secs.is_finite() && (lo..=hi).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(crate::validate::FieldError::new(
            field,
            format!("{secs} is not a timeout of {lo}–{hi} s"),
        ))
    }
}

/// `default`, at most `share` (and at least [`MIN_AUTO_CONNECTIONS`]).
fn cap_within(default: usize, share: u64) -> usize {
    let share = usize::try_from(share).unwrap_or(usize::MAX);
    default.min(share).max(MIN_AUTO_CONNECTIONS)
}

/// The soft limit on open files (`RLIMIT_NOFILE`), from
/// `/proc/self/limits`; `None` when unknown or unlimited.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let v = crate::exporter::process::parse_limit(&text, "Max open files")?;
    (v.is_finite() && v >= 0.0).then_some(v as u64)
}

static PROCESS: RwLock<Option<Limits>> = RwLock::new(None);

/// Sets the limits listeners started without their own take (the agent's
/// Redfish service takes the agent's `web.*`).
pub fn set_process(l: Limits) {
    *PROCESS.write().unwrap_or_else(|e| e.into_inner()) = Some(l);
}

/// The limits set with [`set_process`], or the agent's defaults.
pub fn process() -> Limits {
    PROCESS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_default()
}

/// The books of one listener: its open connections and what each is
/// doing.
pub struct Conns {
    limits: Limits,
    name: String,
    shared: Arc<Shared>,
    table: Mutex<Table>,
}

struct Shared {
    epoch: Instant,
    /// A connection closed or went idle.
    changed: Notify,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Arc<Conn>>,
    /// When a connection was last closed for room, while it may still be
    /// going.
    evicting: Option<Instant>,
    last_warning: Option<Instant>,
}

/// Why the server closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Its request head (or TLS handshake) took longer than the header
    /// timeout.
    HeaderTimeout,
    /// No request in flight for the idle timeout.
    Idle,
    /// The listener was at its cap and a new connection needed the room.
    Evicted,
}

impl Closed {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header timeout",
            Closed::Idle => "idle timeout",
            Closed::Evicted => "closed for room at the connection cap",
        }
    }
}

/// One connection's state.
struct Conn {
    id: u64,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    /// Closed by the server (what `cancel` says, without its lock).
    closed: AtomicBool,
    why: Mutex<Option<Closed>>,
    /// Requests in flight (streams, for HTTP/2).
    busy: AtomicUsize,
    /// Switched protocols (a WebSocket): the new protocol's to end.
    upgraded: AtomicBool,
    /// Completed at least one request.
    served: AtomicBool,
    /// Speaks HTTP/2 (no request heads to time; PINGs are not requests).
    h2: AtomicBool,
    /// Milliseconds since the epoch at which it last had no request in
    /// flight (or opened).
    idle_since: AtomicU64,
    /// One plus the milliseconds since the epoch of the start of a request
    /// head not yet complete; 0 when none.
    head_since: AtomicU64,
}

impl Conn {
    fn close(&self, why: Closed) {
        let mut w = self.why.lock().unwrap_or_else(|e| e.into_inner());
        if w.is_none() {
            *w = Some(why);
        }
        self.closed.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }

    fn idle(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0 && !self.upgraded.load(Ordering::SeqCst)
    }

    fn on_read(&self) {
        if self.busy.load(Ordering::SeqCst) == 0
            && !self.h2.load(Ordering::SeqCst)
            && self.head_since.load(Ordering::SeqCst) == 0
        {
            self.head_since
                .store(self.shared.now_ms() + 1, Ordering::SeqCst);
        }
    }
}

impl Conns {
    /// Books for a listener named `name` (for logs).
    pub fn new(name: impl Into<String>, limits: Limits) -> Arc<Conns> {
        Arc::new(Conns {
            limits,
            name: name.into(),
            shared: Arc::new(Shared {
                epoch: Instant::now(),
                changed: Notify::new(),
            }),
            table: Mutex::new(Table::default()),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.table().open.len()
    }

    /// Waits until every connection is gone, or `deadline`.
    pub async fn wait_empty(&self, deadline: tokio::time::Instant) {
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.open() == 0 || tokio::time::Instant::now() >= deadline {
                return;
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }

    /// Waits until a new connection could have a slot: one is free, or an
    /// idle one could make room. Call before accepting, so that a listener
    /// whose connections all have requests in flight leaves new ones in
    /// the kernel's backlog.
    pub async fn wait_admissible(&self) {
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let t = self.table();
                if t.open.len() < self.limits.max_connections
                    || t.open
                        .values()
                        .any(|c| c.idle() && !c.closed.load(Ordering::SeqCst))
                {
                    return;
                }
            }
            self.warn_full(true);
            let _ = tokio::time::timeout(EVICTION_WAIT, changed).await;
        }
    }

    /// A slot for a new connection: a free one, or the one an idle
    /// connection leaves when it is closed for room (waiting for it to
    /// go).
    pub async fn admit(self: &Arc<Self>) -> Slot {
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut t = self.table();
                if t.open.len() < self.limits.max_connections {
                    t.next_id += 1;
                    let id = t.next_id;
                    let now = self.shared.now_ms();
                    let conn = Arc::new(Conn {
                        id,
                        shared: Arc::clone(&self.shared),
                        cancel: CancellationToken::new(),
                        closed: AtomicBool::new(false),
                        why: Mutex::new(None),
                        busy: AtomicUsize::new(0),
                        upgraded: AtomicBool::new(false),
                        served: AtomicBool::new(false),
                        h2: AtomicBool::new(false),
                        idle_since: AtomicU64::new(now),
                        head_since: AtomicU64::new(now + 1),
                    });
                    t.open.insert(id, Arc::clone(&conn));
                    t.evicting = None;
                    return Slot {
                        conn,
                        conns: Arc::clone(self),
                    };
                }
                let waiting = t.evicting.is_some_and(|at| at.elapsed() < EVICTION_WAIT)
                    && t.open.values().any(|c| c.closed.load(Ordering::SeqCst));
                if !waiting {
                    // Never-served connections first, then the one idle
                    // longest.
                    let victim = t
                        .open
                        .values()
                        .filter(|c| c.idle() && !c.closed.load(Ordering::SeqCst))
                        .min_by_key(|c| {
                            (
                                c.served.load(Ordering::SeqCst),
                                c.idle_since.load(Ordering::SeqCst),
                                c.id,
                            )
                        })
                        .cloned();
                    if let Some(v) = victim {
                        v.close(Closed::Evicted);
                        t.evicting = Some(Instant::now());
                    }
                }
            }
            self.warn_full(false);
            let _ = tokio::time::timeout(EVICTION_WAIT, changed).await;
        }
    }

    fn warn_full(&self, all_busy: bool) {
        let mut t = self.table();
        if t.last_warning.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            return;
        }
        t.last_warning = Some(Instant::now());
        drop(t);
        if all_busy {
            tracing::warn!(listener = %self.name, cap = self.limits.max_connections, "every connection has a request in flight: new connections wait until one ends");
        } else {
            tracing::warn!(listener = %self.name, cap = self.limits.max_connections, "connection cap reached: idle connections are closed to make room for new ones");
        }
    }

    /// Closes connections past their header or idle timeout; runs until
    /// `stop`.
    pub async fn sweep(self: Arc<Self>, stop: CancellationToken) {
        let shortest = self.limits.header_timeout.min(self.limits.idle_timeout);
        let every = (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.sweep_once();
        }
    }

    fn sweep_once(&self) {
        let now = self.shared.now_ms();
        let header = u64::try_from(self.limits.header_timeout.as_millis()).unwrap_or(u64::MAX);
        let idle = u64::try_from(self.limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let t = self.table();
        for c in t.open.values() {
            if !c.idle() || c.closed.load(Ordering::SeqCst) {
                continue;
            }
            let head = c.head_since.load(Ordering::SeqCst);
            let why = if !c.h2.load(Ordering::SeqCst)
                && head != 0
                && now.saturating_sub(head - 1) >= header
            {
                Some(Closed::HeaderTimeout)
            } else if (c.h2.load(Ordering::SeqCst) || head == 0)
                && now.saturating_sub(c.idle_since.load(Ordering::SeqCst)) >= idle
            {
                Some(Closed::Idle)
            } else {
                None
            };
            if let Some(why) = why {
                c.close(why);
            }
        }
    }

    fn release(&self, id: u64) {
        self.table().open.remove(&id);
        self.shared.changed.notify_waiters();
    }
}

/// A connection's place in its listener's books; the place frees when it
/// drops (with the connection's transport, [`Tracked`]).
pub struct Slot {
    conn: Arc<Conn>,
    conns: Arc<Conns>,
}

impl Slot {
    /// Cancelled when the server closes the connection (timeouts, room).
    pub fn closing(&self) -> CancellationToken {
        self.conn.cancel.clone()
    }

    /// Why the server closed it, if it did.
    pub fn closed(&self) -> Option<Closed> {
        *self.conn.why.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the connection as speaking HTTP/2 (ALPN said so).
    pub fn set_h2(&self) {
        self.conn.h2.store(true, Ordering::SeqCst);
    }

    /// The handle the service uses to mark requests in flight.
    pub fn requests(&self) -> Requests {
        Requests(Arc::clone(&self.conn))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns.release(self.conn.id);
    }
}

/// Marks a connection's requests in flight ([`Requests::begin`]).
#[derive(Clone)]
pub struct Requests(Arc<Conn>);

impl Requests {
    /// A request started; it is in flight until the guard drops (keep it
    /// with the response body, so that a streaming response counts).
    pub fn begin(&self) -> InFlight {
        let c = &self.0;
        c.busy.fetch_add(1, Ordering::SeqCst);
        c.head_since.store(0, Ordering::SeqCst);
        InFlight {
            conn: Arc::clone(c),
        }
    }
}

/// A request in flight ([`Requests::begin`]).
pub struct InFlight {
    conn: Arc<Conn>,
}

impl InFlight {
    /// The response switched protocols: the connection is the new
    /// protocol's, out of reach of the idle and header timeouts and never
    /// closed for room.
    pub fn upgraded(&self) {
        self.conn.upgraded.store(true, Ordering::SeqCst);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let c = &self.conn;
        c.idle_since.store(c.shared.now_ms(), Ordering::SeqCst);
        c.head_since.store(0, Ordering::SeqCst);
        c.served.store(true, Ordering::SeqCst);
        if c.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            c.shared.changed.notify_waiters();
        }
    }
}

/// A connection's transport, tracked: it holds the connection's
/// [`Slot`], notes the start of each request head, and fails every read
/// and write once the server closes the connection (so that the close
/// reaches whoever holds the transport, an upgraded protocol included).
pub struct Tracked<IO> {
    io: IO,
    slot: Slot,
    closing: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Plain HTTP: bytes of the HTTP/2 preface matched so far; `None` once
    /// decided.
    sniff: Option<usize>,
}

impl<IO> Tracked<IO> {
    /// Wraps `io`; `sniff`: tell HTTP/2 by its preface (plain HTTP; under
    /// TLS, ALPN tells and [`Slot::set_h2`] marks it).
    pub fn new(io: IO, slot: Slot, sniff: bool) -> Tracked<IO> {
        let closing = Box::pin(slot.closing().cancelled_owned());
        Tracked {
            io,
            slot,
            closing,
            sniff: sniff.then_some(0),
        }
    }

    /// The slot.
    pub fn slot(&self) -> &Slot {
        &self.slot
    }

    /// The transport.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    fn closed_error(&self) -> io::Error {
        let why = self.slot.closed().map_or("closed", Closed::as_str);
        io::Error::new(io::ErrorKind::TimedOut, why)
    }

    fn sniff(&mut self, got: &[u8]) {
        let Some(seen) = self.sniff else { return };
        let want = &H2_PREFACE[seen..];
        let n = want.len().min(got.len());
        if got[..n] != want[..n] {
            self.sniff = None;
        } else if seen + n == H2_PREFACE.len() {
            self.sniff = None;
            self.slot.set_h2();
        } else {
            self.sniff = Some(seen + n);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.slot.conn.closed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(this.closed_error()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if !got.is_empty() {
                    if this.sniff.is_some() {
                        this.sniff(got);
                    }
                    this.slot.conn.on_read();
                }
                Poll::Ready(Ok(()))
            }
            // Waiting for the peer: wake when the server closes it, too.
            Poll::Pending if this.closing.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Err(this.closed_error()))
            }
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.slot.conn.closed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(this.closed_error()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.slot.conn.closed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(this.closed_error()));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(max: usize) -> Limits {
        Limits {
            max_connections: max,
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
        }
    }

    fn served(slot: &Slot) {
        drop(slot.requests().begin());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_heads_and_idle_connections_are_closed() {
        let conns = Conns::new("test", limits(10));
        // A new connection must send its head within the header timeout.
        let fresh = conns.admit().await;
        // Served, then idle: the idle timeout applies, not the header one.
        let idle = conns.admit().await;
        served(&idle);
        // Served, then the first bytes of a next request.
        let slow = conns.admit().await;
        served(&slow);
        slow.conn.on_read();
        // HTTP/2: reads (PINGs) are not request heads.
        let h2 = conns.admit().await;
        h2.set_h2();
        h2.conn.on_read();
        // A request in flight is never timed.
        let busy = conns.admit().await;
        let in_flight = busy.requests().begin();

        tokio::time::advance(Duration::from_millis(1100)).await;
        conns.sweep_once();
        assert_eq!(fresh.closed(), Some(Closed::HeaderTimeout));
        assert_eq!(slow.closed(), Some(Closed::HeaderTimeout));
        assert_eq!(idle.closed(), None);
        assert_eq!(h2.closed(), None);

        tokio::time::advance(Duration::from_secs(4)).await;
        conns.sweep_once();
        assert_eq!(idle.closed(), Some(Closed::Idle));
        assert_eq!(h2.closed(), Some(Closed::Idle));
        assert_eq!(busy.closed(), None);
        assert!(fresh.closing().is_cancelled());

        // Once its request ends, the busy one is idle from then on.
        drop(in_flight);
        tokio::time::advance(Duration::from_secs(4)).await;
        conns.sweep_once();
        assert_eq!(busy.closed(), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        conns.sweep_once();
        assert_eq!(busy.closed(), Some(Closed::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_never_served_connections_go_first_then_the_longest_idle() {
        let conns = Conns::new("test", limits(3));
        let old_keepalive = conns.admit().await;
        served(&old_keepalive);
        tokio::time::advance(Duration::from_millis(10)).await;
        let half_open = conns.admit().await;
        tokio::time::advance(Duration::from_millis(10)).await;
        let new_keepalive = conns.admit().await;
        served(&new_keepalive);
        assert_eq!(conns.open(), 3);

        // A fourth: the never-served one makes room, and the newcomer
        // waits until it has gone.
        let c = Arc::clone(&conns);
        let fourth = tokio::spawn(async move { c.admit().await });
        half_open.closing().cancelled().await;
        assert_eq!(half_open.closed(), Some(Closed::Evicted));
        assert_eq!(conns.open(), 3);
        drop(half_open);
        let fourth = fourth.await.unwrap();
        assert_eq!(conns.open(), 3);
        served(&fourth);

        // A fifth: the keep-alive connection idle longest.
        let c = Arc::clone(&conns);
        let fifth = tokio::spawn(async move { c.admit().await });
        old_keepalive.closing().cancelled().await;
        assert_eq!(new_keepalive.closed(), None);
        assert_eq!(fourth.closed(), None);
        drop(old_keepalive);
        let _fifth = fifth.await.unwrap();
        assert_eq!(conns.open(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn connections_with_requests_in_flight_are_never_closed_for_room() {
        let conns = Conns::new("test", limits(1));
        let busy = conns.admit().await;
        let in_flight = busy.requests().begin();
        let c = Arc::clone(&conns);
        let waiting = tokio::spawn(async move {
            c.wait_admissible().await;
            c.admit().await
        });
        tokio::time::advance(EVICTION_WAIT * 3).await;
        assert!(!waiting.is_finished());
        assert_eq!(busy.closed(), None);
        // Its request ends: now it may make room.
        drop(in_flight);
        busy.closing().cancelled().await;
        assert_eq!(busy.closed(), Some(Closed::Evicted));
        drop(busy);
        let _next = waiting.await.unwrap();
        assert_eq!(conns.open(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn upgraded_connections_are_left_to_their_protocol() {
        let conns = Conns::new("test", limits(1));
        let ws = conns.admit().await;
        ws.requests().begin().upgraded();
        tokio::time::advance(Duration::from_secs(60)).await;
        conns.sweep_once();
        assert_eq!(ws.closed(), None);
        let c = Arc::clone(&conns);
        let waiting = tokio::spawn(async move { c.wait_admissible().await });
        tokio::time::advance(EVICTION_WAIT * 3).await;
        assert!(!waiting.is_finished());
        waiting.abort();
    }

    #[tokio::test]
    async fn the_transport_tells_http2_fails_once_closed_and_frees_its_slot() {
        let conns = Conns::new("test", limits(4));
        let (a, mut peer) = tokio::io::duplex(1024);
        let mut t = Tracked::new(a, conns.admit().await, true);
        peer.write_all(&H2_PREFACE[..10]).await.unwrap();
        let mut buf = [0u8; 64];
        let n = t.read(&mut buf).await.unwrap();
        assert_eq!(n, 10);
        assert!(!t.slot().conn.h2.load(Ordering::SeqCst));
        peer.write_all(&H2_PREFACE[10..]).await.unwrap();
        assert_eq!(t.read(&mut buf).await.unwrap(), 14);
        assert!(t.slot().conn.h2.load(Ordering::SeqCst));

        // HTTP/1.1 is not taken for HTTP/2.
        let (b, mut peer1) = tokio::io::duplex(1024);
        let mut t1 = Tracked::new(b, conns.admit().await, true);
        peer1.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(t1.read(&mut buf).await.unwrap(), 16);
        assert!(!t1.slot().conn.h2.load(Ordering::SeqCst));

        // A read waiting for data fails when the server closes the
        // connection; so do writes.
        let closing = t1.slot().conn.clone();
        let reader = tokio::spawn(async move {
            let r = t1.read(&mut [0u8; 8]).await;
            (r.map_err(|e| e.to_string()), t1)
        });
        closing.close(Closed::Idle);
        let (r, mut t1) = reader.await.unwrap();
        assert_eq!(r, Err("idle timeout".to_owned()));
        assert!(t1.write_all(b"x").await.is_err());
        assert_eq!(conns.open(), 2);
        drop((t, t1));
        assert_eq!(conns.open(), 0);
    }

    #[test]
    fn defaults_follow_the_open_file_limit() {
        assert_eq!(cap_within(AGENT_MAX_CONNECTIONS, 1024 / 4), 256);
        assert_eq!(cap_within(AGENT_MAX_CONNECTIONS, 256 / 4), 64);
        assert_eq!(cap_within(AGENT_MAX_CONNECTIONS, 0), MIN_AUTO_CONNECTIONS);
        assert_eq!(
            cap_within(CONTROL_PLANE_MAX_CONNECTIONS, 11_024 - 256),
            10_768
        );
        let l = Limits::agent(None);
        assert!(l.max_connections <= AGENT_MAX_CONNECTIONS);
        assert_eq!(Limits::agent(Some(7)).max_connections, 7);
        assert!(
            Limits::agent(Some(0)).check("web.max_connections")[0]
                .to_string()
                .contains("web.max_connections")
        );
        assert!(timeout_secs("web.idle_timeout", f64::NAN).is_err());
        assert!(timeout_secs("web.idle_timeout", 0.0).is_err());
        assert_eq!(
            timeout_secs("web.idle_timeout", 1.5).unwrap(),
            Duration::from_millis(1500)
        );
    }
}
