//! `onprem port-forward`: local ports that lead, through the control
//! plane, to ports on a device (its Redfish service, SSH), as `kubectl
//! port-forward` does for pods. Each accepted connection is one tunnel
//! ([`crate::tunnel`]); many may be open at once, each with its own
//! flow control. The listener stays up while the device or the control
//! plane restarts: connections made meanwhile are closed with the reason,
//! and new ones work once the device is back.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::fleet::{Conn, code, exit};
use crate::proto::v1 as pb;
use crate::proto::v1::fleet_client::FleetClient;
use crate::tunnel::{DEVICE, Limits, PORT};

/// `onprem port-forward` options.
#[derive(Debug, clap::Args)]
pub struct PortForwardOptions {
    /// The device: `device/NAME` or `NAME`.
    pub target: String,
    /// `[LOCAL:]REMOTE`, one or more: listen on LOCAL (REMOTE when left
    /// out, any free port when 0 or empty, as in `:8443`) and forward to
    /// REMOTE on the device. The device's bundle must allow REMOTE
    /// (`spec.tunnel.allowedPorts`).
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// The local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: std::net::IpAddr,
}

/// `device/NAME` or `NAME` → `NAME`.
pub fn device_name(target: &str) -> anyhow::Result<String> {
    let name = match target.split_once('/') {
        Some(("device" | "devices", n)) => n,
        Some((kind, _)) => {
            return Err(exit(
                code::USAGE,
                format!("{target}: only devices can be forwarded to (device/NAME), not {kind}"),
            ));
        }
        None => target,
    };
    if name.is_empty() {
        return Err(exit(code::USAGE, format!("{target}: no device name")));
    }
    Ok(name.to_owned())
}

/// `[LOCAL:]REMOTE` → (local, remote).
pub fn parse_ports(spec: &str) -> anyhow::Result<(u16, u16)> {
    let bad = |why: &str| {
        exit(
            code::USAGE,
            format!("{spec:?}: {why} (want [LOCAL:]REMOTE)"),
        )
    };
    let (local, remote) = match spec.split_once(':') {
        Some((l, r)) => (l, r),
        None => (spec, spec),
    };
    let remote: u16 = remote
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("REMOTE is not a port"))?;
    let local: u16 = if local.is_empty() {
        0
    } else {
        local.parse().map_err(|_| bad("LOCAL is not a port"))?
    };
    Ok((local, remote))
}

/// Opens one tunnel for `tcp` and pumps until it ends.
pub async fn forward_one(
    mut client: FleetClient<crate::dialhome::connect::Channel>,
    token: String,
    device: String,
    remote: u16,
    tcp: TcpStream,
) -> Result<crate::tunnel::Stats, tonic::Status> {
    // The control plane enforces the idle and total limits.
    let limits = Limits {
        idle: Duration::from_secs(u64::from(u32::MAX)),
        total: Duration::from_secs(u64::from(u32::MAX)),
    };
    let (out, pump) = crate::tunnel::tcp(tcp, limits);
    let mut req = tonic::Request::new(out);
    let md = req.metadata_mut();
    let bad = |_| tonic::Status::invalid_argument("the token or device name is not a valid header");
    md.insert(
        "authorization",
        format!("Bearer {}", token.trim()).parse().map_err(bad)?,
    );
    md.insert(DEVICE, device.parse().map_err(bad)?);
    md.insert(PORT, remote.into());
    let inbound = client.tunnel(req).await?.into_inner();
    Ok(pump.run(inbound).await)
}

/// `onprem port-forward`.
pub async fn port_forward(
    o: PortForwardOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let device = device_name(&o.target)?;
    let pairs: Vec<(u16, u16)> = o
        .ports
        .iter()
        .map(|p| parse_ports(p))
        .collect::<anyhow::Result<_>>()?;
    let mut c = Conn::open()?;
    // The device must exist (and the token be good) before we listen.
    let r = c.req(pb::DescribeRequest {
        kind: "device".into(),
        name: device.clone(),
    });
    c.client.describe(r).await.map_err(|s| c.err(&s))?;
    let mut listeners = Vec::new();
    for (local, remote) in pairs {
        let addr = SocketAddr::new(o.address, local);
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| exit(code::USAGE, format!("listening on {addr}: {e}")))?;
        let bound = l.local_addr().unwrap_or(addr);
        println!("Forwarding from {bound} -> device/{device}:{remote}");
        listeners.push((l, remote));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (l, remote) in listeners {
        let client = c.client.clone();
        let token = c.login.token.clone();
        let device = device.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = l.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            eprintln!("accept: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                eprintln!("Handling connection from {peer} for {remote}");
                let (client, token, device) = (client.clone(), token.clone(), device.clone());
                tokio::spawn(async move {
                    match forward_one(client, token, device.clone(), remote, tcp).await {
                        Ok(s) => {
                            if let crate::tunnel::End::Aborted(why) = &s.end {
                                eprintln!("connection from {peer} to device/{device}:{remote} ended: {why}");
                            }
                        }
                        Err(s) => eprintln!(
                            "connection from {peer} to device/{device}:{remote} refused: {}",
                            s.message()
                        ),
                    }
                });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_as_kubectl_does() {
        assert_eq!(parse_ports("8443").ok(), Some((8443, 8443)));
        assert_eq!(parse_ports("9000:8443").ok(), Some((9000, 8443)));
        assert_eq!(parse_ports(":8443").ok(), Some((0, 8443)));
        assert_eq!(parse_ports("0:22").ok(), Some((0, 22)));
        for bad in ["", "x", "9000:", "9000:0", "70000", "a:22"] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_name_devices() {
        assert_eq!(device_name("device/pi-1").ok().as_deref(), Some("pi-1"));
        assert_eq!(device_name("pi-1").ok().as_deref(), Some("pi-1"));
        assert!(device_name("pod/x").is_err());
        assert!(device_name("device/").is_err());
    }
}
