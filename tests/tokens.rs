//! API tokens end what they hold, and the control plane never loses its
//! last admin: a real control plane in this process, a fake agent that
//! opens its end of tunnels to an echo server, tunnels opened as
//! `onprem port-forward` opens them, and the real CLI (`watch`, `token
//! revoke`, `login`, `control-plane admin-token`) as child processes.
//!
//! - A token revoked, or one that expires, closes its tunnels (both ends,
//!   audited with why) and its watches (the CLI exits 4 saying why); the
//!   tunnels of other tokens carry on.
//! - The last valid admin token is never revoked (409, gRPC
//!   FAILED_PRECONDITION, exit 7, saying what to do); with no valid admin
//!   token left, `onprem control-plane admin-token` makes one with the
//!   control plane stopped, and refuses while it runs.
//! - A token given as an argument (`login --token`, `agent
//!   --enrol-token`) is warned about, naming the safer ways.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::cli::{expect, onprem, onprem_stdin};
use common::fake_agent::{FakeAgent, applies};
use common::fleet::{admin, bundle_record, control_plane, enrol_token, http1, until};
use onprem::controlplane::auth::Principal;
use onprem::controlplane::core::ApiError;
use onprem::controlplane::{self, Handle, pki};
use onprem::proto::v1 as pb;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long any one condition may take to come true.
const LIMIT: Duration = Duration::from_secs(60);

/// Echoes every byte back until the client closes.
async fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

/// A fake agent `fa` running a bundle that allows tunnels to an echo
/// server; the echo server's port.
async fn fleet_with_echo(cp: &Handle) -> (FakeAgent, u16) {
    let echo = echo_server().await;
    let record = bundle_record(
        "echo",
        "{matchLabels: {board: fake}}",
        &format!("  tunnel:\n    allowedPorts: [{echo}]\n"),
    );
    cp.core
        .apply(
            &admin(cp),
            &[pb::Document {
                source: "test".into(),
                text: record,
            }],
            false,
        )
        .unwrap();
    let t = enrol_token(cp, &[("board", "fake")]);
    let agent = FakeAgent::start(cp, &t, "fa", applies(&[("fans", "True", "Reconciled")])).await;
    until("fa runs the bundle", LIMIT, || {
        cp.core
            .device("fa")
            .filter(|d| d.online && d.device.current.version > 0)
            .map(|_| ())
    })
    .await;
    (agent, echo)
}

/// A new API token, made by the first admin: `(id, token)`.
fn token(cp: &Handle, role: &str, user: &str, ttl_seconds: u64) -> (String, String) {
    token_by(
        cp,
        cp.admin_token.as_deref().unwrap(),
        role,
        user,
        ttl_seconds,
    )
}

/// A new API token, made by the holder of `creator`: `(id, token)`.
fn token_by(
    cp: &Handle,
    creator: &str,
    role: &str,
    user: &str,
    ttl_seconds: u64,
) -> (String, String) {
    let r = cp
        .core
        .create_token(
            &cp.core.authenticate(Some(creator)).unwrap(),
            &pb::CreateTokenRequest {
                r#type: "api".into(),
                role: role.into(),
                user: user.into(),
                ttl_seconds,
                ..Default::default()
            },
        )
        .unwrap();
    (r.id, r.token)
}

/// One tunnel to `port` on `fa` as `token`, as `onprem port-forward`
/// opens one: the local socket, and how the tunnel ended once it does.
async fn tunnel(
    cp: &Handle,
    token: &str,
    port: u16,
) -> (
    TcpStream,
    tokio::task::JoinHandle<Result<onprem::tunnel::Stats, tonic::Status>>,
) {
    let tls = pki::client_config(&cp.ca_pem, None).unwrap();
    let ch = onprem::dialhome::connect::channel(&cp.url(), Arc::new(tls), Duration::from_secs(10))
        .unwrap();
    let client = pb::fleet_client::FleetClient::new(ch);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mine = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (theirs, _) = l.accept().await.unwrap();
    let token = token.to_owned();
    let task = tokio::spawn(onprem::cli::tunnel::forward_one(
        client,
        token,
        "fa".into(),
        port,
        theirs,
    ));
    (mine, task)
}

