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

/// The chart's directory (`helm/`).
pub fn chart_dir() -> PathBuf {
    root().join("helm")
}

/// A tool installed by `cargo xtask setup`: `helm`, `kubectl` (in `target/tools`) or a command of the
/// `deploy-tools` virtualenv (`checkov`, `kubernetes-validate`, `hadolint`, `grpcurl`).
pub fn tool(name: &str) -> PathBuf {
    let path = match name {
        "helm" | "kubectl" => testkit::installed(&format!("tools/{name}")),
        _ => testkit::installed(&format!("venvs/deploy-tools/bin/{name}")),
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

/// The Kubernetes versions the rendered manifests are validated against: the oldest the chart supports
/// (`kubeVersion` in Chart.yaml; gRPC probes are GA from 1.27) and the newest the validator knows.
pub const KUBERNETES_VERSIONS: [&str; 2] = ["1.27.0", "1.37.0"];

/// The environment variables a binary reads, from its `--help` ([`settings_of`]).
pub fn env_vars_read_by(binary: &str) -> std::collections::BTreeSet<String> {
    let names: std::collections::BTreeSet<String> = settings_of(binary)
        .into_iter()
        .map(|setting| setting.env)
        .collect();
    assert!(
        !names.is_empty(),
        "{binary} --help lists no environment variables"
    );
    names
}

/// The objects of `kind` among `objects`.
pub fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The Deployments and Jobs among `objects`: every pod the chart runs.
pub fn workloads(objects: &[Value]) -> Vec<&Value> {
    objects
        .iter()
        .filter(|o| o["kind"] == "Deployment" || o["kind"] == "Job")
        .collect()
}

/// The object of `kind` whose `app.kubernetes.io/component` label is `component`.
pub fn component<'a>(objects: &'a [Value], kind: &str, component: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["labels"]["app.kubernetes.io/component"] == component)
        .unwrap_or_else(|| panic!("no {kind} for {component}"))
}

/// The first container of a Deployment or Job.
pub fn container(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]["containers"][0]
}

/// A container's environment entry called `name`.
pub fn env_entry<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == name)
}

/// A container's literal environment value called `name`.
pub fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    env_entry(container, name)?["value"].as_str()
}

/// One setting a binary reads from the environment, as its `--help` states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable.
    pub env: String,
    /// The default `--help` shows; `None` when there is none, or when its value is hidden (secrets).
    pub default: Option<String>,
    /// The values an enumeration or a boolean takes, each in backticks (with what it means, when the help
    /// says).
    pub possible: Option<String>,
    /// The help text, on one line.
    pub help: String,
}

/// The settings `binary` reads from the environment, in its `--help` order, from its long help (the
/// blocks `--flag <VALUE>`, its text, `[env: NAME=]`, `[default: ...]`, `[possible values: ...]`).
pub fn settings_of(binary: &str) -> Vec<Setting> {
    let path = testkit::bin_dir().join(binary);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo xtask test`, which builds it",
        path.display()
    );
    parse_settings(&run_ok(&path, &["--help"]))
}

/// See [`settings_of`].
pub fn parse_settings(help: &str) -> Vec<Setting> {
    let mut settings = Vec::new();
    // Each option's block begins with a line `  -x, --flag <VALUE>` or `      --flag`.
    let mut block: Vec<&str> = Vec::new();
    let mut flush = |block: &mut Vec<&str>| {
        if let Some(setting) = setting_of(block) {
            settings.push(setting);
        }
        block.clear();
    };
    for line in help.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("--") || (trimmed.starts_with('-') && trimmed.get(2..4) == Some(", ")) {
            flush(&mut block);
        }
        block.push(line);
    }
    flush(&mut block);
    settings
}

fn setting_of(block: &[&str]) -> Option<Setting> {
    let bracketed = |key: &str| -> Option<String> {
        block.iter().find_map(|line| {
            let rest = line.trim().strip_prefix(&format!("[{key}: "))?;
            Some(rest.strip_suffix(']').unwrap_or(rest).to_owned())
        })
    };
    let env = bracketed("env")?;
    let (env, hidden) = match env.split_once('=') {
        Some((name, _)) => (name.to_owned(), false),
        None => (env, true),
    };
    let lines: Vec<&str> = block
        .iter()
        .skip(1)
        .map(|line| line.trim())
        .filter(|line| !line.is_empty() && !line.starts_with('['))
        .collect();
    // An enumeration documents its values as a block: `Possible values:` then `- name: what it is`.
    let (help, values) = match lines.iter().position(|line| *line == "Possible values:") {
        Some(at) => (&lines[..at], Some(&lines[at + 1..])),
        None => (&lines[..], None),
    };
    let described = values.map(|values| {
        values
            .iter()
            .filter_map(|value| value.strip_prefix("- "))
            .map(|value| match value.split_once(':') {
                Some((name, what)) => format!("`{name}` ({})", what.trim()),
                None => format!("`{}`", value.trim()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    let listed = bracketed("possible values").map(|values| {
        values
            .split(", ")
            .map(|value| format!("`{value}`"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    Some(Setting {
        env,
        default: if hidden { None } else { bracketed("default") },
        possible: described.or(listed),
        help: help.join(" "),
    })
}
