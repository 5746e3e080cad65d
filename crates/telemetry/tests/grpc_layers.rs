//! The tonic glue end to end: a real tonic server (grpc.health.v1) behind `GrpcServerLayer`, called
//! through a channel wrapped in `GrpcClientLayer`, spans read from an in-memory exporter. Covers the
//! normal response (status in trailers) and the trailers-only response (status in headers), context
//! propagation from client to server, and the public API metrics the server layer records.

use std::time::Duration;

use opentelemetry::{
    Context, Value, global,
    trace::{SpanId, SpanKind, Status, TraceContextExt, TraceId, Tracer},
};
use telemetry::{
    Metrics, MetricsOptions, ServiceTags,
    grpc::{GrpcClientLayer, GrpcServerLayer},
    trace::capture::{self, SpanData, attribute},
};
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Waits (bounded) until `n` spans of the trace are exported.
async fn wait_for_spans(trace_id: TraceId, n: usize) -> Vec<SpanData> {
    capture::wait_for(trace_id, |spans| spans.len() >= n).await
}

use crate::common;

use common::{receive_all, udp_agent};

#[tokio::test]
async fn client_and_server_spans_join_one_trace_and_carry_the_grpc_status() {
    capture::install();
    let (agent, target) = udp_agent();
    let tags = ServiceTags {
        env: "test".into(),
        service: "health".into(),
        version: "1".into(),
    };
    let metrics = Metrics::start(MetricsOptions::new(target, tags)).expect("metrics");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_reporter, health) = tonic_health::server::health_reporter();
    let layer = GrpcServerLayer::new()
        .trace_all()
        .with_api_metrics(&["Check"])
        .with_metrics(metrics.clone());
    let server = Server::builder()
        .layer(layer)
        .add_service(health)
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    let server = tokio::spawn(server);

    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let channel = tower::ServiceBuilder::new()
        .layer(GrpcClientLayer::new("health-server"))
        .service(channel);
    let mut client = HealthClient::new(channel);

    // The caller's own span, as a handler's would be.
    let root = Context::current_with_span(global::tracer("test").start("caller"));
    let trace_id = root.span().span_context().trace_id();
    let ok = {
        let request = HealthCheckRequest {
            service: String::new(),
        };
        opentelemetry::context::FutureExt::with_context(client.check(request), root.clone()).await
    };
    assert!(ok.is_ok(), "{ok:?}");
    let not_found = {
        let request = HealthCheckRequest {
            service: "no.such.Service".into(),
        };
        opentelemetry::context::FutureExt::with_context(client.check(request), root.clone()).await
    };
    assert_eq!(not_found.map_err(|s| s.code()).err(), Some(tonic::Code::NotFound));

    let spans = wait_for_spans(trace_id, 4).await;
    let of_kind =
        |kind: SpanKind| -> Vec<&SpanData> { spans.iter().filter(|s| s.span_kind == kind).collect() };
    let (clients, servers) = (of_kind(SpanKind::Client), of_kind(SpanKind::Server));
    assert_eq!((clients.len(), servers.len()), (2, 2), "{spans:#?}");
    let root_span_id = root.span().span_context().span_id();

    for (client, code) in clients.iter().zip([0i64, 5]) {
        assert_eq!(client.name, "grpc.health.v1.Health/Check");
        assert_eq!(client.parent_span_id, root_span_id);
        assert_eq!(attribute(client, "rpc.system"), Some(&Value::from("grpc")));
        assert_eq!(
            attribute(client, "rpc.service"),
            Some(&Value::from("grpc.health.v1.Health"))
        );
        assert_eq!(attribute(client, "rpc.method"), Some(&Value::from("Check")));
        assert_eq!(
            attribute(client, "peer.service"),
            Some(&Value::from("health-server"))
        );
        assert_eq!(attribute(client, "rpc.grpc.status_code"), Some(&Value::I64(code)));
        // Any non-OK code is an error for the caller.
        assert_eq!(matches!(client.status, Status::Error { .. }), code != 0);
        // The server span is the client span's child, in the same trace.
        let server = servers
            .iter()
            .find(|s| s.parent_span_id == client.span_context.span_id())
            .unwrap_or_else(|| panic!("no server span under {:?}", client.span_context.span_id()));
        assert!(server.parent_span_is_remote);
        assert_eq!(attribute(server, "rpc.grpc.status_code"), Some(&Value::I64(code)));
        // NOT_FOUND is the caller's problem, not the server's.
        assert_eq!(server.status, Status::Unset);
        assert_ne!(server.span_context.span_id(), SpanId::INVALID);
    }

    assert!(metrics.flush(Duration::from_secs(2)));
    let mut lines = receive_all(&agent);
    lines.retain(|l| {
        [
            "api.predict.requests",
            "api.predict.errors",
            "api.predict.within_sla",
        ]
        .iter()
        .any(|name| l.starts_with(name))
    });
    lines.sort();
    let service = "env:test,service:health,version:1";
    assert_eq!(
        lines,
        [
            // A refused request is the caller's fault; the OK answer, fast on loopback, is within the SLA.
            format!("api.predict.errors:1|c|#rpc:Check,error_type:not_found,fault:client,{service}"),
            format!("api.predict.requests:1|c|#rpc:Check,status:not_found,{service}"),
            format!("api.predict.requests:1|c|#rpc:Check,status:ok,{service}"),
            format!("api.predict.within_sla:1|c|#rpc:Check,{service}"),
        ]
    );
    server.abort();
    metrics.shutdown(Duration::from_secs(2));
}

#[tokio::test]
async fn server_layer_joins_a_datadog_only_caller_and_runs_the_handler_under_its_span() {
    capture::install();
    let service = tower::service_fn(|_request: http::Request<String>| async {
        // The handler sees the server span as the current context.
        let cx = Context::current();
        let span = cx.span();
        let sc = span.span_context();
        let seen = format!("{:032x}:{}", sc.trace_id(), sc.is_remote());
        let response = http::Response::builder()
            .header("grpc-status", "14")
            .header("grpc-message", "redis%20down")
            .body(seen)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(response)
    });
    let mut service = tower::Layer::layer(&GrpcServerLayer::new(), service);
    let request = http::Request::builder()
        .uri("/inference.v1.Gateway/QuotePrice")
        .header("x-datadog-trace-id", "12379813738877118345")
        .header("x-datadog-parent-id", "1234567890")
        .header("x-datadog-sampling-priority", "1")
        .header("x-datadog-tags", "_dd.p.tid=66650a2b00000000")
        .body(String::new())
        .expect("request");
    let response = tower::Service::call(&mut service, request)
        .await
        .expect("response");
    assert_eq!(
        response.body().get_ref(),
        "66650a2b00000000abcdef0123456789:false"
    );

    let trace_id = TraceId::from_bytes(0x6665_0a2b_0000_0000_abcd_ef01_2345_6789u128.to_be_bytes());
    let spans = wait_for_spans(trace_id, 1).await;
    assert_eq!(
        spans.len(),
        1,
        "trailers-only response: the span ends with the headers"
    );
    let span = &spans[0];
    assert_eq!(span.name, "inference.v1.Gateway/QuotePrice");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(
        span.parent_span_id,
        SpanId::from_bytes(1_234_567_890u64.to_be_bytes())
    );
    assert_eq!(attribute(span, "rpc.grpc.status_code"), Some(&Value::I64(14)));
    assert_eq!(span.status, Status::error("redis down"));
}