/// Sends `what` through the tunnel and reads it back.
async fn echoes(s: &mut TcpStream, what: &[u8]) {
    s.write_all(what).await.unwrap();
    let mut got = vec![0u8; what.len()];
    tokio::time::timeout(LIMIT, s.read_exact(&mut got))
        .await
        .expect("the echo within the limit")
        .unwrap();
    assert_eq!(got, what);
}

/// Waits until the tunnel's local socket is closed (end of file or a
/// reset), and returns how the tunnel ended.
async fn closed(
    mut s: TcpStream,
    task: tokio::task::JoinHandle<Result<onprem::tunnel::Stats, tonic::Status>>,
) -> onprem::tunnel::Stats {
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(LIMIT, s.read(&mut buf))
        .await
        .expect("the tunnel closed within the limit");
    assert!(matches!(n, Ok(0) | Err(_)), "still open: {n:?}");
    tokio::time::timeout(LIMIT, task)
        .await
        .expect("the tunnel ended within the limit")
        .unwrap()
        .expect("the tunnel opened")
}

/// Logs `token` in with a config file of its own, the token on standard
/// input.
async fn login(dir: &Path, cp: &Handle, name: &str, token: &str) -> PathBuf {
    let config = dir.join(format!("{name}.yaml"));
    let url = cp.url();
    let r = onprem_stdin(
        &config,
        &[
            "login",
            &url,
            "--token-file",
            "-",
            "--ca-fingerprint",
            &cp.ca_fingerprint,
        ],
        token,
    )
    .await;
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(!r.stderr.contains("warning"), "{r:#?}");
    config
}

/// `onprem watch devices` as `config`'s user, until it exits; its lines
/// on standard output as they come.
struct Watch {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Watch {
    fn start(config: &Path) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_onprem"))
            .args(["watch", "devices"])
            .env("ONPREM_CONFIG", config)
            .env_remove("ONPREM_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Watch { child, lines: rx }
    }

    /// Waits for a line containing `needle`.
    fn line(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("watch printed no line with {needle:?}"),
            }
        }
    }

    /// Waits for it to exit: its code and standard error.
    async fn exit(mut self) -> (i32, String) {
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + LIMIT;
            let status = loop {
                if let Some(s) = self.child.try_wait().unwrap() {
                    break s;
                }
                if std::time::Instant::now() > deadline {
                    let _ = self.child.kill();
                    panic!("watch did not exit within {LIMIT:?}");
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let mut err = String::new();
            std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut err)
                .unwrap();
            (status.code().unwrap_or(-1), err)
        })
        .await
        .unwrap()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The audit log's entries with `action` and `detail`, once the control
