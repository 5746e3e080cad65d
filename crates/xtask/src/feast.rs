//! `cargo xtask feast-registry`: the feature-service's registry JSON generated from a Feast repository by
//! `deploy/feast/registry_from_feast.py`, run with Feast's own SDK from `target/venvs/feast` (installed
//! first when missing).
//!
//! The arguments go to the script unchanged, and it runs in the caller's directory, so relative paths
//! mean what they say:
//!
//! ```text
//! cargo xtask feast-registry --repo path/to/feature_repo --out registry.json
//! cargo xtask feast-registry --repo path/to/feature_repo --from-registry --out registry.json
//! cargo xtask feast-registry --registry-db path/to/registry.db [--project NAME] --out registry.json
//! ```

use std::path::PathBuf;
use std::process::Command;

const USAGE: &str = "usage: cargo xtask feast-registry (--repo DIR [--from-registry] | --registry-db FILE \
                     [--project NAME]) [--exclude VIEW]... --out FILE  (--help: every option)";

/// The generator script.
fn script() -> PathBuf {
    crate::root().join("deploy/feast/registry_from_feast.py")
}

/// The Python of Feast's virtualenv.
fn python() -> PathBuf {
    crate::target_dir().join("venvs/feast/bin/python")
}

pub fn registry(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err(USAGE.into());
    }
    crate::setup::feast()?;
    let python = python();
    let status = Command::new(&python)
        .arg(script())
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the registry was not written ({status})"))
    }
}
