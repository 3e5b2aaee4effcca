//! Helpers for the control-plane tests: a control plane in this process,
//! its admin, enrolment tokens, agents on simulated hardware that dial it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use onprem::agent::{self, Flags};
use onprem::controlplane::{self, Handle, auth::Principal};
use onprem::proto::v1 as pb;
use tokio_util::sync::CancellationToken;

/// A control plane on a free loopback port in `dir/cp`, heartbeats every
/// second.
pub async fn control_plane(dir: &Path, stop: &CancellationToken) -> Handle {
    let mut o = controlplane::Options::for_tests(dir.join("cp"));
    o.heartbeat_seconds = 1;
    controlplane::start(o, stop.clone()).await.unwrap()
}

/// The first admin.
pub fn admin(cp: &Handle) -> Principal {
    cp.core
        .authenticate(Some(&format!(
            "Bearer {}",
            cp.admin_token.as_deref().unwrap()
        )))
        .unwrap()
}

/// A one-time enrolment token giving `labels`.
pub fn enrol_token(cp: &Handle, labels: &[(&str, &str)]) -> String {
    cp.core
        .create_token(
            &admin(cp),
            &pb::CreateTokenRequest {
                r#type: "enrol".into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
                ..Default::default()
            },
        )
        .unwrap()
        .token
}

/// A Bundle record for the control plane: the pi5-fan-curve example under
/// `name`, selecting `selector`, with `extra` lines added to its spec.
pub fn bundle_record(name: &str, selector: &str, extra: &str) -> String {
    let text = onprem::bundle::examples::EXAMPLES
        .iter()
        .find(|(n, _)| *n == "pi5-fan-curve")
        .map(|(_, t)| *t)
        .unwrap();
    let text = text.replacen("name: pi5-fan-curve", &format!("name: {name}"), 1);
    text.replacen(
        "spec:\n",
        &format!("spec:\n  selector: {selector}\n{extra}"),
        1,
    )
}

/// A whole agent on simulated hardware in this process, state in
/// `dir/name`, enrolling with `token`; its `/metrics` address.
pub async fn start_agent(
    cp: &Handle,
    dir: &Path,
    name: &str,
    token: &str,
    stop: &CancellationToken,
) -> SocketAddr {
    let flags = Flags {
        listen_address: Some("127.0.0.1:0".into()),
        hardware: Some("sim".into()),
        state_dir: Some(dir.join(name)),
        control_plane: Some(cp.url()),
        enrol_token: Some(token.into()),
        ca_fingerprint: Some(cp.ca_fingerprint.clone()),
        device_name: Some(name.into()),
        ..Default::default()
    };
    let mut file = agent::config::File::default();
    file.collectors.disable_defaults = true;
    file.collectors.enable = vec!["devices".into(), "loops".into()];
    let config = flags.apply(&mut file, None).unwrap();
    let a = agent::Agent::bind_config(None, config).await.unwrap();
    let addr = a.local_addr();
    tokio::spawn(a.run(stop.child_token()));
    addr
}

/// Waits until `f` gives a value, up to `limit`.
pub async fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
