//! The fleet API over gRPC: a thin layer over [`Core`]; the token comes
//! in the `authorization` metadata and is checked by [`authenticate`]
//! before the request's body is decoded (a call without a good token is
//! UNAUTHENTICATED whatever it carries).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::Principal;
use super::core::Core;
use crate::proto::v1 as pb;
use crate::proto::v1::fleet_server::Fleet as FleetApi;

/// The service.
#[derive(Debug, Clone)]
pub struct Fleet {
    core: Arc<Core>,
}

impl Fleet {
    /// Over `core`.
    pub fn new(core: Arc<Core>) -> Fleet {
        Fleet { core }
    }

    /// The caller, as [`authenticate`] found it (or, for a service
    /// without it, from the metadata).
    fn who<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        if let Some(p) = req.extensions().get::<Principal>() {
            return Ok(p.clone());
        }
        Ok(self.core.authenticate(bearer(req))?)
    }

    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Core) -> Result<R, super::core::ApiError> + Send + 'static,
    ) -> Result<R, Status> {
        let core = Arc::clone(&self.core);
        tokio::task::spawn_blocking(move || f(&core))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Status::from)
    }
}

fn bearer<T>(req: &Request<T>) -> Option<&str> {
    req.metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
}

/// The interceptor that authenticates every fleet call from its metadata
/// before its body is read, and hands the [`Principal`] to the handler.
pub fn authenticate(
    core: Arc<Core>,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut req: Request<()>| {
        let p = core.authenticate(bearer(&req))?;
        req.extensions_mut().insert(p);
        Ok(req)
    }
}

fn json(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

type TunnelStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::TunnelFrame, Status>> + Send>>;

fn metadata<T>(req: &Request<T>, key: &str) -> Option<String> {
    req.metadata()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tonic::async_trait]
impl FleetApi for Fleet {
    type TunnelStream = TunnelStream;

    async fn tunnel(
        &self,
        req: Request<tonic::Streaming<pb::TunnelFrame>>,
    ) -> Result<Response<Self::TunnelStream>, Status> {
        let p = self.who(&req)?;
        let device = metadata(&req, crate::tunnel::DEVICE).ok_or_else(|| {
            Status::invalid_argument(format!(
                "{}: the device name is missing",
                crate::tunnel::DEVICE
            ))
        })?;
        let port = metadata(&req, crate::tunnel::PORT)
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                Status::invalid_argument(format!("{}: not a port (1-65535)", crate::tunnel::PORT))
            })?;
        let to_user = self
            .core
            .tunnel_open(p, device, port, req.into_inner())
            .await?;
        Ok(Response::new(Box::pin(to_user)))
    }

    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let p = self.who(&req)?;
        Ok(Response::new(pb::WhoAmIResponse {
            user: p.user,
            role: p.role.to_string(),
            token_id: p.token_id,
            version: crate::VERSION.into(),
            commit: crate::GIT_COMMIT.into(),
        }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let p = self.who(&req)?;
        let r = req.into_inner();
        let kind = r.kind.clone();
        let v = self.blocking(move |c| c.get(&p, &r)).await?;
        Ok(Response::new(pb::GetResponse {
            kind,
            items_json: json(&v),
        }))
    }

    async fn describe(
        &self,
        req: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        let _p = self.who(&req)?;
        let r = req.into_inner();
        let v = self.blocking(move |c| c.describe(&r.kind, &r.name)).await?;
        Ok(Response::new(pb::DescribeResponse { json: json(&v) }))
    }

    async fn apply(
        &self,
        req: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let p = self.who(&req)?;
        let r = req.into_inner();
        let resp = self
            .blocking(move |c| c.apply(&p, &r.documents, r.dry_run))
            .await?;
        Ok(Response::new(resp))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let p = self.who(&req)?;
        let r = req.into_inner();
        let deleted = self
            .blocking(move |c| c.delete(&p, &r.kind, &r.name))
            .await?;
        Ok(Response::new(pb::DeleteResponse { deleted }))
    }

    async fn ack(&self, req: Request<pb::AckRequest>) -> Result<Response<pb::AckResponse>, Status> {
        let p = self.who(&req)?;
        let r = req.into_inner();
        self.blocking(move |c| c.ack(&p, &r.id, &r.comment)).await?;
        Ok(Response::new(pb::AckResponse { acked: true }))
    }

    async fn create_token(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let p = self.who(&req)?;
        let r = req.into_inner();
        let resp = self.blocking(move |c| c.create_token(&p, &r)).await?;
        Ok(Response::new(resp))
    }
}
