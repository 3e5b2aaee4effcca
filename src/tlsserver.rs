//! The server loop the control plane, the node's Redfish service and the
//! agent's `/metrics` share: TLS (rustls; plain HTTP for `/metrics`), then
//! HTTP/2 for gRPC and HTTP/1.1 or HTTP/2 for REST and WebSocket, on the
//! same port, within the listener's [`serverlimits`](crate::serverlimits)
//! (connection cap, header and idle timeouts). It lives below both
//! (DESIGN.md's layers); the control plane names it `controlplane::server`.
//!
//! Each connection's peer address and client-certificate fingerprint
//! travel into every request as a [`Peer`] extension: the agent service
//! knows a device by it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::serverlimits::{
    Conns, H2_KEEPALIVE_INTERVAL, H2_KEEPALIVE_TIMEOUT, Limits, Requests, Slot, Tracked,
};

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// `ip:port`.
    pub addr: String,
    /// SHA-256 of the client certificate, when one was presented (and
    /// verified against the CA).
    pub fingerprint: Option<String>,
}

/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection handed over inside the process (a tunnel to this
/// service: no loopback TCP connection between the two), with the label
/// its requests carry as the peer address.
#[derive(Debug)]
pub struct Handover {
    /// The service's end of an in-memory pipe.
    pub io: tokio::io::DuplexStream,
    /// For logs and [`Peer::addr`].
    pub peer: String,
}

/// Serves `app` on `listener` until `stop`, with the process's
/// [`serverlimits`](crate::serverlimits).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    stop: CancellationToken,
) {
    serve_with(listener, None, tls, app, stop).await
}

/// [`serve`], also taking connections handed over on `handed`.
pub async fn serve_with(
    listener: TcpListener,
    handed: Option<tokio::sync::mpsc::Receiver<Handover>>,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    stop: CancellationToken,
) {
    let limits = crate::serverlimits::process();
    serve_limited(listener, handed, Some(tls), app, Options::new(limits), stop).await
}

/// How a listener serves, beyond its address and app.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Its connection cap and timeouts.
    pub limits: Limits,
    /// After `stop`, how long connections may finish the requests in
    /// flight (new ones are refused, idle ones close at once); zero drops
    /// them at once.
    pub grace: Duration,
}

impl Options {
    /// `limits`, connections dropped at `stop`.
    pub fn new(limits: Limits) -> Options {
        Options {
            limits,
            grace: Duration::ZERO,
        }
    }
}

