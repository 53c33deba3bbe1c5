//! Compiles `weft/v1/*.proto` with protox (pure Rust, no system protoc) into tonic/prost code.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "weft/v1/types.proto",
        "weft/v1/northbound.proto",
        "weft/v1/southbound.proto",
        "weft/v1/agent.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    // The descriptor set for gRPC server reflection (grpcurl without the .proto files).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("weft_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
