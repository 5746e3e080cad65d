//! A dependency that is gone or too slow turns into UNAVAILABLE or DEADLINE_EXCEEDED within the request's
//! budget: never a hang, never a panic.

use std::time::{Duration, Instant};

use proto::inference::v1::PredictCustomerRiskRequest;
use testkit::features::materialize_snapshot;
use testkit::redis::RedisServer;
use testkit::services::{Stack, feature_service, gateway, model_service};
use tonic::Code;

const BUDGET_MS: u64 = 100;
/// Scheduling slack on a loaded 2-core CI machine.
const MARGIN: Duration = Duration::from_millis(150);

fn risk(id: &str) -> PredictCustomerRiskRequest {
    PredictCustomerRiskRequest {
        customer_id: id.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn stopped_services_are_unavailable() {
    let models = model_service(&[]).await;
    let features = feature_service(None, &[]).await;
    let gw = gateway(&features, &models, &[]).await;
    let mut client =
        proto::inference::v1::inference_service_client::InferenceServiceClient::new(gw.channel());
    client
        .predict_customer_risk(risk("C000001"))
        .await
        .expect("healthy first");

    models.stop().await.expect("model-service stops cleanly");
    let started = Instant::now();
    let status = client
        .predict_customer_risk(risk("C000002"))
        .await
        .expect_err("model-service is gone");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("model-service"), "{}", status.message());
    assert!(
        started.elapsed() < Duration::from_millis(BUDGET_MS) + MARGIN,
        "{:?}",
        started.elapsed()
    );

    features.stop().await.expect("feature-service stops cleanly");
    let status = client
        .predict_customer_risk(risk("C000003"))
        .await
        .expect_err("feature-service is gone");
    assert!(
        matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{status:?}"
    );
    assert!(status.message().contains("service"), "{}", status.message());
    gw.stop().await.expect("gateway stops cleanly");
}

#[tokio::test]
async fn a_paused_redis_costs_the_budget_not_more() {
    let redis = RedisServer::start().expect("redis-server");
    materialize_snapshot(&redis.url()).await;
    let stack = Stack::start_with(
        Some(&redis.url()),
        &["--request-timeout-ms", &BUDGET_MS.to_string()],
    )
    .await;
    let mut client = stack.client();
    client
        .predict_customer_risk(risk("C000001"))
        .await
        .expect("healthy first");

    redis.command(&["CLIENT", "PAUSE", "1500", "ALL"]).expect("pause");
    let started = Instant::now();
    // A customer not asked for before, so the feature cache cannot answer.
    let status = client
        .predict_customer_risk(risk("C000777"))
        .await
        .expect_err("Redis is paused");
    let took = started.elapsed();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Unavailable),
        "{status:?}"
    );
    assert!(
        took < Duration::from_millis(BUDGET_MS) + MARGIN,
        "answered after {took:?}"
    );

    // Redis answers again once the pause ends; so does the path.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client.predict_customer_risk(risk("C000778")).await {
            Ok(_) => break,
            Err(status) if Instant::now() < deadline => {
                eprintln!("not yet recovered: {status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("no recovery 5 s after the pause: {status:?}"),
        }
    }
    stack.stop().await.expect("clean stop");
}
