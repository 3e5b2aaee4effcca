//! # Tunnel: byte pumping between TCP and gRPC streams
//!
//! `onprem port-forward` reaches a port on a node that has no inbound
//! port: each accepted TCP connection becomes one `Fleet/Tunnel` stream
//! from the CLI to the control plane, which asks the agent (on its
//! session) to open the other half, an `AgentService/Tunnel` stream over
//! the agent's own outbound connection, and splices the two. The agent
//! connects the stream to the local port.
//!
//! ```text
//! client ─TCP─ onprem port-forward ═gRPC═ control plane ═gRPC═ agent ─TCP─ local service
//!               [pump]                      [splice]            [pump]
//! ```
//!
//! - [`tcp`] / [`io`] (both ends): an [`Outgoing`] stream, sent as the
//!   call's body, whose frames are the local connection's reads, and a
//!   [`Pump`] that writes the call's answer to it. A read of end-of-file
//!   sends `eof` (the other end shuts down its write side: half-close);
//!   an `eof` received shuts down ours. The tunnel ends when both
//!   directions have seen `eof`. A stream that ends *without* `eof`, or
//!   fails, aborts: the local connection is closed at once.
//! - [`splice`] (control plane): frames from one stream to the other,
//!   errors to both, with no queue or task between the two calls.
//! - **Backpressure**: an end reads a chunk (at most [`CHUNK`] bytes)
//!   from its local connection only when the HTTP/2 stream asks its body
//!   for the next frame, which it does only with flow-control room; the
//!   splice takes a frame from one call only when the other call's stream
//!   asks for one. A slow reader therefore stops the writer at the far
//!   end, and memory per tunnel stays bounded by the windows. No queue
//!   and no task sit between the socket and the HTTP/2 stream.
//! - **Timeouts** ([`Limits`]): no byte either way for `idle`, or
//!   `total` since it opened, ends the tunnel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;
use tokio_stream::{Stream, StreamExt as _};
use tokio_util::bytes::{Bytes, BytesMut};

pub use crate::proto::v1::TunnelFrame;

mod readahead;
pub use readahead::{READ_AHEAD, ReadAhead};

/// At most this many warm tunnel streams are kept per device (an agent
/// that opens more loses its oldest), and an agent opens no more than
/// this.
pub const WARM_MAX: u32 = 8;

/// Largest frame: one TCP read.
pub const CHUNK: usize = 64 * 1024;
/// Largest HTTP/2 frame the control plane, the agent and the CLI take: a
/// whole tunnel frame with its gRPC and protobuf headers.
pub const MAX_HTTP2_FRAME: u32 = 2 * CHUNK as u32;
/// Default: a tunnel with no byte either way this long ends.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30 * 60);
/// Default: a tunnel ends this long after it opened.
pub const DEFAULT_TOTAL: Duration = Duration::from_secs(24 * 3600);

/// Metadata key naming a tunnel on the agent's stream.
pub const TUNNEL_ID: &str = "x-onprem-tunnel";
/// Metadata key marking the agent's stream as warm (opened before a
/// tunnel needs it; the control plane's first frame names the tunnel).
pub const WARM: &str = "x-onprem-warm";
/// Metadata key with the agent's reason for refusing a tunnel.
pub const REFUSED: &str = "x-onprem-refused";
/// Metadata key: the device a CLI tunnel goes to.
pub const DEVICE: &str = "x-onprem-device";
/// Metadata key: the port on the device.
pub const PORT: &str = "x-onprem-port";

/// How long a tunnel may live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// No byte either way for this long ends it.
    pub idle: Duration,
    /// It ends this long after it opened.
    pub total: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle: DEFAULT_IDLE,
            total: DEFAULT_TOTAL,
        }
    }
}

