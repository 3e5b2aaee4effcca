//! The gRPC contract (`proto/onprem/v1/`), compiled by `build.rs`.

/// `onprem.v1`: agent ↔ control plane, and the fleet API.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("onprem.v1");
}
