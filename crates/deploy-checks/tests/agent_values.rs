//! The Datadog Agent's values (`deploy/datadog-agent/`) held against Datadog's own chart, whose
//! `values.yaml` and `values.schema.json` are vendored unchanged in `tests/fixtures/datadog-chart/`:
//! every key we set exists in the chart's values with the same type, the values Helm would merge pass the
//! chart's schema, the settings the services, dashboards and monitors depend on are pinned, and the Redis
//! examples commented in `values.yaml` (and repeated in its README) parse and hang together.

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

use deploy_checks::{root, tool, yaml_file};
use serde_json::{Value, json};

/// The chart version the fixtures were taken from; the fixtures' README and ours name it too.
const CHART: &str = "datadog 3.240.0";

/// Maps whose keys are ours to choose: the chart renders them as they are (a Kubernetes object, environment
/// variables by name, check files by file name), so its values.yaml lists none of their keys. Keys under
/// these are accepted unchecked; every other key must exist in the chart's values. Each must be a map in
/// the chart's values too (checked below): a new one is added here with its reason, never by a wildcard.
const FREE_FORM_MAPS: &[(&str, &str)] = &[
    (
        "agents.containers.agent.envDict",
        "environment variables of the core Agent container, by name",
    ),
    (
        "agents.containers.agent.resources",
        "a Kubernetes ResourceRequirements, rendered as is",
    ),
    (
        "agents.containers.traceAgent.resources",
        "a Kubernetes ResourceRequirements, rendered as is",
    ),
    (
        "clusterAgent.resources",
        "a Kubernetes ResourceRequirements, rendered as is",
    ),
    (
        "clusterAgent.envDict",
        "environment variables of the Cluster Agent, by name",
    ),
    (
        "clusterAgent.confd",
        "check configuration files of the Cluster Agent, by file name",
    ),
];

fn fixtures() -> PathBuf {
    root().join("crates/deploy-checks/tests/fixtures/datadog-chart")
}

fn agent_dir() -> PathBuf {
    root().join("deploy/datadog-agent")
}

fn chart_values() -> Value {
    yaml_file(&fixtures().join("values.yaml"))
}

fn our_values() -> Value {
    yaml_file(&agent_dir().join("values.yaml"))
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("bad YAML: {e}\n{text}"))
}

/// The value at a dotted key path (our paths have no dots inside keys).
fn at<'a>(values: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(values, |value, key| value.get(key))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// What is wrong with `values` next to the chart's `chart` values, one line per problem, each naming its
/// key path: keys the chart does not have (outside [`FREE_FORM_MAPS`]) and values of another type than the
/// chart's. A null is accepted either side: in our values it removes the key (Helm's rule), in the chart's
/// the type is documented in a comment only. Lists are checked as lists, not item by item: Helm replaces
/// a list whole, and the chart renders the items of ours (tags, tolerations, roles) as they are.
fn key_problems(values: &Value, chart: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    walk(values, chart, "", &mut problems);
    problems
}

fn walk(ours: &Value, chart: &Value, path: &str, problems: &mut Vec<String>) {
    match (ours, chart) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(ours), Value::Object(chart)) => {
            let free_form = FREE_FORM_MAPS.iter().any(|(map, _)| *map == path);
            for (key, value) in ours {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match chart.get(key) {
                    Some(chart_value) => walk(value, chart_value, &child, problems),
                    None if free_form => {}
                    None => {
                        let hint = closest(key, chart.keys().map(String::as_str))
                            .map(|near| format!("; did you mean `{near}`?"))
                            .unwrap_or_default();
                        problems.push(format!(
                            "{child}: not a key of the chart's values ({CHART}){hint}"
                        ));
                    }
                }
            }
        }
        _ if kind(ours) == kind(chart) => {}
        _ => problems.push(format!(
            "{path}: a {} here, a {} in the chart's values ({CHART})",
            kind(ours),
            kind(chart)
        )),
    }
}

/// The candidate within two edits of `key`, if any: the likely intended key of a misspelt one.
fn closest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut diagonal = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let substitution = diagonal + usize::from(ca != *cb);
                diagonal = row[j + 1];
                row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
            }
        }
        row[b.len()]
    }
    candidates
        .map(|c| (distance(key, c), c))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| c)
}

