//! The gateway's JSON log lines for a request carry, at top level, the `dd.trace_id` / `dd.span_id` of
//! the trace the APM test agent received, with the request id, customer id and model version beside them.

use std::time::{Duration, Instant};

use proto::inference::v1::PredictCustomerRiskRequest;
use system_tests::processes::{ProcessStack, json_lines};
use testkit::agent::TestAgent;
use testkit::otlp::spans;

#[tokio::test]
async fn log_lines_name_the_trace_the_agent_received() {
    let agent = TestAgent::start();
    let stack = ProcessStack::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", agent.otlp_endpoint())]).await;
    let mut request = tonic::Request::new(PredictCustomerRiskRequest {
        customer_id: "C000321".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-request-id", "req-logs-1".parse().expect("ascii"));
    stack
        .client()
        .predict_customer_risk(request)
        .await
        .expect("prediction");
    let outputs = stack.terminate().await;
    let gateway_lines = &outputs
        .iter()
        .find(|(name, _)| *name == "gateway")
        .expect("gateway output")
        .1;

    let line: serde_json::Value = json_lines(gateway_lines)
        .into_iter()
        .find(|l| l["message"] == "risk predicted")
        .unwrap_or_else(|| panic!("no 'risk predicted' line in {gateway_lines:#?}"));
    assert_eq!(line["request_id"], "req-logs-1", "{line}");
    assert_eq!(line["customer_id"], "C000321", "{line}");
    assert_eq!(line["model_version"], "1", "{line}");
    assert_eq!(line["dd.service"], "gateway", "{line}");
    let trace_id: u64 = line["dd.trace_id"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("dd.trace_id as decimal");
    let span_id: u64 = line["dd.span_id"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("dd.span_id as decimal");

    let started = Instant::now();
    loop {
        let received = spans(&agent.traces());
        if let Some(root) = received
            .iter()
            .find(|s| s.service == "gateway" && s.name.ends_with("/PredictCustomerRisk"))
        {
            assert_eq!(
                root.trace_id as u64, trace_id,
                "dd.trace_id is the low 64 bits of the trace id"
            );
            assert_eq!(root.span_id, span_id, "dd.span_id is the request's server span");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the agent received no gateway span: {received:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
