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

/// What [`http1`] got: the status, the head's lines, the body.
#[derive(Debug)]
pub struct Http1 {
    /// The status code.
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    /// The body (as far as `content-length` says).
    pub body: String,
}

/// One HTTP/1.1 request over TLS to the control plane, written as it is
/// given (`method`, `path`, extra header lines), read up to its body's
/// `content-length`; the connection is left as the server leaves it.
pub async fn http1(cp: &Handle, method: &str, path: &str, headers: &[&str]) -> Http1 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tls = onprem::pki::client_config(&cp.ca_pem, None).unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(cp.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(name, tcp)
        .await
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("content-length: 0\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    let status = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    return Http1 { status, head, body };
                }
            }
            let n = s.read(&mut chunk).await.unwrap_or(0);
            assert!(
                n > 0,
                "the connection closed mid-answer: {}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("an answer within 60 s")
}
