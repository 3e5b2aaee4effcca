//! The agent's end of a tunnel: when the control plane asks on the
//! session ([`pb::TunnelOpen`]), the agent checks the port against its
//! own running bundle (`spec.tunnel.allowedPorts`; the control plane
//! checked too), connects to it on this node, and opens an
//! `AgentService/Tunnel` stream over its existing connection to carry the
//! bytes ([`crate::tunnel::pump`]). A refusal travels back as
//! `x-onprem-refused`, so the user sees why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tonic::transport::Channel;

use crate::proto::v1 as pb;
use crate::proto::v1::agent_service_client::AgentServiceClient;
use crate::tunnel::{Limits, REFUSED, TUNNEL_ID};

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
/// on a specific interface, else loopback.
pub fn target(
    allowed: &[u16],
    redfish: Option<SocketAddr>,
    port: u16,
) -> Result<SocketAddr, String> {
    if !allowed.contains(&port) {
        return Err(format!(
            "port {port} is not in spec.tunnel.allowedPorts of the bundle this node runs"
        ));
    }
    if let Some(a) = redfish.filter(|a| a.port() == port && !a.ip().is_unspecified()) {
        return Ok(a);
    }
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

fn header(s: &str) -> tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
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
    // The agent stopping ends its tunnels (their connections close).
    tokio::select! {
        _ = stop.cancelled() => tracing::info!(tunnel = %t.id, "tunnel closed: the agent is stopping"),
        _ = serve(client, t.clone(), target, limits) => {}
    }
}

/// The node's end of a tunnel.
enum Local {
    Tcp(TcpStream),
    Pipe(tokio::io::DuplexStream),
}

async fn serve(
    mut client: AgentServiceClient<Channel>,
    t: pb::TunnelOpen,
    target: TargetFn,
    limits: Limits,
) {
    let port = u16::try_from(t.port).ok().filter(|p| *p != 0);
    let tcp = match port {
        None => Err(format!("{} is not a port", t.port)),
        Some(p) => match target(p) {
            Err(e) => Err(e),
            Ok(Target::InProcess(io)) => Ok(Local::Pipe(io)),
            Ok(Target::Tcp(addr)) => {
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => Ok(Local::Tcp(s)),
                    Ok(Err(e)) => Err(format!("nothing answers on {addr}: {e}")),
                    Err(_) => Err(format!("connecting to {addr} timed out")),
                }
            }
        },
    };
    let local = match tcp {
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
    tracing::info!(tunnel = %t.id, port = t.port, "tunnel open");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_the_bundle() {
        assert!(target(&[], None, 8443).is_err());
        assert_eq!(
            target(&[8443], None, 8443),
            Ok("127.0.0.1:8443"
                .parse()
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))))
        );
        let rf: SocketAddr = "10.0.0.5:8443"
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        assert_eq!(target(&[8443, 22], Some(rf), 8443), Ok(rf));
        assert_eq!(target(&[8443, 22], Some(rf), 22).map(|a| a.port()), Ok(22));
        let any: SocketAddr = "0.0.0.0:8443".parse().unwrap_or(rf);
        assert_eq!(
            target(&[8443], Some(any), 8443).map(|a| a.ip().is_loopback()),
            Ok(true)
        );
    }

    #[test]
    fn refusal_reasons_are_valid_headers() {
        let h = header("port 22 é\nnot allowed");
        assert_eq!(h.to_str().unwrap_or_default(), "port 22 ??not allowed");
    }
}
