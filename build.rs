//! Compiles the gRPC contract in `proto/` with protox (a pure-Rust
//! protobuf compiler), so that no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/onprem/v1/agent.proto", "proto/onprem/v1/fleet.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Clients run over our own channel (`dialhome::connect`), not
        // tonic's.
        .build_transport(false)
        // Small initial buffers per call (`proto::Codec`).
        .codec_path("crate::proto::Codec")
        // A tunnel frame's bytes are a slice of the received buffer, not
        // a copy of it.
        .bytes(".onprem.v1.TunnelFrame.data")
        .compile_fds(fds)?;
    Ok(())
}