/// The values Helm renders with: ours coalesced over the chart's (maps merged key by key, anything else
/// replaced, a null removing the chart's key).
fn merged(chart: &Value, ours: &Value) -> Value {
    match (chart, ours) {
        (Value::Object(chart), Value::Object(ours)) => {
            let mut out = chart.clone();
            for (key, value) in ours {
                if value.is_null() {
                    out.remove(key);
                } else {
                    let value = chart.get(key).map_or_else(|| value.clone(), |c| merged(c, value));
                    out.insert(key.clone(), value);
                }
            }
            Value::Object(out)
        }
        _ => ours.clone(),
    }
}

/// Validation errors of `values` against the chart's `values.schema.json` (what `helm install` checks),
/// as `key.path - message` lines. The schema says draft-07 (by an `https` URL jsonschema does not
/// recognise, hence the explicit validator). Exit 3 means "invalid", anything else but 0 a broken run.
const VALIDATE: &str = r#"
import json, sys
from jsonschema import Draft7Validator
with open(sys.argv[1]) as f:
    schema = json.load(f)
Draft7Validator.check_schema(schema)
errors = sorted(Draft7Validator(schema).iter_errors(json.load(sys.stdin)), key=lambda e: list(map(str, e.absolute_path)))
for e in errors:
    print(".".join(map(str, e.absolute_path)) or "(root)", "-", e.message)
sys.exit(3 if errors else 0)
"#;

