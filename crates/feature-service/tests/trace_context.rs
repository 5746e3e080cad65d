//! Traces through the feature-service, spans read from an in-memory exporter: the caller's context
//! (W3C or Datadog headers) is joined by a server span named for APM, the Redis round trip is that span's
//! child with `db.system=redis` and no key or value in it, a Redis timeout fails the Redis span while the
//! server span, whose call was answered degraded, says so and stays OK, and health checks are not traced.

use crate::common;

use common::*;
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use telemetry::trace::capture::{self, SpanData, attribute};
use testkit::redis::RedisServer;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const SERVER_SPAN: &str = "features.v1.FeatureService/GetOnlineFeatures";

/// Waits (bounded) until `n` spans of the trace are exported.
async fn spans_of(trace_id: TraceId, n: usize) -> Vec<SpanData> {
    capture::wait_for(trace_id, |spans| spans.len() >= n).await
}

fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one {name} span in {spans:#?}");
    found[0]
}

fn traced_request(
    headers: &[(&'static str, String)],
    ids: &[&str],
) -> tonic::Request<proto::features::v1::GetOnlineFeaturesRequest> {
    let mut request = tonic::Request::new(request(
        &["customer_profile:account_age_days"],
        &[("customer_id", ids)],
    ));
    for (name, value) in headers {
        request
            .metadata_mut()
            .insert(*name, value.parse().expect("ascii header"));
    }
    request
}

#[tokio::test]
async fn the_redis_span_is_a_child_of_the_server_span_in_the_callers_trace() {
    capture::install();
    let redis = RedisServer::start().expect("redis-server");
    fill_redis(&redis.url()).await;
    let server = Server::start(config(Some(&redis.url()), &["--cache-ttl-ms", "0"])).await;
    let mut client = server.client.clone();

    // W3C trace context.
    let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("trace id");
    let caller = SpanId::from_hex("00f067aa0ba902b7").expect("span id");
    let traceparent = format!("00-{trace_id}-{caller}-01");
    client
        .get_online_features(traced_request(
            &[("traceparent", traceparent)],
            &["c-1", "c-none"],
        ))
        .await
        .expect("call");
    let spans = spans_of(trace_id, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");

    let server_span = one(&spans, SERVER_SPAN);
    assert_eq!(server_span.span_kind, SpanKind::Server);
    assert_eq!(server_span.parent_span_id, caller);
    assert!(server_span.parent_span_is_remote);
    assert_eq!(attribute(server_span, "rpc.system"), Some(&Value::from("grpc")));
    assert_eq!(
        attribute(server_span, "rpc.service"),
        Some(&Value::from("features.v1.FeatureService"))
    );
    assert_eq!(
        attribute(server_span, "rpc.method"),
        Some(&Value::from("GetOnlineFeatures"))
    );
    assert_eq!(
        attribute(server_span, "rpc.grpc.status_code"),
        Some(&Value::I64(0))
    );

    let redis_span = one(&spans, "HGETALL");
    assert_eq!(redis_span.span_kind, SpanKind::Client);
    assert_eq!(redis_span.parent_span_id, server_span.span_context.span_id());
    assert_eq!(attribute(redis_span, "db.system"), Some(&Value::from("redis")));
    assert_eq!(
        attribute(redis_span, "db.operation"),
        Some(&Value::from("HGETALL"))
    );
    assert_eq!(
        attribute(redis_span, "redis.pipeline_length"),
        Some(&Value::I64(2))
    );
    assert_eq!(redis_span.status, Status::Unset);
    for kv in &redis_span.attributes {
        let value = kv.value.as_str();
        assert!(
            !value.contains("c-1") && !value.contains("c-none") && !value.contains("pricing"),
            "{kv:?}"
        );
    }

    // Datadog headers (a caller traced by another Datadog tracer): 64-bit ids in decimal.
    client
        .get_online_features(traced_request(
            &[
                ("x-datadog-trace-id", "1234567890123".into()),
                ("x-datadog-parent-id", "987654321".into()),
                ("x-datadog-sampling-priority", "1".into()),
            ],
            &["c-1"],
        ))
        .await
        .expect("call");
    let dd_trace = TraceId::from(1_234_567_890_123u128);
    let spans = spans_of(dd_trace, 2).await;
    let server_span = one(&spans, SERVER_SPAN);
    assert_eq!(server_span.parent_span_id, SpanId::from(987_654_321u64));
    assert_eq!(
        one(&spans, "HGETALL").parent_span_id,
        server_span.span_context.span_id()
    );

    // Health checks (probes) are not traced.
    let before = capture::install().get_finished_spans().unwrap_or_default().len();
    HealthClient::new(server.channel.clone())
        .check(HealthCheckRequest {
            service: feature_service::SERVICE_NAME.into(),
        })
        .await
        .expect("health");
    let after = capture::install().get_finished_spans().unwrap_or_default();
    assert!(
        !after[before.min(after.len())..]
            .iter()
            .any(|s| s.name.starts_with("grpc.health")),
        "{after:#?}"
    );
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_redis_timeout_fails_the_redis_span_and_marks_the_server_span_degraded() {
    capture::install();
    let redis = RedisServer::start().expect("redis-server");
    fill_redis(&redis.url()).await;
    let server = Server::start(config(
        Some(&redis.url()),
        &["--cache-ttl-ms", "0", "--redis-timeout-ms", "100"],
    ))
    .await;
    let mut client = server.client.clone();
    redis
        .command(&["CLIENT", "PAUSE", "2000", "ALL"])
        .expect("CLIENT PAUSE");

    let trace_id = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("trace id");
    let traceparent = format!("00-{trace_id}-b7ad6b7169203331-01");
    let response = client
        .get_online_features(traced_request(&[("traceparent", traceparent)], &["c-1"]))
        .await
        .expect("answered without Redis")
        .into_inner();
    assert_eq!(
        response.results[0].statuses,
        [proto::features::v1::FieldStatus::Unavailable as i32]
    );

    let spans = spans_of(trace_id, 2).await;
    let server_span = one(&spans, SERVER_SPAN);
    let redis_span = one(&spans, "HGETALL");
    assert_eq!(redis_span.parent_span_id, server_span.span_context.span_id());
    assert_eq!(attribute(redis_span, "error.type"), Some(&Value::from("timeout")));
    assert!(
        matches!(redis_span.status, Status::Error { .. }),
        "{redis_span:#?}"
    );
    assert_eq!(
        attribute(server_span, "rpc.grpc.status_code"),
        Some(&Value::I64(tonic::Code::Ok as i64))
    );
    assert!(
        !matches!(server_span.status, Status::Error { .. }),
        "{server_span:#?}"
    );
    assert_eq!(
        attribute(server_span, "features.degraded"),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        attribute(server_span, "features.unavailable_rows"),
        Some(&Value::I64(1))
    );
    server.stop().await.expect("clean shutdown");
}