/// plane wrote `min` of them (tunnel events are written with its next
/// flush).
async fn audited(cp: &Handle, action: &str, detail: &str, min: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        cp.core.flush().unwrap();
        let found: Vec<String> = cp
            .core
            .store()
            .audit(1000)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == action && e.detail.contains(detail))
            .map(|e| format!("{} {} {} {}", e.actor, e.action, e.target, e.detail))
            .collect();
        if found.len() >= min {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {action} entry with {detail:?} in the audit log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- a revoked or expired token ends what it holds ------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_closes_its_tunnels_and_watches_and_no_others() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let (_agent, echo) = fleet_with_echo(&cp).await;
    let (otto_id, otto) = token(&cp, "operator", "otto", 0);
    let (_, olga) = token(&cp, "operator", "olga", 0);

    // Two tunnels and a watch of otto's, a tunnel of olga's; all work.
    let (mut a, a_task) = tunnel(&cp, &otto, echo).await;
    let (mut b, b_task) = tunnel(&cp, &otto, echo).await;
    let (mut c, _c_task) = tunnel(&cp, &olga, echo).await;
    echoes(&mut a, b"first").await;
    echoes(&mut b, b"second").await;
    echoes(&mut c, b"third").await;
    let config = login(dir.path(), &cp, "otto", &otto).await;
    let watch = Watch::start(&config);
    watch.line("fa");

    // Revoked (as `onprem token revoke` does, through delete).
    let admin_config = login(dir.path(), &cp, "admin", cp.admin_token.as_deref().unwrap()).await;
    let r = expect(&admin_config, &["token", "revoke", &otto_id], 0).await;
    assert!(r.stdout.contains(&otto_id), "{r:#?}");

    // Otto's tunnels close, saying why; his watch ends with exit 4.
    for (s, task) in [(a, a_task), (b, b_task)] {
        let stats = closed(s, task).await;
        match &stats.end {
            onprem::tunnel::End::Aborted(why) => {
                assert!(why.contains(&format!("API token {otto_id}")), "{why}");
                assert!(why.contains("was revoked"), "{why}");
            }
            other => panic!("the tunnel ended {other:?}, not for the revocation"),
        }
    }
    let (code, err) = watch.exit().await;
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("revoked"), "{err}");
    // The audit log says why each closed.
    let closes = audited(&cp, "tunnel.close", "was revoked", 2).await;
    assert!(
        closes.iter().all(|c| c.starts_with("user/otto")),
        "{closes:?}"
    );
    // Olga's tunnel carries on; a new one of otto's is refused.
    echoes(&mut c, b"still here").await;
    let (_d, d_task) = tunnel(&cp, &otto, echo).await;
    let refused = tokio::time::timeout(LIMIT, d_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("revoked"), "{refused:?}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_closes_its_tunnels_then() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let (_agent, echo) = fleet_with_echo(&cp).await;
    // Five seconds (the store keeps whole seconds): enough to open the
    // tunnel on a busy machine.
    let (id, t) = token(&cp, "operator", "temp", 5);
    let (mut a, task) = tunnel(&cp, &t, echo).await;
    echoes(&mut a, b"while it lasts").await;
    let stats = closed(a, task).await;
    match &stats.end {
        onprem::tunnel::End::Aborted(why) => {
            assert!(why.contains(&format!("API token {id}")), "{why}");
            assert!(why.contains("expired"), "{why}");
        }
        other => panic!("the tunnel ended {other:?}, not at the expiry"),
    }
    audited(&cp, "tunnel.close", "expired", 1).await;
    stop.cancel();
}

// ---- the last admin token ------------------------------------------------

/// The core's answer to revoking `id` as `who`.
fn revoke(cp: &Handle, who: &str, id: &str) -> Result<bool, ApiError> {
    let p: Principal = cp
        .core
        .authenticate(Some(&format!("Bearer {who}")))
        .unwrap();
    cp.core.revoke_token(&p, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_valid_admin_token_is_never_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let first = cp.admin_token.clone().unwrap();
    let first_id = admin(&cp).token_id;
    // Viewers and operators do not count.
    token(&cp, "viewer", "val", 0);
    token(&cp, "operator", "otto", 0);

    // Its own: refused, saying why and what to do; nothing changed.
    let e = revoke(&cp, &first, &first_id).unwrap_err();
    let ApiError::FailedPrecondition(m) = &e else {
        panic!("{e:?}")
    };
    for needle in [
        "last valid admin token",
        "onprem token create --role admin",
        "onprem control-plane admin-token",
    ] {
        assert!(m.contains(needle), "{m}");
    }
    assert!(!cp.core.tokens().iter().any(|t| t.revoked));
    // The CLI: exit 7 (refused), the message on stderr (over gRPC:
    // FAILED_PRECONDITION).
    let config = login(dir.path(), &cp, "admin", &first).await;
    let r = expect(&config, &["token", "revoke", &first_id], 7).await;
    assert!(r.stderr.contains("last valid admin token"), "{r:#?}");
    // REST: 409, the Error schema.
    let auth = format!("authorization: Bearer {first}");
    let r = http1(
        &cp,
        "DELETE",
        &format!("/api/v1/tokens/{first_id}"),
        &[&auth],
    )
    .await;
    assert_eq!(r.status, 409, "{r:?}");
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["error"]["status"], "Conflict", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last valid admin token"),
        "{body}"
    );

    // An expired admin token is no admin token.
    let (_, brief) = token(&cp, "admin", "brief", 1);
    let brief_expiry = cp
        .core
        .tokens()
        .into_iter()
        .find(|t| t.user == "brief")
        .unwrap()
        .expires;
    until("the brief admin token expired", LIMIT, || {
        (onprem::controlplane::core::now() > brief_expiry).then_some(())
    })
    .await;
    assert!(cp.core.authenticate(Some(&brief)).is_err());
    assert!(matches!(
        revoke(&cp, &first, &first_id),
        Err(ApiError::FailedPrecondition(_))
    ));

    // With a second admin token, either may go; then the other is last.
    let (second_id, second) = token(&cp, "admin", "ada", 0);
    assert_eq!(revoke(&cp, &second, &first_id), Ok(true));
    assert!(matches!(
        revoke(&cp, &second, &second_id),
        Err(ApiError::FailedPrecondition(_))
    ));

    // Two admins revoking each other at once: one wins, one admin stays.
    let (third_id, third) = token_by(&cp, &second, "admin", "bea", 0);
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let runs: Vec<_> = [(second.clone(), third_id.clone()), (third, second_id)]
        .into_iter()
        .map(|(who, target)| {
            let core = Arc::clone(&cp.core);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let p = core.authenticate(Some(&who)).unwrap();
                barrier.wait();
                core.revoke_token(&p, &target)
            })
        })
        .collect();
    let results: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|r| **r == Ok(true)).count(),
        1,
        "{results:?}"
    );
    let now = onprem::controlplane::core::now();
    let admins = cp
        .core
        .tokens()
        .into_iter()
        .filter(|t| onprem::controlplane::core::is_valid_admin(t, now))
        .count();
    assert_eq!(admins, 1);
    stop.cancel();
}

