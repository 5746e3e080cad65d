//! The Helm chart under `helm/`, checked with the real tools: every example under `helm/ci/` passes
//! `helm lint` and `helm template`, every rendered object validates against Kubernetes' OpenAPI schemas
//! (kubernetes-validate, strict: unknown fields are errors) and passes checkov's Kubernetes checks, and
//! what matters holds in what Helm renders: gRPC probes, unified service tagging, the agent's address,
//! the security context, the drain, and every environment variable spelled as the binaries read it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use deploy_checks::{
    KUBERNETES_VERSIONS, ci_values_files, component, container, env_entry, env_value, env_vars_read_by,
    of_kind, render, render_text, root, run, run_ok, tool, workloads,
};
use serde_json::Value;

/// The components: values key, binary (container, Datadog service, component label), gRPC service.
const COMPONENTS: [(&str, &str, &str); 3] = [
    ("gateway", "gateway", "inference.v1.InferenceService"),
    ("featureService", "feature-service", "features.v1.FeatureService"),
    ("modelService", "model-service", "models.v1.ModelService"),
];

fn ci_file(name: &str) -> PathBuf {
    root().join("helm/ci").join(name)
}

fn write_rendered(dir: &Path, values: &Path) -> PathBuf {
    let out = dir.join(values.file_name().expect("file name"));
    std::fs::write(&out, render_text(values, &[])).expect("write rendered manifests");
    out
}

#[test]
fn every_example_lints_and_renders() {
    let helm = tool("helm");
    let chart = root().join("helm");
    for values in ci_values_files() {
        let values_arg = values.to_string_lossy();
        let lint = run_ok(
            &helm,
            &[
                "lint",
                "--strict",
                &chart.to_string_lossy(),
                "--values",
                &values_arg,
            ],
        );
        assert!(lint.contains("0 chart(s) failed"), "{lint}");
        let objects = render(&values, &[]);
        for kind in ["Deployment", "Service", "NetworkPolicy", "ServiceAccount"] {
            assert!(
                !of_kind(&objects, kind).is_empty(),
                "{}: no {kind}",
                values.display()
            );
        }
    }
}

#[test]
fn every_rendered_object_validates_against_kubernetes_schemas() {
    let validate = tool("kubernetes-validate");
    let dir = tempfile::tempdir().expect("tempdir");
    for values in ci_values_files() {
        let rendered = write_rendered(dir.path(), &values);
        let count = render(&values, &[]).len();
        for version in KUBERNETES_VERSIONS {
            let out = run_ok(
                &validate,
                &["--strict", "-k", version, &rendered.to_string_lossy()],
            );
            let passed = out.matches(" passed for resource ").count();
            assert_eq!(
                passed,
                count,
                "{} against {version}: {passed} of {count} objects passed\n{out}",
                values.display()
            );
        }
    }
}

/// The default example's first object of `kind`, spoiled by `spoil`, as kubernetes-validate judges
/// it: whether it passed, and what it said.
fn validate_spoiled(kind: &str, spoil: impl FnOnce(&mut Value)) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut objects = render(&ci_file("default-values.yaml"), &[]);
    let object = objects
        .iter_mut()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("a {kind}"));
    spoil(object);
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, serde_json::to_string(object).expect("json")).expect("write");
    let output = run(
        &tool("kubernetes-validate"),
        &["--strict", "-k", KUBERNETES_VERSIONS[1], &bad.to_string_lossy()],
    );
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn the_validator_rejects_an_object_kubernetes_would_reject() {
    // Proves the check above can fail: a probe port of the wrong type, and (strict) an unknown field.
    let (passed, text) = validate_spoiled("Deployment", |deployment| {
        deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] =
            Value::from("health");
    });
    assert!(!passed, "accepted a bad Deployment:\n{text}");
    assert!(text.contains("readinessProbe.grpc.port"), "{text}");
    let (passed, text) = validate_spoiled("Service", |service| {
        service["spec"]["selectr"] = Value::from("x");
    });
    assert!(!passed, "accepted an unknown field:\n{text}");
    assert!(text.contains("selectr"), "{text}");
}