/// Serves `app` on `listener` (and on connections handed over on
/// `handed`) until `stop`: over TLS when `tls` is given, else plain HTTP,
/// within `opts.limits`. Returns once the connections are gone, or
/// `opts.grace` after `stop`.
pub async fn serve_limited(
    listener: TcpListener,
    mut handed: Option<tokio::sync::mpsc::Receiver<Handover>>,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    opts: Options,
    stop: CancellationToken,
) {
    let name = listener
        .local_addr()
        .map(display_addr)
        .unwrap_or_else(|_| "?".into());
    let conns = Conns::new(name, opts.limits);
    let sweep_stop = CancellationToken::new();
    tokio::spawn(Arc::clone(&conns).sweep(sweep_stop.clone()));
    let acceptor = tls.map(TlsAcceptor::from);
    let served = Served {
        acceptor,
        app,
        stop: stop.clone(),
        grace: opts.grace,
    };
    loop {
        // At the cap with every connection busy, leave new ones in the
        // backlog.
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = conns.wait_admissible() => {}
        }
        let next_handover = async {
            match handed.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            h = next_handover => match h {
                Some(h) => {
                    let Some(slot) = admit(&conns, &stop).await else { break };
                    tokio::spawn(served.clone().connection(Tracked::new(h.io, slot, false), h.peer));
                }
                None => handed = None,
            },
            r = listener.accept() => match r {
                Ok((tcp, addr)) => {
                    let _ = tcp.set_nodelay(true);
                    let Some(slot) = admit(&conns, &stop).await else { break };
                    let plain = served.acceptor.is_none();
                    let tcp = Tracked::new(crate::tunnel::ReadAhead::new(tcp), slot, plain);
                    tokio::spawn(served.clone().connection(tcp, addr.to_string()));
                }
                Err(e) => {
                    // EMFILE and friends: back off a moment, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    if !opts.grace.is_zero() {
        conns
            .wait_empty(tokio::time::Instant::now() + opts.grace)
            .await;
    }
    sweep_stop.cancel();
}

/// A slot for a new connection, or `None` at `stop`.
async fn admit(conns: &Arc<Conns>, stop: &CancellationToken) -> Option<Slot> {
    tokio::select! {
        _ = stop.cancelled() => None,
        s = conns.admit() => Some(s),
    }
}

/// What each connection of a listener needs.
#[derive(Clone)]
struct Served {
    acceptor: Option<TlsAcceptor>,
    app: axum::Router,
    stop: CancellationToken,
    grace: Duration,
}

impl Served {
    /// One connection: the TLS handshake (if any), then HTTP until it
    /// ends, the server closes it or `stop`.
    async fn connection<IO>(self, io: Tracked<IO>, addr: String)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Some(acceptor) = self.acceptor.clone() else {
            let requests = io.slot().requests();
            let peer = Peer {
                addr: addr.clone(),
                fingerprint: None,
            };
            return self.http(io, requests, peer).await;
        };
        let closing = io.slot().closing();
        let requests = io.slot().requests();
        let handshake = tokio::select! {
            r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)) => r,
            _ = self.stop.cancelled() => return,
            _ = closing.cancelled() => {
                tracing::debug!(peer = %addr, "TLS handshake cut by the server's limits");
                return;
            }
        };
        let tls = match handshake {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %addr, "TLS handshake timed out");
                return;
            }
        };
        let (tracked, session) = tls.get_ref();
        if session.alpn_protocol() == Some(b"h2") {
            tracked.slot().set_h2();
        }
        let peer = Peer {
            addr,
            fingerprint: session
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| crate::pki::fingerprint(c)),
        };
        self.http(tls, requests, peer).await
    }

    /// HTTP/1.1 or HTTP/2 on `io`, each request marked in flight on
    /// `requests` until its response body is done.
    async fn http<IO>(self, io: IO, requests: Requests, peer: Peer)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let addr = peer.addr.clone();
        let app = self.app.clone();
        let svc =
            hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                let in_flight = requests.begin();
                req.extensions_mut().insert(peer.clone());
                let app = app.clone();
                async move {
                    let resp = app.oneshot(req).await;
                    resp.map(|r| {
                        if r.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                            in_flight.upgraded();
                        }
                        // In flight until the body is done (or dropped).
                        r.map(move |body| {
                            axum::body::Body::new(body.map_frame(move |f| {
                                let _ = &in_flight;
                                f
                            }))
                        })
                    })
                }
            });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        // Request heads are timed by the server's limits, which tell a
        // keep-alive connection's wait for its next request (the idle
        // timeout) from a slow head (the header timeout).
        builder.http1().header_read_timeout(None);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(H2_KEEPALIVE_INTERVAL))
            .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
            .max_concurrent_streams(1000)
            // A tunnel frame ([`crate::tunnel::CHUNK`]) arrives as one HTTP/2
            // frame, not four.
            .max_frame_size(crate::tunnel::MAX_HTTP2_FRAME)
            .initial_stream_window_size(crate::dialhome::connect::STREAM_WINDOW)
            .initial_connection_window_size(crate::dialhome::connect::CONNECTION_WINDOW);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(peer = %addr, error = %e, "connection ended");
                }
                return;
            }
            _ = self.stop.cancelled() => {}
        }
        if self.grace.is_zero() {
            return;
        }
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(self.grace, conn).await;
    }
}

/// The address a listener is bound to, for messages.
pub fn display_addr(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v) => format!("{}:{}", v.ip(), v.port()),
        SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()),
    }
}
