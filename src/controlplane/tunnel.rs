//! The tunnel broker: `Fleet/Tunnel` (a user's forwarded connection) meets
//! `AgentService/Tunnel` (the agent's end, opened over its own outbound
//! connection when asked on its session), and the two streams are
//! spliced ([`crate::tunnel::splice`]).
//!
//! A tunnel opens only for a user whose role is operator or admin, to a
//! device online, to a port the device's running bundle (as this control
//! plane delivered it) lists in `spec.tunnel.allowedPorts`; the agent
//! checks its own bundle again. Every open, refusal and close (with bytes
//! each way, duration and how it ended) is written to the audit log. A
//! tunnel lives no longer than the user's token: revoking it, or its
//! expiry, closes every tunnel it opened ([`Core::token_ended`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tonic::{Status, Streaming};

use super::auth::{Principal, Role};
use super::core::{ApiError, Core, audit};
use crate::proto::v1 as pb;
use crate::tunnel::{Spliced, TunnelFrame};

/// How long the agent has to open its end.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

/// The stream the control plane answers the agent's call with.
pub type ToAgent = crate::tunnel::Spliced<Streaming<TunnelFrame>>;

/// How many warm tunnel streams each agent keeps open ([`pb::Welcome`]):
/// a new connection takes one and skips the round trip of asking the
/// agent on its session; two cover a client that opens a pair at once
/// while the agent replaces them.
pub const WARM_TUNNELS: u32 = 2;
pub use crate::tunnel::WARM_MAX;

/// A warm stream: the agent's frames, and where to send the tunnel it
/// is given (its `open` frame and the spliced frames from the user).
struct Warm {
    from_agent: Streaming<TunnelFrame>,
    tx: oneshot::Sender<(pb::TunnelOpen, ToAgent)>,
}

/// The control plane's answer on a warm stream: nothing until a tunnel
/// takes it, then the `open` frame, then the user's frames.
pub enum WarmBody {
    /// Waiting for a tunnel.
    Waiting(oneshot::Receiver<(pb::TunnelOpen, ToAgent)>),
    /// Carrying one.
    Open(Box<ToAgent>),
    /// Given up without a tunnel.
    Done,
}

impl tokio_stream::Stream for WarmBody {
    type Item = Result<TunnelFrame, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::future::Future as _;
        use std::task::Poll;
        let this = &mut *self;
        match this {
            WarmBody::Open(to) => std::pin::Pin::new(&mut **to).poll_next(cx),
            WarmBody::Done => Poll::Ready(None),
            WarmBody::Waiting(rx) => match std::pin::Pin::new(rx).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok((open, to))) => {
                    *this = WarmBody::Open(Box::new(to));
                    Poll::Ready(Some(Ok(TunnelFrame {
                        open: Some(open),
                        ..TunnelFrame::default()
                    })))
                }
                Poll::Ready(Err(_)) => {
                    *this = WarmBody::Done;
                    Poll::Ready(None)
                }
            },
        }
    }
}

/// What the agent answered.
pub enum Attach {
    /// Its end: frames from it, and where to hand the stream that answers
    /// it.
    Stream(Box<Streaming<TunnelFrame>>, oneshot::Sender<ToAgent>),
    /// Why it will not.
    Refused(String),
}

struct Pending {
    device_id: String,
    tx: oneshot::Sender<Attach>,
}