#[test]
fn checkov_passes_every_example_and_every_skip_says_why() {
    // Not a dot-directory (tempfile's default name): checkov skips those.
    let dir = tempfile::Builder::new()
        .prefix("rendered-")
        .tempdir()
        .expect("tempdir");
    for values in ci_values_files() {
        write_rendered(dir.path(), &values);
    }
    let output = run(
        &tool("checkov"),
        &[
            "--directory",
            &dir.path().to_string_lossy(),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
        ],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("checkov printed no JSON report ({e}):\n{text}"));
    let summary = &report["summary"];
    let failed = report["results"]["failed_checks"]
        .as_array()
        .map(|checks| {
            checks
                .iter()
                .map(|c| format!("{} {} ({})", c["check_id"], c["check_name"], c["resource"]))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(
        failed.is_empty() && summary["failed"] == 0,
        "checkov failed checks ({summary}):\n{}",
        failed.join("\n")
    );
    assert!(summary["passed"].as_u64().unwrap_or(0) > 100, "{summary}");
    assert!(output.status.success(), "checkov exited {}", output.status);
    // Every skip the chart declares is one checkov applied (no skip outlives its check).
    let skipped_ids: BTreeSet<&str> = report["results"]["skipped_checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["check_id"].as_str())
        .collect();
    for values in ci_values_files() {
        for object in render(&values, &[]) {
            let annotations = object["metadata"]["annotations"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (key, value) in annotations {
                if key.starts_with("checkov.io/skip") {
                    let id = value
                        .as_str()
                        .and_then(|v| v.split('=').next())
                        .unwrap_or_default();
                    assert!(
                        skipped_ids.contains(id),
                        "{key}: {id} is declared skipped but checkov never applied it"
                    );
                }
            }
        }
    }
    for skipped in report["results"]["skipped_checks"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let reason = skipped["check_result"]["suppress_comment"].as_str().unwrap_or("");
        assert!(
            reason.len() > 20,
            "{} skipped on {} without a reason: {reason:?}",
            skipped["check_id"],
            skipped["resource"]
        );
    }
}

#[test]
fn probes_are_grpc_health_checks_and_the_drain_fits_the_pod_lifecycle() {
    for values in ci_values_files() {
        let objects = render(&values, &[]);
        for (_, binary, grpc_service) in COMPONENTS {
            let deployment = component(&objects, "Deployment", binary);
            let pod = &deployment["spec"]["template"]["spec"];
            let c = container(deployment);
            let health_port = c["ports"]
                .as_array()
                .and_then(|ports| ports.iter().find(|p| p["name"] == "health"))
                .map(|p| p["containerPort"].clone())
                .expect("a health port");
            for (probe, service) in [
                ("startupProbe", grpc_service),
                ("readinessProbe", grpc_service),
                ("livenessProbe", "liveness"),
            ] {
                let grpc = &c[probe]["grpc"];
                assert_eq!(grpc["port"], health_port, "{binary} {probe}");
                assert_eq!(grpc["service"], service, "{binary} {probe}");
                for other in ["httpGet", "tcpSocket", "exec"] {
                    assert!(c[probe][other].is_null(), "{binary} {probe} uses {other}");
                }
            }
            // The health listener is the port the probes use, in plaintext whatever the TLS settings.
            assert_eq!(
                env_value(c, "HEALTH_LISTEN_ADDR"),
                Some(format!("0.0.0.0:{health_port}").as_str())
            );

            let millis = |name: &str| -> u64 {
                env_value(c, name)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{binary}: {name} not a number"))
            };
            let readiness = &c["readinessProbe"];
            let readiness_ms = readiness["periodSeconds"].as_u64().expect("period")
                * readiness["failureThreshold"].as_u64().expect("threshold")
                * 1000;
            let (drain, grace) = (millis("SHUTDOWN_DRAIN_DELAY_MS"), millis("SHUTDOWN_GRACE_MS"));
            let kill = pod["terminationGracePeriodSeconds"]
                .as_u64()
                .expect("grace period")
                * 1000;
            assert!(
                drain > readiness_ms,
                "{binary}: drain {drain} <= readiness {readiness_ms}"
            );
            assert!(
                drain <= readiness_ms + 5_000,
                "{binary}: drain {drain} far above readiness"
            );
            assert!(
                drain + grace < kill,
                "{binary}: drain {drain} + grace {grace} >= {kill}"
            );
        }
    }
}

#[test]
fn unified_service_tagging_and_the_agent_on_the_node() {
    for values in ci_values_files() {
        let objects = render(&values, &[]);
        let version = objects
            .iter()
            .find_map(|o| o["metadata"]["labels"]["app.kubernetes.io/version"].as_str())
            .expect("a version label")
            .to_owned();
        for (_, binary, _) in COMPONENTS {
            let deployment = component(&objects, "Deployment", binary);
            let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
            for labels in [&deployment["metadata"]["labels"], pod_labels] {
                assert_eq!(labels["tags.datadoghq.com/service"], binary);
                assert_eq!(labels["tags.datadoghq.com/version"], version.as_str());
                assert!(
                    labels["tags.datadoghq.com/env"].is_string(),
                    "{binary}: no env label"
                );
            }
            assert_eq!(
                deployment["metadata"]["labels"]["tags.datadoghq.com/env"],
                pod_labels["tags.datadoghq.com/env"]
            );
            let c = container(deployment);
            for (var, tag) in [
                ("DD_ENV", "env"),
                ("DD_SERVICE", "service"),
                ("DD_VERSION", "version"),
            ] {
                let from = &env_entry(c, var).unwrap_or_else(|| panic!("{binary}: no {var}"))["valueFrom"]["fieldRef"]
                    ["fieldPath"];
                assert_eq!(
                    from,
                    &format!("metadata.labels['tags.datadoghq.com/{tag}']"),
                    "{binary} {var}"
                );
            }
            let host = &env_entry(c, "DD_AGENT_HOST").expect("DD_AGENT_HOST")["valueFrom"];
            assert_eq!(host["fieldRef"]["fieldPath"], "status.hostIP");
            assert_eq!(
                env_value(c, "OTEL_EXPORTER_OTLP_ENDPOINT"),
                Some("http://$(DD_AGENT_HOST):4317")
            );
            let position = |name: &str| {
                c["env"]
                    .as_array()
                    .and_then(|env| env.iter().position(|e| e["name"] == name))
            };
            assert!(
                position("DD_AGENT_HOST") < position("OTEL_EXPORTER_OTLP_ENDPOINT"),
                "$(DD_AGENT_HOST) is only expanded when defined earlier"
            );
            let annotation = deployment["spec"]["template"]["metadata"]["annotations"]
                [format!("ad.datadoghq.com/{binary}.logs")]
            .as_str()
            .unwrap_or_else(|| panic!("{binary}: no log collection annotation"));
            let logs: Value = serde_json::from_str(annotation).expect("annotation is JSON");
            assert_eq!(logs[0]["service"], binary);
            assert!(logs[0]["source"].is_string());
        }
    }
}

#[test]
fn pods_run_locked_down() {
    for values in ci_values_files() {
        let objects = render(&values, &[]);
        for workload in workloads(&objects) {
            let name = workload["metadata"]["name"].as_str().unwrap_or_default();
            let pod = &workload["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{name}"
            );
            assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
            let init = pod["initContainers"].as_array().cloned().unwrap_or_default();
            let main = pod["containers"].as_array().cloned().unwrap_or_default();
            for c in init.iter().chain(&main) {
                let security = &c["securityContext"];
                assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
                assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
                assert_eq!(
                    security["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{name}"
                );
                assert!(
                    c["resources"]["requests"]["memory"].is_string(),
                    "{name}: no requests"
                );
                assert!(
                    c["resources"]["limits"]["memory"].is_string(),
                    "{name}: no memory limit"
                );
            }
        }
    }
}

#[test]
fn only_the_gateway_may_call_the_feature_and_model_services() {
    for values in ci_values_files() {
        let objects = render(&values, &[]);
        for (_, binary, _) in &COMPONENTS[1..] {
            let policy = component(&objects, "NetworkPolicy", binary);
            assert_eq!(policy["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
            let rules = policy["spec"]["ingress"].as_array().expect("ingress rules");
            for rule in rules {
                let ports: Vec<&Value> = rule["ports"].as_array().into_iter().flatten().collect();
                if ports.iter().any(|p| p["port"] == "grpc") {
                    assert_eq!(
                        rule["from"],
                        serde_json::json!([{"podSelector": {"matchLabels": {
                            "app.kubernetes.io/name": "pricing-inference",
                            "app.kubernetes.io/instance": "pricing",
                            "app.kubernetes.io/component": "gateway"
                        }}}]),
                        "{binary}"
                    );
                } else {
                    // Only the probes' port is open to the node.
                    assert!(ports.iter().all(|p| p["port"] == "health"), "{binary}: {rule}");
                }
            }
        }
    }
}

#[test]
fn every_environment_variable_is_one_the_binary_reads() {
    // Redis over TLS with a CA of its own (and quotes in Redis) is in no example: render it too.
    let variants: [&[&str]; 2] = [
        &[],
        &[
            "--set",
            "redis.tls.caSecret=ca,redis.tls.clientCertificate=true,redis.quotes=true",
        ],
    ];
    for (values, extra) in ci_values_files()
        .into_iter()
        .flat_map(|values| variants.map(|extra| (values.clone(), extra)))
    {
        let objects = render(&values, extra);
        for workload in workloads(&objects) {
            let c = container(workload);
            let binary = c["command"][0]
                .as_str()
                .and_then(|command| command.strip_prefix("/usr/local/bin/"))
                .expect("the container runs one of the image's binaries");
            let reads = env_vars_read_by(binary);
            for entry in c["env"].as_array().into_iter().flatten() {
                let name = entry["name"].as_str().expect("env name");
                assert!(
                    reads.contains(name),
                    "{}: {binary} does not read {name}; it reads {reads:?}",
                    values.display()
                );
            }
        }
    }
}

#[test]
fn the_schema_knows_every_setting_of_every_binary() {
    // values.schema.json lists each component's `config` keys (additionalProperties: false): those are
    // exactly the binary's settings that the chart does not set itself.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("helm/values.schema.json")).expect("schema"),
    )
    .expect("schema is JSON");
    // Redis over TLS with a CA of its own (and quotes in Redis) is in no example.
    let variants: [&[&str]; 2] = [
        &[],
        &[
            "--set",
            "redis.tls.caSecret=ca,redis.tls.clientCertificate=true,redis.quotes=true",
        ],
    ];
    let chart_sets: BTreeSet<String> = ci_values_files()
        .iter()
        .flat_map(|values| variants.iter().map(move |extra| render(values, extra)))
        .flat_map(|objects| {
            objects
                .iter()
                .filter(|o| o["kind"] == "Deployment")
                .flat_map(|d| {
                    container(d)["env"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e["name"].as_str().map(str::to_owned))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for (key, binary, _) in COMPONENTS {
        let config = &schema["properties"][key]["properties"]["config"];
        assert_eq!(config["additionalProperties"], false, "{key}.config is closed");
        let listed: BTreeSet<String> = config["properties"]
            .as_object()
            .expect("config properties")
            .keys()
            .cloned()
            .collect();
        let reads = env_vars_read_by(binary);
        let unknown: Vec<&String> = listed.difference(&reads).collect();
        assert!(
            unknown.is_empty(),
            "{key}.config lists what {binary} does not read: {unknown:?}"
        );
        let missing: Vec<&String> = reads
            .iter()
            .filter(|name| !listed.contains(*name) && !chart_sets.contains(*name))
            .collect();
        assert!(
            missing.is_empty(),
            "{binary} reads {missing:?}, which neither the chart sets nor {key}.config allows"
        );
    }
}

/// `helm template` with `args`, expected to fail; returns Helm's message.
fn refused(args: &[&str]) -> String {
    let chart = root().join("helm");
    let values = ci_file("default-values.yaml");
    let mut full = vec![
        "template",
        "pricing",
        chart.to_str().expect("utf-8 path"),
        "--values",
        values.to_str().expect("utf-8 path"),
    ];
    full.extend(args);
    let output = run(&tool("helm"), &full);
    assert!(!output.status.success(), "helm accepted {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_values_are_refused_naming_the_value() {
    let cases: [(&[&str], &str); 10] = [
        (&["--set", "gateway.replicas=-1"], "/gateway/replicas"),
        (
            &["--set", "gateway.config.MODEL_FALLBACK=maybe"],
            "/gateway/config/MODEL_FALLBACK",
        ),
        (
            &["--set", "gateway.config.FEATURE_FALLBACK=retry"],
            "/gateway/config/FEATURE_FALLBACK",
        ),
        (
            &["--set", "gateway.config.MODEL_FALLBAK=neutral"],
            "MODEL_FALLBAK",
        ),
        (
            &["--set", "modelService.config.LISTEN_ADDR=0.0.0.0:1"],
            "LISTEN_ADDR",
        ),
        (
            &["--set", "gateway.config.QUOTE_REDIS_TLS_CA_FILE=/ca.crt"],
            "QUOTE_REDIS_TLS_CA_FILE",
        ),
        (
            &["--set", "featureService.config.REDIS_POOL_SIZE=0"],
            "/featureService/config/REDIS_POOL_SIZE",
        ),
        (&["--set", "models.source=s3"], "/models/source"),
        (
            &["--set", "securityContext.readOnlyRootFilesystem=false"],
            "readOnlyRootFilesystem",
        ),
        (
            &["--set", "datadog.traceSampler=sometimes"],
            "/datadog/traceSampler",
        ),
    ];
    for (args, names) in cases {
        let message = refused(args);
        assert!(message.contains(names), "{args:?}: {message}");
    }
}

#[test]
fn settings_that_cannot_work_together_are_refused_with_the_reason() {
    let message = refused(&["--set", "shutdown.drainDelayMs=3000"]);
    assert!(message.contains("readiness period"), "{message}");
    let message = refused(&["--set", "shutdown.graceMs=25000"]);
    assert!(message.contains("terminationGracePeriodSeconds"), "{message}");
    let message = refused(&["--set", "redis.existingSecret="]);
    assert!(message.contains("Redis is required"), "{message}");
    let message = refused(&["--set", "models.source=persistentVolumeClaim"]);
    assert!(message.contains("claimName"), "{message}");
}

/// The redis-tls volume and its mount in `deployment`, if any.
fn redis_tls_mount(deployment: &Value) -> Option<(&Value, &Value)> {
    let mount = container(deployment)["volumeMounts"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == "redis-tls")?;
    let volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == "redis-tls")?;
    Some((mount, volume))
}

/// The container's `*REDIS_TLS_*` variables (any prefix), name and value, in order.
fn redis_tls_env(deployment: &Value) -> Vec<(String, String)> {
    container(deployment)["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str().unwrap_or_default())))
        .filter(|(name, _)| name.contains("REDIS_TLS_"))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

#[test]
fn the_quote_store_reaches_redis_over_tls_with_the_feature_services_files() {
    let values = ci_file("default-values.yaml");
    let tls = "redis.tls.caSecret=redis-ca,redis.tls.clientCertificate=true";
    let objects = render(&values, &["--set", &format!("{tls},redis.quotes=true")]);
    let files = |prefix: &str| -> Vec<(String, String)> {
        ["CA_FILE", "CERT_FILE", "KEY_FILE"]
            .iter()
            .zip(["ca.crt", "tls.crt", "tls.key"])
            .map(|(name, file)| {
                (
                    format!("{prefix}REDIS_TLS_{name}"),
                    format!("/etc/pricing/redis-tls/{file}"),
                )
            })
            .collect()
    };
    for (binary, prefix) in [("gateway", "QUOTE_"), ("feature-service", "")] {
        let deployment = component(&objects, "Deployment", binary);
        let (mount, volume) =
            redis_tls_mount(deployment).unwrap_or_else(|| panic!("{binary}: no redis-tls mount"));
        assert_eq!(mount["mountPath"], "/etc/pricing/redis-tls", "{binary}");
        assert_eq!(mount["readOnly"], true, "{binary}");
        assert_eq!(volume["secret"]["secretName"], "redis-ca", "{binary}");
        // Only the variables of the binary's own Redis client, all in the mounted Secret.
        assert_eq!(redis_tls_env(deployment), files(prefix), "{binary}");
    }
    let gateway = container(component(&objects, "Deployment", "gateway"));
    assert!(env_entry(gateway, "QUOTE_REDIS_URL").is_some());

    // The feature-service is the same Deployment whether or not the gateway keeps quotes in Redis.
    let without_quotes = render(&values, &["--set", &format!("{tls},redis.quotes=false")]);
    assert_eq!(
        component(&without_quotes, "Deployment", "feature-service"),
        component(&objects, "Deployment", "feature-service")
    );
    // Quotes in memory: the gateway has no Redis, so neither the Secret nor its variables.
    let gateway = component(&without_quotes, "Deployment", "gateway");
    assert!(redis_tls_mount(gateway).is_none());
    assert!(redis_tls_env(gateway).is_empty());
    assert!(env_entry(container(gateway), "QUOTE_REDIS_URL").is_none());

    // A CA alone: no client certificate for either.
    let objects = render(&values, &["--set", "redis.tls.caSecret=redis-ca"]);
    for (binary, prefix) in [("gateway", "QUOTE_"), ("feature-service", "")] {
        let deployment = component(&objects, "Deployment", binary);
        assert!(redis_tls_mount(deployment).is_some(), "{binary}");
        assert_eq!(redis_tls_env(deployment), files(prefix)[..1], "{binary}");
    }
}

#[test]
fn unix_socket_and_mutual_tls_are_wired_as_the_services_expect() {
    let objects = render(&ci_file("uds-mtls-values.yaml"), &[]);
    for (_, binary, _) in COMPONENTS {
        let deployment = component(&objects, "Deployment", binary);
        let pod = &deployment["spec"]["template"]["spec"];
        let c = container(deployment);
        assert_eq!(
            env_value(c, "DD_DOGSTATSD_URL"),
            Some("unix:///var/run/datadog/dsd.socket")
        );
        assert!(env_entry(c, "DD_DOGSTATSD_PORT").is_none());
        let mount = c["volumeMounts"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["mountPath"] == "/var/run/datadog"))
            .expect("the agent's socket directory is mounted");
        assert_eq!(mount["readOnly"], true);
        let volume = pod["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == mount["name"]))
            .expect("socket volume");
        assert_eq!(volume["hostPath"]["path"], "/var/run/datadog");
        assert_eq!(
            deployment["spec"]["template"]["metadata"]["labels"]["admission.datadoghq.com/enabled"],
            "true"
        );

        // Every service serves TLS and, with mutual TLS, asks for client certificates.
        assert_eq!(env_value(c, "TLS_CERT_FILE"), Some("/etc/pricing/tls/tls.crt"));
        assert_eq!(env_value(c, "TLS_KEY_FILE"), Some("/etc/pricing/tls/tls.key"));
        assert_eq!(
            env_value(c, "TLS_CLIENT_CA_FILE"),
            Some("/etc/pricing/tls/ca.crt")
        );
        let tls = pod["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == "tls"))
            .expect("TLS Secret volume");
        assert!(
            tls["secret"]["secretName"]
                .as_str()
                .is_some_and(|s| s.ends_with("-tls"))
        );
    }
    let gateway = container(component(&objects, "Deployment", "gateway"));
    for (var, service) in [
        ("FEATURE_SERVICE_URL", "feature-service"),
        ("MODEL_SERVICE_URL", "model-service"),
    ] {
        let url = env_value(gateway, var).expect(var);
        assert!(
            url.starts_with("https://") && url.contains(service),
            "{var}={url}: TLS downstream needs https://"
        );
    }
    assert_eq!(
        env_value(gateway, "DOWNSTREAM_TLS_CA_FILE"),
        Some("/etc/pricing/tls/ca.crt")
    );
    assert_eq!(
        env_value(gateway, "DOWNSTREAM_TLS_CERT_FILE"),
        Some("/etc/pricing/tls/tls.crt")
    );
    let models = component(&objects, "Deployment", "model-service");
    assert_eq!(
        models["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == "models"))
            .map(|v| v["persistentVolumeClaim"]["claimName"].clone()),
        Some(Value::from("pricing-models"))
    );
}

#[test]
fn redis_comes_from_a_secret_and_the_registry_from_a_config_map() {
    let objects = render(&ci_file("redis-cluster-values.yaml"), &[]);
    let features = component(&objects, "Deployment", "feature-service");
    let c = container(features);
    assert_eq!(
        env_entry(c, "REDIS_URL").expect("REDIS_URL")["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "pricing-redis-cluster", "key": "url"})
    );
    assert_eq!(
        env_value(c, "FEATURE_REGISTRY"),
        Some("/etc/pricing/registry/registry.json")
    );
    let gateway = container(component(&objects, "Deployment", "gateway"));
    assert_eq!(
        env_entry(gateway, "QUOTE_REDIS_URL").expect("quotes in Redis")["valueFrom"]["secretKeyRef"]["name"],
        "pricing-redis-cluster"
    );
    // No Secret value is ever rendered into a manifest.
    assert!(of_kind(&objects, "Secret").is_empty());
    let models = component(&objects, "Deployment", "model-service");
    let init = &models["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["image"], "registry.example.com/model-sync:1.4.2");
    assert_eq!(
        env_value(container(models), "MODEL_REPOSITORY"),
        Some("/var/lib/pricing/models")
    );
    let job = component(&objects, "Job", "materialize");
    assert_eq!(
        job["metadata"]["annotations"]["helm.sh/hook"],
        "post-install,post-upgrade"
    );

    // A registry given inline becomes a ConfigMap, and a change of it rolls the feature-service.
    let registry = root().join("crates/feature-store/registry.json");
    let registry_arg = format!("features.registry.json={}", registry.display());
    let objects = render(&ci_file("default-values.yaml"), &["--set-file", &registry_arg]);
    let config_map = of_kind(&objects, "ConfigMap")[0];
    let registry_text = std::fs::read_to_string(&registry).expect("registry");
    assert_eq!(config_map["data"]["registry.json"], registry_text.as_str());
    let features = component(&objects, "Deployment", "feature-service");
    assert!(features["spec"]["template"]["metadata"]["annotations"]["checksum/feature-registry"].is_string());
}

#[test]
fn the_traffic_policy_is_a_config_map_the_gateway_rereads() {
    let objects = render(&ci_file("uds-mtls-values.yaml"), &[]);
    let config_map = of_kind(&objects, "ConfigMap")
        .into_iter()
        .find(|c| c["data"]["policy.yaml"].is_string())
        .expect("a traffic policy ConfigMap");
    // What the chart writes is a policy the gateway accepts.
    let text = config_map["data"]["policy.yaml"].as_str().expect("text");
    let pinned = gateway::traffic::TrafficPolicy::pinned([("customer_risk", ""), ("demand_surge", "")]);
    let policy = gateway::traffic::TrafficPolicy::parse(text, &pinned).expect("a valid policy");
    let route = policy.route("customer_risk").expect("routed");
    assert_eq!(route.arms().len(), 2);
    assert_eq!(route.shadow().expect("shadow").version, "3");
    let gateway = component(&objects, "Deployment", "gateway");
    assert_eq!(
        env_value(container(gateway), "TRAFFIC_POLICY_FILE"),
        Some("/etc/pricing/traffic/policy.yaml")
    );
    let mount = container(gateway)["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == "traffic-policy")
        .expect("the policy mounted");
    // A subPath mount would never see an edit of the ConfigMap; a changed policy must not restart the
    // pods either (it is re-read live).
    assert_eq!(mount["mountPath"], "/etc/pricing/traffic");
    assert!(mount.get("subPath").is_none(), "{mount}");
    let annotations = &gateway["spec"]["template"]["metadata"]["annotations"];
    assert!(
        annotations
            .as_object()
            .is_none_or(|a| !a.keys().any(|k| k.contains("traffic"))),
        "{annotations}"
    );
    // Without a policy: no ConfigMap, no file.
    let objects = render(&ci_file("default-values.yaml"), &[]);
    let gateway = component(&objects, "Deployment", "gateway");
    assert_eq!(env_value(container(gateway), "TRAFFIC_POLICY_FILE"), None);
}
