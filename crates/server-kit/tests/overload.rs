//! A server at its concurrency limit refuses the next request at once with RESOURCE_EXHAUSTED, counts
//! it, keeps answering health checks, and takes new requests again once the running ones finish.

use crate::common;

use std::time::{Duration, Instant};

use common::{TestServer, health_check, quick_call};
use server_kit::ServerArgs;
use telemetry::{Metrics, MetricsOptions, ServiceTags};
use testkit::statsd::DogStatsdSocket;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

const LIMIT: u32 = 3;

/// A test agent and a sink sending to it.
async fn agent() -> (DogStatsdSocket, Metrics) {
    let socket = DogStatsdSocket::bind();
    let target = socket.target();
    let tags = ServiceTags {
        env: "test".into(),
        service: "server-kit".into(),
        version: "0.1.0".into(),
    };
    let options = MetricsOptions {
        flush_interval: Duration::from_secs(3600),
        ..MetricsOptions::new(target, tags)
    };
    (socket, Metrics::start(options).expect("metrics sink"))
}

/// The `grpc.server.shed` count in everything the sink sends on a flush.
async fn shed_count(socket: &DogStatsdSocket, metrics: &Metrics) -> i64 {
    let flushing = metrics.clone();
    let flushed = tokio::task::spawn_blocking(move || flushing.flush(Duration::from_secs(5)))
        .await
        .expect("flush task");
    assert!(flushed, "the sink flushed");
    let mut total = 0;
    while let Some(datagram) = socket.next_datagram_async().await {
        for line in datagram.lines() {
            if let Some(rest) = line.strip_prefix("grpc.server.shed:") {
                let value = rest.split('|').next().unwrap_or_default();
                total += value.parse::<i64>().expect("a count");
            }
        }
    }
    total
}

#[tokio::test]
async fn at_the_limit_a_request_is_refused_at_once_and_health_still_answers() {
    let (socket, metrics) = agent().await;
    let args = ServerArgs {
        max_concurrent_requests: LIMIT,
        ..ServerArgs::default()
    };
    let mut server = TestServer::start(&args, metrics.clone()).await;
    let channel = server.channel().await;
    let mut held = Vec::new();
    for _ in 0..LIMIT {
        held.push(server.hold(&channel).await);
    }
    assert_eq!(server.server.overload().in_flight(), LIMIT as usize);

    // One more, on the same connection and on a new one: refused at once, not queued.
    let other = server.channel().await;
    for channel in [&channel, &other] {
        let started = Instant::now();
        let status = quick_call(channel).await.expect_err("over the limit");
        let elapsed = started.elapsed();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(
            status.message(),
            "server overloaded: 3 requests in flight; retry with backoff"
        );
        assert!(elapsed < Duration::from_secs(1), "refused after {elapsed:?}");
    }
    // Health checks bypass the limit.
    assert_eq!(
        health_check(&channel).await.expect("health answers"),
        ServingStatus::Serving
    );
    assert_eq!(shed_count(&socket, &metrics).await, 2);

    // Once the running calls finish, new ones are taken again.
    server.release();
    for call in held {
        call.await.expect("call task").expect("held call succeeds");
    }
    quick_call(&channel).await.expect("under the limit again");
    assert_eq!(server.server.overload().in_flight(), 0);
    server.shut_down();
    server.task.await.expect("server task").expect("clean stop");
}

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused() {
    let args = ServerArgs {
        max_request_bytes: 1024,
        ..ServerArgs::default()
    };
    let mut server = TestServer::start(&args, Metrics::disabled()).await;
    let channel = server.channel().await;
    let mut client = proto::models::v1::model_service_client::ModelServiceClient::new(channel.clone());
    let status = client
        .predict(common::predict(&"x".repeat(2048)))
        .await
        .expect_err("too large");
    // tonic's code for a message over `max_decoding_message_size`.
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("1024"), "{status:?}");
    client
        .predict(common::predict(&"x".repeat(512)))
        .await
        .expect("under the limit");
    server.shut_down();
    server.task.await.expect("server task").expect("clean stop");
}
