//! The agent's end of a tunnel: when the control plane asks on the
//! session ([`pb::TunnelOpen`]), the agent checks the port against its
//! own running bundle (`spec.tunnel.allowedPorts`; the control plane
//! checked too), connects to it on this node, and opens an
//! `AgentService/Tunnel` stream over its existing connection to carry the
//! bytes ([`crate::tunnel::pump`]). A refusal travels back as
//! `x-onprem-refused`, so the user sees why.
//!
//! When the control plane asks for it ([`pb::Welcome`]`.warm_tunnels`),
//! the agent also keeps streams open before any tunnel needs them
//! ([`warm`]): the control plane names a tunnel in its first frame on
//! one, and the user's bytes follow at once, so a new connection costs
//! no round trip to the agent. The agent answers `open` once it has
//! connected the port, or `refused` with why, and opens the next.

use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::dialhome::connect::Channel;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_stream::Stream;

use crate::proto::v1 as pb;
use crate::proto::v1::agent_service_client::AgentServiceClient;
use crate::tunnel::{Limits, REFUSED, TUNNEL_ID, TunnelFrame};

/// Where a port's tunnel goes on this node.
pub enum Target {
    /// A TCP connection to this address.
    Tcp(SocketAddr),
    /// A service inside the agent (its Redfish service), through an
    /// in-memory pipe.
    InProcess(tokio::io::DuplexStream),
}

/// Where a port's tunnel goes on this node, or why it may not.
pub type TargetFn = Arc<dyn Fn(u16) -> Result<Target, String> + Send + Sync>;

/// How long connecting to the local port may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The target of `port` given the running bundle's allowed ports and the
/// Redfish service's address: the Redfish address when it is that port
/// on a specific interface, else the node's loopback address `local`
/// (127.0.0.1, or the loopback address the agent itself listens on, so
/// that nodes sharing one machine's loopback, as the demo's do, reach
/// only their own services).
pub fn target(
    allowed: &[u16],
    redfish: Option<SocketAddr>,
    port: u16,
    local: std::net::IpAddr,
) -> Result<SocketAddr, String> {
    if !allowed.contains(&port) {
        return Err(format!(
            "port {port} is not in spec.tunnel.allowedPorts of the bundle this node runs"
        ));
    }
    if let Some(a) = redfish.filter(|a| a.port() == port && !a.ip().is_unspecified()) {
        return Ok(a);
    }
    Ok(SocketAddr::new(local, port))
}

/// `s` as a metadata value (the tunnel's id, a refusal's reason): at
/// most 500 characters, each one not printable ASCII replaced by `?`.
pub fn header(s: &str) -> tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(500)
        .collect();
    clean
        .parse()
        .unwrap_or_else(|_| tonic::metadata::MetadataValue::from_static("refused"))
}

/// Opens (or refuses) one tunnel; returns when it ends.
pub async fn open(
    client: AgentServiceClient<Channel>,
    t: pb::TunnelOpen,
    target: TargetFn,
    limits: Limits,
    stop: tokio_util::sync::CancellationToken,
) {
    let id = t.id.clone();
    until_stopped(&stop, &id, serve(client, t, target, limits)).await;
}

/// Runs a tunnel until it ends or the agent stops (which ends its
/// tunnels: their connections close).
async fn until_stopped(
    stop: &tokio_util::sync::CancellationToken,
    id: &str,
    tunnel: impl std::future::Future<Output = ()>,
) {
    tokio::select! {
        _ = stop.cancelled() => tracing::info!(tunnel = %id, "tunnel closed: the agent is stopping"),
        _ = tunnel => {}
    }
}

/// The node's end of a tunnel.
enum Local {
    Tcp(TcpStream),
    Pipe(tokio::io::DuplexStream),
}

/// Connects tunnel `t` to its port on this node, or says why not.
async fn connect_local(t: &pb::TunnelOpen, target: &TargetFn) -> Result<Local, String> {
    match target(open_port(t)?)? {
        Target::InProcess(io) => Ok(Local::Pipe(io)),
        Target::Tcp(addr) => {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => Ok(Local::Tcp(s)),
                Ok(Err(e)) => Err(format!("nothing answers on {addr}: {e}")),
                Err(_) => Err(format!("connecting to {addr} timed out")),
            }
        }
    }
}

