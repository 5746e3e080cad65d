//! `validate-model` on real version folders: the bundled ones are servable; a copy with a corrupt graph
//! or a probe recorded otherwise than the model scores it is not, and the exit status says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bundled(model: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../model-service/models")
        .join(model)
        .join("1")
}

fn validate(folders: &[&Path]) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_validate-model"))
        .args(folders)
        .output()
        .expect("validate-model runs");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("UTF-8");
    (status.success(), text(stdout), text(stderr))
}

/// A copy of the bundled customer-risk version at `<root>/customer_risk/1`, changed by `change`.
fn copy(root: &Path, change: impl FnOnce(&Path)) -> PathBuf {
    let dir = root.join("customer_risk/1");
    std::fs::create_dir_all(&dir).expect("folder");
    for file in ["manifest.json", "model.onnx"] {
        std::fs::copy(bundled("customer_risk").join(file), dir.join(file)).expect("copy");
    }
    change(&dir);
    dir
}

#[test]
fn the_bundled_versions_are_servable() {
    let (risk, surge) = (bundled("customer_risk"), bundled("demand_surge"));
    let (ok, stdout, stderr) = validate(&[&risk, &surge]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("customer_risk 1: servable"), "{stdout}");
    assert!(stdout.contains("demand_surge 1: servable"), "{stdout}");
    assert!(stdout.contains("probes: 8, each scored as recorded"), "{stdout}");
    assert!(stdout.contains("hour_of_day (over 604800 s)"), "{stdout}");
}

#[test]
fn a_corrupt_graph_or_a_wrong_probe_is_not_servable() {
    let root = tempfile::tempdir().expect("temp dir");
    let corrupt = copy(&root.path().join("a"), |dir| {
        std::fs::write(dir.join("model.onnx"), b"not a model").expect("write");
    });
    let wrong_probe = copy(&root.path().join("b"), |dir| {
        let path = dir.join("manifest.json");
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
        manifest["probes"][3]["outputs"]["risk_score"] = serde_json::json!(0.5);
        std::fs::write(&path, manifest.to_string()).expect("write");
    });
    let good = bundled("demand_surge");
    let (ok, stdout, stderr) = validate(&[&corrupt, &good, &wrong_probe]);
    assert!(!ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("demand_surge 1: servable"),
        "the good one is still checked: {stdout}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].contains("a/customer_risk/1: not servable") && lines[0].contains("tract cannot load"),
        "{stderr}"
    );
    assert!(
        lines[1].contains("b/customer_risk/1: not servable")
            && lines[1].contains("probe 3 scores \"risk_score\" as")
            && lines[1].contains("where the manifest records 0.5"),
        "{stderr}"
    );
}