/// Tunnels waiting for their agent; counters for `/metrics`.
#[derive(Default)]
pub struct Broker {
    pending: Mutex<HashMap<String, Pending>>,
    /// Allowed ports per bundle revision (parsed once).
    ports: Mutex<HashMap<u64, Vec<u16>>>,
    /// Warm streams per device id, oldest first.
    warm: Mutex<HashMap<String, Vec<Warm>>>,
    /// Tunnels opened on a warm stream since start.
    pub opened_warm_total: AtomicU64,
    /// Tunnels open now.
    pub open: AtomicU64,
    /// Tunnels opened since start.
    pub opened_total: AtomicU64,
    /// Tunnels refused since start.
    pub refused_total: AtomicU64,
    /// Bytes from users to devices.
    pub bytes_to_devices: AtomicU64,
    /// Bytes from devices to users.
    pub bytes_from_devices: AtomicU64,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("open", &self.open.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Broker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn warm_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Warm>>> {
        self.warm.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a warm stream of `device_id`'s; returns the answer to it.
    fn add_warm(&self, device_id: &str, from_agent: Streaming<TunnelFrame>) -> WarmBody {
        let (tx, rx) = oneshot::channel();
        let mut pool = self.warm_lock();
        let ends = pool.entry(device_id.to_owned()).or_default();
        // A stream whose call went away (its answer was dropped) is gone.
        ends.retain(|w| !w.tx.is_closed());
        if ends.len() >= WARM_MAX as usize {
            ends.remove(0);
        }
        ends.push(Warm { from_agent, tx });
        WarmBody::Waiting(rx)
    }

    /// The newest live warm stream of `device_id`'s, if any.
    fn take_warm(&self, device_id: &str) -> Option<Warm> {
        let mut pool = self.warm_lock();
        let ends = pool.get_mut(device_id)?;
        let taken = loop {
            match ends.pop() {
                Some(w) if w.tx.is_closed() => continue,
                other => break other,
            }
        };
        if ends.is_empty() {
            pool.remove(device_id);
        }
        taken
    }

    /// Warm streams kept now, all devices.
    pub fn warm_count(&self) -> usize {
        self.warm_lock()
            .values()
            .map(|v| v.iter().filter(|w| !w.tx.is_closed()).count())
            .sum()
    }
}

/// The ports a bundle revision allows.
fn allowed_ports(text: &str) -> Vec<u16> {
    crate::bundle::parse(text)
        .map(|b| b.spec.tunnel.allowed_ports)
        .unwrap_or_default()
}

impl Core {
    /// Audits a tunnel event: written with the next flush, within a
    /// second, so that opening a tunnel never waits on a disk write.
    fn audit_now(&self, who: &Principal, action: &str, target: &str, detail: &str) {
        self.queue_audit(audit(who, action, target, detail));
    }

    /// Checks that `who` may open a tunnel to `port` on `device`; returns
    /// the device's id. Refusals are audited. The allowed ports of a
    /// revision are read from the store once, and only with `read_store`
    /// (a blocking read); without it, a revision not read yet gives
    /// `Ok(None)`.
    pub fn tunnel_check(
        &self,
        who: &Principal,
        device: &str,
        port: u16,
        read_store: bool,
    ) -> Result<Option<String>, ApiError> {
        let target = format!("Device/{device}:{port}");
        let refuse = |e: ApiError| {
            self.tunnels.refused_total.fetch_add(1, Ordering::Relaxed);
            self.audit_now(who, "tunnel.refused", &target, &e.to_string());
            tracing::warn!(user = %who.user, device, port, error = %e, "tunnel refused");
            e
        };
        if let Err(why) = who.require(Role::Operator, "opening tunnels") {
            return Err(refuse(ApiError::Forbidden(why)));
        }
        let Some(d) = self.device(device) else {
            return Err(refuse(ApiError::NotFound(format!("no device {device:?}"))));
        };
        let running = &d.device.current;
        // What it runs from this control plane (also after an agent
        // restart, from its last-known-good copy); a local file override
        // is not a bundle this control plane vouches for.
        if running.version == 0 || running.source.starts_with("file:") {
            return Err(refuse(ApiError::Forbidden(format!(
                "device {device} runs no bundle from this control plane, so no port is allowed (spec.tunnel.allowedPorts)"
            ))));
        }
        let cached = self
            .tunnels
            .ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&running.version)
            .cloned();
        let allowed = match cached {
            Some(p) => p,
            None if !read_store => return Ok(None),
            None => {
                let p = match self.revision(running.version)? {
                    Some(r) => allowed_ports(&r.text),
                    None => Vec::new(),
                };
                self.tunnels
                    .ports
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(running.version, p.clone());
                p
            }
        };
        if !allowed.contains(&port) {
            return Err(refuse(ApiError::Forbidden(format!(
                "port {port} is not in spec.tunnel.allowedPorts of device {device}'s bundle {}@{} ({})",
                running.name,
                running.version,
                if allowed.is_empty() {
                    "none allowed".to_owned()
                } else {
                    allowed
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ))));
        }
        if !d.online {
            return Err(refuse(ApiError::Unavailable(format!(
                "device {device} is offline"
            ))));
        }
        Ok(Some(d.device.id.clone()))
    }

    /// `Fleet/Tunnel`: asks the agent to open its end, waits for it,
    /// splices; returns the stream towards the user.
    pub async fn tunnel_open(
        self: &std::sync::Arc<Self>,
        who: Principal,
        device: String,
        port: u16,
        from_user: Streaming<TunnelFrame>,
    ) -> Result<Spliced<Streaming<TunnelFrame>>, Status> {
        // The check reads the store only for a revision it has not seen
        // yet; otherwise it runs here, without a hand-off to a blocking
        // thread on the way of every new connection.
        let device_id = match self.tunnel_check(&who, &device, port, false)? {
            Some(id) => id,
            None => {
                let core = std::sync::Arc::clone(self);
                let (w, d) = (who.clone(), device.clone());
                tokio::task::spawn_blocking(move || core.tunnel_check(&w, &d, port, true))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))??
                    .ok_or_else(|| Status::internal("the tunnel check read no revision"))?
            }
        };
        let id = format!("tun-{}", super::id::new());
        let target = format!("Device/{device}:{port}");
        if let Some(w) = self.tunnels.take_warm(&device_id) {
            let open = pb::TunnelOpen {
                id: id.clone(),
                port: u32::from(port),
            };
            let (to_user, stats) = self
                .open_warm(&who, &device, &target, open, from_user, w)
                .await?;
            self.tunnels
                .opened_warm_total
                .fetch_add(1, Ordering::Relaxed);
            return Ok(self.opened(who, device, port, id, target, to_user, stats));
        }
        let (tx, rx) = oneshot::channel();
        self.tunnels.lock().insert(
            id.clone(),
            Pending {
                device_id: device_id.clone(),
                tx,
            },
        );
        let ask = pb::ControlMessage {
            msg: Some(pb::control_message::Msg::TunnelOpen(pb::TunnelOpen {
                id: id.clone(),
                port: u32::from(port),
            })),
        };
        if !self.send_to_agent(&device_id, ask, ATTACH_TIMEOUT).await {
            self.tunnels.lock().remove(&id);
            return Err(Status::unavailable(format!("device {device} is offline")));
        }
        let attach = match tokio::time::timeout(ATTACH_TIMEOUT, rx).await {
            Ok(Ok(a)) => a,
            _ => {
                self.tunnels.lock().remove(&id);
                self.tunnels.refused_total.fetch_add(1, Ordering::Relaxed);
                self.audit_now(
                    &who,
                    "tunnel.refused",
                    &target,
                    "the agent did not open its end",
                );
                return Err(Status::unavailable(format!(
                    "device {device} did not open its end of the tunnel within {} s",
                    ATTACH_TIMEOUT.as_secs()
                )));
            }
        };
        let (from_agent, answer) = match attach {
            Attach::Stream(s, o) => (s, o),
            Attach::Refused(why) => {
                self.tunnels.refused_total.fetch_add(1, Ordering::Relaxed);
                self.audit_now(
                    &who,
                    "tunnel.refused",
                    &target,
                    &format!("the agent: {why}"),
                );
                return Err(Status::failed_precondition(format!(
                    "device {device} refused the tunnel: {why}"
                )));
            }
        };
        let (to_user, to_agent, stats) =
            crate::tunnel::splice(from_user, *from_agent, self.settings.tunnel);
        if answer.send(to_agent).is_err() {
            return Err(Status::unavailable(format!(
                "device {device}'s end of the tunnel went away"
            )));
        }
        Ok(self.opened(who, device, port, id, target, to_user, stats))
    }

