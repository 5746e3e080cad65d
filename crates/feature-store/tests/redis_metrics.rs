//! Each Redis round trip is measured: `redis.command.latency_ms{command}` per pipeline sent, and
//! `redis.command.errors{command,error_type}` (bounded: timeout, unavailable, ...) per failure, read
//! from a real UDP socket.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use feature_store::{OnlineStore, ReadStrategy, StoreConfig};
use proto::features::v1::FieldStatus;
use testkit::redis::RedisServer;

async fn store(url: &str, agent: &StatsdAgent, strategy: ReadStrategy) -> OnlineStore {
    let mut redis = redis_config(url);
    redis.timeout = Duration::from_millis(200);
    redis.read_strategy = strategy;
    let mut config = StoreConfig::new(registry());
    config.redis = Some(redis);
    config.cache = no_cache();
    config.metrics = agent.metrics.clone();
    open_connected(config).await
}

fn req() -> proto::features::v1::GetOnlineFeaturesRequest {
    request(
        &["zone_demand:available_drivers"],
        &[("zone_id", &["z-1", "z-stale"])],
    )
}

#[tokio::test]
async fn latency_per_pipeline_and_errors_by_type() {
    let mut server = RedisServer::start().expect("redis-server");
    fill(&server.url()).await;
    let agent = StatsdAgent::start(SERVICE);
    let store = store(&server.url(), &agent, ReadStrategy::HashGetFields).await;

    store.get_online_features(req(), None).await.expect("read");
    store.get_online_features(req(), None).await.expect("read");
    let lines = agent.lines();
    let latency = value_of(&lines, "redis.command.latency_ms", "d", "command:HMGET").expect("HMGET latency");
    assert_eq!(
        latency.split(':').count(),
        2,
        "one sample per pipeline: {latency}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("redis.command.errors")),
        "{lines:#?}"
    );

    // Paused: the pipeline is sent and times out (the values are UNAVAILABLE; the request is answered).
    server
        .command(&["CLIENT", "PAUSE", "1000", "ALL"])
        .expect("CLIENT PAUSE");
    let response = store.get_online_features(req(), None).await.expect("answered");
    assert_eq!(cell(&response, 0, 0).1, FieldStatus::Unavailable);
    let lines = agent.lines();
    assert_eq!(
        value_of(
            &lines,
            "redis.command.errors",
            "c",
            "command:HMGET,error_type:timeout"
        )
        .as_deref(),
        Some("1"),
        "{lines:#?}"
    );
    assert!(
        value_of(&lines, "redis.command.latency_ms", "d", "command:HMGET").is_some(),
        "{lines:#?}"
    );
    assert_eq!(
        value_of(
            &lines,
            "features.lookups",
            "c",
            "feature_view:zone_demand,status:unavailable"
        )
        .as_deref(),
        Some("2"),
        "{lines:#?}"
    );

    // Down: once fred has noticed, calls fail at once as unavailable (counted, no latency sample).
    server.kill();
    let give_up = Instant::now() + Duration::from_secs(10);
    while store.is_connected() {
        store.get_online_features(req(), None).await.expect("answered");
        assert!(Instant::now() < give_up, "the kill went unnoticed");
    }
    store.get_online_features(req(), None).await.expect("answered");
    let lines = agent.lines();
    let unavailable = value_of(
        &lines,
        "redis.command.errors",
        "c",
        "command:HMGET,error_type:unavailable",
    )
    .expect("unavailable errors");
    assert!(unavailable.parse::<u64>().expect("count") >= 1, "{unavailable}");
    agent.metrics.shutdown(Duration::from_secs(2));
}