/// The port a tunnel's `open` names (the control plane's first frame on
/// a warm stream), or why it is not one.
pub fn open_port(t: &pb::TunnelOpen) -> Result<u16, String> {
    u16::try_from(t.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{} is not a port", t.port))
}

async fn serve(
    mut client: AgentServiceClient<Channel>,
    t: pb::TunnelOpen,
    target: TargetFn,
    limits: Limits,
) {
    let local = match connect_local(&t, &target).await {
        Ok(s) => s,
        Err(why) => {
            tracing::warn!(tunnel = %t.id, port = t.port, reason = %why, "tunnel refused");
            let mut req = tonic::Request::new(tokio_stream::empty());
            req.metadata_mut().insert(TUNNEL_ID, header(&t.id));
            req.metadata_mut().insert(REFUSED, header(&why));
            if let Err(s) = client.tunnel(req).await {
                tracing::debug!(tunnel = %t.id, error = %s.message(), "refusing the tunnel failed");
            }
            return;
        }
    };
    match local {
        Local::Tcp(tcp) => {
            let (out, pump) = crate::tunnel::tcp(tcp, limits);
            carry(client, &t, out, pump).await;
        }
        Local::Pipe(io) => {
            let (rd, wr) = tokio::io::split(io);
            let (out, pump) = crate::tunnel::io(rd, wr, limits);
            carry(client, &t, out, pump).await;
        }
    }
}

/// Opens the agent's stream with `out` as its body and pumps the answer.
async fn carry<R, W>(
    mut client: AgentServiceClient<Channel>,
    t: &pb::TunnelOpen,
    out: crate::tunnel::Outgoing<R>,
    pump: crate::tunnel::Pump<W>,
) where
    R: crate::tunnel::Source + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut req = tonic::Request::new(out);
    req.metadata_mut().insert(TUNNEL_ID, header(&t.id));
    let inbound = match client.tunnel(req).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            tracing::warn!(tunnel = %t.id, error = %s.message(), "the control plane did not take the tunnel");
            return;
        }
    };
    pumped(t, pump, inbound).await;
}

/// Pumps an open tunnel's answer to its local end until it ends.
async fn pumped<W, S>(t: &pb::TunnelOpen, pump: crate::tunnel::Pump<W>, inbound: S)
where
    W: tokio::io::AsyncWrite + Unpin,
    S: Stream<Item = Result<TunnelFrame, tonic::Status>> + Unpin,
{
    tracing::debug!(tunnel = %t.id, port = t.port, "tunnel open");
    let stats = pump.run(inbound).await;
    tracing::info!(
        tunnel = %t.id,
        port = t.port,
        end = %stats.end,
        sent = stats.sent,
        received = stats.received,
        "tunnel closed"
    );
}

/// The agent's outgoing frames on a warm stream, boxed once the local
/// end is known.
type Frames = Pin<Box<dyn Stream<Item = TunnelFrame> + Send>>;

/// How a warm stream's tunnel starts on the agent's side.
enum Start {
    /// Connected to the port: the local end's frames.
    Open(pb::TunnelOpen, Frames),
    /// Why not.
    Refused(String),
}

/// The body of a warm stream: nothing until the control plane names a
/// tunnel and the agent has connected it, then `open` (or `refused`,
/// and the end), then the local end's frames.
struct WarmOut {
    start: Option<oneshot::Receiver<Start>>,
    frames: Option<Frames>,
}

impl Stream for WarmOut {
    type Item = TunnelFrame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TunnelFrame>> {
        let this = &mut *self;
        if let Some(f) = this.frames.as_mut() {
            return f.as_mut().poll_next(cx);
        }
        let Some(rx) = this.start.as_mut() else {
            return Poll::Ready(None);
        };
        let start = std::task::ready!(Pin::new(rx).poll(cx));
        this.start = None;
        match start {
            Ok(Start::Open(open, frames)) => {
                this.frames = Some(frames);
                Poll::Ready(Some(TunnelFrame {
                    open: Some(open),
                    ..TunnelFrame::default()
                }))
            }
            Ok(Start::Refused(why)) => Poll::Ready(Some(TunnelFrame {
                refused: why,
                ..TunnelFrame::default()
            })),
            Err(_) => Poll::Ready(None),
        }
    }
}

/// How long after a warm stream is taken the next is opened.
const WARM_NEXT: Duration = Duration::from_millis(3);
/// How long a warm stream that failed waits before the next.
const WARM_RETRY: Duration = Duration::from_secs(5);

/// Keeps one warm stream open for as long as the session lasts: opens
/// it, waits for the control plane to name a tunnel on it, starts that
/// tunnel (under `stop`, so it outlives neither the agent nor its
/// connection) and opens the next.
pub async fn warm(
    client: AgentServiceClient<Channel>,
    target: TargetFn,
    limits: Limits,
    session: tokio_util::sync::CancellationToken,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let (tx, rx) = oneshot::channel();
        let mut req = tonic::Request::new(WarmOut {
            start: Some(rx),
            frames: None,
        });
        req.metadata_mut().insert(
            crate::tunnel::WARM,
            tonic::metadata::MetadataValue::from_static("1"),
        );
        let mut c = client.clone();
        let call = tokio::select! {
            _ = session.cancelled() => return,
            r = c.tunnel(req) => r,
        };
        let first = match call {
            Ok(r) => {
                let mut inbound = r.into_inner();
                tokio::select! {
                    _ = session.cancelled() => return,
                    m = inbound.message() => m.map(|f| f.and_then(|f| f.open).map(|o| (o, inbound))),
                }
            }
            Err(s) => Err(s),
        };
        match first {
            Ok(Some((open, inbound))) => {
                let (target, stop) = (Arc::clone(&target), stop.child_token());
                tokio::spawn(async move {
                    let id = open.id.clone();
                    until_stopped(&stop, &id, serve_warm(open, inbound, tx, target, limits)).await;
                });
                // The next warm stream a moment later, off the way of the
                // new tunnel's first round trips (the control plane and
                // the agent each run on one thread).
                tokio::select! {
                    _ = session.cancelled() => return,
                    _ = tokio::time::sleep(WARM_NEXT) => {}
                }
            }
            other => {
                let why = match other {
                    Err(s) => s.message().to_owned(),
                    _ => "the control plane ended it without a tunnel".to_owned(),
                };
                tracing::debug!(reason = %why, "warm tunnel stream ended; the next in {WARM_RETRY:?}");
                tokio::select! {
                    _ = session.cancelled() => return,
                    _ = tokio::time::sleep(WARM_RETRY) => {}
                }
            }
        }
    }
}

