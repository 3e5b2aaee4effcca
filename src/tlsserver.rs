//! The TLS server loop the control plane and the node's Redfish service
//! share: TLS (rustls), then HTTP/2 for gRPC and HTTP/1.1 or HTTP/2 for
//! REST and WebSocket, on the same port. It lives below both (DESIGN.md's
//! layers); the control plane names it `controlplane::server`.
//!
//! Each connection's peer address and client-certificate fingerprint
//! travel into every request as a [`Peer`] extension: the agent service
//! knows a device by it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

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

/// Serves `app` on `listener` until `stop`.
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
    mut handed: Option<tokio::sync::mpsc::Receiver<Handover>>,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    stop: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let next_handover = async {
            match handed.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            h = next_handover => match h {
                Some(h) => {
                    tokio::spawn(connection(acceptor.clone(), h.io, h.peer, app.clone(), stop.clone()));
                }
                None => handed = None,
            },
            r = listener.accept() => match r {
                Ok((tcp, addr)) => {
                    let _ = tcp.set_nodelay(true);
                    let tcp = crate::tunnel::ReadAhead::new(tcp);
                    tokio::spawn(connection(acceptor.clone(), tcp, addr.to_string(), app.clone(), stop.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off a moment, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// One connection: the TLS handshake, then HTTP until it ends or `stop`.
async fn connection<IO>(
    acceptor: TlsAcceptor,
    io: IO,
    addr: String,
    app: axum::Router,
    stop: CancellationToken,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
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
    let peer = Peer {
        addr: addr.clone(),
        fingerprint: tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| crate::pki::fingerprint(c)),
    };
    let svc = app.map_request(move |mut req: http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        req
    });
    let svc = hyper_util::service::TowerToHyperService::new(svc);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(1000)
        // A tunnel frame ([`crate::tunnel::CHUNK`]) arrives as one HTTP/2
        // frame, not four.
        .max_frame_size(crate::tunnel::MAX_HTTP2_FRAME)
        .initial_stream_window_size(crate::dialhome::connect::STREAM_WINDOW)
        .initial_connection_window_size(crate::dialhome::connect::CONNECTION_WINDOW);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                tracing::debug!(peer = %addr, error = %e, "connection ended");
            }
        }
        _ = stop.cancelled() => {}
    }
}

/// The address a listener is bound to, for messages.
pub fn display_addr(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v) => format!("{}:{}", v.ip(), v.port()),
        SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()),
    }
}