/// How a tunnel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Both directions closed (`eof` each way).
    Closed,
    /// No byte for the idle limit.
    Idle,
    /// The total limit.
    Expired,
    /// One side failed or went away (why).
    Aborted(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Closed => write!(f, "closed"),
            End::Idle => write!(f, "idle timeout"),
            End::Expired => write!(f, "total time limit"),
            End::Aborted(why) => write!(f, "aborted: {why}"),
        }
    }
}

/// What went through a tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Bytes from this end's TCP into the tunnel (or, for a splice, from
    /// the first stream to the second).
    pub sent: u64,
    /// Bytes out of the tunnel (from the second to the first).
    pub received: u64,
    /// How it ended.
    pub end: End,
}

/// The last time a byte moved, shared by both directions.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Why the tunnel must end now, if it must.
    fn expired(&self, limits: Limits) -> Option<End> {
        let now = self.start.elapsed();
        if now >= limits.total {
            return Some(End::Expired);
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        (now.saturating_sub(last) >= limits.idle).then_some(End::Idle)
    }
}

fn tick_for(limits: Limits) -> Duration {
    (limits.idle.min(limits.total) / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// One end of a tunnel over `tcp`: the [`Outgoing`] stream of frames read
/// from it (send it as the call's request), and the [`Pump`] that writes
/// the call's answer to it ([`Pump::run`]). `nodelay` is set.
pub fn tcp(tcp: TcpStream, limits: Limits) -> (Outgoing<TcpSource>, Pump<OwnedWriteHalf>) {
    let _ = tcp.set_nodelay(true);
    let (rd, wr) = tcp.into_split();
    halves(TcpSource(rd), wr, limits)
}

/// [`tcp`] over any byte stream's two halves (an in-process pipe: `onprem
/// curl`, the agent's own Redfish service).
pub fn io<R, W>(rd: R, wr: W, limits: Limits) -> (Outgoing<ReadSource<R>>, Pump<W>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    halves(
        ReadSource {
            rd,
            buf: BytesMut::new(),
        },
        wr,
        limits,
    )
}

fn halves<R, W>(src: R, wr: W, limits: Limits) -> (Outgoing<R>, Pump<W>) {
    let shared = Arc::new(PumpShared {
        act: Activity::new(),
        sent: AtomicU64::new(0),
        up: std::sync::Mutex::new(UpState::default()),
    });
    (
        Outgoing {
            src: Some(src),
            shared: Arc::clone(&shared),
            eof_sent: false,
        },
        Pump { wr, shared, limits },
    )
}

/// Where a pump's outgoing bytes come from: one chunk per call, empty at
/// end of file.
pub trait Source {
    /// The next chunk.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<Bytes>>;
}

/// A TCP read half: waits for readiness before it allocates, so that an
/// idle connection holds no buffer, and reads into the frame's own
/// buffer (no copy). The read goes through `AsyncRead`, which takes a
/// short read as "drained" and waits for the next readiness instead of
/// asking the socket again (one `recvfrom` per chunk, not two).
pub struct TcpSource(OwnedReadHalf);

impl Source for TcpSource {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<Bytes>> {
        if let Err(e) = std::task::ready!(self.0.as_ref().poll_read_ready(cx)) {
            return Poll::Ready(Err(e));
        }
        let mut buf = BytesMut::with_capacity(CHUNK);
        // Pending: the readiness was stale, and the read waits for the
        // next (the empty buffer is dropped).
        tokio_util::io::poll_read_buf(Pin::new(&mut self.0), cx, &mut buf).map_ok(|_| buf.freeze())
    }
}

/// Largest frame read from an in-process pipe: a reader cannot wait for
/// readiness before it allocates, so an idle pipe holds this much (one
/// TLS record).
pub const PIPE_CHUNK: usize = 16 * 1024;

/// Any reader (an in-process pipe).
pub struct ReadSource<R> {
    rd: R,
    buf: BytesMut,
}

impl<R: tokio::io::AsyncRead + Unpin> Source for ReadSource<R> {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<Bytes>> {
        if self.buf.capacity() - self.buf.len() < PIPE_CHUNK / 4 {
            self.buf.reserve(PIPE_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.rd), cx, &mut self.buf)
            .map_ok(|_| self.buf.split().freeze())
    }
}

/// What the two halves of one tunnel end share.
struct PumpShared {
    act: Arc<Activity>,
    sent: AtomicU64,
    up: std::sync::Mutex<UpState>,
}

impl PumpShared {
    fn up(&self) -> std::sync::MutexGuard<'_, UpState> {
        self.up.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The outgoing half is through (`Ok`: it sent `eof`) or failed.
    fn up_ended(&self, r: Result<(), String>) {
        let mut st = self.up();
        if st.result.is_none() {
            st.result = Some(r);
        }
        if let Some(w) = st.pump_waker.take() {
            w.wake();
        }
    }

    /// The pump is over: the outgoing half ends (without `eof`, unless
    /// it sent it already) and lets go of the connection.
    fn close(&self) {
        let mut st = self.up();
        st.closed = true;
        if let Some(w) = st.up_waker.take() {
            w.wake();
        }
    }
}

#[derive(Default)]
struct UpState {
    /// How the outgoing half ended, once it has.
    result: Option<Result<(), String>>,
    /// The pump, waiting for `result`.
    pump_waker: Option<Waker>,
    /// The pump is over.
    closed: bool,
    /// The outgoing half, waiting for its source.
    up_waker: Option<Waker>,
}

/// The outgoing half of a tunnel end: frames read from the local
/// connection, polled directly by whoever sends the call's body (no
/// queue, no task in between), so that a chunk is read only when HTTP/2
/// flow control has room for it. After `eof` it ends, so the far side
/// sees this direction's end without waiting for the other.
pub struct Outgoing<R> {
    src: Option<R>,
    shared: Arc<PumpShared>,
    eof_sent: bool,
}

impl<R: Source + Unpin> Stream for Outgoing<R> {
    type Item = TunnelFrame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TunnelFrame>> {
        let this = &mut *self;
        if this.eof_sent {
            return Poll::Ready(None);
        }
        {
            let mut st = this.shared.up();
            if st.closed {
                this.src = None;
                return Poll::Ready(None);
            }
            st.up_waker = Some(cx.waker().clone());
        }
        let Some(src) = this.src.as_mut() else {
            return Poll::Ready(None);
        };
        match std::task::ready!(src.poll_chunk(cx)) {
            Ok(data) if data.is_empty() => {
                this.eof_sent = true;
                this.src = None;
                this.shared.up_ended(Ok(()));
                Poll::Ready(Some(TunnelFrame {
                    eof: true,
                    ..TunnelFrame::default()
                }))
            }
            Ok(data) => {
                this.shared
                    .sent
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                this.shared.act.touch();
                Poll::Ready(Some(TunnelFrame {
                    data,
                    ..TunnelFrame::default()
                }))
            }
            Err(e) => {
                this.src = None;
                this.shared
                    .up_ended(Err(format!("reading the local connection: {e}")));
                Poll::Ready(None)
            }
        }
    }
}

impl<R> Drop for Outgoing<R> {
    fn drop(&mut self) {
        // Dropped by the call before its end: the stream is gone.
        self.shared
            .up_ended(Err("the tunnel stream closed".to_owned()));
    }
}

/// The incoming half of a tunnel end, and its watch over both.
pub struct Pump<W> {
    wr: W,
    shared: Arc<PumpShared>,
    limits: Limits,
}

impl<W> Drop for Pump<W> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> Pump<W> {
    /// Writes frames from `inbound` to the local connection until both
    /// directions closed, either side fails, or a limit; the local
    /// connection is closed on return (its outgoing half ends too).
    pub async fn run<S>(mut self, mut inbound: S) -> Stats
    where
        S: Stream<Item = Result<TunnelFrame, tonic::Status>> + Unpin,
    {
        let shared = Arc::clone(&self.shared);
        let received = AtomicU64::new(0);
        let up = std::future::poll_fn(|cx| {
            let mut st = shared.up();
            match st.result.clone() {
                Some(r) => Poll::Ready(r),
                None => {
                    st.pump_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        });
        let wr = &mut self.wr;
        let act = &shared.act;
        let received_ref = &received;
        let down = async move {
            while let Some(f) = inbound.next().await {
                let f = f.map_err(|s| format!("{}: {}", code_name(s.code()), s.message()))?;
                if !f.data.is_empty() {
                    wr.write_all(&f.data)
                        .await
                        .map_err(|e| format!("writing the local connection: {e}"))?;
                    received_ref.fetch_add(f.data.len() as u64, Ordering::Relaxed);
                    act.touch();
                }
                if f.eof {
                    let _ = wr.shutdown().await;
                    // Wait for the stream's own end: dropping it earlier
                    // would reset the call and lose what is still in
                    // flight the other way.
                    while let Some(f) = inbound.next().await {
                        let f =
                            f.map_err(|s| format!("{}: {}", code_name(s.code()), s.message()))?;
                        if !f.data.is_empty() || f.eof {
                            return Err("data after the end of the stream".into());
                        }
                    }
                    return Ok::<(), String>(());
                }
            }
            Err("the other end went away".to_owned())
        };
        let end = run_both(up, down, act, self.limits).await;
        shared.close();
        Stats {
            sent: shared.sent.load(Ordering::Relaxed),
            received: received.load(Ordering::Relaxed),
            end,
        }
    }
}

/// How long a pump whose outgoing half failed waits for the incoming
/// half's reason ([`run_both`]).
const REASON_GRACE: Duration = Duration::from_millis(200);

/// Runs two directions until both finish, either fails, or a limit.
async fn run_both(
    a: impl std::future::Future<Output = Result<(), String>>,
    b: impl std::future::Future<Output = Result<(), String>>,
    act: &Activity,
    limits: Limits,
) -> End {
    tokio::pin!(a, b);
    let (mut a_done, mut b_done) = (false, false);
    let mut tick = tokio::time::interval(tick_for(limits));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !(a_done && b_done) {
        tokio::select! {
            r = &mut a, if !a_done => match r {
                Ok(()) => a_done = true,
                Err(e) => {
                    // A call that ends drops its body (a) as its answer
                    // (b) brings why it ended (a limit, a token revoked):
                    // that reason, when it comes at once, says more.
                    if !b_done {
                        if let Ok(Err(why)) = tokio::time::timeout(REASON_GRACE, &mut b).await {
                            return End::Aborted(why);
                        }
                    }
                    return End::Aborted(e);
                }
            },
            r = &mut b, if !b_done => match r {
                Ok(()) => b_done = true,
                Err(e) => return End::Aborted(e),
            },
            _ = tick.tick() => {
                if let Some(end) = act.expired(limits) {
                    return end;
                }
            }
        }
    }
    End::Closed
}

/// A gRPC code's name, for messages.
pub fn code_name(c: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match c {
        Ok => "ok",
        Cancelled => "cancelled",
        Unknown => "unknown",
        InvalidArgument => "invalid argument",
        DeadlineExceeded => "deadline exceeded",
        NotFound => "not found",
        AlreadyExists => "already exists",
        PermissionDenied => "permission denied",
        ResourceExhausted => "resource exhausted",
        FailedPrecondition => "failed precondition",
        Aborted => "aborted",
        OutOfRange => "out of range",
        Unimplemented => "unimplemented",
        Internal => "internal",
        Unavailable => "unavailable",
        DataLoss => "data loss",
        Unauthenticated => "unauthenticated",
    }
}

/// What both directions of a splice share.
struct SpliceState {
    act: Arc<Activity>,
    counts: [AtomicU64; 2],
    /// Set once: why the splice ends early (never `Closed`).
    end: std::sync::Mutex<Option<End>>,
    /// The directions that have seen their input end after `eof`.
    done: [std::sync::atomic::AtomicBool; 2],
    /// The directions whose stream was dropped.
    dropped: [std::sync::atomic::AtomicBool; 2],
    wakers: [std::sync::Mutex<Option<std::task::Waker>>; 2],
    stats: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<Stats>>>,
}

impl SpliceState {
    fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ended(&self) -> Option<End> {
        Self::lock(&self.end).clone()
    }

    fn wake_all(&self) {
        for w in &self.wakers {
            if let Some(w) = Self::lock(w).take() {
                w.wake();
            }
        }
    }

    /// Ends the splice early (the first reason stays) and wakes both
    /// directions.
    fn abort(&self, why: End) {
        {
            let mut e = Self::lock(&self.end);
            if e.is_none() {
                *e = Some(why);
            }
        }
        self.wake_all();
    }

    fn both_done(&self) -> bool {
        self.done.iter().all(|d| d.load(Ordering::Acquire))
    }

    /// Reports the stats once both directions are gone.
    fn report(&self) {
        if self.dropped.iter().all(|d| d.load(Ordering::Acquire)) {
            if let Some(tx) = Self::lock(&self.stats).take() {
                let _ = tx.send(Stats {
                    sent: self.counts[0].load(Ordering::Relaxed),
                    received: self.counts[1].load(Ordering::Relaxed),
                    end: self.ended().unwrap_or(End::Closed),
                });
            }
        }
    }
}

fn end_status(end: &End) -> tonic::Status {
    match end {
        End::Idle | End::Expired => tonic::Status::deadline_exceeded(format!("tunnel {end}")),
        _ => tonic::Status::aborted(format!("tunnel {end}")),
    }
}

/// One direction of a splice: the other side's input stream, passed
/// through as the response stream towards this side (no queue, no task
/// between them: a frame is taken from one stream only when the other
/// asks for one, which is HTTP/2 flow control end to end).
pub struct Spliced<S> {
    inner: S,
    st: Arc<SpliceState>,
    dir: usize,
    side: &'static str,
    eof: bool,
    finished: bool,
}

impl<S> Spliced<S> {
    /// A handle that ends this splice, both directions, from outside:
    /// the control plane ends a user's tunnels when their token is
    /// revoked or expires.
    pub fn ender(&self) -> Ender {
        Ender(Arc::clone(&self.st))
    }
}

/// Ends a splice from outside ([`Spliced::ender`]).
pub struct Ender(Arc<SpliceState>);

impl Ender {
    /// Ends the splice, both ways, as [`End::Aborted`] with `why` (unless
    /// it already ended): each side's stream fails with it, and the
    /// stats report it.
    pub fn end(&self, why: String) {
        self.0.abort(End::Aborted(why));
    }
}

impl std::fmt::Debug for Ender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ender").finish_non_exhaustive()
    }
}

impl<S> Stream for Spliced<S>
where
    S: Stream<Item = Result<TunnelFrame, tonic::Status>> + Unpin,
{
    type Item = Result<TunnelFrame, tonic::Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        *SpliceState::lock(&this.st.wakers[this.dir]) = Some(cx.waker().clone());
        if let Some(end) = this.st.ended() {
            this.finished = true;
            return Poll::Ready(Some(Err(end_status(&end))));
        }
        if this.eof && this.st.done[this.dir].load(Ordering::Acquire) {
            // This direction is through; its stream ends once the other
            // is too (ending it earlier would reset the call and lose
            // what is still in flight the other way).
            if this.st.both_done() {
                this.finished = true;
                return Poll::Ready(None);
            }
            return Poll::Pending;
        }
        match std::pin::Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(f))) => {
                if this.eof {
                    this.st.abort(End::Aborted(format!(
                        "{} end sent data after closing",
                        this.side
                    )));
                    this.finished = true;
                    return Poll::Ready(Some(Err(end_status(
                        &this.st.ended().unwrap_or(End::Closed),
                    ))));
                }
                this.eof = f.eof;
                if !f.data.is_empty() {
                    this.st.counts[this.dir].fetch_add(f.data.len() as u64, Ordering::Relaxed);
                    this.st.act.touch();
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(s))) => {
                this.st.abort(End::Aborted(format!(
                    "{} end: {}: {}",
                    this.side,
                    code_name(s.code()),
                    s.message()
                )));
                this.finished = true;
                Poll::Ready(Some(Err(end_status(
                    &this.st.ended().unwrap_or(End::Closed),
                ))))
            }
            Poll::Ready(None) => {
                if !this.eof {
                    this.st.abort(End::Aborted(format!(
                        "{} end went away without closing",
                        this.side
                    )));
                    this.finished = true;
                    return Poll::Ready(Some(Err(end_status(
                        &this.st.ended().unwrap_or(End::Closed),
                    ))));
                }
                this.st.done[this.dir].store(true, Ordering::Release);
                this.st.wake_all();
                if this.st.both_done() {
                    this.finished = true;
                    return Poll::Ready(None);
                }
                Poll::Pending
            }
        }
    }
}

