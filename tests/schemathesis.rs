//! The REST API against its own OpenAPI document, checked by schemathesis
//! (PyPI, pinned in `scripts/test.sh`, in `target/schemathesis-venv`): a
//! real control plane with a device, records and tokens in it, the
//! document it serves, an admin token, and every operation of the
//! document called with generated requests (valid and invalid ones). No
//! answer may be a server error, every status must be one the document
//! gives for the operation, with the content type and body schema it
//! gives, and an operation that needs a token must refuse a request
//! without one. A missing schemathesis fails the test, naming the
//! package; it never skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::fake_agent::{FakeAgent, applies};
use common::fleet::{admin, bundle_record, control_plane, enrol_token, until};
use onprem::proto::v1 as pb;
use tokio_util::sync::CancellationToken;

/// The pinned version `scripts/test.sh` installs.
const VERSION: &str = "4.32.5";

/// Generated requests per operation and phase: the whole run takes
/// seconds, well under two minutes on two cores.
const MAX_EXAMPLES: &str = "25";

/// The checks: no 5xx, statuses, content types and bodies as documented,
/// and no operation that answers without its token.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth";

fn schemathesis() -> PathBuf {
    let bin =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis-venv/bin/schemathesis");
    assert!(
        bin.is_file(),
        "{} is missing: run `bash scripts/test.sh` (it installs schemathesis=={VERSION} from PyPI into target/schemathesis-venv)",
        bin.display()
    );
    bin
}

/// The operations of the served document, `(method, path)`, but the
/// document's own (schemathesis leaves out the URL it loaded).
fn operations(doc: &serde_json::Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path == "/api/v1/openapi.json" {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_the_rest_api_is_what_its_openapi_document_says() {
    let bin = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    // Something to list, describe, delete and acknowledge: a device
    // running a bundle, records, and tokens of each role.
    cp.core
        .apply(
            &admin(&cp),
            &[pb::Document {
                source: "test".into(),
                text: format!(
                    "{}---\napiVersion: onprem/v1\nkind: Facility\nmetadata: {{name: lab}}\nspec: {{}}\n",
                    bundle_record("fans", "{matchLabels: {board: fake}}", "")
                ),
            }],
            false,
        )
        .unwrap();
    let t = enrol_token(&cp, &[("board", "fake")]);
    let _agent = FakeAgent::start(&cp, &t, "fa", applies(&[("fans", "True", "Reconciled")])).await;
    until("fa runs its bundle", Duration::from_secs(60), || {
        cp.core
            .device("fa")
            .filter(|d| d.device.current.version > 0)
            .map(|_| ())
    })
    .await;
    let admin_token = cp.admin_token.clone().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, &cp.ca_pem).unwrap();
    let doc: serde_json::Value = serde_json::from_str(onprem::controlplane::rest::OPENAPI).unwrap();
    let ops = operations(&doc);
    assert!(ops.len() >= 10, "{ops:?}");

    let url = format!("{}/api/v1/openapi.json", cp.url());
    let args: Vec<String> = vec![
        "run".into(),
        url,
        "--tls-verify".into(),
        ca.display().to_string(),
        "--header".into(),
        format!("Authorization: Bearer {admin_token}"),
        "--checks".into(),
        CHECKS.into(),
        "--max-examples".into(),
        MAX_EXAMPLES.into(),
        // Reproducible: the same requests every run.
        "--seed".into(),
        "1".into(),
        "--generation-database".into(),
        "none".into(),
        "--workers".into(),
        "2".into(),
        "--request-timeout".into(),
        "30".into(),
        "--no-color".into(),
    ];
    // Its report folder goes into the test's directory.
    let cwd = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&bin)
            .args(&args)
            .current_dir(&cwd)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains(&format!("Schemathesis v{VERSION}")),
        "not schemathesis {VERSION} (run `bash scripts/test.sh`):\n{stdout}\n{stderr}"
    );
    assert!(
        out.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Every operation of the document was called: the run did not pass
    // by testing nothing.
    let tested = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok());
    assert_eq!(tested, Some(ops.len()), "{ops:?}\n{stdout}");
    assert!(!stdout.contains(" 0 generated"), "{stdout}");
    stop.cancel();
}
