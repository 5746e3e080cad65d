//! The gateway's traffic policy through the three services as processes, on a model repository with two
//! versions of each model: an A/B split that is sticky per customer and reported in every answer,
//! metric and stored quote; a shadow version that changes no answer and shows in its own metrics; and a
//! policy file that is reloaded, or rejected with the old policy kept.

use std::path::Path;
use std::time::Duration;

use gateway::traffic::{BUCKETS, bucket};
use prost::Message;
use proto::inference::v1::inference_service_client::InferenceServiceClient;
use proto::inference::v1::{
    BatchPredictCustomerRiskRequest, PredictCustomerRiskRequest, PredictCustomerRiskResponse,
    PredictDemandSurgeRequest, QuotePriceRequest,
};
use system_tests::processes::ProcessStack;
use system_tests::services::bundled_models;
use testkit::models::ModelRepositoryCopy;
use testkit::statsd::DogStatsdSocket;
use tonic::transport::Channel;

const SPLIT: &str = r#"
models:
  customer_risk:
    experiment:
      name: risk-v2
      arms:
        - { variant: control, version: "1", weight: 50 }
        - { variant: treatment, version: "2", weight: 50 }
  demand_surge:
    version: "1"
    shadow: "2"
"#;

/// The arm the policy above gives `customer`, computed here independently of the gateway's routing.
fn expected_arm(customer: &str) -> (&'static str, &'static str) {
    if bucket("risk-v2", customer) < BUCKETS / 2 {
        ("control", "1")
    } else {
        ("treatment", "2")
    }
}

fn customers() -> Vec<String> {
    (1..=60).map(|i| format!("C{i:06}")).collect()
}

async fn risk(client: &mut InferenceServiceClient<Channel>, customer: &str) -> PredictCustomerRiskResponse {
    client
        .predict_customer_risk(PredictCustomerRiskRequest {
            customer_id: customer.to_owned(),
            ..Default::default()
        })
        .await
        .expect("risk prediction")
        .into_inner()
}

/// `(variant, version)` of an answer.
fn arm_of(response: &PredictCustomerRiskResponse) -> (String, String) {
    let meta = response.metadata.as_ref().expect("metadata");
    (meta.experiment_variant.clone(), meta.model_version.clone())
}

/// Every line the socket received so far, for waiting on one that may have come in with an earlier wait.
struct Received<'a> {
    socket: &'a DogStatsdSocket,
    lines: Vec<String>,
}

impl<'a> Received<'a> {
    fn on(socket: &'a DogStatsdSocket) -> Self {
        Self {
            socket,
            lines: Vec::new(),
        }
    }

    /// Whether a line `wanted` accepts arrived (before or within `wait`).
    fn wait_for(&mut self, wait: Duration, wanted: impl Fn(&str) -> bool) -> bool {
        if self.lines.iter().any(|l| wanted(l)) {
            return true;
        }
        let datagrams = self.socket.receive_until(wait, |d| d.lines().any(&wanted));
        self.lines
            .extend(datagrams.iter().flat_map(|d| d.lines().map(str::to_owned)));
        self.lines.iter().any(|l| wanted(l))
    }

    /// Lines received since the last `forget`.
    fn forget(&mut self) {
        self.lines.clear();
    }
}

fn event(name: &str, tags: &str) -> impl Fn(&str) -> bool {
    let (name, tags) = (format!("#event:{name},"), tags.to_owned());
    move |l: &str| l.starts_with("_e{") && l.contains(&name) && l.contains(&tags)
}

fn metric(name: &str, tags: &str) -> impl Fn(&str) -> bool {
    let (name, tags) = (format!("{name}:"), tags.to_owned());
    move |l: &str| l.starts_with(&name) && l.contains(&tags)
}

const WAIT: Duration = Duration::from_secs(10);

/// Writes the policy file by replacing it in one rename, as a ConfigMap update does.
fn write_policy(path: &Path, text: &str) {
    let staged = path.with_extension("new");
    std::fs::write(&staged, text).expect("write policy");
    std::fs::rename(&staged, path).expect("swap policy");
}