fn schema_problems(values: &Value) -> Vec<String> {
    let python = tool("python");
    let mut child = Command::new(&python)
        .args(["-c", VALIDATE])
        .arg(fixtures().join("values.schema.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let input = serde_json::to_vec(values).expect("values serialize");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(&input)
        .expect("python reads the values");
    let output = child.wait_with_output().expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    match output.status.code() {
        Some(0) => Vec::new(),
        Some(3) => stdout.lines().map(str::to_owned).collect(),
        _ => panic!(
            "schema validation did not run ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// An example kept commented in values.yaml between `# >>> example: <name>` and `# <<< example`,
/// uncommented and parsed.
fn example(name: &str) -> Value {
    let text = std::fs::read_to_string(agent_dir().join("values.yaml")).expect("values.yaml");
    let start = format!("# >>> example: {name}");
    let body: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.starts_with(&start))
        .skip(1)
        .take_while(|line| !line.starts_with("# <<< example"))
        .map(|line| {
            line.strip_prefix("# ")
                .or_else(|| line.strip_prefix('#'))
                .unwrap_or(line)
        })
        .collect();
    assert!(!body.is_empty(), "values.yaml has no example `{name}`");
    yaml(&body.join("\n"))
}

/// Namespace and Secret of an `ENC[k8s_secret@<namespace>/<secret>/<key>]` handle.
fn k8s_secret(handle: &str) -> Option<(&str, &str)> {
    let inner = handle.strip_prefix("ENC[k8s_secret@")?.strip_suffix(']')?;
    let mut parts = inner.split('/');
    let (namespace, secret, key) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && !key.is_empty()).then_some((namespace, secret))
}

/// The Agents can read the Secret behind `handle`: the secret backend script is configured and a Role of
/// `datadog.secretBackend.roles` names that Secret in that namespace.
fn assert_secret_readable(handle: &str, ours: &Value, what: &str) {
    let (namespace, secret) =
        k8s_secret(handle).unwrap_or_else(|| panic!("{what}: `{handle}` is not ENC[k8s_secret@ns/name/key]"));
    assert_eq!(
        at(ours, "datadog.secretBackend.command"),
        Some(&json!("/readsecret_multiple_providers.sh")),
        "datadog.secretBackend.command: the script that resolves k8s_secret handles ({what})"
    );
    let roles = at(ours, "datadog.secretBackend.roles")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let granted = roles.iter().any(|role| {
        role["namespace"] == json!(namespace)
            && role["secrets"]
                .as_array()
                .is_some_and(|s| s.contains(&json!(secret)))
    });
    assert!(
        granted,
        "datadog.secretBackend.roles: no Role grants Secret {namespace}/{secret} ({what})"
    );
}

fn assert_env_tag(tags: &Value, what: &str) {
    let tags = tags.as_array().unwrap_or_else(|| panic!("{what}: no tags list"));
    assert!(
        tags.iter()
            .any(|t| t.as_str().is_some_and(|t| t.starts_with("env:"))),
        "{what}: no env tag (the Redis monitor groups by env)"
    );
}

/// Every values file in `deploy/datadog-agent/`: `values.yaml` and any overlay given after it.
fn values_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(agent_dir())
        .expect("deploy/datadog-agent exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.contains(&agent_dir().join("values.yaml")),
        "no deploy/datadog-agent/values.yaml"
    );
    files
}

#[test]
fn every_values_file_uses_only_keys_of_the_chart() {
    let chart = chart_values();
    for file in values_files() {
        let problems = key_problems(&yaml_file(&file), &chart);
        assert!(
            problems.is_empty(),
            "{}:\n{}",
            file.display(),
            problems.join("\n")
        );
    }
}

#[test]
fn the_key_check_reports_misspelt_keys_and_wrong_types() {
    let bad = yaml(
        r#"
datadog:
  dogstatd:
    port: 8125
  logs:
    enabled: "yes"
    containerColectAll: false
  podLabelsAsTags:
    app: kube_app
agents:
  containers:
    agent:
      envDict:
        DD_ANY_NAME: "1"
"#,
    );
    let problems = key_problems(&bad, &chart_values());
    let reported = |path: &str| problems.iter().any(|p| p.starts_with(&format!("{path}:")));
    assert!(reported("datadog.dogstatd"), "{problems:#?}");
    assert!(
        problems.iter().any(|p| p.contains("did you mean `dogstatsd`")),
        "{problems:#?}"
    );
    assert!(
        reported("datadog.logs.enabled"),
        "a string where the chart has a boolean: {problems:#?}"
    );
    assert!(reported("datadog.logs.containerColectAll"), "{problems:#?}");
    // Empty in the chart but not declared free-form: reported until added to FREE_FORM_MAPS.
    assert!(reported("datadog.podLabelsAsTags.app"), "{problems:#?}");
    assert_eq!(problems.len(), 4, "the envDict key is free-form: {problems:#?}");
}

#[test]
fn free_form_maps_are_maps_in_the_chart() {
    let chart = chart_values();
    for (path, why) in FREE_FORM_MAPS {
        assert!(
            at(&chart, path).is_some_and(Value::is_object),
            "{path} ({why}) is not a map in the chart's values ({CHART})"
        );
    }
}

#[test]
fn our_values_pass_the_charts_schema() {
    let base = merged(&chart_values(), &our_values());
    let overlays = values_files()
        .into_iter()
        .filter(|file| !file.ends_with("values.yaml"));
    let layered = overlays
        .map(|file| (file.display().to_string(), yaml_file(&file)))
        .chain([("the managed-redis example".to_owned(), example("managed-redis"))]);
    for (name, values) in [("values.yaml".to_owned(), json!({}))].into_iter().chain(layered) {
        let problems = schema_problems(&merged(&base, &values));
        assert!(
            problems.is_empty(),
            "{name} against values.schema.json ({CHART}):\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn the_schema_check_reports_invalid_values() {
    let bad = yaml("datadog: {apm: {instrumentation: {injectionMode: sidecar}}}");
    let problems = schema_problems(&merged(&chart_values(), &bad));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("datadog.apm.instrumentation.injectionMode ")),
        "{problems:#?}"
    );
}

#[test]
fn the_settings_the_platform_depends_on_are_pinned() {
    let ours = our_values();
    let pins: &[(&str, Value, &str)] = &[
        (
            "datadog.otlp.receiver.protocols.grpc.enabled",
            json!(true),
            "spans arrive over OTLP/gRPC",
        ),
        (
            "datadog.otlp.receiver.protocols.grpc.endpoint",
            json!("0.0.0.0:4317"),
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            "datadog.otlp.receiver.protocols.grpc.useHostPort",
            json!(true),
            "reached on the node's IP",
        ),
        (
            "datadog.apm.socketEnabled",
            json!(true),
            "the trace agent runs and takes the OTLP spans",
        ),
        (
            "datadog.dogstatsd.useSocketVolume",
            json!(true),
            "DogStatsD over the Unix socket",
        ),
        (
            "datadog.dogstatsd.socketPath",
            json!("/var/run/datadog/dsd.socket"),
            "DD_DOGSTATSD_URL",
        ),
        (
            "datadog.dogstatsd.hostSocketPath",
            json!("/var/run/datadog"),
            "the host path the pods mount",
        ),
        (
            "datadog.dogstatsd.originDetection",
            json!(true),
            "metrics carry the pod's tags",
        ),
        (
            "datadog.useHostPID",
            json!(true),
            "origin detection over the socket",
        ),
        ("datadog.dogstatsd.port", json!(8125), "DD_DOGSTATSD_PORT"),
        (
            "datadog.dogstatsd.useHostPort",
            json!(true),
            "UDP on the node's IP",
        ),
        (
            "datadog.dogstatsd.nonLocalTraffic",
            json!(true),
            "UDP from other pods",
        ),
        (
            "agents.containers.agent.envDict.DD_DOGSTATSD_BUFFER_SIZE",
            json!("8192"),
            "UDS datagrams",
        ),
        ("datadog.logs.enabled", json!(true), "JSON logs on stdout"),
        (
            "datadog.logs.containerCollectAll",
            json!(false),
            "annotated containers only (README)",
        ),
        (
            "datadog.logs.containerCollectUsingFiles",
            json!(true),
            "logs read from /var/log/pods",
        ),
        (
            "clusterAgent.enabled",
            json!(true),
            "events, kubernetes_state_core, admission",
        ),
        (
            "clusterAgent.admissionController.enabled",
            json!(true),
            "DD_ENTITY_ID, DD_EXTERNAL_ENV",
        ),
        (
            "clusterAgent.admissionController.mutation.enabled",
            json!(true),
            "the injecting webhook",
        ),
        (
            "clusterAgent.admissionController.configMode",
            json!("hostip"),
            "no second socket mount",
        ),
        (
            "clusterAgent.admissionController.mutateUnlabelled",
            json!(false),
            "opt-in by pod label",
        ),
        (
            "clusterAgent.admissionController.failurePolicy",
            json!("Ignore"),
            "pods start anyway",
        ),
        (
            "datadog.kubeStateMetricsCore.enabled",
            json!(true),
            "kubernetes_state.*",
        ),
        (
            "datadog.kubeStateMetricsEnabled",
            json!(false),
            "no second source of kubernetes_state.*",
        ),
        (
            "datadog.kubelet.coreCheckEnabled",
            json!(true),
            "kubernetes.cpu.*, kubernetes.memory.*",
        ),
        (
            "datadog.collectEvents",
            json!(true),
            "the dashboard's BackOff events",
        ),
        (
            "datadog.kubernetesEvents.unbundleEvents",
            json!(true),
            "events tagged event_reason",
        ),
        (
            "datadog.clusterTagger.collectKubernetesTags",
            json!(true),
            "events tagged with service",
        ),
        (
            "datadog.clusterChecks.enabled",
            json!(true),
            "kubernetes_state_core, managed Redis",
        ),
        ("agents.enabled", json!(true), "the node Agent DaemonSet"),
    ];
    let wrong: Vec<String> = pins
        .iter()
        .filter_map(|(path, want, why)| match at(&ours, path) {
            Some(have) if have == want => None,
            Some(have) => Some(format!("{path}: {have}, want {want} ({why})")),
            None => Some(format!("{path}: not set, want {want} ({why})")),
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "deploy/datadog-agent/values.yaml:\n{}",
        wrong.join("\n")
    );

    let ignored = at(&ours, "datadog.ignoreAutoConfig").and_then(Value::as_array);
    assert!(
        ignored.is_some_and(|checks| checks.contains(&json!("redisdb"))),
        "datadog.ignoreAutoConfig: must hold redisdb (Redis checked only where configured, with its password)"
    );
    assert_env_tag(at(&ours, "datadog.tags").unwrap_or(&Value::Null), "datadog.tags");
    assert!(
        at(&ours, "datadog.site")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty()),
        "datadog.site: must be set (and overridden per organisation)"
    );

    // Not set by us: the chart's default must keep collecting Pod BackOff events for the dashboard.
    let merged = merged(&chart_values(), &ours);
    let types = at(&merged, "datadog.kubernetesEvents.collectedEventTypes").and_then(Value::as_array);
    assert!(
        types.is_some_and(|types| types.iter().any(|t| t["kind"] == json!("Pod")
            && t["reasons"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("BackOff"))))),
        "datadog.kubernetesEvents.collectedEventTypes: Pod BackOff is not collected"
    );
}

#[test]
fn keys_come_from_existing_secrets() {
    let ours = our_values();
    for path in [
        "datadog.apiKeyExistingSecret",
        "datadog.appKeyExistingSecret",
        "clusterAgent.tokenExistingSecret",
    ] {
        assert!(
            at(&ours, path)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty()),
            "{path}: must name an existing Secret"
        );
    }
    for path in ["datadog.apiKey", "datadog.appKey", "clusterAgent.token"] {
        assert!(
            at(&ours, path).is_none_or(Value::is_null),
            "{path}: no key material in values"
        );
    }
    assert_eq!(
        at(&ours, "datadog.secretBackend.enableGlobalPermissions"),
        Some(&json!(false)),
        "datadog.secretBackend.enableGlobalPermissions: the Agents read only the Secrets in roles"
    );
}

