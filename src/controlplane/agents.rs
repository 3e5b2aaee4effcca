//! The agent-facing gRPC service: `Enrol`, `Session`, `Upload`.
//!
//! Enrolment needs no client certificate (it is how an agent gets one);
//! the session and uploads need the certificate the control plane
//! issued, and a device that still exists.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status, Streaming};

use super::core::Core;
use super::server::Peer;
use crate::proto::v1 as pb;
use crate::proto::v1::agent_service_server::AgentService;

/// The service.
#[derive(Debug, Clone)]
pub struct Agents {
    core: Arc<Core>,
}

impl Agents {
    /// Over `core`.
    pub fn new(core: Arc<Core>) -> Agents {
        Agents { core }
    }

    fn device<T>(&self, req: &Request<T>) -> Result<(String, String), Status> {
        let peer = req.extensions().get::<Peer>().cloned().unwrap_or_default();
        let fp = peer.fingerprint.ok_or_else(|| {
            Status::unauthenticated(
                "no client certificate: enrol first (`onprem agent --enrol-token`)",
            )
        })?;
        let id = self.core.device_by_fingerprint(&fp).ok_or_else(|| {
            Status::unauthenticated(
                "this client certificate belongs to no device (deleted?): enrol again",
            )
        })?;
        Ok((id, peer.addr))
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<pb::ControlMessage, Status>> + Send>>;
type SessionTunnel = Pin<Box<dyn Stream<Item = Result<pb::TunnelFrame, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for Agents {
    type TunnelStream = SessionTunnel;

    async fn tunnel(
        &self,
        req: Request<Streaming<pb::TunnelFrame>>,
    ) -> Result<Response<Self::TunnelStream>, Status> {
        let (id, _) = self.device(&req)?;
        let md = |k: &str| {
            req.metadata()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if md(crate::tunnel::WARM).is_some() {
            let warm = self.core.tunnel_warm(&id, req.into_inner());
            return Ok(Response::new(Box::pin(warm)));
        }
        let tunnel = md(crate::tunnel::TUNNEL_ID).ok_or_else(|| {
            Status::invalid_argument(format!(
                "{}: the tunnel id is missing",
                crate::tunnel::TUNNEL_ID
            ))
        })?;
        let refused = md(crate::tunnel::REFUSED);
        match self
            .core
            .tunnel_attach(&id, &tunnel, refused, req.into_inner())
            .await?
        {
            Some(to_agent) => Ok(Response::new(Box::pin(to_agent))),
            // Refused: an empty answer (the user learns why).
            None => Ok(Response::new(Box::pin(tokio_stream::empty()))),
        }
    }

    async fn enrol(
        &self,
        req: Request<pb::EnrolRequest>,
    ) -> Result<Response<pb::EnrolResponse>, Status> {
        let peer = req.extensions().get::<Peer>().cloned().unwrap_or_default();
        let core = Arc::clone(&self.core);
        let body = req.into_inner();
        let r = tokio::task::spawn_blocking(move || core.enrol(&body, &peer.addr))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        match r {
            Ok(resp) => {
                tracing::info!(device = %resp.device_name, id = %resp.device_id, "device enrolled");
                Ok(Response::new(resp))
            }
            Err(e) => {
                tracing::warn!(error = %e, "enrolment refused");
                Err(e.into())
            }
        }
    }

    type SessionStream = SessionStream;

    async fn session(
        &self,
        req: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let (id, addr) = self.device(&req)?;
        let mut inbound = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let (welcome, epoch) = self.core.connect(&id, tx.clone(), &addr)?;
        tx.try_send(Ok(welcome))
            .map_err(|_| Status::internal("cannot start the session"))?;
        let core = Arc::clone(&self.core);
        tokio::spawn(async move {
            loop {
                match inbound.next().await {
                    Some(Ok(msg)) => {
                        let c = Arc::clone(&core);
                        let id2 = id.clone();
                        // The store is synchronous: keep it off the runtime's
                        // threads.
                        if tokio::task::spawn_blocking(move || c.on_message(&id2, msg))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::debug!(device = %id, error = %e, "session stream error");
                        break;
                    }
                    None => break,
                }
            }
            core.disconnect(&id, epoch);
        });
        let out = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(out)))
    }

    async fn upload(
        &self,
        req: Request<pb::TelemetryBatch>,
    ) -> Result<Response<pb::TelemetryAck>, Status> {
        let (id, _) = self.device(&req)?;
        let batch = req.into_inner();
        if batch.samples.len() > 10_000 {
            return Err(Status::invalid_argument("samples: at most 10000 per batch"));
        }
        let core = Arc::clone(&self.core);
        let acked = tokio::task::spawn_blocking(move || core.upload(&id, batch))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(pb::TelemetryAck { acked_seq: acked }))
    }
}