// ---- the way back: an admin token made offline ---------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_admin_token_left_one_is_made_offline_with_the_control_plane_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("cp");
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    // Locked out: the only other admin token expires after the first
    // is revoked.
    let (brief_id, brief) = token(&cp, "admin", "brief", 2);
    let first_id = admin(&cp).token_id;
    assert_eq!(revoke(&cp, &brief, &first_id), Ok(true));
    until("no valid admin token left", LIMIT, || {
        cp.core.authenticate(Some(&brief)).is_err().then_some(())
    })
    .await;
    let state_arg = state.to_str().unwrap();
    let nowhere = dir.path().join("none.yaml");

    // While it runs: refused, saying so and what to do instead.
    let r = onprem(
        &nowhere,
        &["control-plane", "admin-token", "--state-dir", state_arg],
    )
    .await;
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stdout.is_empty(), "{r:#?}");
    assert!(
        r.stderr.contains("in use by another process") && r.stderr.contains("Stop it first"),
        "{r:#?}"
    );

    // Stopped: a new admin token, alone on stdout. As root on a
    // directory of another user's (a systemd DynamicUser's), what it
    // touches stays that user's.
    let fingerprint = cp.ca_fingerprint.clone();
    stop.cancel();
    cp.stop().await;
    let as_root = std::fs::metadata(&state).unwrap().uid() == 0;
    if as_root {
        chown_all(&state, 65534);
    }
    let r = onprem(
        &nowhere,
        &[
            "control-plane",
            "admin-token",
            "--state-dir",
            state_arg,
            "--user",
            "rescue",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:#?}");
    let rescue = r.stdout.trim().to_owned();
    assert!(
        rescue.starts_with("onp_") && r.stdout.lines().count() == 1,
        "{r:#?}"
    );
    assert!(r.stderr.contains("--token-file"), "{r:#?}");
    if as_root {
        let theirs = owned_by_others(&state, 65534);
        assert!(theirs.is_empty(), "not the directory owner's: {theirs:?}");
        chown_all(&state, 0);
    }
    // No database: said so.
    let r = onprem(
        &nowhere,
        &[
            "control-plane",
            "admin-token",
            "--state-dir",
            dir.path().join("empty").to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains("no control plane database"), "{r:#?}");

    // Started again: the token is an admin's, and the audit log says how
    // it came.
    let stop = CancellationToken::new();
    let cp = controlplane::start(
        controlplane::Options::for_tests(state.clone()),
        stop.clone(),
    )
    .await
    .unwrap();
    assert_eq!(cp.ca_fingerprint, fingerprint);
    let who = cp.core.authenticate(Some(&rescue)).unwrap();
    assert_eq!(
        (who.user.as_str(), who.role),
        ("rescue", onprem::controlplane::auth::Role::Admin)
    );
    let created = audited(&cp, "token.create", "offline", 1).await;
    assert!(created[0].starts_with("user/system"), "{created:?}");
    // It works for what an admin does: the expired token, revoked.
    assert_eq!(revoke(&cp, &rescue, &brief_id), Ok(true));
    stop.cancel();
}

/// Gives `dir` and everything in it to `uid`.
fn chown_all(dir: &Path, uid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(uid)).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            chown_all(&p, uid);
        } else {
            std::os::unix::fs::lchown(&p, Some(uid), Some(uid)).unwrap();
        }
    }
}