    /// Opens a tunnel on a warm stream: sends the agent the `open` frame
    /// with the user's frames behind it at once, and waits for the
    /// agent's first frame (connected, or why not) before answering the
    /// user. The user's bytes are on their way meanwhile, so the open
    /// costs no round trip of its own.
    async fn open_warm(
        &self,
        who: &Principal,
        device: &str,
        target: &str,
        open: pb::TunnelOpen,
        from_user: Streaming<TunnelFrame>,
        w: Warm,
    ) -> Result<
        (
            Spliced<Streaming<TunnelFrame>>,
            oneshot::Receiver<crate::tunnel::Stats>,
        ),
        Status,
    > {
        use tokio_stream::StreamExt as _;
        let gone = |why: &str| {
            Status::unavailable(format!(
                "device {device}'s end of the tunnel went away{why}"
            ))
        };
        let (mut to_user, to_agent, stats) =
            crate::tunnel::splice(from_user, w.from_agent, self.settings.tunnel);
        if w.tx.send((open, to_agent)).is_err() {
            return Err(gone(""));
        }
        let why = match tokio::time::timeout(ATTACH_TIMEOUT, to_user.next()).await {
            Ok(Some(Ok(f))) if f.open.is_some() => return Ok((to_user, stats)),
            Ok(Some(Ok(f))) if !f.refused.is_empty() => f.refused,
            Ok(Some(Ok(_))) => "its first frame neither opened nor refused the tunnel".to_owned(),
            Ok(Some(Err(s))) => return Err(gone(&format!(": {}", s.message()))),
            Ok(None) => return Err(gone("")),
            Err(_) => "it did not open its end in time".to_owned(),
        };
        self.tunnels.refused_total.fetch_add(1, Ordering::Relaxed);
        self.audit_now(who, "tunnel.refused", target, &format!("the agent: {why}"));
        Err(Status::failed_precondition(format!(
            "device {device} refused the tunnel: {why}"
        )))
    }

