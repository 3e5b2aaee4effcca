//! The reverse tunnel end to end: a control plane and an agent on
//! simulated hardware in this process, `onprem port-forward` as a real
//! CLI process, and TCP servers on the node's side. Bytes in equal bytes
//! out (large transfers, many streams at once), half-closes, refusals
//! (port not allowed, a viewer) in the audit log, and unmodified Redfish
//! clients through the tunnel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::fleet::{admin, bundle_record, control_plane, enrol_token, start_agent, until};
use onprem::proto::v1 as pb;
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const REDFISH_PW: &str = "tunnel-admin-pw";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Echoes every byte back, then closes after the client's EOF.
async fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

/// Reads to EOF (the client's half-close), then answers with the byte
/// count and SHA-256 of what it read, and closes.
async fn digest_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut all = Vec::new();
                let _ = s.read_to_end(&mut all).await;
                let h = sha2::Sha256::digest(&all);
                let reply = format!("{} {}", all.len(), hex(&h));
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn data(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Writes as fast as the connection takes, up to 1 GiB, counting.
async fn firehose_server(written: std::sync::Arc<std::sync::atomic::AtomicU64>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let written = std::sync::Arc::clone(&written);
            tokio::spawn(async move {
                let chunk = vec![0x5au8; 64 * 1024];
                for _ in 0..(1 << 14) {
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                    written.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    port
}

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap()
        * 1024
}

struct Forward {
    child: Child,
    locals: Vec<SocketAddr>,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn onprem(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_onprem"))
        .args(args)
        .env("ONPREM_CONFIG", config)
        .env_remove("ONPREM_TOKEN")
        .output()
        .unwrap()
}

/// `onprem port-forward device/NAME PORTS…`, waiting for its
/// "Forwarding from" lines.
fn port_forward(config: &Path, device: &str, ports: &[String]) -> Forward {
    let mut child = Command::new(env!("CARGO_BIN_EXE_onprem"))
        .arg("port-forward")
        .arg(format!("device/{device}"))
        .args(ports)
        .env("ONPREM_CONFIG", config)
        .env_remove("ONPREM_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (etx, erx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[port-forward] {l}");
            let _ = etx.send(l);
        }
    });
    let mut locals = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    while locals.len() < ports.len() {
        let l = lines.next().expect("port-forward exited").unwrap();
        let addr = l
            .strip_prefix("Forwarding from ")
            .and_then(|r| r.split(" -> ").next())
            .unwrap_or_else(|| panic!("unexpected line {l:?}"));
        locals.push(addr.parse().unwrap());
    }
    Forward {
        child,
        locals,
        stderr: erx,
    }
}

struct Fleet {
    firehose: u16,
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
    cp: onprem::controlplane::Handle,
    dir: tempfile::TempDir,
    agent: SocketAddr,
    config: PathBuf,
    echo: u16,
    digest: u16,
    redfish: u16,
    /// Allowed, but nothing listens on it.
    dead: u16,
    /// Holds `dead`: bound, not listening, so that connections to it are
    /// refused and no other socket (a `port-forward` listener on port 0)
    /// can take it, which would loop a tunnel into itself.
    _dead_hold: tokio::net::TcpSocket,
    _stop: tokio_util::sync::DropGuard,
}

/// A control plane, one agent (`node`) whose bundle allows the echo and
/// digest servers' ports and its Redfish port, and a CLI logged in as
/// admin.
async fn fleet() -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let echo = echo_server().await;
    let digest = digest_server().await;
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let firehose = firehose_server(std::sync::Arc::clone(&written)).await;
    let redfish = free_port();
    let dead_hold = tokio::net::TcpSocket::new_v4().unwrap();
    dead_hold.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = dead_hold.local_addr().unwrap().port();
    let hash = onprem::redfish::auth::hash_password(REDFISH_PW).unwrap();
    let extra = format!(
        "  tunnel: {{ allowedPorts: [{echo}, {digest}, {redfish}, {firehose}, {dead}] }}\n  redfish:\n    listen: 127.0.0.1:{redfish}\n    accounts: [{{ userName: admin, role: Administrator, passwordHash: '{hash}' }}]\n"
    );
    let record = bundle_record("tunnelled", "{matchLabels: {role: tunnel}}", &extra);
    let r = cp
        .core
        .apply(
            &admin(&cp),
            &[pb::Document {
                source: "t.yaml".into(),
                text: record,
            }],
            false,
        )
        .unwrap();
    assert!(r.applied, "{r:?}");
    let token = enrol_token(&cp, &[("role", "tunnel")]);
    let agent = start_agent(&cp, dir.path(), "node", &token, &stop).await;
    until("the node converged", Duration::from_secs(30), || {
        cp.core
            .device("node")
            .filter(|d| d.online && d.converged && d.device.current.version > 0)
    })
    .await;
    let config = dir.path().join("cli.yaml");
    let out = onprem(
        &config,
        &[
            "login",
            &cp.url(),
            "--token",
            cp.admin_token.as_deref().unwrap(),
            "--ca-fingerprint",
            &cp.ca_fingerprint,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    Fleet {
        firehose,
        written,
        cp,
        dir,
        agent,
        config,
        echo,
        digest,
        redfish,
        dead,
        _dead_hold: dead_hold,
        _stop: stop.drop_guard(),
    }
}

fn audit(f: &Fleet) -> Vec<String> {
    f.cp.core
        .get(
            &admin(&f.cp),
            &pb::GetRequest {
                kind: "audit".into(),
                ..Default::default()
            },
        )
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["action"].as_str().unwrap_or(""),
                e["target"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_through_equal_bytes_out_with_half_closes_and_many_streams() {
    let f = fleet().await;
    let fwd = tokio::task::spawn_blocking({
        let (config, e, d) = (f.config.clone(), f.echo, f.digest);
        move || port_forward(&config, "node", &[format!(":{e}"), format!(":{d}")])
    })
    .await
    .unwrap();
    let (echo, digest) = (fwd.locals[0], fwd.locals[1]);

    // A large transfer both ways at once through the echo server.
    let big = data(16 << 20, 1);
    let s = TcpStream::connect(echo).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let sent = big.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), big.len());
    assert!(back == big, "16 MiB echoed with a difference");

    // Half-close: the server answers only after our EOF.
    let mut s = TcpStream::connect(digest).await.unwrap();
    let payload = data(3 << 20, 2);
    s.write_all(&payload).await.unwrap();
    s.shutdown().await.unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    assert_eq!(
        reply,
        format!("{} {}", payload.len(), hex(&sha2::Sha256::digest(&payload)))
    );

    // Many streams at once, each its own bytes.
    let mut tasks = Vec::new();
    for i in 0..24u32 {
        tasks.push(tokio::spawn(async move {
            let payload = data(256 << 10, 100 + i);
            let mut s = TcpStream::connect(digest).await.unwrap();
            s.write_all(&payload).await.unwrap();
            s.shutdown().await.unwrap();
            let mut reply = String::new();
            s.read_to_string(&mut reply).await.unwrap();
            assert_eq!(
                reply,
                format!("{} {}", payload.len(), hex(&sha2::Sha256::digest(&payload))),
                "stream {i}"
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Every tunnel opened and closed in the audit log, with its bytes.
    let log = until("every close audited", Duration::from_secs(10), || {
        let log = audit(&f);
        (log.iter().filter(|l| l.starts_with("tunnel.close")).count() >= 26).then_some(log)
    })
    .await;
    assert_eq!(
        log.iter().filter(|l| l.starts_with("tunnel.open")).count(),
        26
    );
    assert!(
        log.iter().any(|l| l.starts_with("tunnel.close")
            && l.contains(&format!("Device/node:{}", f.echo))
            && l.contains("closed; 16777216 bytes to the device, 16777216 from it")),
        "{log:#?}"
    );
    let m = onprem::controlplane::rest::render_metrics(&f.cp.core);
    assert!(m.contains("onprem_cp_tunnels_opened_total 26\n"), "{m}");
    assert!(m.contains("onprem_cp_tunnels_open 0\n"), "{m}");
    // The agent keeps warm streams: the first connections take them, the
    // rest of the 24 opened at once ask the agent on its session.
    let warm: u64 = metric(&m, "onprem_cp_tunnels_opened_warm_total");
    assert!((2..26).contains(&warm), "{warm} warm of 26:\n{m}");
    until("the warm streams replaced", Duration::from_secs(10), || {
        let m = onprem::controlplane::rest::render_metrics(&f.cp.core);
        (metric(&m, "onprem_cp_tunnel_warm_streams") == 2).then_some(())
    })
    .await;
    drop(fwd);
}

/// The value of an unlabelled series in Prometheus text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// A connection to `local` is closed without a byte.
async fn closed_at_once(local: SocketAddr) {
    let mut s = TcpStream::connect(local).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tunnels_close_at_once_and_are_audited() {
    let f = fleet().await;
    let not_allowed = f.echo.wrapping_add(1).max(1);
    let fwd = tokio::task::spawn_blocking({
        let config = f.config.clone();
        move || port_forward(&config, "node", &[format!(":{not_allowed}")])
    })
    .await
    .unwrap();
    closed_at_once(fwd.locals[0]).await;
    let why = fwd.stderr.recv_timeout(Duration::from_secs(10)).unwrap();
    let why = if why.starts_with("Handling") {
        fwd.stderr.recv_timeout(Duration::from_secs(10)).unwrap()
    } else {
        why
    };
    assert!(why.contains("not in spec.tunnel.allowedPorts"), "{why}");
    drop(fwd);

    // An allowed port where nothing listens: the agent refuses (on a warm
    // stream, or when asked on its session), and the user learns why.
    let fwd = tokio::task::spawn_blocking({
        let config = f.config.clone();
        let dead = f.dead;
        move || port_forward(&config, "node", &[format!(":{dead}")])
    })
    .await
    .unwrap();
    for _ in 0..3 {
        closed_at_once(fwd.locals[0]).await;
        let why = loop {
            let l = fwd.stderr.recv_timeout(Duration::from_secs(10)).unwrap();
            if !l.starts_with("Handling") {
                break l;
            }
        };
        assert!(
            why.contains("refused the tunnel") && why.contains("nothing answers"),
            "{why}"
        );
    }
    drop(fwd);
    let refusals = until(
        "the agent's refusals audited",
        Duration::from_secs(10),
        || {
            let n = audit(&f)
                .iter()
                .filter(|l| {
                    l.starts_with("tunnel.refused")
                        && l.contains(&format!("Device/node:{}", f.dead))
                        && l.contains("the agent: nothing answers")
                })
                .count();
            (n >= 3).then_some(n)
        },
    )
    .await;
    assert_eq!(refusals, 3);

    // A viewer may not open tunnels at all.
    let viewer =
        f.cp.core
            .create_token(
                &admin(&f.cp),
                &pb::CreateTokenRequest {
                    r#type: "api".into(),
                    role: "viewer".into(),
                    user: "vera".into(),
                    ..Default::default()
                },
            )
            .unwrap()
            .token;
    let vconfig = f.dir.path().join("viewer.yaml");
    let out = onprem(
        &vconfig,
        &[
            "login",
            &f.cp.url(),
            "--token",
            &viewer,
            "--ca-fingerprint",
            &f.cp.ca_fingerprint,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let fwd = tokio::task::spawn_blocking({
        let e = f.echo;
        move || port_forward(&vconfig, "node", &[format!(":{e}")])
    })
    .await
    .unwrap();
    closed_at_once(fwd.locals[0]).await;
    let log = until("the refusals audited", Duration::from_secs(10), || {
        let log = audit(&f);
        (log.iter()
            .filter(|l| l.starts_with("tunnel.refused"))
            .count()
            >= 5)
            .then_some(log)
    })
    .await;
    assert!(
        log.iter().any(
            |l| l.contains(&format!("Device/node:{not_allowed}")) && l.contains("allowedPorts")
        ),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("tunnel.refused") && l.contains("operator")),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.starts_with("tunnel.open")),
        "{log:#?}"
    );
    // An unknown device: port-forward does not even listen (exit 6).
    let out = onprem(&f.config, &["port-forward", "device/nope", "8443"]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redfish_clients_work_through_the_tunnel() {
    let f = fleet().await;
    let fwd = tokio::task::spawn_blocking({
        let (config, rf) = (f.config.clone(), f.redfish);
        move || port_forward(&config, "node", &[format!(":{rf}")])
    })
    .await
    .unwrap();
    let local = fwd.locals[0];
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/redfish-venv/bin");
    assert!(
        venv.join("redfishtool").is_file(),
        "run `bash scripts/test.sh` (installs redfishtool and sushy)"
    );
    let out = tokio::task::spawn_blocking({
        let venv = venv.clone();
        move || {
            Command::new(venv.join("redfishtool"))
                .args([
                    "-r",
                    &local.to_string(),
                    "-u",
                    "admin",
                    "-p",
                    REDFISH_PW,
                    "-S",
                    "Always",
                ])
                .args(["Chassis", "-1", "Thermal"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let thermal: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        thermal["Temperatures"][0]["ReadingCelsius"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{text}"
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new(venv.join("python"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redfish/sushy_check.py"))
            .args([
                &format!("https://{local}"),
                "admin",
                REDFISH_PW,
                "GracefulRestart",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "sushy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The reset reached the node's power loop.
    let agent = f.agent;
    let taken = until("the reset recorded", Duration::from_secs(10), || {
        let r = onprem::httpc::Client::new(agent)
            .get("/-/status", &[])
            .ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.text()).ok()?;
        let a = v["hostActions"].as_array()?.clone();
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(taken[0]["kind"], "reboot");
    assert_eq!(taken[0]["why"], "redfish:admin");
    drop(fwd);

    // The same through the CLI alone: curl, reset, describe.
    let rf = f.redfish.to_string();
    let cli = |args: Vec<String>, password: &'static str| {
        let config = f.config.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_onprem"))
                .args(&args)
                .env("ONPREM_CONFIG", &config)
                .env("ONPREM_REDFISH_PASSWORD", password)
                .env_remove("ONPREM_TOKEN")
                .output()
                .unwrap()
        })
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    // `onprem curl` to the node's Redfish port, then `rest`.
    let curl = |rest: &[&str]| {
        let mut args = s(&["curl", "--device", "node", "--port", &rf]);
        args.extend(s(rest));
        cli(args, REDFISH_PW)
    };
    let out = curl(&["/redfish/v1/Systems/1", "-u", "admin"])
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let sys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sys["@odata.id"], "/redfish/v1/Systems/1");
    // A tunnel to the Redfish port is handed to the service inside the
    // agent (no loopback TCP connection): the service names its peer
    // "tunnel" where a TCP client would be 127.0.0.1:PORT.
    let out = curl(&[
        "/redfish/v1/Managers/1/LogServices/Log/Entries",
        "-u",
        "admin",
    ])
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let entries = String::from_utf8_lossy(&out.stdout);
    assert!(
        entries.contains("requested by admin from tunnel"),
        "{entries}"
    );
    let out = curl(&["-f", "/redfish/v1/Systems/1"]).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(22),
        "no credentials: 401, -f exits 22"
    );
    let out = cli(
        s(&[
            "reset",
            "device/node",
            "--type",
            "ForceRestart",
            "--redfish-port",
            &rf,
        ]),
        REDFISH_PW,
    )
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ForceRestart requested"));
    let out = cli(
        s(&[
            "reset",
            "device/node",
            "--type",
            "Explode",
            "--redfish-port",
            &rf,
        ]),
        REDFISH_PW,
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Explode"),
        "{out:?}"
    );
    let out = cli(
        s(&[
            "reset",
            "device/node",
            "--type",
            "On",
            "--redfish-port",
            &rf,
        ]),
        "wrong-password",
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let out = cli(
        s(&[
            "describe",
            "device",
            "node",
            "--redfish",
            "--redfish-port",
            &rf,
        ]),
        REDFISH_PW,
    )
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains(&format!("Redfish (device/node:{rf}")),
        "{text}"
    );
    assert!(text.contains("Resets:        On, ForceOff"), "{text}");
    assert!(text.contains("Temperatures:  cpu temp "), "{text}");
    let taken = until("the CLI's reset recorded", Duration::from_secs(10), || {
        let r = onprem::httpc::Client::new(agent)
            .get("/-/status", &[])
            .ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.text()).ok()?;
        let a = v["hostActions"].as_array()?.clone();
        (a.len() >= 2).then_some(a)
    })
    .await;
    assert_eq!(taken[1]["kind"], "forceReboot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_stops_the_writer_at_the_far_end_and_memory_stays_flat() {
    use std::sync::atomic::Ordering;
    let f = fleet().await;
    let fwd = tokio::task::spawn_blocking({
        let (config, p) = (f.config.clone(), f.firehose);
        move || port_forward(&config, "node", &[format!(":{p}")])
    })
    .await
    .unwrap();
    // The user's end is its own process: its memory is measured alone
    // (the control plane and the agent share this test process with the
    // other tests; the bytes that left the writer bound what they hold).
    let pid = fwd.child.id();
    let before = rss_bytes(pid);
    let mut s = TcpStream::connect(fwd.locals[0]).await.unwrap();
    // Read nothing: the node's writer must stall once the windows fill.
    let stalled = until("the writer to stall", Duration::from_secs(30), || {
        let a = f.written.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(500));
        let b = f.written.load(Ordering::Relaxed);
        (a == b && a > 0).then_some(a)
    })
    .await;
    let grown = rss_bytes(pid).saturating_sub(before);
    eprintln!("stalled after {stalled} bytes written; port-forward grew by {grown} bytes");
    // In flight at most: socket buffers on both ends, the HTTP/2 windows
    // (256 KiB per stream at the control plane, 64 KiB at the clients)
    // and 4 frames of 32 KiB per pump and splice: tens of MiB at the very
    // most against the 1 GiB the writer would send.
    assert!(
        stalled < 48 << 20,
        "{stalled} bytes left the writer with nobody reading"
    );
    assert!(
        grown < 16 << 20,
        "port-forward grew by {grown} bytes while stalled"
    );
    // Reading resumes the flow.
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0usize;
    while got < 24 << 20 {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early");
        assert!(buf[..n].iter().all(|b| *b == 0x5a));
        got += n;
    }
    let after = f.written.load(Ordering::Relaxed);
    assert!(
        after > stalled,
        "the writer went on once read ({stalled} → {after})"
    );
    drop(s);
    drop(fwd);
}
