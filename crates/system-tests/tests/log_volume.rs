//! What a request costs in logs: the bytes and lines the three services write per public API call, for
//! a mix of the four RPCs against Redis-backed features, held to the bounds the cost model in
//! `deploy/datadog/cost-model.json` prices (the cost section of docs/observability.md is computed from
//! them, so a change that logs more per request fails here until the cost is restated).

use std::time::Duration;

use proto::inference::v1::{
    PredictCustomerRiskRequest, PredictDemandSurgeRequest, QuotePriceRequest, RecordOutcomeRequest,
};
use system_tests::materialize_snapshot;
use system_tests::processes::{ProcessStack, ServiceProcess};
use testkit::redis::RedisServer;

/// Public API calls sent (a quarter of each RPC).
const CALLS: usize = 400;

fn cost_model() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/datadog/cost-model.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("cost model")).expect("cost model JSON")
}

/// The gateway's default LOG_SAMPLE_RATE.
fn shipped_sample_rate() -> f64 {
    use clap::Parser as _;
    gateway::Config::try_parse_from(["gateway"])
        .expect("defaults parse")
        .log_sample_rate
}

/// Lines and bytes (newline included) each process has written so far.
fn written(processes: [&ServiceProcess; 3]) -> (usize, usize) {
    processes.iter().fold((0, 0), |(lines, bytes), p| {
        let out = p.lines();
        (
            lines + out.len(),
            bytes + out.iter().map(|l| l.len() + 1).sum::<usize>(),
        )
    })
}

async fn settled(stack: &ProcessStack) -> (usize, usize) {
    // Lines go through a non-blocking writer: wait until the count stops moving.
    let mut last = written([&stack.gateway, &stack.features, &stack.models]);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = written([&stack.gateway, &stack.features, &stack.models]);
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test]
async fn a_request_writes_no_more_logs_than_the_cost_model_prices() {
    let redis = RedisServer::start().expect("redis-server");
    materialize_snapshot(&redis.url()).await;
    let dead_agent = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let env = [
        ("REDIS_URL", redis.url()),
        ("QUOTE_REDIS_URL", redis.url()),
        // Traces on (log lines then carry dd.trace_id and dd.span_id, as in production) to an endpoint
        // that refuses them.
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", dead_agent.local_addr().expect("addr")),
        ),
        ("DD_ENV", "prod".to_owned()),
        ("DD_VERSION", "1.42.0".to_owned()),
        // The policy the gateway ships with (the test kit writes every line otherwise).
        ("LOG_SAMPLE_RATE", shipped_sample_rate().to_string()),
    ];
    drop(dead_agent);
    let stack = ProcessStack::start(&env).await;
    let mut client = stack.client();
    // Warm caches and connections: first calls log one-off lines (connections, metadata).
    client
        .quote_price(QuotePriceRequest {
            customer_id: "C000001".into(),
            zone_id: "Z0001".into(),
            base_price: 10.0,
            ..Default::default()
        })
        .await
        .expect("warm-up quote");
    let before = settled(&stack).await;

    for i in 0..CALLS / 4 {
        let customer = format!("C{:06}", 1 + i % 500);
        let zone = format!("Z{:04}", 1 + i % 100);
        client
            .predict_customer_risk(PredictCustomerRiskRequest {
                customer_id: customer.clone(),
                ..Default::default()
            })
            .await
            .expect("risk");
        client
            .predict_demand_surge(PredictDemandSurgeRequest {
                zone_id: zone.clone(),
                ..Default::default()
            })
            .await
            .expect("surge");
        let quote = client
            .quote_price(QuotePriceRequest {
                customer_id: customer,
                zone_id: zone,
                base_price: 25.0,
                ..Default::default()
            })
            .await
            .expect("quote")
            .into_inner();
        client
            .record_outcome(RecordOutcomeRequest {
                quote_id: quote.quote_id,
                booked: i % 3 == 0,
                revenue: if i % 3 == 0 { quote.price } else { 0.0 },
                ..Default::default()
            })
            .await
            .expect("outcome");
    }
    let after = settled(&stack).await;
    let lines_per_call = (after.0 - before.0) as f64 / CALLS as f64;
    let bytes_per_call = (after.1 - before.1) as f64 / CALLS as f64;
    println!(
        "log volume: {lines_per_call:.2} lines and {bytes_per_call:.0} bytes per public API call ({CALLS} calls)"
    );

    let model = cost_model();
    let max_lines = model["log_lines_per_request"]
        .as_f64()
        .expect("log_lines_per_request");
    let max_bytes = model["log_bytes_per_request"]
        .as_f64()
        .expect("log_bytes_per_request");
    // Some routine lines are kept (a tenth by default), and every degraded one.
    assert!(
        lines_per_call > 0.02 && bytes_per_call > 5.0,
        "requests are logged: {lines_per_call} lines, {bytes_per_call} bytes per call"
    );
    assert!(
        lines_per_call <= max_lines && bytes_per_call <= max_bytes,
        "a request now writes {lines_per_call:.2} lines and {bytes_per_call:.0} bytes of logs, past the {max_lines} lines \
         and {max_bytes} bytes deploy/datadog/cost-model.json prices: raise them there and restate the cost \
         (`cargo run -p datadog-resources -- check` prints the new section), or log less"
    );
    stack.terminate().await;
}
