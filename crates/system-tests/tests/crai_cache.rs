//! The CRAI cache through the three services as processes: a customer's risk asked again within the TTL
//! is answered by the gateway alone — even with the model-service gone — counted as a hit, while a new
//! customer still needs the model-service; with the cache off, every answer does. A request resolves
//! its model's version once.

use proto::inference::v1::PredictCustomerRiskRequest;
use proto::inference::v1::inference_service_client::InferenceServiceClient;
use system_tests::processes::{ProcessStack, ServiceProcess};
use testkit::statsd::{DogStatsdSocket, count_sum as count};
use tonic::transport::Channel;

async fn risk(
    client: &mut InferenceServiceClient<Channel>,
    customer: &str,
) -> Result<(f64, String), tonic::Status> {
    client
        .predict_customer_risk(PredictCustomerRiskRequest {
            customer_id: customer.to_owned(),
            ..Default::default()
        })
        .await
        .map(|r| {
            let r = r.into_inner();
            (r.risk_score, r.metadata.expect("metadata").model_version)
        })
}

#[tokio::test]
async fn a_repeated_customer_is_answered_from_the_cache_and_a_new_one_is_not() {
    let socket = DogStatsdSocket::bind();
    let env = [
        ("DD_DOGSTATSD_URL", socket.url()),
        ("DD_TRACE_ENABLED", "false".to_owned()),
        ("TELEMETRY_METRICS_FLUSH_INTERVAL_MS", "200".to_owned()),
    ];
    let ProcessStack {
        mut models,
        features,
        gateway,
    } = ProcessStack::start(&env).await;
    let mut client = InferenceServiceClient::new(gateway.channel());
    // What start-up sent (its version lookups among it) is flushed within the interval: leave it out.
    socket.receive_until(std::time::Duration::from_millis(600), |_| false);
    let first = risk(&mut client, "C000042").await.expect("scored");
    assert_eq!(first.1, "1");

    models.kill();
    let again = risk(&mut client, "C000042")
        .await
        .expect("answered from the cache");
    assert_eq!(again, first, "the cached answer is the model's");
    let other = risk(&mut client, "C000043").await;
    assert!(
        other.is_err(),
        "a new customer needs the model-service: {other:?}"
    );

    // Counts arrive with the flushes after the calls: gather until both are in (or the wait ends).
    let mut lines: Vec<String> = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(10)
        && (count(&lines, "cache.crai.hit", "model:customer_risk") < 1
            || count(&lines, "cache.crai.miss", "model:customer_risk") < 2)
    {
        let datagrams = socket.receive_until(std::time::Duration::from_millis(300), |_| false);
        lines.extend(datagrams.iter().flat_map(|d| d.lines().map(str::to_owned)));
    }
    assert_eq!(
        count(&lines, "cache.crai.hit", "model:customer_risk"),
        1,
        "{lines:#?}"
    );
    assert_eq!(
        count(&lines, "cache.crai.miss", "model:customer_risk"),
        2,
        "{lines:#?}"
    );
    // One version lookup per request: the scoring uses the version the cache lookup resolved.
    let lookups =
        count(&lines, "cache.model_metadata.hit", "") + count(&lines, "cache.model_metadata.miss", "");
    assert_eq!(lookups, 3, "{lines:#?}");
    drop((features, gateway));

    // Off: the same repeat needs the model-service.
    let off = ProcessStack::start(&[("CRAI_CACHE_TTL_MS", "0".to_owned())]).await;
    let ProcessStack {
        mut models,
        features,
        gateway,
    } = off;
    let mut client = InferenceServiceClient::new(gateway.channel());
    risk(&mut client, "C000042").await.expect("scored");
    models.kill();
    assert!(risk(&mut client, "C000042").await.is_err(), "no cache, no answer");
    drop((features, gateway));
}

#[tokio::test]
async fn with_the_model_service_away_the_cache_leaves_the_answer_to_the_fallback_policy() {
    // The cache cannot resolve the version it would look up: the request goes on to the fallback.
    let features = ServiceProcess::start("feature-service", &[]).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let models_url = format!("http://{}", dead.local_addr().expect("address"));
    drop(dead);
    let mut gateway_env = vec![
        ("FEATURE_SERVICE_URL", features.url()),
        ("MODEL_SERVICE_URL", models_url),
        ("MODEL_FALLBACK", "neutral".to_owned()),
    ];
    gateway_env.extend(system_tests::services::test_budget_env());
    let gateway = ServiceProcess::start("gateway", &gateway_env).await;
    let mut client = InferenceServiceClient::new(gateway.channel());
    let answer = client
        .predict_customer_risk(PredictCustomerRiskRequest {
            customer_id: "C000042".into(),
            ..Default::default()
        })
        .await
        .expect("the neutral fallback answers")
        .into_inner();
    let meta = answer.metadata.expect("metadata");
    assert!(meta.fallback && meta.degraded, "{meta:?}");
    assert_eq!(answer.risk_multiplier, 1.0);
}
