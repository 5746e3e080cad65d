//! GetOnlineFeatures over real gRPC against a real redis-server: values, statuses, event times, health.

use crate::common;

use common::*;
use proto::feast::types::Value;
use proto::feast::types::value::Val;
use proto::features::v1::FieldStatus;
use testkit::redis::RedisServer;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[tokio::test]
async fn serves_features_from_redis() {
    let redis = RedisServer::start().expect("redis-server");
    fill_redis(&redis.url()).await;
    let server = Server::start(config(Some(&redis.url()), &[])).await;

    let mut client = server.client.clone();
    let response = client
        .get_online_features(request(
            &[
                "customer_profile:account_age_days",
                "customer_profile:cancellation_rate",
                "zone_demand:available_drivers",
            ],
            &[
                ("customer_id", &["c-1", "c-old", "c-none"]),
                ("zone_id", &["z-1", "z-1", "z-none"]),
            ],
        ))
        .await
        .expect("call")
        .into_inner();

    assert_eq!(
        response.feature_names,
        [
            "customer_profile:account_age_days",
            "customer_profile:cancellation_rate",
            "zone_demand:available_drivers"
        ]
    );
    let status = |f: usize, r: usize| FieldStatus::try_from(response.results[f].statuses[r]).expect("status");
    let value = |f: usize, r: usize| response.results[f].values[r].val.clone();
    assert_eq!(
        (value(0, 0), status(0, 0)),
        (Some(Val::Int64Val(365)), FieldStatus::Present)
    );
    assert_eq!(
        (value(1, 0), status(1, 0)),
        (Some(Val::DoubleVal(0.05)), FieldStatus::Present)
    );
    assert_eq!(
        (value(0, 1), status(0, 1)),
        (Some(Val::Int64Val(10)), FieldStatus::OutsideMaxAge)
    );
    assert_eq!(status(1, 1), FieldStatus::NullValue);
    assert_eq!(status(0, 2), FieldStatus::NotFound);
    assert_eq!(response.results[0].values[2], Value::default());
    assert_eq!(
        (value(2, 0), status(2, 0)),
        (Some(Val::Int64Val(12)), FieldStatus::Present)
    );
    assert_eq!(status(2, 2), FieldStatus::NotFound);
    // Event times come back per value: c-1's profile row is 9 days newer than c-old's.
    let ts = &response.results[0].event_timestamps;
    assert_eq!(ts[0].seconds - ts[1].seconds, 9 * 24 * 3600);

    let mut health = HealthClient::new(server.channel.clone());
    for service in ["", feature_service::SERVICE_NAME] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "{service:?}");
    }
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn serves_the_embedded_snapshot_without_redis() {
    let server = Server::start(config(None, &[])).await;
    let mut client = server.client.clone();
    let snapshot = feature_store::CsvFile::bundled();
    let Some(profile) = snapshot.iter().find(|f| f.view == "customer_profile") else {
        return; // A build without a snapshot serves NOT_FOUND everywhere; nothing more to check here.
    };
    // The first data row's customer id.
    let id = profile
        .text
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').next())
        .expect("a row")
        .to_owned();
    let response = client
        .get_online_features(request(
            &["customer_profile:account_age_days"],
            &[("customer_id", &[id.as_str()])],
        ))
        .await
        .expect("call")
        .into_inner();
    let status = FieldStatus::try_from(response.results[0].statuses[0]).expect("status");
    assert!(
        matches!(status, FieldStatus::Present | FieldStatus::OutsideMaxAge),
        "{status:?}"
    );
    server.stop().await.expect("clean shutdown");
}
