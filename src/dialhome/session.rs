//! The session with the control plane, held for as long as the agent
//! runs: dial, Hello, then heartbeats, bundles, status and acks; on any
//! failure, wait (the loops' [`Backoff`]: 0.8 s doubling to 30 s,
//! jittered, reset after 120 s without a failure, so after a session
//! that lasted) and dial again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::agent::reconcile::Backoff;

use super::identity::Identity;
use super::telemetry::Telemetry;
use super::{Offer, StatusFn, connect};
use crate::proto::v1 as pb;
use crate::proto::v1::agent_service_client::AgentServiceClient;

/// What the session needs.
#[derive(Clone)]
pub struct Parts {
    /// The identity (URL, certificate, keys).
    pub identity: Identity,
    /// The node's status.
    pub status: StatusFn,
    /// Where bundles go.
    pub offers: mpsc::Sender<Offer>,
    /// The telemetry buffer.
    pub telemetry: Telemetry,
    /// Facts sent in Hello.
    pub facts: pb::HardwareFacts,
    /// Whether the session is up (for `/metrics` and status).
    pub connected: Arc<std::sync::atomic::AtomicBool>,
    /// Where tunnels to a port connect, or why they may not.
    pub tunnel_target: super::tunnel::TargetFn,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("device", &self.identity.device_name)
            .finish_non_exhaustive()
    }
}

fn msg(m: pb::agent_message::Msg) -> pb::AgentMessage {
    pb::AgentMessage { msg: Some(m) }
}

/// Holds the session until `stop`.
pub async fn run(parts: Parts, stop: CancellationToken) {
    let seed = getrandom::u64().unwrap_or(u64::from(std::process::id()));
    let mut backoff = Backoff::new(seed);
    let tls = match parts.identity.tls() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the identity; dial-home is off");
            return;
        }
    };
    loop {
        let r = once(&parts, Arc::clone(&tls), &stop).await;
        parts
            .connected
            .store(false, std::sync::atomic::Ordering::Relaxed);
        if stop.is_cancelled() {
            return;
        }
        let wait = backoff.next(tokio::time::Instant::now());
        match r {
            Ok(()) => tracing::info!(retry_in = ?wait, "session ended"),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?wait, "control plane unreachable; loops go on, telemetry is buffered")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn once(
    parts: &Parts,
    tls: Arc<rustls::ClientConfig>,
    stop: &CancellationToken,
) -> Result<(), String> {
    let url = &parts.identity.url;
    let ch = connect::channel(url, tls, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let mut client = AgentServiceClient::new(ch);
    let (tx, rx) = mpsc::channel::<pb::AgentMessage>(16);
    let mut status = (parts.status)();
    status.telemetry_dropped_total = parts.telemetry.dropped_total();
    let _ = tx
        .send(msg(pb::agent_message::Msg::Hello(pb::Hello {
            facts: Some(parts.facts.clone()),
            status: Some(status.clone()),
        })))
        .await;
    let mut inbound = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("{url}: {}", s.message()))?
        .into_inner();
    let welcome = match inbound.message().await {
        Ok(Some(pb::ControlMessage {
            msg: Some(pb::control_message::Msg::Welcome(w)),
        })) => w,
        Ok(_) => return Err("the control plane did not welcome the session".into()),
        Err(s) => return Err(format!("{url}: {}", s.message())),
    };
    parts
        .connected
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(url = %url, device = %welcome.device_name, "session up");
    parts.telemetry.ack(welcome.telemetry_acked_seq);
    let heartbeat = Duration::from_secs(u64::from(welcome.heartbeat_seconds.max(1)));

    let session_stop = stop.child_token();
    let _guard = session_stop.clone().drop_guard();
    for _ in 0..welcome.warm_tunnels.min(crate::tunnel::WARM_MAX) {
        tokio::spawn(super::tunnel::warm(
            client.clone(),
            Arc::clone(&parts.tunnel_target),
            crate::tunnel::Limits::default(),
            session_stop.clone(),
            stop.clone(),
        ));
    }
    let up = {
        let t = parts.telemetry.clone();
        let mut c = client.clone();
        let s = session_stop.clone();
        tokio::spawn(async move { t.upload(&mut c, &s).await })
    };
    let mut last_status = status;
    let mut beat = tokio::time::interval(heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    let mut report = tokio::time::interval(Duration::from_secs(2));
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut up = up;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = &mut up => {
                return match r {
                    Ok(Err(s)) => Err(format!("telemetry upload: {}", s.message())),
                    _ => Err("telemetry upload stopped".into()),
                };
            }
            _ = beat.tick() => {
                let now = crate::clock::now_ms();
                if tx.send(msg(pb::agent_message::Msg::Heartbeat(pb::Heartbeat { unix_ms: now }))).await.is_err() {
                    return Err("session closed".into());
                }
            }
            _ = report.tick() => {
                let mut s = (parts.status)();
                s.telemetry_dropped_total = parts.telemetry.dropped_total();
                if s != last_status {
                    last_status = s.clone();
                    if tx.send(msg(pb::agent_message::Msg::Status(s))).await.is_err() {
                        return Err("session closed".into());
                    }
                }
            }
            m = inbound.message() => {
                let m = match m {
                    Ok(Some(m)) => m,
                    Ok(None) => return Ok(()),
                    Err(s) => return Err(format!("{url}: {}", s.message())),
                };
                match m.msg {
                    Some(pb::control_message::Msg::Bundle(d)) => {
                        tracing::info!(name = %d.name, version = d.version, "bundle from the control plane");
                        let (rtx, rrx) = oneshot::channel();
                        if parts.offers.send((d, rtx)).await.is_err() {
                            return Err("the node stopped".into());
                        }
                        let Ok(mut result) = rrx.await else {
                            return Err("the node stopped".into());
                        };
                        let mut s = (parts.status)();
                        s.telemetry_dropped_total = parts.telemetry.dropped_total();
                        last_status = s.clone();
                        result.status = Some(s);
                        if tx.send(msg(pb::agent_message::Msg::BundleResult(result))).await.is_err() {
                            return Err("session closed".into());
                        }
                    }
                    Some(pb::control_message::Msg::TelemetryAck(a)) => parts.telemetry.ack(a.acked_seq),
                    Some(pb::control_message::Msg::Command(c)) => {
                        let (ok, message) = match c.kind.as_str() {
                            "report" => {
                                let mut s = (parts.status)();
                                s.telemetry_dropped_total = parts.telemetry.dropped_total();
                                last_status = s.clone();
                                let _ = tx.send(msg(pb::agent_message::Msg::Status(s))).await;
                                (true, "status sent".to_owned())
                            }
                            other => (false, format!("unknown command {other:?}")),
                        };
                        let _ = tx.send(msg(pb::agent_message::Msg::CommandResult(pb::CommandResult { id: c.id, ok, message }))).await;
                    }
                    Some(pb::control_message::Msg::TunnelOpen(t)) => {
                        tokio::spawn(super::tunnel::open(
                            client.clone(),
                            t,
                            Arc::clone(&parts.tunnel_target),
                            crate::tunnel::Limits::default(),
                            stop.child_token(),
                        ));
                    }
                    Some(pb::control_message::Msg::Welcome(_)) | None => {}
                }
            }
        }
    }
}
