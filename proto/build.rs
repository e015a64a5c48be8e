//! Generates the `inventory.v1` code with a pure-Rust protobuf compiler (`protox`): no system
//! `protoc`. Also writes the file descriptor set that server reflection serves.

use std::path::PathBuf;

const FILES: &[&str] = &[
    "inventory/v1/common.proto",
    "inventory/v1/inventory.proto",
    "inventory/v1/orders.proto",
    "inventory/v1/alerts.proto",
    "inventory/v1/reports.proto",
    "inventory/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let fds = protox::compile(FILES, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("inventory_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
