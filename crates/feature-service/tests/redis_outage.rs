//! Redis trouble degrades answers, it does not fail them: with Redis down or too slow, GetOnlineFeatures
//! answers OK, promptly and before the caller's deadline, with what the cache holds and UNAVAILABLE for
//! the rest. Health follows the policy of the crate documentation: NOT_SERVING until the first Redis
//! connection (the service listens and answers meanwhile), SERVING from then on, outages included. Only a
//! malformed configuration fails start-up.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use proto::features::v1::{FieldStatus, GetOnlineFeaturesResponse};
use telemetry::logs::capture::Logs;
use testkit::redis::{RedisOptions, RedisServer};
use tonic_health::pb::health_check_response::ServingStatus;

fn req() -> tonic::Request<proto::features::v1::GetOnlineFeaturesRequest> {
    tonic::Request::new(request(
        &["zone_demand:available_drivers"],
        &[("zone_id", &["z-1"])],
    ))
}

fn status(response: &GetOnlineFeaturesResponse) -> FieldStatus {
    FieldStatus::try_from(response.results[0].statuses[0]).expect("known status")
}

#[tokio::test]
async fn redis_down_answers_unavailable_values_and_health_stays_serving() {
    let mut redis = RedisServer::start().expect("redis-server");
    fill_redis(&redis.url()).await;
    let server = Server::start(config(
        Some(&redis.url()),
        &["--redis-timeout-ms", "300", "--cache-ttl-ms", "0"],
    ))
    .await;
    let mut client = server.client.clone();
    let up = client.get_online_features(req()).await.expect("up").into_inner();
    assert_eq!(status(&up), FieldStatus::Present);
    redis.kill();
    for _ in 0..5 {
        let started = Instant::now();
        let response = client
            .get_online_features(req())
            .await
            .expect("an outage is no error")
            .into_inner();
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(status(&response), FieldStatus::Unavailable);
    }
    assert_eq!(server.health().await, ServingStatus::Serving);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_slow_redis_is_answered_within_the_callers_deadline() {
    let redis = RedisServer::start().expect("redis-server");
    let server = Server::start(config(
        Some(&redis.url()),
        &["--redis-timeout-ms", "2000", "--cache-ttl-ms", "0"],
    ))
    .await;
    let mut client = server.client.clone();
    redis
        .command(&["CLIENT", "PAUSE", "3000", "ALL"])
        .expect("CLIENT PAUSE");
    let budget = Duration::from_millis(300);
    // The deadline is enforced by the client too: OK means the answer beat it. The service answers 10 ms
    // before the deadline (its margin), so a scheduler stall longer than that on a loaded machine can let
    // the client's own timer fire first: up to three calls, all inside the pause. A service that waits
    // for Redis (2 s) fails every one of them.
    let mut missed = Vec::new();
    let response = loop {
        let mut call = req();
        call.set_timeout(budget);
        let started = Instant::now();
        match client.get_online_features(call).await {
            Ok(response) if started.elapsed() < budget => break response.into_inner(),
            Ok(_) => missed.push(format!("answered OK after {:?}", started.elapsed())),
            Err(status) => missed.push(format!("{:?}: {status:?}", started.elapsed())),
        }
        assert!(
            missed.len() < 3,
            "not answered within {budget:?} in three calls: {missed:#?}"
        );
    };
    assert_eq!(status(&response), FieldStatus::Unavailable);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn starting_without_redis_serves_degraded_until_the_first_connection() {
    let mut redis = RedisServer::start().expect("redis-server");
    redis.kill();
    let server = Server::start_listening(
        config(Some(&redis.url()), &["--cache-ttl-ms", "0"]),
        telemetry::metrics().clone(),
    )
    .await;
    assert_eq!(server.health().await, ServingStatus::NotServing);
    let mut client = server.client.clone();
    let response = client
        .get_online_features(req())
        .await
        .expect("answered without Redis")
        .into_inner();
    assert_eq!(status(&response), FieldStatus::Unavailable);

    redis.restart().expect("redis-server starts");
    fill_redis(&redis.url()).await;
    let took = server
        .wait_for_health(ServingStatus::Serving, Duration::from_secs(5))
        .await;
    eprintln!("SERVING {took:?} after Redis started");
    let response = client
        .get_online_features(req())
        .await
        .expect("read")
        .into_inner();
    assert_eq!(status(&response), FieldStatus::Present);

    // Once connected, a later outage degrades answers but leaves the service SERVING.
    redis.kill();
    let response = client
        .get_online_features(req())
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(status(&response), FieldStatus::Unavailable);
    assert_eq!(server.health().await, ServingStatus::Serving);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_wrong_password_keeps_the_service_not_serving() {
    let (logs, _guard) = logs();
    let redis = RedisServer::start_with(RedisOptions {
        password: Some("right".into()),
        ..Default::default()
    })
    .expect("redis-server");
    let wrong = redis.url().replace("right", "wrong");
    let pool = 2;
    let server = Server::start_listening(
        config(Some(&wrong), &["--redis-pool-size", &pool.to_string()]),
        telemetry::metrics().clone(),
    )
    .await;
    // Redis refused more AUTH attempts than the pool has connections: every connection tried and at
    // least one tried again.
    let refused = wait_for_refused_passwords(&redis, pool + 1).await;
    assert_eq!(
        server.health().await,
        ServingStatus::NotServing,
        "after {refused} refused attempts"
    );
    // The service says why.
    let failures = logs.with_message("Redis connection failed");
    let line = failures
        .first()
        .unwrap_or_else(|| panic!("no failure logged:\n{}", logs.text()));
    assert_eq!(line["error_type"], "auth", "{line}");
    // Still answering.
    let response = server
        .client
        .clone()
        .get_online_features(req())
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(status(&response), FieldStatus::Unavailable);
    server.stop().await.expect("clean shutdown");
}

/// The service's log lines, as JSON (the test runtime has one thread, so the service logs here).
fn logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    Logs::capture(&telemetry::ServiceTags {
        env: "test".into(),
        service: SERVICE.into(),
        version: "1".into(),
    })
}

/// Waits until `redis` has refused at least `at_least` passwords (its `WRONGPASS` error count), and
/// returns the count.
async fn wait_for_refused_passwords(redis: &RedisServer, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = redis
            .command(&["INFO", "errorstats"])
            .and_then(|reply| reply.into_text())
            .expect("INFO errorstats");
        let refused = stats
            .lines()
            .find_map(|line| line.strip_prefix("errorstat_WRONGPASS:count="))
            .map_or(0, |count| count.trim().parse().expect("a count"));
        if refused >= at_least {
            return refused;
        }
        assert!(
            Instant::now() < deadline,
            "Redis refused {refused} passwords in 10 s, not {at_least}: the service is not trying to connect"
        );
        // Lets the service's tasks run (the runtime has this one thread).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_malformed_redis_configuration_fails_start_up() {
    let cases: [(&str, &[&str]); 2] = [
        ("http://redis:6379", &[]),
        // TLS files for a URL without TLS.
        (
            "redis://redis:6379",
            &["--redis-tls-ca-file", "/nonexistent/ca.crt"],
        ),
    ];
    for (url, extra) in cases {
        let config = config(Some(url), extra);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            feature_service::run(config, listener, std::future::pending()),
        )
        .await
        .expect("fails at once");
        let error = result.expect_err("a malformed configuration");
        assert!(
            error.to_string().contains("Redis URL") || error.to_string().contains("TLS"),
            "{error}"
        );
    }
}
