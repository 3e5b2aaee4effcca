//! An agent of the tests' own over the real protocol: enrolled with a
//! one-time token, holding a session over mutual TLS with heartbeats every
//! second, answering each bundle as the test says, reporting the status the
//! test gives, going offline and coming back on demand, and opening its end
//! of the tunnels it is asked for (to ports on this machine's loopback). It
//! lets a test put the control plane in states a simulated node reaches
//! only by chance (a loop in fail-safe, a rollback with nothing to roll
//! back to).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use onprem::controlplane::Handle;
use onprem::dialhome::identity::{self, CaTrust, Identity};
use onprem::proto::v1 as pb;
use pb::agent_message::Msg;
use tokio_util::sync::CancellationToken;

/// How a fake agent answers a bundle: its result, which carries the
/// status it reports with it.
pub type Answer = Arc<dyn Fn(&pb::BundleDelivery) -> pb::BundleResult + Send + Sync>;

/// A loop's condition as an agent reports it: `("fans", "False",
/// "Failsafe")`.
pub type LoopState<'a> = (&'a str, &'a str, &'a str);

/// A status: running `d`'s version, the `Bundle` condition `bundle`
/// (status, reason) and `loops`.
pub fn status(d: &pb::BundleDelivery, bundle: (&str, &str), loops: &[LoopState<'_>]) -> pb::Status {
    let mut conditions = vec![pb::Condition {
        r#type: "Bundle".into(),
        status: bundle.0.into(),
        reason: bundle.1.into(),
        message: format!("{} {}", bundle.1, d.version),
        observed_version: d.version,
        ..Default::default()
    }];
    for (name, status, reason) in loops {
        conditions.push(pb::Condition {
            r#type: format!("Loop/{name}"),
            status: (*status).into(),
            reason: (*reason).into(),
            message: if *status == "True" {
                String::new()
            } else {
                format!("{name} {reason}")
            },
            observed_version: d.version,
            ..Default::default()
        });
    }
    pb::Status {
        bundle_name: d.name.clone(),
        bundle_version: d.version,
        bundle_digest: d.digest.clone(),
        bundle_source: "control-plane".into(),
        conditions,
        ..Default::default()
    }
}

/// Applies every bundle; its loops report `loops`.
pub fn applies(loops: &'static [LoopState<'static>]) -> Answer {
    Arc::new(move |d| pb::BundleResult {
        version: d.version,
        digest: d.digest.clone(),
        outcome: pb::Outcome::Applied as i32,
        message: String::new(),
        status: Some(status(d, ("True", "Applied"), loops)),
    })
}

/// Fails every bundle with nothing to roll back to: it keeps running the
/// new version as it can, with its fans loop not ready.
pub fn rolls_back_with_nothing_to_roll_back_to() -> Answer {
    Arc::new(|d| pb::BundleResult {
        version: d.version,
        digest: d.digest.clone(),
        outcome: pb::Outcome::RolledBack as i32,
        message: format!(
            "bundle {} version {} failed to apply: fans: SensorMissing; nothing to roll back to: it keeps running as it can",
            d.name, d.version
        ),
        status: Some(status(
            d,
            ("False", "RolledBack"),
            &[
                ("fans", "False", "SensorMissing"),
                ("power", "True", "Reconciled"),
            ],
        )),
    })
}

/// A fake agent.
pub struct FakeAgent {
    /// Its name.
    pub name: String,
    url: String,
    id: Identity,
    deliveries: Arc<Mutex<Vec<pb::BundleDelivery>>>,
    beats: Arc<std::sync::atomic::AtomicU64>,
    gate: Option<Arc<tokio::sync::Semaphore>>,
    session: Option<(
        CancellationToken,
        tokio::sync::mpsc::Sender<pb::AgentMessage>,
    )>,
}

impl FakeAgent {
    /// Enrols `name` with `token`; no session yet.
    pub async fn enrol(cp: &Handle, token: &str, name: &str) -> FakeAgent {
        let trust = CaTrust::Fingerprint(cp.ca_fingerprint.clone());
        let id = identity::enrol(&cp.url(), token, &trust, name, facts(name))
            .await
            .unwrap();
        FakeAgent {
            name: name.into(),
            url: cp.url(),
            id,
            deliveries: Arc::default(),
            beats: Arc::default(),
            gate: None,
            session: None,
        }
    }