/// The three services on a repository with versions 1 and 2 of each model, under [`SPLIT`] re-read every
/// second, sending metrics to `socket`; the folders live as long as this does.
struct Setup {
    stack: ProcessStack,
    socket: DogStatsdSocket,
    policy: std::path::PathBuf,
    _repository: ModelRepositoryCopy,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Self {
        let repository = ModelRepositoryCopy::of(&bundled_models());
        repository.add_copy("customer_risk", "1", "2");
        repository.add_copy("demand_surge", "1", "2");
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = dir.path().join("policy.yaml");
        write_policy(&policy, SPLIT);
        let socket = DogStatsdSocket::bind();
        let stack = start(&socket, repository.path(), &policy).await;
        Self {
            stack,
            socket,
            policy,
            _repository: repository,
            _dir: dir,
        }
    }
}

async fn start(socket: &DogStatsdSocket, repository: &Path, policy: &Path) -> ProcessStack {
    let env = [
        ("DD_DOGSTATSD_URL", socket.url()),
        ("DD_ENV", "experiments-test".to_owned()),
        ("DD_TRACE_ENABLED", "false".to_owned()),
        // Counts wait in each process until a flush: a second apart, the datagrams never fill the socket's
        // buffer while the test is busy sending requests.
        ("TELEMETRY_METRICS_FLUSH_INTERVAL_MS", "1000".to_owned()),
    ];
    let models = [("MODEL_REPOSITORY", repository.display().to_string())];
    let gateway = [
        ("TRAFFIC_POLICY_FILE", policy.display().to_string()),
        ("TRAFFIC_POLICY_RELOAD_SECS", "1".to_owned()),
    ];
    ProcessStack::start_each(&env, &models, &[], &gateway).await
}

#[tokio::test]
async fn an_ab_split_is_sticky_and_reported_in_answers_metrics_and_quotes() {
    // Every field bound, so the folders outlive the services reading them.
    let Setup {
        stack,
        socket,
        policy: _policy,
        _repository,
        _dir,
    } = Setup::start().await;
    let mut client = stack.client();

    let ids = customers();
    let mut arms = std::collections::BTreeSet::new();
    for customer in &ids {
        let (variant, version) = expected_arm(customer);
        let first = arm_of(&risk(&mut client, customer).await);
        assert_eq!(first, (variant.to_owned(), version.to_owned()), "{customer}");
        assert_eq!(
            arm_of(&risk(&mut client, customer).await),
            first,
            "{customer} changed arm"
        );
        arms.insert(variant);
    }
    assert_eq!(arms.len(), 2, "60 customers all landed in one arm: {arms:?}");

    // A batch spanning both arms: each entity answered by its own arm, in the order asked.
    let batch = client
        .batch_predict_customer_risk(BatchPredictCustomerRiskRequest {
            customer_ids: ids.clone(),
            ..Default::default()
        })
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(batch.results.len(), ids.len());
    for (customer, result) in ids.iter().zip(&batch.results) {
        assert_eq!(&result.customer_id, customer);
        let (variant, version) = expected_arm(customer);
        assert_eq!(
            arm_of(result),
            (variant.to_owned(), version.to_owned()),
            "{customer} in the batch"
        );
    }

    // A quote is stored and counted under the arm that priced it.
    let treated = ids
        .iter()
        .find(|c| expected_arm(c).0 == "treatment")
        .expect("a treated customer");
    let quote = client
        .quote_price(QuotePriceRequest {
            customer_id: treated.clone(),
            zone_id: "Z0003".into(),
            base_price: 10.0,
            ..Default::default()
        })
        .await
        .expect("quote")
        .into_inner();
    assert_eq!(
        quote
            .risk
            .expect("risk")
            .metadata
            .expect("meta")
            .experiment_variant,
        "treatment"
    );
    let mut received = Received::on(&socket);
    assert!(
        received.wait_for(WAIT, metric("business.quotes.count", "variant:treatment")),
        "no quote counted under the treatment arm"
    );
    let half = metric(
        "model.version.traffic_share",
        "model:customer_risk,model_version:2,variant:treatment",
    );
    assert!(
        received.wait_for(WAIT, |l| half(l) && l.contains(":0.5|g|")),
        "no traffic share of 0.5 for the treatment arm"
    );
    assert!(
        received.wait_for(
            WAIT,
            metric(
                "model.predictions.count",
                "model:customer_risk,model_version:2,variant:treatment"
            )
        ),
        "no predictions counted for the treatment arm"
    );
    stack.terminate().await;
}