    /// Counts, audits and logs an opened tunnel, and its close once its
    /// stats arrive; returns the stream towards the user.
    #[allow(clippy::too_many_arguments)]
    fn opened(
        self: &std::sync::Arc<Self>,
        who: Principal,
        device: String,
        port: u16,
        id: String,
        target: String,
        to_user: Spliced<Streaming<TunnelFrame>>,
        stats: oneshot::Receiver<crate::tunnel::Stats>,
    ) -> Spliced<Streaming<TunnelFrame>> {
        self.tunnels.opened_total.fetch_add(1, Ordering::Relaxed);
        self.tunnels.open.fetch_add(1, Ordering::Relaxed);
        self.audit_now(&who, "tunnel.open", &target, &format!("tunnel {id}"));
        tracing::debug!(user = %who.user, device = %device, port, tunnel = %id, "tunnel open");
        let core = std::sync::Arc::clone(self);
        // The tunnel lives no longer than its user's token: revoked or
        // expired, it ends (both ways, audited with why).
        let ender = to_user.ender();
        let token_ended = self.token_ended(&who);
        tokio::spawn(async move {
            let started = Instant::now();
            let mut stats = stats;
            let stats = tokio::select! {
                s = &mut stats => s,
                why = token_ended => {
                    tracing::info!(user = %who.user, device = %device, port, tunnel = %id, "{why}: closing the tunnel");
                    ender.end(why);
                    stats.await
                }
            };
            let Ok(stats) = stats else { return };
            let t = &core.tunnels;
            t.open.fetch_sub(1, Ordering::Relaxed);
            t.bytes_to_devices.fetch_add(stats.sent, Ordering::Relaxed);
            t.bytes_from_devices
                .fetch_add(stats.received, Ordering::Relaxed);
            let detail = format!(
                "tunnel {id}: {}; {} bytes to the device, {} from it, {:.1} s",
                stats.end,
                stats.sent,
                stats.received,
                started.elapsed().as_secs_f64()
            );
            tracing::info!(user = %who.user, device = %device, port, "{detail}");
            core.audit_now(&who, "tunnel.close", &target, &detail);
        });
        to_user
    }

