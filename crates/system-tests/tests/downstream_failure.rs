//! A dependency that is gone or too slow costs at most the request's budget: never a hang, never a panic.
//! Features that cannot be read turn into the models' defaults (a degraded answer, by default) or
//! UNAVAILABLE (`FEATURE_FALLBACK=fail`); a model-service that is gone turns into UNAVAILABLE.

use std::time::{Duration, Instant};

use proto::inference::v1::PredictCustomerRiskRequest;
use system_tests::materialize_snapshot;
use system_tests::services::{Stack, feature_service, gateway, model_service};
use testkit::redis::RedisServer;
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
async fn a_stopped_model_service_is_unavailable() {
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

    gw.stop().await.expect("gateway stops cleanly");
    features.stop().await.expect("feature-service stops cleanly");
}

#[tokio::test]
async fn a_stopped_feature_service_degrades_or_fails_as_configured() {
    let models = model_service(&[]).await;
    let features = feature_service(None, &[]).await;
    let degrade = gateway(&features, &models, &[]).await;
    let fail = gateway(&features, &models, &["--feature-fallback", "fail"]).await;
    let mut degrade =
        proto::inference::v1::inference_service_client::InferenceServiceClient::new(degrade.channel());
    let mut fail =
        proto::inference::v1::inference_service_client::InferenceServiceClient::new(fail.channel());
    for client in [&mut degrade, &mut fail] {
        let healthy = client
            .predict_customer_risk(risk("C000001"))
            .await
            .expect("healthy first");
        let meta = healthy.into_inner().metadata.expect("metadata");
        assert!(meta.unavailable_features.is_empty(), "{meta:?}");
    }

    features.stop().await.expect("feature-service stops cleanly");
    let started = Instant::now();
    let answer = degrade
        .predict_customer_risk(risk("C000003"))
        .await
        .expect("answered with the model's defaults")
        .into_inner();
    assert!(
        started.elapsed() < Duration::from_millis(BUDGET_MS) + MARGIN,
        "{:?}",
        started.elapsed()
    );
    let meta = answer.metadata.expect("metadata");
    assert!(meta.degraded && !meta.fallback, "{meta:?}");
    assert_eq!(
        meta.unavailable_features.len(),
        9,
        "every customer feature: {meta:?}"
    );
    assert!(
        (0.0..=1.0).contains(&answer.risk_score),
        "a model score: {}",
        answer.risk_score
    );

    let status = fail
        .predict_customer_risk(risk("C000004"))
        .await
        .expect_err("FEATURE_FALLBACK=fail");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("feature-service"),
        "{}",
        status.message()
    );
    models.stop().await.expect("model-service stops cleanly");
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
    let answer = client
        .predict_customer_risk(risk("C000777"))
        .await
        .expect("answered with the model's defaults while Redis is paused")
        .into_inner();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(BUDGET_MS) + MARGIN,
        "answered after {took:?}"
    );
    let meta = answer.metadata.expect("metadata");
    assert!(meta.degraded && !meta.unavailable_features.is_empty(), "{meta:?}");

    // Redis answers again once the pause ends; so does the path, with every feature read.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client.predict_customer_risk(risk("C000778")).await {
            Ok(answer)
                if answer
                    .get_ref()
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.unavailable_features.is_empty()) =>
            {
                break;
            }
            other if Instant::now() < deadline => {
                eprintln!("not yet recovered: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("no recovery 5 s after the pause: {other:?}"),
        }
    }
    stack.stop().await.expect("clean stop");
}