#[tokio::test]
async fn a_shadow_changes_no_answer_and_a_policy_reloads_or_is_rejected_whole() {
    // Every field bound, so the folders outlive the services reading them.
    let Setup {
        stack,
        socket,
        policy,
        _repository,
        _dir,
    } = Setup::start().await;
    let mut client = stack.client();

    // The same surge request (same id, time and request id) with the shadow on, then off: byte for byte
    // the same answer but for its prediction id.
    let surge = |client: &mut InferenceServiceClient<Channel>| {
        let mut client = client.clone();
        async move {
            let mut request = tonic::Request::new(PredictDemandSurgeRequest {
                zone_id: "Z0007".into(),
                time: Some(prost_types::Timestamp {
                    seconds: 1_795_872_600,
                    nanos: 0,
                }),
                ..Default::default()
            });
            request
                .metadata_mut()
                .insert("x-request-id", "shadow-compare".parse().expect("ascii"));
            let mut answer = client
                .predict_demand_surge(request)
                .await
                .expect("surge")
                .into_inner();
            // Each answer is a new prediction with an id of its own; everything else must be equal.
            let meta = answer.metadata.as_mut().expect("metadata");
            assert!(!meta.prediction_id.is_empty());
            meta.prediction_id.clear();
            answer.encode_to_vec()
        }
    };
    let with_shadow = surge(&mut client).await;
    let mut received = Received::on(&socket);
    assert!(
        received.wait_for(
            WAIT,
            metric(
                "model.demand.surge_factor",
                "model:demand_surge,model_version:2,variant:shadow"
            )
        ),
        "the shadow's scores are not in its own metrics"
    );

    // A broken file, then one naming a version the model-service does not serve: both rejected whole.
    let rejected = event("traffic_policy_rejected", "service:gateway");
    write_policy(
        &policy,
        "models: {customer_risk: {experiment: {name: x, arms: []}}}",
    );
    assert!(received.wait_for(WAIT, &rejected), "broken file not rejected");
    received.forget();
    write_policy(&policy, "models: {customer_risk: {version: '9'}}");
    assert!(received.wait_for(WAIT, &rejected), "unknown version not rejected");
    for customer in customers().iter().take(10) {
        let (variant, version) = expected_arm(customer);
        assert_eq!(
            arm_of(&risk(&mut client, customer).await),
            (variant.to_owned(), version.to_owned()),
            "{customer}: the old policy must stay in force"
        );
    }

    // A valid change: version 2 promoted for every customer, and the shadow gone.
    write_policy(
        &policy,
        "models: {customer_risk: {version: '2'}, demand_surge: {version: '1'}}",
    );
    assert!(
        received.wait_for(WAIT, event("traffic_policy_applied", "service:gateway")),
        "no applied event"
    );
    assert!(
        received.wait_for(
            WAIT,
            event("model_version_promoted", "model:customer_risk,model_version:2")
        ),
        "no promotion event"
    );
    for customer in customers().iter().take(10) {
        assert_eq!(
            arm_of(&risk(&mut client, customer).await),
            ("control".to_owned(), "2".to_owned()),
            "{customer}"
        );
    }
    let without_shadow = surge(&mut client).await;
    assert_eq!(with_shadow, without_shadow, "the shadow changed the answer");
    stack.terminate().await;
}
