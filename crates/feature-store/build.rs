//! Bundles the snapshot CSVs (`snapshot/*.csv`, one per feature view) into the crate, so the embedded
//! store works from the binary alone. No snapshot folder, or an empty one, bundles nothing.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let snapshot = crate_dir.join("snapshot");
    let mut files = Vec::new();
    if snapshot.is_dir() {
        println!("cargo:rerun-if-changed={}", snapshot.display());
        for entry in std::fs::read_dir(&snapshot)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "csv") {
                println!("cargo:rerun-if-changed={}", path.display());
                files.push(path);
            }
        }
    } else {
        // Rerun when the folder appears.
        println!("cargo:rerun-if-changed={}", crate_dir.display());
    }
    files.sort();
    let mut out = String::from("pub(super) static FILES: &[(&str, &str)] = &[\n");
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("snapshot file name is not UTF-8")?;
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    std::fs::write(
        PathBuf::from(std::env::var("OUT_DIR")?).join("snapshot_files.rs"),
        out,
    )?;
    Ok(())
}
