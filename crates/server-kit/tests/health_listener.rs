//! The plaintext health listener (`HEALTH_LISTEN_ADDR`): Kubernetes' gRPC probes speak neither TLS nor
//! mutual TLS, so a server whose main port requires them still answers `grpc.health.v1` in plaintext on a
//! second port, with the same statuses, and stops with the server. `liveness` stays SERVING while the
//! readiness statuses drain.

use crate::common;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::time::Duration;

use common::{SERVICE_NAME, TestServer, quick_call};
use server_kit::test_certs::{TestPki, TlsArgs};
use server_kit::{Error, LIVENESS, ServerArgs};
use telemetry::Metrics;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], testkit::free_port()))
}

async fn status(channel: &Channel, service: &str) -> ServingStatus {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap_or_else(|e| panic!("health check of {service:?}: {e}"))
        .into_inner()
        .status()
}

#[tokio::test]
async fn probes_reach_a_mutual_tls_server_over_plaintext_on_the_health_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path()).expect("test certificates");
    let health_addr = free_addr();
    let args = ServerArgs {
        health_listen_addr: Some(health_addr),
        shutdown_drain_delay_ms: 300,
        ..pki.server_args(true)
    };
    let mut server = TestServer::start(&args, Metrics::disabled()).await;
    assert_eq!(server.server.security(), "mutual TLS");

    // The main port refuses a plaintext client; the health port answers it.
    let main = Endpoint::from_shared(format!("http://{}", server.addr))
        .expect("endpoint")
        .timeout(Duration::from_secs(2))
        .connect_lazy();
    quick_call(&main)
        .await
        .expect_err("plaintext on the mutual-TLS port");
    let mut probe = None;
    for _ in 0..50 {
        if let Ok(channel) = Endpoint::from_shared(format!("http://{health_addr}"))
            .expect("endpoint")
            .connect()
            .await
        {
            probe = Some(channel);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let probe = probe.expect("the health listener comes up with the server");
    for service in ["", SERVICE_NAME, LIVENESS] {
        assert_eq!(
            status(&probe, service).await,
            ServingStatus::Serving,
            "{service:?}"
        );
    }
    // Only health is served there.
    quick_call(&probe)
        .await
        .expect_err("the health port serves nothing but health");

    // Draining: readiness turns NOT_SERVING at once, liveness does not.
    server.shut_down();
    let mut drained = false;
    for _ in 0..50 {
        if status(&probe, "").await == ServingStatus::NotServing {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(drained, "readiness reports NOT_SERVING during the drain delay");
    assert_eq!(status(&probe, SERVICE_NAME).await, ServingStatus::NotServing);
    assert_eq!(status(&probe, LIVENESS).await, ServingStatus::Serving);

    // Once the server is done, so is the health listener.
    server.task.await.expect("joined").expect("clean stop");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let gone = Endpoint::from_shared(format!("http://{health_addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await;
    assert!(gone.is_err(), "the health listener closed with the server");
}

#[tokio::test]
async fn a_health_address_in_use_is_a_start_up_error_naming_the_setting() {
    let taken = StdListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let args = ServerArgs {
        health_listen_addr: Some(addr),
        ..ServerArgs::default()
    };
    let server = TestServer::start(&args, Metrics::disabled()).await;
    let error = server.task.await.expect("joined").expect_err("the port is taken");
    assert!(matches!(error, Error::Bind { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("HEALTH_LISTEN_ADDR") && text.contains(&addr.to_string()),
        "{text}"
    );
}
