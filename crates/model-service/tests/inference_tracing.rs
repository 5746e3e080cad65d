//! Traces of a Predict call: the server span from the gRPC layer joins the caller's trace (W3C
//! header), and the `model.inference` span is its child whether the rows are scored inline or on the
//! blocking pool, with model, version, variant and row count, and the error when scoring fails.

use crate::common;

use common::{TestServer, request, row};
use model_service::service::INLINE_MAX_ROWS;
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use proto::models::v1::PredictRequest;
use telemetry::trace::capture::{self, SpanData, attribute};

/// Sends `message` as a call of trace `trace_id` (W3C `traceparent`, parent span `caller`) and returns
/// the trace's server and inference spans once both are exported.
async fn traced_predict(
    server: &mut TestServer,
    message: PredictRequest,
    trace_id: TraceId,
    caller: SpanId,
) -> (SpanData, SpanData) {
    let mut request = tonic::Request::new(message);
    let traceparent = format!("00-{trace_id}-{caller}-01");
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().expect("ascii"));
    let _ = server.client.predict(request).await;
    let both = |spans: &[SpanData]| {
        let find = |kind: SpanKind| spans.iter().find(|span| span.span_kind == kind).cloned();
        find(SpanKind::Server).zip(find(SpanKind::Internal))
    };
    let spans = capture::wait_for(trace_id, |spans| both(spans).is_some()).await;
    both(&spans).unwrap_or_else(|| panic!("spans of {trace_id}: {spans:#?}"))
}

#[tokio::test]
async fn the_inference_span_is_a_child_of_the_server_span_inline_and_on_the_blocking_pool() {
    capture::install();
    let mut server = TestServer::start().await;
    let caller = SpanId::from(0x00f0_67aa_0ba9_02b7);
    for (n, rows) in [(1u128, 1usize), (2, INLINE_MAX_ROWS + 1)] {
        let trace_id = TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4700 + n);
        let mut message = request(
            "customer_risk",
            "",
            vec![row(&[("customer_profile:account_age_days", 30.0)]); rows],
        );
        message.variant = "treatment".into();
        let (grpc, inference) = traced_predict(&mut server, message, trace_id, caller).await;

        assert_eq!(grpc.parent_span_id, caller, "the caller's context is extracted");
        assert_eq!(attribute(&grpc, "rpc.method"), Some(&Value::from("Predict")));
        assert_eq!(
            attribute(&grpc, "rpc.service"),
            Some(&Value::from("models.v1.ModelService"))
        );
        assert_eq!(inference.name, "model.inference");
        assert_eq!(
            inference.parent_span_id,
            grpc.span_context.span_id(),
            "{rows} rows"
        );
        for (key, value) in [
            ("model", Value::from("customer_risk")),
            ("model_version", Value::from("1")),
            ("variant", Value::from("treatment")),
            ("rows", Value::from(rows as i64)),
        ] {
            assert_eq!(attribute(&inference, key), Some(&value), "{key}, {rows} rows");
        }
        assert_eq!(inference.status, Status::Unset);
        // The run happens inside the call.
        assert!(inference.start_time >= grpc.start_time && inference.end_time <= grpc.end_time);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_failed_run_marks_the_inference_span_and_an_unnamed_variant_is_control() {
    capture::install();
    let mut server = TestServer::start().await;
    let trace_id = TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c);
    let message = request("customer_risk", "", vec![row(&[("customer:typo", 1.0)])]);
    let (_, inference) = traced_predict(
        &mut server,
        message,
        trace_id,
        SpanId::from(0xb7ad_6b71_6920_3331),
    )
    .await;
    assert_eq!(attribute(&inference, "variant"), Some(&Value::from("control")));
    assert_eq!(
        attribute(&inference, "error.type"),
        Some(&Value::from("unknown_input"))
    );
    assert!(
        matches!(inference.status, Status::Error { .. }),
        "{:?}",
        inference.status
    );
    server.stop().await;
}