#[test]
fn the_redis_annotation_example_configures_redisdb() {
    let ours = our_values();
    let example = example("redis-pod-annotations");
    let annotations = at(&example, "metadata.annotations").expect("metadata.annotations");

    let checks = annotations["ad.datadoghq.com/redis.checks"]
        .as_str()
        .expect("redis.checks is a string");
    let checks: Value = serde_json::from_str(checks).expect("ad.datadoghq.com/redis.checks is JSON");
    assert!(
        checks["redisdb"]["init_config"].is_object(),
        "redisdb.init_config: {checks}"
    );
    let instances = checks["redisdb"]["instances"]
        .as_array()
        .expect("redisdb.instances");
    assert!(!instances.is_empty(), "redisdb.instances is empty");
    for instance in instances {
        assert_eq!(instance["host"], json!("%%host%%"), "redisdb host: the pod's IP");
        assert!(instance["port"].is_u64(), "redisdb port: {instance}");
        assert_env_tag(&instance["tags"], "redisdb instance tags");
        let password = instance["password"].as_str().expect("redisdb password");
        assert_secret_readable(password, &ours, "the Redis annotation's password");
    }

    let logs = annotations["ad.datadoghq.com/redis.logs"]
        .as_str()
        .expect("redis.logs is a string");
    let logs: Value = serde_json::from_str(logs).expect("ad.datadoghq.com/redis.logs is JSON");
    assert_eq!(logs[0]["source"], json!("redis"), "redis.logs: {logs}");

    // The README repeats the block; the two must not drift apart.
    let readme = std::fs::read_to_string(agent_dir().join("README.md")).expect("README.md");
    let block = readme
        .split("```yaml")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains("ad.datadoghq.com/redis.checks"))
        .expect("README.md has a ```yaml block with the Redis annotations");
    assert_eq!(
        yaml(block),
        example,
        "README.md's Redis annotations differ from values.yaml's"
    );
}

