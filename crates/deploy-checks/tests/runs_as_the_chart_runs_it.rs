//! The binaries run with exactly the environment the rendered chart gives them — the default example,
//! with the sample-snapshot Job — only addresses rewritten to loopback (the chart's Service names and
//! ports, the node's agent) and the image's /models path to the checkout's copy of it. Every other
//! variable, its value and its order are the chart's: nothing is inherited from this process.
//!
//! The Job writes the snapshot into a real redis-server; the three services start; the kubelet's view
//! (gRPC health on the health port) turns SERVING; a QuotePrice through the gateway is answered from
//! Redis features, undegraded; its outcome is recorded through the Redis quote store; DogStatsD lines
//! reach the node's agent address with the pod's tags; SIGTERM drains each within the chart's
//! termination grace period.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deploy_checks::{component, container, render, root};
use proto::inference::v1::inference_service_client::InferenceServiceClient;
use proto::inference::v1::{QuotePriceRequest, RecordOutcomeRequest};
use serde_json::Value;
use testkit::statsd::DogStatsdSocket;
use testkit::{bin_dir, free_port};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const POD_UID: &str = "3f9a4c1e-6b2d-4e8f-9a7c-2d1e5b6f8a90";

/// What the cluster would provide, on loopback: Service addresses, Secrets, the node's agent.
struct Cluster {
    /// `<service>.<namespace>.svc:<port>` and `0.0.0.0:<port>` of each component -> loopback port.
    services: BTreeMap<String, u16>,
    listen: BTreeMap<(String, String), u16>,
    secrets: BTreeMap<(String, String), String>,
    dogstatsd_port: u16,
    otlp_port: u16,
}

impl Cluster {
    /// Resolves a container's env as the kubelet does (in order, `$(VAR)` from earlier entries), then
    /// rewrites addresses to loopback and the image's model path to the checkout's.
    fn environment(&self, workload: &Value) -> Vec<(String, String)> {
        let labels = &workload["spec"]["template"]["metadata"]["labels"];
        let binary = labels["app.kubernetes.io/component"].as_str().expect("component");
        let mut resolved: Vec<(String, String)> = Vec::new();
        for entry in container(workload)["env"].as_array().expect("env") {
            let name = entry["name"].as_str().expect("name").to_owned();
            let value = if let Some(value) = entry["value"].as_str() {
                expand(value, &resolved)
            } else if let Some(path) = entry["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                match path {
                    "status.hostIP" => "127.0.0.1".to_owned(),
                    "metadata.uid" => POD_UID.to_owned(),
                    label => {
                        let key = label
                            .strip_prefix("metadata.labels['")
                            .and_then(|rest| rest.strip_suffix("']"))
                            .unwrap_or_else(|| panic!("unexpected fieldRef {label}"));
                        labels[key].as_str().expect("label").to_owned()
                    }
                }
            } else if let Some(secret) = entry["valueFrom"]["secretKeyRef"].as_object() {
                let key = (
                    secret["name"].as_str().expect("secret").to_owned(),
                    secret["key"].as_str().expect("key").to_owned(),
                );
                self.secrets
                    .get(&key)
                    .unwrap_or_else(|| panic!("no Secret {key:?}"))
                    .clone()
            } else {
                panic!("unexpected env entry {entry}");
            };
            let value = self.rewrite(binary, &name, value);
            resolved.push((name, value));
        }
        resolved
    }

    fn rewrite(&self, binary: &str, name: &str, value: String) -> String {
        match name {
            "LISTEN_ADDR" | "HEALTH_LISTEN_ADDR" => {
                let port = self.listen[&(binary.to_owned(), name.to_owned())];
                format!("127.0.0.1:{port}")
            }
            "MODEL_REPOSITORY" => {
                // deploy/Dockerfile copies crates/model-service/models/<model> to /models/<model>.
                assert_eq!(value, "/models", "the image's repository");
                root()
                    .join("crates/model-service/models")
                    .to_string_lossy()
                    .into_owned()
            }
            "DD_DOGSTATSD_PORT" => {
                assert_eq!(value, "8125");
                self.dogstatsd_port.to_string()
            }
            "OTEL_EXPORTER_OTLP_ENDPOINT" => {
                assert_eq!(value, "http://127.0.0.1:4317", "the agent on the node");
                format!("http://127.0.0.1:{}", self.otlp_port)
            }
            _ => {
                let mut value = value;
                for (address, port) in &self.services {
                    value = value.replace(address, &format!("127.0.0.1:{port}"));
                }
                value
            }
        }
    }
}

