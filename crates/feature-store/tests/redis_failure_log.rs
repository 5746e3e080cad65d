//! A failed Redis round trip writes one structured error line: command, bounded error type, key count
//! and the Redis URL with its password redacted; the password appears in no line. An outage failing every
//! request logs about once a second (each line saying how many it held back), while
//! `redis.command.errors` counts every failure.

use crate::common;

use std::time::Duration;

use common::*;
use feature_store::StoreConfig;
use proto::features::v1::FieldStatus;
use testkit::redis::{RedisOptions, RedisServer};

const PASSWORD: &str = "hunter2-s3cret";

#[tokio::test]
async fn a_redis_timeout_is_logged_with_the_redacted_url_only() {
    let (logs, _guard) = common::logs::capture();
    let server = RedisServer::start_with(RedisOptions {
        password: Some(PASSWORD.into()),
        ..Default::default()
    })
    .expect("redis-server");
    let mut redis = redis_config(&server.url());
    redis.timeout = Duration::from_millis(150);
    let mut config = StoreConfig::new(registry());
    config.redis = Some(redis);
    config.cache = no_cache();
    let store = open_connected(config).await;
    server
        .command(&["CLIENT", "PAUSE", "1000", "ALL"])
        .expect("CLIENT PAUSE");
    let response = store
        .get_online_features(
            request(
                &["zone_demand:available_drivers"],
                &[("zone_id", &["z-1", "z-2"])],
            ),
            None,
        )
        .await
        .expect("a slow Redis is no error");
    assert_eq!(cell(&response, 0, 1).1, FieldStatus::Unavailable);

    let text = logs.text();
    assert!(!text.contains(PASSWORD), "{text}");
    let failed = logs.with_message("Redis command failed");
    assert_eq!(failed.len(), 1, "{text}");
    let line = &failed[0];
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["error_type"], "timeout");
    assert_eq!(line["redis.command"], "HGETALL");
    assert_eq!(line["redis.keys"], 2);
    assert_eq!(line["held_back"], 0);
    let url = line["redis.url"].as_str().expect("redis.url");
    assert!(url.starts_with("redis://") && url.contains(":***@"), "{url}");
    assert!(line["error"].as_str().is_some_and(|e| !e.is_empty()), "{line}");
}

#[tokio::test]
async fn an_outage_logs_once_a_second_and_counts_every_failure() {
    let (logs, _guard) = common::logs::capture();
    let mut server = RedisServer::start().expect("redis-server");
    let agent = StatsdAgent::start(SERVICE);
    let mut config = StoreConfig::new(registry());
    config.redis = Some(redis_config(&server.url()));
    config.cache = no_cache();
    config.metrics = agent.metrics.clone();
    let store = open_connected(config).await;
    server.kill();
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while store.is_connected() {
        assert!(std::time::Instant::now() < give_up, "the kill went unnoticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    agent.lines();
    let before = logs.lines().len();

    let req = request(&["zone_demand:available_drivers"], &[("zone_id", &["z-1"])]);
    let started = std::time::Instant::now();
    for _ in 0..200 {
        let response = store
            .get_online_features(req.clone(), None)
            .await
            .expect("answered");
        assert_eq!(cell(&response, 0, 0).1, FieldStatus::Unavailable);
    }
    let took = started.elapsed();
    // Not connected: every call failed at once, so the 200 fit in well under the limiter's second.
    assert!(took < Duration::from_millis(500), "{took:?}");

    let lines = logs.lines();
    let redis_lines = lines[before..]
        .iter()
        .filter(|l| l["message"] == "Redis command failed" || l["message"] == "Redis connection failed")
        .count();
    assert!(
        redis_lines <= 1,
        "{redis_lines} lines in {took:?}: {}",
        logs.text()
    );
    let counted = value_of(
        &agent.lines(),
        "redis.command.errors",
        "c",
        "command:HGETALL,error_type:unavailable",
    );
    assert_eq!(counted.as_deref(), Some("200"));
    agent.metrics.shutdown(Duration::from_secs(2));
}