#[test]
fn the_managed_redis_example_is_a_cluster_check() {
    let ours = our_values();
    let example = example("managed-redis");
    let problems = key_problems(&example, &chart_values());
    assert!(
        problems.is_empty(),
        "the managed-redis example:\n{}",
        problems.join("\n")
    );

    let confd = at(&example, "clusterAgent.confd").expect("clusterAgent.confd");
    let redisdb = yaml(
        confd["redisdb.yaml"]
            .as_str()
            .expect("clusterAgent.confd.redisdb.yaml"),
    );
    assert_eq!(
        redisdb["cluster_check"],
        json!(true),
        "one Agent runs it, not one per node"
    );
    let instances = redisdb["instances"].as_array().expect("redisdb.yaml instances");
    assert!(!instances.is_empty(), "redisdb.yaml has no instances");
    for instance in instances {
        assert_env_tag(&instance["tags"], "managed Redis instance tags");
        let password = instance["password"].as_str().expect("managed Redis password");
        assert_secret_readable(password, &ours, "the managed Redis password");
    }
    assert_eq!(
        at(&example, "clusterAgent.envDict.DD_SECRET_BACKEND_SKIP_CHECKS"),
        Some(&json!("true")),
        "the Cluster Agent is granted no Secret: the node Agent running the check resolves the password"
    );
}

#[test]
fn the_docs_name_the_chart_version_checked_against() {
    let version = CHART.trim_start_matches("datadog ");
    for file in [
        fixtures().join("README.md"),
        agent_dir().join("README.md"),
        agent_dir().join("values.yaml"),
    ] {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(version),
            "{} does not name chart {version}",
            file.display()
        );
    }
    let chart = chart_values();
    assert!(
        at(&chart, "datadog.otlp.receiver.protocols.grpc").is_some(),
        "the fixture is the chart's values"
    );
}
