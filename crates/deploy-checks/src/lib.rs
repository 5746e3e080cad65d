//! Helpers for the deployment checks in `tests/`: where the tools `cargo xtask test` installs live,
//! rendering the chart with real Helm, and reading YAML documents as JSON values.
//!
//! The tools (`target/tools/helm`, `target/tools/kubectl`, the `target/venvs/deploy-tools` checkers)
//! are installed by `cargo xtask setup` (and `cargo xtask test`); a missing tool fails the check with
//! that advice rather than skipping it.
#![forbid(unsafe_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared target directory, honouring CARGO_TARGET_DIR.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// The chart's directory (`helm/`).
pub fn chart_dir() -> PathBuf {
    root().join("helm")
}

/// A tool installed by `cargo xtask setup`: `helm`, `kubectl` (in `target/tools`) or a command of the
/// `deploy-tools` virtualenv (`checkov`, `kubernetes-validate`, `hadolint`).
pub fn tool(name: &str) -> PathBuf {
    let target = target_dir();
    let path = match name {
        "helm" | "kubectl" => target.join("tools").join(name),
        _ => target.join("venvs/deploy-tools/bin").join(name),
    };
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask setup` (or `cargo xtask test`), which installs it",
        path.display()
    );
    path
}

/// Runs `program` with `args` from the workspace root and returns its output, whatever its status.
pub fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// Like [`run`], but panics with the tool's own output when it fails.
pub fn run_ok(program: &Path, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "`{} {}` failed ({}):\n{}{}",
        program.display(),
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The values files under `helm/ci/`, sorted.
pub fn ci_values_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("helm/ci exists")
        .map(|entry| entry.expect("readable helm/ci entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no values files under helm/ci");
    files
}

/// `helm template` of the chart with `values` (and any extra `--set` style arguments), as YAML text.
pub fn render_text(values: &Path, extra: &[&str]) -> String {
    let values = values.to_string_lossy();
    let chart = chart_dir().to_string_lossy().into_owned();
    let mut args = vec![
        "template",
        "pricing",
        chart.as_str(),
        "--namespace",
        "pricing",
        "--values",
        &values,
    ];
    args.extend(extra);
    run_ok(&tool("helm"), &args)
}

/// `helm template` of the chart with `values`, as one JSON value per Kubernetes object.
pub fn render(values: &Path, extra: &[&str]) -> Vec<Value> {
    yaml_documents(&render_text(values, extra))
}

/// Every non-empty document of a multi-document YAML text, as JSON values.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("bad YAML: {e}\n{text}")))
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

/// One YAML file as a JSON value.
pub fn yaml_file(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