/// What in `dir` does not belong to `uid`.
fn owned_by_others(dir: &Path, uid: u32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.uid() != uid {
            out.push(p.clone());
        }
        if m.is_dir() {
            out.extend(owned_by_others(&p, uid));
        }
    }
    out
}

// ---- tokens on the command line ------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_given_as_an_argument_is_warned_about_naming_the_safer_ways() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let admin_token = cp.admin_token.clone().unwrap();
    let config = dir.path().join("login.yaml");
    let url = cp.url();
    // `login --token`: works, and warns on stderr.
    let r = expect(
        &config,
        &[
            "login",
            &url,
            "--token",
            &admin_token,
            "--ca-fingerprint",
            &cp.ca_fingerprint,
        ],
        0,
    )
    .await;
    assert!(
        r.stderr
            .contains("warning: --token puts the token on the command line")
            && r.stderr.contains("--token-file")
            && r.stderr.contains("$ONPREM_TOKEN"),
        "{r:#?}"
    );
    // From a file, standard input or the environment: no warning.
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{admin_token}\n")).unwrap();
    let r = expect(
        &config,
        &[
            "login",
            &url,
            "--token-file",
            file.to_str().unwrap(),
            "--ca-fingerprint",
            &cp.ca_fingerprint,
        ],
        0,
    )
    .await;
    assert!(!r.stderr.contains("warning"), "{r:#?}");
    login(dir.path(), &cp, "stdin", &admin_token).await;
    let r = common::cli::onprem_env(
        &config,
        &["login", &url, "--ca-fingerprint", &cp.ca_fingerprint],
        &[("ONPREM_TOKEN", &admin_token)],
    )
    .await;
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(!r.stderr.contains("warning"), "{r:#?}");

    // `token create --enrol` suggests the token on standard input.
    let r = expect(&config, &["token", "create", "--enrol"], 0).await;
    assert!(
        r.stderr.contains("--enrol-token-file - ") && !r.stderr.contains("--enrol-token onpe_"),
        "{r:#?}"
    );

    // `agent --enrol-token`: warned about, naming the file flag.
    let empty = common::fixtures().join("agent-empty.yaml");
    let r = onprem(
        &config,
        &[
            "agent",
            "--config",
            empty.to_str().unwrap(),
            "--check-config",
            "--control-plane",
            &url,
            "--ca-fingerprint",
            &cp.ca_fingerprint,
            "--enrol-token",
            "onpe_x_y",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(
        r.stderr
            .contains("--enrol-token puts the token on the command line")
            && r.stderr.contains("--enrol-token-file"),
        "{r:#?}"
    );
    let r = onprem_stdin(
        &config,
        &[
            "agent",
            "--config",
            empty.to_str().unwrap(),
            "--check-config",
            "--control-plane",
            &url,
            "--ca-fingerprint",
            &cp.ca_fingerprint,
            "--enrol-token-file",
            "-",
        ],
        "onpe_x_y",
    )
    .await;
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(!r.stderr.contains("--enrol-token puts"), "{r:#?}");
    stop.cancel();
}
