//! Control plane and dial-home end to end, in process over loopback TLS:
//! agents on simulated Pi 5s enrol with one-time tokens, a bundle
//! applied at the control plane reaches every node and converges
//! (desired = current), tokens and roles are checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::fleet::{admin, bundle_record, control_plane, enrol_token, start_agent, until};
use onprem::proto::v1 as pb;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_apply_and_every_node_converges() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let mut addrs = Vec::new();
    for n in ["pi-a", "pi-b", "pi-c"] {
        let t = enrol_token(&cp, &[("board", "pi5")]);
        addrs.push(start_agent(&cp, dir.path(), n, &t, &stop).await);
    }
    until("three devices online", Duration::from_secs(20), || {
        let d = cp.core.devices();
        (d.len() == 3 && d.iter().all(|d| d.online)).then_some(())
    })
    .await;

    let who = admin(&cp);
    let doc = pb::Document {
        source: "fans.yaml".into(),
        text: bundle_record("fans", "{matchLabels: {board: pi5}}", ""),
    };
    let r = cp
        .core
        .apply(&who, std::slice::from_ref(&doc), false)
        .unwrap();
    assert!(r.applied, "{:?}", r.results);
    assert_eq!(r.results[0].outcome, "created");
    let version = cp.core.rollouts()[0].version;
    assert!(version > 0);
    until("every device converged", Duration::from_secs(30), || {
        let d = cp.core.devices();
        d.iter()
            .all(|d| {
                d.device.desired_version == version
                    && d.device.current.version == version
                    && !d.device.tainted
            })
            .then_some(())
    })
    .await;
    until("the rollout complete", Duration::from_secs(10), || {
        (cp.core.rollouts()[0].phase == "Complete").then_some(())
    })
    .await;
    // Applying the same record again changes nothing.
    let again = cp.core.apply(&who, &[doc], false).unwrap();
    assert_eq!(again.results[0].outcome, "unchanged");
    assert_eq!(cp.core.rollouts()[0].version, version);
    // The device shows its facts (once its bundle's hardware is up, its
    // board's: a Pi 5) and the bundle's conditions.
    let d = until("pi-a to report its board", Duration::from_secs(10), || {
        cp.core
            .device("pi-a")
            .filter(|d| d.device.facts.model == "Raspberry Pi 5 Model B Rev 1.0")
    })
    .await;
    assert_eq!(d.device.facts.manufacturer, "Raspberry Pi");
    assert_eq!(d.device.facts.arch, "aarch64");
    assert_eq!(d.device.labels["arch"], "aarch64", "the arch label follows");
    assert!(
        d.device
            .conditions
            .iter()
            .any(|c| c.kind == "Loop/fans" && c.status == "True"),
        "{:?}",
        d.device.conditions
    );
    // The agent's own /metrics shows the session and its buffer.
    let addr = addrs[0];
    let m = tokio::task::spawn_blocking(move || {
        onprem::httpc::Client::new(addr)
            .get("/metrics", &[])
            .unwrap()
            .text()
    })
    .await
    .unwrap();
    assert!(m.contains("\nonprem_dialhome_connected 1\n"), "{m}");
    assert!(
        m.contains("\nonprem_telemetry_dropped_samples_total 0\n"),
        "{m}"
    );
    assert!(m.contains("\nonprem_telemetry_buffered_samples "), "{m}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_tokens_are_one_time_and_roles_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let t = enrol_token(&cp, &[]);
    let facts = onprem::dialhome::identity::facts(Path::new("/"));
    let trust = onprem::dialhome::identity::CaTrust::Fingerprint(cp.ca_fingerprint.clone());
    onprem::dialhome::identity::enrol(&cp.url(), &t, &trust, "n1", facts.clone())
        .await
        .unwrap();
    let again = onprem::dialhome::identity::enrol(&cp.url(), &t, &trust, "n2", facts.clone())
        .await
        .unwrap_err();
    assert!(again.to_string().contains("was used already"), "{again}");
    let unknown = onprem::dialhome::identity::enrol(
        &cp.url(),
        "onpe_aaaaaaaaaaaaaaaaaaaa_x",
        &trust,
        "n3",
        facts.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        unknown.to_string().contains("unknown enrolment token"),
        "{unknown}"
    );
    let expired = cp
        .core
        .create_token(
            &admin(&cp),
            &pb::CreateTokenRequest {
                r#type: "enrol".into(),
                ttl_seconds: 1,
                ..Default::default()
            },
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e =
        onprem::dialhome::identity::enrol(&cp.url(), &expired.token, &trust, "n4", facts.clone())
            .await
            .unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    // A wrong CA pin is refused before any token is sent.
    let wrong =
        onprem::dialhome::identity::CaTrust::Fingerprint(format!("sha256:{}", "0".repeat(64)));
    let t2 = enrol_token(&cp, &[]);
    let e = onprem::dialhome::identity::enrol(&cp.url(), &t2, &wrong, "n5", facts)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("fingerprint"), "{e}");

    // Roles: a viewer reads but cannot apply or make tokens.
    let v = cp
        .core
        .create_token(
            &admin(&cp),
            &pb::CreateTokenRequest {
                role: "viewer".into(),
                user: "val".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let viewer = cp.core.authenticate(Some(&v.token)).unwrap();
    let doc = pb::Document {
        source: "f".into(),
        text: "apiVersion: onprem/v1\nkind: Facility\nmetadata: {name: lab}\n".into(),
    };
    let e = cp
        .core
        .apply(&viewer, std::slice::from_ref(&doc), false)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "apply needs the operator role; the token of user \"val\" has viewer"
    );
    assert!(
        cp.core
            .create_token(&viewer, &pb::CreateTokenRequest::default())
            .is_err()
    );
    assert!(
        cp.core
            .get(
                &viewer,
                &pb::GetRequest {
                    kind: "devices".into(),
                    ..Default::default()
                }
            )
            .is_ok()
    );
    assert!(
        cp.core
            .authenticate(Some("onp_aaaaaaaaaaaaaaaaaaaa_nope"))
            .is_err()
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_record_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let good = "apiVersion: onprem/v1\nkind: Facility\nmetadata: {name: lab}\n";
    let bad = bundle_record("b", "{matchLabels: {board: pi5}}", "").replacen(
        "period: 1s",
        "period: 5x",
        1,
    );
    let r = cp
        .core
        .apply(
            &admin(&cp),
            &[
                pb::Document {
                    source: "a.yaml".into(),
                    text: good.into(),
                },
                pb::Document {
                    source: "b.yaml".into(),
                    text: bad,
                },
            ],
            false,
        )
        .unwrap();
    assert!(!r.applied);
    let invalid: Vec<_> = r
        .results
        .iter()
        .filter(|x| x.outcome == "invalid")
        .collect();
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0].source, "b.yaml");
    assert!(
        invalid[0]
            .errors
            .iter()
            .any(|e| e.path == "spec.fans.period"),
        "{:?}",
        invalid[0].errors
    );
    assert!(
        cp.core
            .objects(onprem::controlplane::store::Kind::Facility)
            .unwrap()
            .is_empty()
    );
    stop.cancel();
}