    /// Enrols and connects; it answers each bundle only once the test
    /// adds a permit to `gate` (what it got is recorded at once).
    pub async fn start_gated(
        cp: &Handle,
        token: &str,
        name: &str,
        answer: Answer,
        gate: Arc<tokio::sync::Semaphore>,
    ) -> FakeAgent {
        let mut a = FakeAgent::enrol(cp, token, name).await;
        a.gate = Some(gate);
        a.connect(answer).await;
        a
    }

    /// Heartbeats it sent.
    pub fn beats(&self) -> u64 {
        self.beats.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Enrols and connects.
    pub async fn start(cp: &Handle, token: &str, name: &str, answer: Answer) -> FakeAgent {
        let mut a = FakeAgent::enrol(cp, token, name).await;
        a.connect(answer).await;
        a
    }

    /// The bundles it was sent.
    pub fn deliveries(&self) -> Vec<pb::BundleDelivery> {
        self.deliveries.lock().unwrap().clone()
    }

    /// Opens its session (Hello, then heartbeats every second), answering
    /// bundles with `answer`.
    pub async fn connect(&mut self, answer: Answer) {
        self.disconnect();
        let ch = onprem::dialhome::connect::channel(
            &self.url,
            self.id.tls().unwrap(),
            Duration::from_secs(20),
        )
        .unwrap();
        let mut client = pb::agent_service_client::AgentServiceClient::new(ch);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let send = |m: Msg| pb::AgentMessage { msg: Some(m) };
        // What it ran before, if anything: the last answer's status.
        let last = self
            .deliveries()
            .last()
            .map(|d| answer(d).status.unwrap_or_default())
            .unwrap_or_default();
        tx.send(send(Msg::Hello(pb::Hello {
            facts: Some(facts(&self.name)),
            status: Some(last),
        })))
        .await
        .unwrap();
        let mut inbound = client
            .session(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        match inbound.message().await.unwrap().and_then(|m| m.msg) {
            Some(pb::control_message::Msg::Welcome(_)) => {}
            other => panic!("{}: no Welcome but {other:?}", self.name),
        }
        let stop = CancellationToken::new();
        let (deliveries, stop2, tx2) = (Arc::clone(&self.deliveries), stop.clone(), tx.clone());
        let (beats, gate) = (Arc::clone(&self.beats), self.gate.clone());
        tokio::spawn(async move {
            let client = client;
            let tx = tx2;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = stop2.cancelled() => return,
                    _ = tick.tick() => {
                        let hb = send(Msg::Heartbeat(pb::Heartbeat {
                            unix_ms: onprem::controlplane::core::now_ms(),
                        }));
                        if tx.send(hb).await.is_err() {
                            return;
                        }
                        beats.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    m = inbound.message() => {
                        let Ok(Some(m)) = m else { return };
                        if let Some(pb::control_message::Msg::TunnelOpen(t)) = &m.msg {
                            // Its end of a tunnel: the port on this
                            // machine's loopback, as an agent's would be.
                            tokio::spawn(onprem::dialhome::tunnel::open(
                                client.clone(),
                                t.clone(),
                                Arc::new(|port| {
                                    Ok(onprem::dialhome::tunnel::Target::Tcp(
                                        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                                    ))
                                }),
                                onprem::tunnel::Limits::default(),
                                stop2.child_token(),
                            ));
                        }
                        if let Some(pb::control_message::Msg::Bundle(d)) = m.msg {
                            let r = answer(&d);
                            deliveries.lock().unwrap().push(d);
                            if let Some(g) = &gate {
                                g.acquire().await.unwrap().forget();
                            }
                            if tx.send(send(Msg::BundleResult(r))).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        self.session = Some((stop, tx));
    }

    /// Reports `s` as its status now.
    pub async fn report(&self, s: pb::Status) {
        let (_, tx) = self.session.as_ref().expect("connected");
        tx.send(pb::AgentMessage {
            msg: Some(Msg::Status(s)),
        })
        .await
        .unwrap();
    }

    /// Ends its session (the control plane sees it go offline).
    pub fn disconnect(&mut self) {
        if let Some((stop, _)) = self.session.take() {
            stop.cancel();
        }
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.disconnect();
    }
}

fn facts(name: &str) -> pb::HardwareFacts {
    pb::HardwareFacts {
        hostname: name.into(),
        model: "fake agent".into(),
        ..Default::default()
    }
}
