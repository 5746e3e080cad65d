//! Generates the Rust code for `proto/` with a vendored `protoc`, so a fresh machine needs no protoc.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "feast/types/value.proto",
    "features/v1/features.proto",
    "models/v1/models.proto",
    "inference/v1/inference.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    // prost-build finds protoc through PROTOC. A build script is single-threaded, so setting the
    // variable cannot race another thread's read of the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };

    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("descriptor.bin"))
        .compile_protos(&files, &[root, include])?;
    Ok(())
}
