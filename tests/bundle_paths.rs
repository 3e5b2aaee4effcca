//! A bundle applies the same way through the control plane as from a
//! file: for every example, what the agent resolves from the control
//! plane's signed revision (hardware with board, description and the
//! provisional acknowledgement; every section) is what it resolves from
//! the example file itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::fleet::{admin, control_plane};
use onprem::bundle::examples::EXAMPLES;
use onprem::proto::v1 as pb;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_resolves_the_same_from_a_file_and_through_a_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let cp = control_plane(dir.path(), &stop).await;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/examples");
    assert!(EXAMPLES.len() >= 9, "{}", EXAMPLES.len());
    for (name, text) in EXAMPLES {
        let from_file =
            onprem::bundle::validate(&onprem::bundle::parse(text).unwrap(), Some(&examples))
                .unwrap_or_else(|e| panic!("{name}: {e}"));

        // The same file as a Bundle record for the devices labelled with
        // its name.
        let record = text.replacen(
            "spec:\n",
            &format!("spec:\n  selector: {{matchLabels: {{example: {name}}}}}\n"),
            1,
        );
        let r = cp
            .core
            .apply(
                &admin(&cp),
                &[pb::Document {
                    source: format!("{name}.yaml"),
                    text: record,
                }],
                false,
            )
            .unwrap();
        assert!(
            r.applied,
            "{name}: {}",
            onprem::cli::fleet::render_refusals(&r)
        );
        let version = cp
            .core
            .rollouts()
            .into_iter()
            .find(|r| r.bundle == *name)
            .unwrap()
            .version;
        let rev = cp.core.revision(version).unwrap().unwrap();
        // What the agent does with a delivery: parse, validate, no
        // profile of its own.
        let delivered = onprem::bundle::validate(&onprem::bundle::parse(&rev.text).unwrap(), None)
            .unwrap_or_else(|e| panic!("{name}: the revision does not validate: {e}"));

        assert_eq!(delivered.hardware, from_file.hardware, "{name}: hardware");
        assert!(
            delivered.bundle.spec.hardware.profile.is_none(),
            "{name}: the revision carries its hardware inline"
        );
        let (a, b) = (&delivered.bundle.spec, &from_file.bundle.spec);
        assert_eq!(a.fans, b.fans, "{name}: fans");
        assert_eq!(a.power, b.power, "{name}: power");
        assert_eq!(a.signals, b.signals, "{name}: signals");
        assert_eq!(a.checks, b.checks, "{name}: checks");
        assert_eq!(a.telemetry, b.telemetry, "{name}: telemetry");
        assert_eq!(a.redfish, b.redfish, "{name}: redfish");
        assert_eq!(a.tunnel, b.tunnel, "{name}: tunnel");
        assert_eq!(delivered.name(), from_file.name());
        assert_eq!(
            delivered.bundle.metadata.labels, from_file.bundle.metadata.labels,
            "{name}: labels"
        );
    }
    stop.cancel();
}
