//! gRPC channels over our own TLS: rustls with ring, the control plane's
//! CA pinned (and the agent's client certificate when it has one).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

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

/// A channel to `url` that speaks HTTP/2 over TLS with `tls`. Connects
/// lazily: the first call dials (within `timeout`).
pub fn channel(
    url: &str,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Channel, Error> {
    let (host, port) = host_port(url)?;
    let server_name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|_| Error::Url(url.to_owned()))?;
    let connector = tokio_rustls::TlsConnector::from(tls);
    let endpoint = Endpoint::from_shared(format!(
        "http://{}:{port}",
        if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        }
    ))
    .map_err(|_| Error::Url(url.to_owned()))?
    .connect_timeout(timeout)
    // Room for a tunnel's bytes in flight (the windows are credit, not
    // memory held per stream).
    .initial_stream_window_size(Some(STREAM_WINDOW))
    .initial_connection_window_size(Some(CONNECTION_WINDOW))
    .http2_keep_alive_interval(Duration::from_secs(30))
    .keep_alive_timeout(Duration::from_secs(20));
    let svc = tower::service_fn(move |_: Uri| {
        let connector = connector.clone();
        let server_name = server_name.clone();
        let host = host.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(svc))
}

#[cfg(test)]
mod tests {
    use super::*;

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
