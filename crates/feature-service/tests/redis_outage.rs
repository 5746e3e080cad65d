//! Redis trouble reaches callers as UNAVAILABLE or DEADLINE_EXCEEDED, promptly: never a hang or a panic.

mod common;

use std::time::{Duration, Instant};

use common::*;
use testkit::redis::RedisServer;
use tonic::Code;

fn req() -> tonic::Request<proto::features::v1::GetOnlineFeaturesRequest> {
    tonic::Request::new(request(
        &["zone_demand:available_drivers"],
        &[("zone_id", &["z-1"])],
    ))
}

#[tokio::test]
async fn redis_down_is_unavailable() {
    let mut redis = RedisServer::start().expect("redis-server");
    let server = Server::start(config(
        Some(&redis.url()),
        &["--redis-timeout-ms", "300", "--cache-ttl-ms", "0"],
    ))
    .await;
    let mut client = server.client.clone();
    client.get_online_features(req()).await.expect("up");
    redis.kill();
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let started = Instant::now();
        let status = client
            .get_online_features(req())
            .await
            .expect_err("Redis is down");
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "took {:?}",
            started.elapsed()
        );
        match status.code() {
            Code::Unavailable => break,
            Code::DeadlineExceeded => {}
            other => panic!("unexpected {other:?}: {}", status.message()),
        }
        assert!(Instant::now() < give_up, "never UNAVAILABLE");
    }
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_slow_redis_is_deadline_exceeded_within_the_callers_deadline() {
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
    let mut call = req();
    call.set_timeout(Duration::from_millis(150));
    let started = Instant::now();
    let status = client.get_online_features(call).await.expect_err("paused");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{}", status.message());
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "took {:?}",
        started.elapsed()
    );
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn unreachable_redis_at_start_up_is_an_error() {
    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    drop(redis);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let result = feature_service::run(config(Some(&url), &[]), listener, std::future::pending()).await;
    let error = result.expect_err("cannot connect");
    assert!(error.to_string().contains("cannot connect to Redis"), "{error}");
}
