//! gRPC channels over our own TLS: rustls with ring, the control plane's
//! CA pinned (and the agent's client certificate when it has one).

use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not `https://host[:port]`.
    #[error("control-plane URL {0:?}: expected https://HOST[:PORT]")]
    Url(String),
    /// Connecting failed.
    #[error("connecting to {url}: {message}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
}

/// Host and port of an `https://` URL (port 7443 by default).
pub fn host_port(url: &str) -> Result<(String, u16), Error> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| Error::Url(url.to_owned()))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(Error::Url(url.to_owned()));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| Error::Url(url.to_owned()))?;
        let port = after.strip_prefix(':').unwrap_or("7443");
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p),
            None => (authority.to_owned(), "7443"),
        }
    };
    let port = port.parse().map_err(|_| Error::Url(url.to_owned()))?;
    Ok((host, port))
}

/// HTTP/2 receive window per stream.
pub const STREAM_WINDOW: u32 = 256 << 10;
/// HTTP/2 receive window per connection.
pub const CONNECTION_WINDOW: u32 = 2 << 20;

/// The stream a [`Channel`] speaks HTTP/2 over: TLS over TCP, with
/// read-ahead under the TLS session ([`crate::tunnel::ReadAhead`]).
pub struct Io(TokioIo<tokio_rustls::client::TlsStream<crate::tunnel::ReadAhead<TcpStream>>>);

impl hyper::rt::Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl Connection for Io {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Dials the control plane: TCP (no Nagle), then TLS, within a time
/// limit.
#[derive(Clone)]
pub struct Dialer {
    tls: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
    host: String,
    port: u16,
    timeout: Duration,
}

impl tower::Service<Uri> for Dialer {
    type Response = Io;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Io>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let d = self.clone();
        Box::pin(async move {
            let dial = async {
                let tcp = TcpStream::connect((d.host.as_str(), d.port)).await?;
                let _ = tcp.set_nodelay(true);
                d.tls
                    .connect(d.name, crate::tunnel::ReadAhead::new(tcp))
                    .await
            };
            match tokio::time::timeout(d.timeout, dial).await {
                Ok(r) => r.map(|s| Io(TokioIo::new(s))),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {} s", d.timeout.as_secs_f64()),
                )),
            }
        })
    }
}

/// A gRPC channel to the control plane: one HTTP/2 connection over our
/// TLS, dialled on the first call and again on the first call after it
/// drops, shared by every call (the agent's session, its telemetry and
/// its tunnels; the CLI's calls). Built on hyper's client directly, so
/// that the control plane may send tunnel frames as large HTTP/2 frames
/// ([`crate::tunnel::MAX_HTTP2_FRAME`], one TLS write each) rather than
/// 16 KiB pieces.
#[derive(Clone)]
pub struct Channel {
    client: hyper_util::client::legacy::Client<Dialer, tonic::body::Body>,
    authority: http::uri::Authority,
    url: Arc<str>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("url", &self.url).finish()
    }
}

/// A failed call's status: connecting, or the connection, failed.
fn call_failed(url: &str, e: hyper_util::client::legacy::Error) -> tonic::Status {
    let why = crate::exporter::error_chain(&e);
    if e.is_connect() {
        return tonic::Status::unavailable(format!("connecting to {url}: {why}"));
    }
    let st = tonic::Status::from_error(Box::new(e));
    match st.code() {
        tonic::Code::Unknown => tonic::Status::unavailable(format!("{url}: {why}")),
        _ => st,
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Channel {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = tonic::Status;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, tonic::Status>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<tonic::body::Body>) -> Self::Future {
        // The generated client gives the path; the channel adds where.
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        match Uri::from_parts(parts) {
            Ok(u) => *req.uri_mut() = u,
            Err(e) => {
                let st = tonic::Status::internal(format!("request URI: {e}"));
                return Box::pin(std::future::ready(Err(st)));
            }
        }
        let call = self.client.request(req);
        let url = Arc::clone(&self.url);
        Box::pin(async move { call.await.map_err(|e| call_failed(&url, e)) })
    }
}

/// A channel to `url` that speaks HTTP/2 over TLS with `tls`. Connects
/// lazily: the first call dials (within `timeout`).
pub fn channel(
    url: &str,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Channel, Error> {
    let (host, port) = host_port(url)?;
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|_| Error::Url(url.to_owned()))?;
    let authority: http::uri::Authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
    .parse()
    .map_err(|_| Error::Url(url.to_owned()))?;
    let dialer = Dialer {
        tls: tokio_rustls::TlsConnector::from(tls),
        name,
        host,
        port,
        timeout,
    };
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        // One connection for as long as it lasts, however quiet.
        .pool_idle_timeout(None)
        .set_host(false)
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        // Room for a tunnel's bytes in flight (the windows are credit, not
        // memory held per stream), and a tunnel frame in one HTTP/2 frame.
        .http2_initial_stream_window_size(STREAM_WINDOW)
        .http2_initial_connection_window_size(CONNECTION_WINDOW)
        .http2_max_frame_size(crate::tunnel::MAX_HTTP2_FRAME)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(20))
        .build(dialer);
    Ok(Channel {
        client,
        authority,
        url: Arc::from(url),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_trust() -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        Arc::new(cfg)
    }

    /// The status of an enrolment call to `url` over a fresh channel.
    async fn enrol_status(url: &str, timeout: Duration) -> tonic::Status {
        let ch = channel(url, no_trust(), timeout).unwrap();
        let mut client = crate::proto::v1::agent_service_client::AgentServiceClient::new(ch);
        client
            .enrol(crate::proto::v1::EnrolRequest::default())
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn a_call_that_cannot_connect_is_unavailable_and_says_where() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("https://127.0.0.1:{port}");
        let s = enrol_status(&url, Duration::from_secs(5)).await;
        assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
        assert!(
            s.message().contains(&format!("connecting to {url}")),
            "{}",
            s.message()
        );
    }

    #[tokio::test]
    async fn a_peer_that_never_finishes_the_handshake_times_out() {
        // Accepts TCP, never answers TLS.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", l.local_addr().unwrap().port());
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let started = std::time::Instant::now();
        let s = enrol_status(&url, Duration::from_millis(300)).await;
        assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
        assert!(
            s.message().contains("no connection within"),
            "{}",
            s.message()
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        hold.abort();
    }

    #[test]
    fn urls() {
        assert_eq!(
            host_port("https://cp.example:9443").unwrap(),
            ("cp.example".into(), 9443)
        );
        assert_eq!(
            host_port("https://10.0.0.1").unwrap(),
            ("10.0.0.1".into(), 7443)
        );
        assert_eq!(
            host_port("https://[::1]:7443/x").unwrap(),
            ("::1".into(), 7443)
        );
        assert!(host_port("http://cp:1").is_err());
        assert!(host_port("https://cp:notaport").is_err());
    }
}
