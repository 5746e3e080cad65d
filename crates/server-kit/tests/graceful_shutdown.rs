//! Shutdown drains: health turns NOT_SERVING at once, the server keeps serving through the drain delay,
//! then stops accepting while in-flight calls finish, and `serve` returns once they have, or once the
//! grace period is over.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{TestServer, quick_call, wait_for_health};
use server_kit::ServerArgs;
use telemetry::Metrics;
use tonic_health::pb::health_check_response::ServingStatus;

/// Waits until `addr` refuses TCP connections (the listener is closed).
async fn wait_until_not_accepting(addr: SocketAddr) {
    let closed = async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the server stops accepting");
}

#[tokio::test]
async fn an_in_flight_call_completes_and_health_is_not_serving_during_the_drain() {
    let args = ServerArgs {
        shutdown_drain_delay_ms: 500,
        shutdown_grace_ms: 10_000,
        ..ServerArgs::default()
    };
    let mut server = TestServer::start(&args, Metrics::disabled()).await;
    let channel = server.channel().await;
    let held = server.hold(&channel).await;

    let shutdown_at = Instant::now();
    server.shut_down();
    wait_for_health(&channel, ServingStatus::NotServing).await;
    // Still serving during the drain delay, on existing and new connections.
    quick_call(&channel).await.expect("served during the drain");
    quick_call(&server.channel().await)
        .await
        .expect("new connection served during the drain");
    assert!(!server.task.is_finished());

    wait_until_not_accepting(server.addr).await;
    assert!(
        shutdown_at.elapsed() >= Duration::from_millis(500),
        "stopped accepting after {:?}, before the drain delay",
        shutdown_at.elapsed()
    );
    assert!(!server.task.is_finished(), "serve waits for the in-flight call");

    server.release();
    let response = held
        .await
        .expect("call task")
        .expect("the in-flight call completes");
    assert_eq!(response.into_inner().model, common::HELD);
    tokio::time::timeout(Duration::from_secs(5), &mut server.task)
        .await
        .expect("serve returns once drained, well within the grace period")
        .expect("server task")
        .expect("serve returns Ok");
}

#[tokio::test]
async fn a_call_slower_than_the_grace_period_does_not_hold_up_shutdown() {
    let args = ServerArgs {
        shutdown_grace_ms: 300,
        ..ServerArgs::default()
    };
    let mut server = TestServer::start(&args, Metrics::disabled()).await;
    let channel = server.channel().await;
    let _held = server.hold(&channel).await;

    let shutdown_at = Instant::now();
    server.shut_down();
    tokio::time::timeout(Duration::from_secs(5), &mut server.task)
        .await
        .expect("serve returns after the grace period")
        .expect("server task")
        .expect("serve returns Ok");
    let took = shutdown_at.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "serve returned after {took:?}"
    );
    assert_eq!(
        server.server.overload().in_flight(),
        1,
        "the held call was still running"
    );
}

#[tokio::test]
async fn an_idle_server_stops_at_once() {
    let mut server = TestServer::start(&ServerArgs::default(), Metrics::disabled()).await;
    let channel = server.channel().await;
    quick_call(&channel).await.expect("served");
    let shutdown_at = Instant::now();
    server.shut_down();
    tokio::time::timeout(Duration::from_secs(5), &mut server.task)
        .await
        .expect("serve returns")
        .expect("server task")
        .expect("serve returns Ok");
    assert!(
        shutdown_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        shutdown_at.elapsed()
    );
    assert!(quick_call(&channel).await.is_err(), "no longer serving");
}
