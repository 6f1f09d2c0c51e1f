//! Compiles proto/polaris/v1 without a system protoc: protox parses the files into a descriptor set, which
//! tonic-prost-build turns into Rust, and which is written to OUT_DIR for server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = ["common", "clusters", "topics", "users", "drift", "operations", "events", "policies", "audit"]
        .map(|f| root.join(format!("polaris/v1/{f}.proto")));
    let fds = protox::compile(&files, [&root])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("polaris_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::PolarisCodec")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
