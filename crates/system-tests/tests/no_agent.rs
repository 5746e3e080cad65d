//! With no Datadog agent at all (nothing on the DogStatsD port, nothing on the OTLP port), every request
//! still succeeds within its budget, and each service still exits promptly on SIGTERM.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use proto::inference::v1::{PredictDemandSurgeRequest, QuotePriceRequest};
use system_tests::processes::ProcessStack;

/// Far above an unoptimised build's latency on a loaded machine, far below any telemetry timeout (the
/// OTLP exporter's is 10 s): a request that waited on telemetry fails with DEADLINE_EXCEEDED.
const BUDGET_MS: u64 = 1000;

/// A loopback port with nothing listening on it.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

#[tokio::test]
async fn requests_never_wait_on_an_absent_agent() {
    let env = [
        ("DD_AGENT_HOST", "127.0.0.1".to_owned()),
        ("DD_DOGSTATSD_PORT", dead_port().to_string()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}", dead_port()),
        ),
        ("REQUEST_TIMEOUT_MS", BUDGET_MS.to_string()),
    ];
    let stack = ProcessStack::start(&env).await;
    let mut client = stack.client();
    for i in 0..300u32 {
        let quote = QuotePriceRequest {
            customer_id: format!("C{:06}", i % 2000 + 1),
            zone_id: format!("Z{:04}", i % 200 + 1),
            base_price: 10.0,
            ..Default::default()
        };
        // The gateway's budget turns any wait into DEADLINE_EXCEEDED: success means no wait.
        client
            .quote_price(quote)
            .await
            .unwrap_or_else(|e| panic!("request {i} failed: {e:?}"));
        let surge = PredictDemandSurgeRequest {
            zone_id: format!("Z{:04}", i % 200 + 1),
            ..Default::default()
        };
        client
            .predict_demand_surge(surge)
            .await
            .unwrap_or_else(|e| panic!("request {i} failed: {e:?}"));
    }
    let started = Instant::now();
    let outputs = stack.terminate().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    for (name, lines) in outputs {
        let stopped = lines.iter().any(|l| l.contains("telemetry stopped"));
        assert!(
            stopped,
            "{name} did not report its telemetry shutdown: {lines:#?}"
        );
    }
}
