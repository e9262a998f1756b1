//! Compiles `exchange/v1/*.proto` with protox (pure Rust, no system `protoc`) and generates
//! the tonic/prost code, the proto3 JSON mapping of every message (pbjson, for the HTTP
//! gateway), and the file descriptor set for gRPC reflection.

use std::path::PathBuf;

const PROTOS: &[&str] = &["exchange/v1/common.proto", "exchange/v1/catalog.proto", "exchange/v1/node.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor = prost::Message::encode_to_vec(&fds);
    std::fs::write(out_dir.join("exchange_descriptor.bin"), &descriptor)?;
    tonic_prost_build::configure().compile_fds(fds)?;
    pbjson_build::Builder::new().register_descriptors(&descriptor)?.build(&[".exchange.v1"])?;
    Ok(())
}