/// Kubernetes' `$(VAR)` expansion from the variables defined before.
fn expand(value: &str, defined: &[(String, String)]) -> String {
    let mut out = value.to_owned();
    for (name, resolved) in defined {
        out = out.replace(&format!("$({name})"), resolved);
    }
    out
}

/// Starts `binary` with exactly `env` (no inherited variables) and `args`.
fn spawn(binary: &str, env: &[(String, String)], args: &[String]) -> Child {
    let path = bin_dir().join(binary);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask test`",
        path.display()
    );
    Command::new(&path)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"))
}

/// Polls gRPC health on `port` for `service` until SERVING, as the kubelet's readiness probe would.
async fn wait_ready(port: u16, service: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(1))
            .connect()
            .await;
        if let Ok(channel) = channel {
            let status = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await
                .map(|r| r.into_inner().status());
            if status.is_ok_and(|s| s == ServingStatus::Serving) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{service} never became ready on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The grpcurl command of docs/deploy.md's "A first call": its request JSON, address and method.
fn first_call_in_the_docs() -> (String, String, String) {
    let docs = std::fs::read_to_string(root().join("docs/deploy.md")).expect("docs/deploy.md");
    let command = docs
        .replace("\\\n", " ")
        .lines()
        .find(|line| line.trim_start().starts_with("grpcurl -plaintext"))
        .expect("a grpcurl -plaintext command in docs/deploy.md")
        .to_owned();
    let (_, after) = command.split_once("-d '").expect("a -d '<json>' request");
    let (request, rest) = after.split_once('\'').expect("the request's closing quote");
    let words: Vec<&str> = rest.split_whitespace().collect();
    match words[..] {
        [address, method] => (request.to_owned(), address.to_owned(), method.to_owned()),
        _ => panic!("expected `<address> <method>` after the request: {rest}"),
    }
}

struct Running(Vec<(String, Child)>);

impl Drop for Running {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn the_binaries_serve_a_prediction_with_the_charts_environment() {
    let redis = testkit::redis::RedisServer::start().expect("redis-server");
    let values = root().join("helm/ci/default-values.yaml");
    let objects = render(&values, &["--set", "features.loadSampleSnapshot=true"]);
    let namespace = "pricing";

    let components = ["gateway", "feature-service", "model-service"];
    let mut cluster = Cluster {
        services: BTreeMap::new(),
        listen: BTreeMap::new(),
        secrets: BTreeMap::new(),
        dogstatsd_port: 0,
        otlp_port: free_port(),
    };
    for binary in components {
        let service = component(&objects, "Service", binary);
        let name = service["metadata"]["name"].as_str().expect("name");
        let port = &service["spec"]["ports"][0]["port"];
        let loopback = free_port();
        cluster
            .services
            .insert(format!("{name}.{namespace}.svc:{port}"), loopback);
        cluster
            .listen
            .insert((binary.to_owned(), "LISTEN_ADDR".to_owned()), loopback);
        cluster
            .listen
            .insert((binary.to_owned(), "HEALTH_LISTEN_ADDR".to_owned()), free_port());
    }
    // The Secret the default example names, holding this Redis's URL.
    cluster
        .secrets
        .insert(("pricing-redis".into(), "url".into()), redis.url());
    let agent = DogStatsdSocket::bind();
    cluster.dogstatsd_port = agent.port();

    // The post-install Job: the sample snapshot into Redis.
    let job = component(&objects, "Job", "materialize");
    let job_container = container(job);
    let args: Vec<String> = job_container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").to_owned())
        .collect();
    let status = spawn("materialize", &cluster.environment(job), &args)
        .wait()
        .expect("the Job runs");
    assert!(status.success(), "the sample-snapshot Job failed: {status}");

    // The Deployments, model-service first as a rollout would not care but a test does.
    let mut running = Running(Vec::new());
    for binary in ["model-service", "feature-service", "gateway"] {
        let deployment = component(&objects, "Deployment", binary);
        let env = cluster.environment(deployment);
        let command = container(deployment)["command"][0].as_str().expect("command");
        assert_eq!(command, format!("/usr/local/bin/{binary}"));
        running.0.push((binary.to_owned(), spawn(binary, &env, &[])));
    }
    for binary in components {
        let deployment = component(&objects, "Deployment", binary);
        let c = container(deployment);
        let health = cluster.listen[&(binary.to_owned(), "HEALTH_LISTEN_ADDR".to_owned())];
        for probe in ["readinessProbe", "livenessProbe"] {
            let service = c[probe]["grpc"]["service"].as_str().expect("probe service");
            wait_ready(health, service).await;
        }
    }

    let gateway_port = cluster.listen[&("gateway".to_owned(), "LISTEN_ADDR".to_owned())];
    let channel: Channel = Endpoint::from_shared(format!("http://127.0.0.1:{gateway_port}"))
        .expect("endpoint")
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("the gateway accepts calls");
    let mut client = InferenceServiceClient::new(channel);
    let quote = client
        .quote_price(QuotePriceRequest {
            customer_id: "C000001".into(),
            zone_id: "Z0001".into(),
            base_price: 40.0,
            ..Default::default()
        })
        .await
        .expect("a quote")
        .into_inner();
    let risk = quote
        .risk
        .clone()
        .and_then(|r| r.metadata)
        .expect("risk metadata");
    let surge = quote
        .surge
        .clone()
        .and_then(|s| s.metadata)
        .expect("surge metadata");
    assert!(
        !risk.degraded && !surge.degraded,
        "features come from the Job's Redis: {risk:?} {surge:?}"
    );
    assert!(quote.price > 0.0, "{quote:?}");
    client
        .record_outcome(RecordOutcomeRequest {
            quote_id: quote.quote_id.clone(),
            booked: true,
            revenue: quote.price,
            ..Default::default()
        })
        .await
        .expect("the outcome joins the quote kept in Redis");

    // The first call docs/deploy.md shows, made with grpcurl as written (through reflection), with the
    // port-forwarded address replaced by the gateway's.
    let (request, address, method) = first_call_in_the_docs();
    assert_eq!(
        address, "localhost:50051",
        "the docs port-forward the gateway's port"
    );
    let answer = deploy_checks::run_ok(
        &deploy_checks::tool("grpcurl"),
        &[
            "-plaintext",
            "-d",
            &request,
            &format!("127.0.0.1:{gateway_port}"),
            &method,
        ],
    );
    let answer: Value = serde_json::from_str(&answer).expect("grpcurl prints the answer as JSON");
    assert!(answer["price"].as_f64().is_some_and(|p| p > 0.0), "{answer}");
    assert!(answer["quoteId"].is_string(), "{answer}");

    // Metrics reach the node's agent address, tagged for the pod.
    let lines = agent
        .receive_until(Duration::from_secs(10), |d| d.contains("api.predict.requests"))
        .join("\n");
    let line = lines
        .lines()
        .find(|l| l.starts_with("api.predict.requests"))
        .unwrap_or_else(|| panic!("no api.predict.requests line at the agent:\n{lines}"));
    for tag in [
        "env:staging",
        "service:gateway",
        "version:0.1.0",
        &format!("dd.internal.entity_id:{POD_UID}"),
    ] {
        assert!(line.contains(tag), "{tag} missing: {line}");
    }

    // SIGTERM, as Kubernetes stops a pod: each drains and exits cleanly within the grace period.
    let grace = component(&objects, "Deployment", "gateway")["spec"]["template"]["spec"]
        ["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace period");
    for (_, child) in &running.0 {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
    let deadline = Instant::now() + Duration::from_secs(grace);
    for (binary, child) in &mut running.0 {
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "{binary} exited {status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{binary} still running after {grace} s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
