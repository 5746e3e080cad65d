//! Business results per experiment arm, right over several gateway replicas: two gateway processes share
//! one Redis quote store and one traffic policy; quotes are issued on one replica and their outcomes
//! recorded on the other, and the counts both send over DogStatsD add up, per variant, to exactly the
//! quotes and bookings made — so the conversion Datadog computes from them (bookings / quotes) is right
//! however many pods there are.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proto::inference::v1::inference_service_client::InferenceServiceClient;
use proto::inference::v1::{QuotePriceRequest, RecordOutcomeRequest};
use system_tests::materialize_snapshot;
use system_tests::processes::ServiceProcess;
use system_tests::services::{bundled_models, test_budget_env};
use testkit::models::ModelRepositoryCopy;
use testkit::redis::RedisServer;
use testkit::statsd::{self, DogStatsdSocket};

const POLICY: &str = r#"
models:
  customer_risk:
    experiment:
      name: pricing-ab
      arms:
        - { variant: control, version: "1", weight: 50 }
        - { variant: treatment, version: "2", weight: 50 }
"#;

/// Sums of the count `name` by its `variant` tag (and `booked:true` only, when `booked`).
fn counts(lines: &[String], name: &str, booked: bool) -> BTreeMap<String, i64> {
    let mut sums = BTreeMap::new();
    for (value, tags) in statsd::counts(lines, name) {
        if booked && !tags.split(',').any(|t| t == "booked:true") {
            continue;
        }
        if let Some(variant) = tags.split(',').find_map(|t| t.strip_prefix("variant:")) {
            *sums.entry(variant.to_owned()).or_default() += value;
        }
    }
    sums
}

#[tokio::test]
async fn two_replicas_count_quotes_and_bookings_per_variant_exactly() {
    let socket = DogStatsdSocket::bind();
    let redis = RedisServer::start().expect("redis-server");
    materialize_snapshot(&redis.url()).await;
    let repository = ModelRepositoryCopy::of(&bundled_models());
    repository.add_copy("customer_risk", "1", "2");
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("policy");

    let telemetry = [
        ("DD_DOGSTATSD_URL", socket.url()),
        ("DD_ENV", "replicas-test".to_owned()),
        ("DD_TRACE_ENABLED", "false".to_owned()),
        // Counts wait in each process until a flush; a second apart, four processes' datagrams never fill
        // the socket's buffer while the test is busy sending requests.
        ("TELEMETRY_METRICS_FLUSH_INTERVAL_MS", "1000".to_owned()),
    ];
    let with = |extra: &[(&'static str, String)]| [&telemetry[..], extra].concat();
    let models = ServiceProcess::start(
        "model-service",
        &with(&[("MODEL_REPOSITORY", repository.path().display().to_string())]),
    )
    .await;
    let features = ServiceProcess::start("feature-service", &with(&[("REDIS_URL", redis.url())])).await;
    let mut gateway_own = vec![
        ("FEATURE_SERVICE_URL", features.url()),
        ("MODEL_SERVICE_URL", models.url()),
        ("QUOTE_REDIS_URL", redis.url()),
        ("TRAFFIC_POLICY_FILE", policy.display().to_string()),
    ];
    gateway_own.extend(test_budget_env());
    let gateway_env = with(&gateway_own);
    let a = ServiceProcess::start("gateway", &gateway_env).await;
    let b = ServiceProcess::start("gateway", &gateway_env).await;
    let mut clients = [
        InferenceServiceClient::new(a.channel()),
        InferenceServiceClient::new(b.channel()),
    ];

    let mut quotes: BTreeMap<String, i64> = BTreeMap::new();
    let mut bookings: BTreeMap<String, i64> = BTreeMap::new();
    let total = 40;
    for i in 0..total {
        // Quoted on one replica, its outcome recorded on the other.
        let quote = clients[i % 2]
            .quote_price(QuotePriceRequest {
                customer_id: format!("C{:06}", i + 1),
                zone_id: "Z0004".into(),
                base_price: 20.0,
                ..Default::default()
            })
            .await
            .expect("quote")
            .into_inner();
        let variant = quote
            .risk
            .as_ref()
            .and_then(|r| r.metadata.as_ref())
            .map(|m| m.experiment_variant.clone())
            .expect("the risk arm");
        *quotes.entry(variant.clone()).or_default() += 1;
        let booked = i % 3 != 1;
        if booked {
            *bookings.entry(variant).or_default() += 1;
        }
        let recorded = clients[(i + 1) % 2]
            .record_outcome(RecordOutcomeRequest {
                quote_id: quote.quote_id,
                booked,
                revenue: if booked { quote.price } else { 0.0 },
                ..Default::default()
            })
            .await
            .expect("outcome recorded on the other replica")
            .into_inner();
        assert!(!recorded.duplicate);
    }
    assert_eq!(quotes.len(), 2, "both arms priced quotes: {quotes:?}");

    // Both replicas' counts, until they add up.
    let mut lines = Vec::new();
    let started = Instant::now();
    let total = i64::try_from(total).expect("small");
    while started.elapsed() < Duration::from_secs(15) {
        // Gauges are re-sent every flush, so the socket is never drained: take what came in a moment.
        let datagrams = socket.receive_until(Duration::from_millis(200), |_| false);
        lines.extend(datagrams.iter().flat_map(|d| d.lines().map(str::to_owned)));
        let outcomes: i64 = counts(&lines, "business.outcomes.count", false).values().sum();
        if counts(&lines, "business.quotes.count", false)
            .values()
            .sum::<i64>()
            >= total
            && outcomes >= total
        {
            break;
        }
    }
    // Exact per arm, over both replicas: so is conversion, bookings / quotes.
    assert_eq!(counts(&lines, "business.quotes.count", false), quotes);
    assert_eq!(counts(&lines, "business.outcomes.count", true), bookings);
}
