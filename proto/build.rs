//! Compiles `runtime/v1/*.proto` with a vendored protoc, so a machine that has
//! only the Rust toolchain can build the workspace.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = ["runtime/v1/runtime.proto"];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("runtime_v1_descriptor.bin"))
        // Stream payloads as `Bytes`: decoding slices the receive buffer
        // instead of copying every chunk.
        .bytes(".")
        .compile_protos(&protos, &["."])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