    /// `AgentService/Tunnel` with `x-onprem-warm`: keeps the agent's
    /// stream for the next tunnel to its device; returns the answer.
    pub fn tunnel_warm(&self, device_id: &str, from_agent: Streaming<TunnelFrame>) -> WarmBody {
        self.tunnels.add_warm(device_id, from_agent)
    }

    /// `AgentService/Tunnel`: the agent `device_id` opens (or refuses)
    /// tunnel `id`; returns the stream towards the agent.
    pub async fn tunnel_attach(
        &self,
        device_id: &str,
        id: &str,
        refused: Option<String>,
        from_agent: Streaming<TunnelFrame>,
    ) -> Result<Option<ToAgent>, Status> {
        let p = {
            let mut pending = self.tunnels.lock();
            match pending.get(id) {
                None => {
                    return Err(Status::not_found(format!(
                        "no tunnel {id} is waiting (timed out?)"
                    )));
                }
                Some(p) if p.device_id != device_id => {
                    return Err(Status::permission_denied(format!(
                        "tunnel {id} is not this device's"
                    )));
                }
                Some(_) => pending.remove(id),
            }
        };
        let Some(p) = p else {
            return Err(Status::not_found(format!("no tunnel {id} is waiting")));
        };
        let Some(why) = refused else {
            let (tx, rx) = oneshot::channel();
            if p.tx.send(Attach::Stream(Box::new(from_agent), tx)).is_err() {
                return Err(Status::cancelled("the user's end went away"));
            }
            return rx
                .await
                .map(Some)
                .map_err(|_| Status::cancelled("the user's end went away"));
        };
        if p.tx.send(Attach::Refused(why)).is_err() {
            return Err(Status::cancelled("the user's end went away"));
        }
        Ok(None)
    }

    /// Tunnel series for the fleet `/metrics` (Prometheus text).
    pub fn tunnel_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let t = &self.tunnels;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP onprem_cp_tunnels_open Tunnels (forwarded connections) open now.\n# TYPE onprem_cp_tunnels_open gauge\nonprem_cp_tunnels_open {}",
            load(&t.open)
        );
        let _ = writeln!(
            out,
            "# HELP onprem_cp_tunnels_opened_total Tunnels opened.\n# TYPE onprem_cp_tunnels_opened_total counter\nonprem_cp_tunnels_opened_total {}",
            load(&t.opened_total)
        );
        let _ = writeln!(
            out,
            "# HELP onprem_cp_tunnels_opened_warm_total Tunnels opened on a stream the agent kept warm (no round trip to ask it).\n# TYPE onprem_cp_tunnels_opened_warm_total counter\nonprem_cp_tunnels_opened_warm_total {}",
            load(&t.opened_warm_total)
        );
        let _ = writeln!(
            out,
            "# HELP onprem_cp_tunnel_warm_streams Warm tunnel streams the agents keep open now.\n# TYPE onprem_cp_tunnel_warm_streams gauge\nonprem_cp_tunnel_warm_streams {}",
            t.warm_count()
        );
        let _ = writeln!(
            out,
            "# HELP onprem_cp_tunnels_refused_total Tunnels refused (role, port not allowed, device offline or refusing).\n# TYPE onprem_cp_tunnels_refused_total counter\nonprem_cp_tunnels_refused_total {}",
            load(&t.refused_total)
        );
        let _ = writeln!(
            out,
            "# HELP onprem_cp_tunnel_bytes_total Bytes through tunnels.\n# TYPE onprem_cp_tunnel_bytes_total counter\nonprem_cp_tunnel_bytes_total{{direction=\"to_device\"}} {}\nonprem_cp_tunnel_bytes_total{{direction=\"from_device\"}} {}",
            load(&t.bytes_to_devices),
            load(&t.bytes_from_devices)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_ports_come_from_the_bundle() {
        let text = "apiVersion: onprem/v1\nkind: Bundle\nmetadata: { name: x }\nspec:\n  tunnel: { allowedPorts: [8443, 22] }\n";
        assert_eq!(allowed_ports(text), vec![8443, 22]);
        assert!(allowed_ports("not: [a bundle").is_empty());
    }
}