/// The node's end of a tunnel named on a warm stream.
async fn serve_warm(
    t: pb::TunnelOpen,
    inbound: tonic::Streaming<TunnelFrame>,
    start: oneshot::Sender<Start>,
    target: TargetFn,
    limits: Limits,
) {
    match connect_local(&t, &target).await {
        Err(why) => {
            tracing::warn!(tunnel = %t.id, port = t.port, reason = %why, "tunnel refused");
            let _ = start.send(Start::Refused(why));
            // Keep the call until the control plane ends it, so that the
            // refusal is sent before the stream closes.
            let mut inbound = inbound;
            let _ = tokio::time::timeout(CONNECT_TIMEOUT, async {
                while let Ok(Some(_)) = inbound.message().await {}
            })
            .await;
        }
        Ok(Local::Tcp(tcp)) => {
            let (out, pump) = crate::tunnel::tcp(tcp, limits);
            if start.send(Start::Open(t.clone(), Box::pin(out))).is_ok() {
                pumped(&t, pump, inbound).await;
            }
        }
        Ok(Local::Pipe(io)) => {
            let (rd, wr) = tokio::io::split(io);
            let (out, pump) = crate::tunnel::io(rd, wr, limits);
            if start.send(Start::Open(t.clone(), Box::pin(out))).is_ok() {
                pumped(&t, pump, inbound).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_the_bundle() {
        let lo = std::net::IpAddr::from([127, 0, 0, 1]);
        assert!(target(&[], None, 8443, lo).is_err());
        assert_eq!(
            target(&[8443], None, 8443, lo),
            Ok(SocketAddr::new(lo, 8443))
        );
        let rf: SocketAddr = "10.0.0.5:8443"
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        assert_eq!(target(&[8443, 22], Some(rf), 8443, lo), Ok(rf));
        assert_eq!(
            target(&[8443, 22], Some(rf), 22, lo).map(|a| a.port()),
            Ok(22)
        );
        let any: SocketAddr = "0.0.0.0:8443".parse().unwrap_or(rf);
        assert_eq!(
            target(&[8443], Some(any), 8443, lo).map(|a| a.ip().is_loopback()),
            Ok(true)
        );
        // A node on its own loopback address reaches its own services
        // only.
        let own = std::net::IpAddr::from([127, 0, 0, 7]);
        assert_eq!(target(&[22], None, 22, own), Ok(SocketAddr::new(own, 22)));
    }

    #[tokio::test]
    async fn a_warm_stream_sends_open_then_the_local_frames_or_refused_then_ends() {
        use tokio_stream::StreamExt as _;
        let open = pb::TunnelOpen {
            id: "tun-1".into(),
            port: 8443,
        };
        let frame = |d: &'static [u8]| TunnelFrame {
            data: d.into(),
            ..TunnelFrame::default()
        };
        // Connected: `open`, then the local end's frames, then its end.
        let (tx, rx) = oneshot::channel();
        let mut out = WarmOut {
            start: Some(rx),
            frames: None,
        };
        assert!(
            tokio::time::timeout(Duration::from_millis(20), out.next())
                .await
                .is_err(),
            "nothing before a tunnel is named"
        );
        let local: Frames = Box::pin(tokio_stream::iter(vec![frame(b"a"), frame(b"b")]));
        assert!(tx.send(Start::Open(open.clone(), local)).is_ok());
        let first = out.next().await;
        assert_eq!(first.and_then(|f| f.open), Some(open));
        let rest: Vec<_> = out.collect().await;
        assert_eq!(rest, vec![frame(b"a"), frame(b"b")]);

        // Refused: the reason, then the end.
        let (tx, rx) = oneshot::channel();
        let mut out = WarmOut {
            start: Some(rx),
            frames: None,
        };
        assert!(tx.send(Start::Refused("nothing answers".into())).is_ok());
        let f = out.next().await;
        assert_eq!(f.map(|f| f.refused), Some("nothing answers".to_owned()));
        assert_eq!(out.next().await, None);

        // The agent gave the stream up: it ends.
        let (tx, rx) = oneshot::channel::<Start>();
        let mut out = WarmOut {
            start: Some(rx),
            frames: None,
        };
        drop(tx);
        assert_eq!(out.next().await, None);
    }

    #[test]
    fn refusal_reasons_are_valid_headers() {
        let h = header("port 22 é\nnot allowed");
        assert_eq!(h.to_str().unwrap_or_default(), "port 22 ??not allowed");
    }
}