impl<S> Drop for Spliced<S> {
    fn drop(&mut self) {
        if !(self.eof && self.st.done[self.dir].load(Ordering::Acquire))
            && self.st.ended().is_none()
        {
            // The call this stream answers went away mid-tunnel.
            self.st.abort(End::Aborted(format!(
                "{} end went away",
                if self.dir == 0 {
                    "the device's"
                } else {
                    "the user's"
                }
            )));
        }
        self.st.dropped[self.dir].store(true, Ordering::Release);
        self.st.report();
    }
}

/// Splices two tunnel streams (control plane): returns the response
/// stream towards `a` (carrying `b_in`), the one towards `b` (carrying
/// `a_in`), and the stats once both are gone. A failure, a stream ending
/// without `eof`, or a limit ends both with an error status.
#[allow(clippy::type_complexity)]
pub fn splice<A, B>(
    a_in: A,
    b_in: B,
    limits: Limits,
) -> (
    Spliced<B>,
    Spliced<A>,
    tokio::sync::oneshot::Receiver<Stats>,
)
where
    A: Stream<Item = Result<TunnelFrame, tonic::Status>> + Unpin,
    B: Stream<Item = Result<TunnelFrame, tonic::Status>> + Unpin,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let st = Arc::new(SpliceState {
        act: Activity::new(),
        counts: [AtomicU64::new(0), AtomicU64::new(0)],
        end: std::sync::Mutex::new(None),
        done: Default::default(),
        dropped: Default::default(),
        wakers: Default::default(),
        stats: std::sync::Mutex::new(Some(tx)),
    });
    // The limits: a watchdog ends the splice when one is reached.
    let w = Arc::clone(&st);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(tick_for(limits));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if w.ended().is_some()
                || w.both_done()
                || w.dropped.iter().all(|d| d.load(Ordering::Acquire))
            {
                return;
            }
            if let Some(end) = w.act.expired(limits) {
                w.abort(end);
                return;
            }
        }
    });
    // Direction 0 carries a's bytes to b ("sent"), 1 b's to a.
    let to_b = Spliced {
        inner: a_in,
        st: Arc::clone(&st),
        dir: 0,
        side: "the user's",
        eof: false,
        finished: false,
    };
    let to_a = Spliced {
        inner: b_in,
        st,
        dir: 1,
        side: "the device's",
        eof: false,
        finished: false,
    };
    (to_a, to_b, rx)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::io::AsyncReadExt as _;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;

    /// A pump on each end of a socket pair, their frames crossed over
    /// (as the control plane's splice would do).
    async fn pair(
        limits: Limits,
    ) -> (
        TcpStream,
        TcpStream,
        tokio::task::JoinHandle<(Stats, Stats)>,
    ) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a_addr = l.local_addr().unwrap();
        let l2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b_addr = l2.local_addr().unwrap();
        let client_a = TcpStream::connect(a_addr).await.unwrap();
        let (end_a, _) = l.accept().await.unwrap();
        let client_b = TcpStream::connect(b_addr).await.unwrap();
        let (end_b, _) = l2.accept().await.unwrap();
        let (out_a, pump_a) = tcp(end_a, limits);
        let (out_b, pump_b) = tcp(end_b, limits);
        let task = tokio::spawn(async move {
            tokio::join!(pump_a.run(out_b.map(Ok)), pump_b.run(out_a.map(Ok)))
        });
        (client_a, client_b, task)
    }

    #[tokio::test]
    async fn bytes_and_half_closes_cross() {
        let (mut a, mut b, task) = pair(Limits::default()).await;
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        a.write_all(&data).await.unwrap();
        a.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data, "bytes in = bytes out, then EOF");
        // The other direction still works after the half-close.
        b.write_all(b"reply").await.unwrap();
        b.shutdown().await.unwrap();
        let mut back = Vec::new();
        a.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"reply");
        let (sa, sb) = task.await.unwrap();
        assert_eq!(sa.end, End::Closed);
        assert_eq!(sb.end, End::Closed);
        assert_eq!((sa.sent, sa.received), (300_000, 5));
        assert_eq!((sb.sent, sb.received), (5, 300_000));
    }

    #[tokio::test]
    async fn idle_tunnels_end() {
        let limits = Limits {
            idle: Duration::from_millis(100),
            total: Duration::from_secs(60),
        };
        let (mut a, _b, task) = pair(limits).await;
        let (sa, sb) = task.await.unwrap();
        // The first to see the limit ends; the other sees it go.
        assert!(sa.end == End::Idle || sb.end == End::Idle, "{sa:?} {sb:?}");
        let mut buf = [0u8; 1];
        assert_eq!(a.read(&mut buf).await.unwrap_or(0), 0, "closed");
    }

    #[tokio::test]
    async fn busy_tunnels_end_at_the_total_limit() {
        let limits = Limits {
            idle: Duration::from_secs(60),
            total: Duration::from_millis(300),
        };
        let (mut a, mut b, task) = pair(limits).await;
        // Keep bytes flowing: never idle.
        let feeder = tokio::spawn(async move {
            let mut sink = [0u8; 64];
            while a.write_all(b"tick").await.is_ok() {
                let _ = b.read(&mut sink).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let (sa, sb) = task.await.unwrap();
        assert!(
            sa.end == End::Expired || sb.end == End::Expired,
            "{sa:?} {sb:?}"
        );
        assert!(sa.sent > 0);
        feeder.abort();
    }

    #[tokio::test]
    async fn a_stream_that_ends_without_eof_aborts() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (end, _) = l.accept().await.unwrap();
        let (mut out, pump) = tcp(end, Limits::default());
        let inbound = tokio_stream::iter(vec![Ok(TunnelFrame {
            data: b"partial"[..].into(),
            eof: false,
            ..TunnelFrame::default()
        })]);
        let s = pump.run(inbound).await;
        assert!(matches!(s.end, End::Aborted(_)), "{:?}", s.end);
        let mut got = Vec::new();
        let _ = client.read_to_end(&mut got).await;
        assert_eq!(got, b"partial");
        // The outgoing half ends with the pump, without `eof`.
        assert!(out.next().await.is_none());
    }

    #[tokio::test]
    async fn the_outgoing_half_reads_only_when_polled_and_its_loss_aborts() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (end, _) = l.accept().await.unwrap();
        let (mut out, pump) = tcp(end, Limits::default());
        client.write_all(b"one").await.unwrap();
        let f = out.next().await.unwrap();
        assert_eq!((&f.data[..], f.eof), (&b"one"[..], false));
        client.shutdown().await.unwrap();
        let f = out.next().await.unwrap();
        assert!(f.eof && f.data.is_empty(), "end of file: eof");
        assert!(out.next().await.is_none(), "nothing after eof");
        // The call dropping its body before the other way is through:
        // the pump ends at once.
        let (_in_tx, in_rx) = mpsc::channel::<Result<TunnelFrame, tonic::Status>>(1);
        let (end2, _c2) = {
            let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            (l.accept().await.unwrap().0, c)
        };
        let (out2, pump2) = tcp(end2, Limits::default());
        drop(out2);
        let s = pump2.run(ReceiverStream::new(in_rx)).await;
        assert_eq!(
            s.end,
            End::Aborted("the tunnel stream closed".into()),
            "{s:?}"
        );
        drop(pump);
    }

    type Frames = mpsc::Sender<Result<TunnelFrame, tonic::Status>>;
    type ToSide = Spliced<ReceiverStream<Result<TunnelFrame, tonic::Status>>>;

    /// A splice of two streams fed by hand: the senders into `a` and
    /// `b`, the streams towards each, and the stats.
    fn spliced() -> (
        Frames,
        Frames,
        ToSide,
        ToSide,
        tokio::sync::oneshot::Receiver<Stats>,
    ) {
        let (a_tx, a_rx) = mpsc::channel(4);
        let (b_tx, b_rx) = mpsc::channel(4);
        let (to_a, to_b, stats) = splice(
            ReceiverStream::new(a_rx),
            ReceiverStream::new(b_rx),
            Limits::default(),
        );
        (a_tx, b_tx, to_a, to_b, stats)
    }

    #[tokio::test]
    async fn splice_forwards_and_reports_failures_to_both() {
        let (a_tx, b_tx, mut to_a, mut to_b, stats) = spliced();
        a_tx.send(Ok(TunnelFrame {
            data: b"hi"[..].into(),
            eof: false,
            ..TunnelFrame::default()
        }))
        .await
        .unwrap();
        assert_eq!(to_b.next().await.unwrap().unwrap().data, &b"hi"[..]);
        b_tx.send(Err(tonic::Status::unavailable("agent restarting")))
            .await
            .unwrap();
        let e = to_a.next().await.unwrap().unwrap_err();
        assert_eq!(e.code(), tonic::Code::Aborted);
        // The other direction learns it too, even while it waits.
        let e = to_b.next().await.unwrap().unwrap_err();
        assert_eq!(e.code(), tonic::Code::Aborted);
        drop((to_a, to_b));
        let s = stats.await.unwrap();
        assert!(
            matches!(&s.end, End::Aborted(w) if w.contains("agent restarting")),
            "{:?}",
            s.end
        );
        assert_eq!(s.sent, 2);
        drop(a_tx);
    }

    #[tokio::test]
    async fn splice_ends_each_stream_only_when_both_directions_closed() {
        let (a_tx, b_tx, mut to_a, mut to_b, stats) = spliced();
        a_tx.send(Ok(TunnelFrame {
            data: b"req"[..].into(),
            eof: true,
            ..TunnelFrame::default()
        }))
        .await
        .unwrap();
        drop(a_tx);
        assert!(to_b.next().await.unwrap().unwrap().eof);
        // a's direction is through, b's is not: to_b stays open.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), to_b.next())
                .await
                .is_err()
        );
        b_tx.send(Ok(TunnelFrame {
            data: b"reply"[..].into(),
            eof: true,
            ..TunnelFrame::default()
        }))
        .await
        .unwrap();
        drop(b_tx);
        assert_eq!(to_a.next().await.unwrap().unwrap().data, &b"reply"[..]);
        assert!(to_a.next().await.is_none());
        assert!(to_b.next().await.is_none());
        drop((to_a, to_b));
        let s = stats.await.unwrap();
        assert_eq!((s.sent, s.received, s.end), (3, 5, End::Closed));
    }
}
