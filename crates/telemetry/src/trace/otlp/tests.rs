use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use opentelemetry::{
    KeyValue, StringValue,
    trace::{Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
};
use opentelemetry_proto::{
    tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    transform::{
        common::tonic::ResourceAttributesWithSchema, trace::tonic::group_spans_by_resource_and_scope,
    },
};
use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
use prost::Message as _;

use super::*;

fn context(trace: u128, span: u64, sampled: bool, remote: bool, state: &str) -> SpanContext {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let state = if state.is_empty() {
        TraceState::default()
    } else {
        state.parse().expect("trace state")
    };
    SpanContext::new(TraceId::from(trace), SpanId::from(span), flags, remote, state)
}

fn at(micros: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_000_000_000_000 + micros)
}

/// Every kind of value an attribute can hold, at and away from its type's default.
fn every_value() -> Vec<KeyValue> {
    vec![
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("owned", String::from("a copied text")),
        KeyValue::new("empty", ""),
        KeyValue::new("yes", true),
        KeyValue::new("no", false),
        KeyValue::new("zero", 0_i64),
        KeyValue::new("negative", -42_i64),
        KeyValue::new("big", i64::MAX),
        KeyValue::new("ratio", 0.25_f64),
        KeyValue::new("nought", 0.0_f64),
        KeyValue::new("bools", opentelemetry::Value::Array(vec![true, false].into())),
        KeyValue::new("ints", opentelemetry::Value::Array(vec![0_i64, -1, 7].into())),
        KeyValue::new("floats", opentelemetry::Value::Array(vec![1.5_f64, 0.0].into())),
        KeyValue::new(
            "texts",
            opentelemetry::Value::Array(vec![StringValue::from("a"), StringValue::from("")].into()),
        ),
        KeyValue::new("none", opentelemetry::Value::Array(Vec::<i64>::new().into())),
    ]
}

fn server_span(scope: &InstrumentationScope) -> SpanData {
    SpanData {
        span_context: context(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10, 0x1111, true, false, ""),
        parent_span_id: SpanId::from(0x2222),
        parent_span_is_remote: true,
        span_kind: SpanKind::Server,
        name: "pricing.v1.Pricing/QuotePrice".into(),
        start_time: at(0),
        end_time: at(950),
        attributes: every_value(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope.clone(),
    }
}

/// A span with events, links, an error and counts of what was dropped.
fn busy_span(scope: &InstrumentationScope) -> SpanData {
    let mut events = SpanEvents::default();
    events.events.push(Event::new(
        "retry",
        at(10),
        vec![KeyValue::new("attempt", 2_i64)],
        1,
    ));
    events.events.push(Event::new("empty", at(20), Vec::new(), 0));
    events.dropped_count = 3;
    let mut links = SpanLinks::default();
    links.links.push(Link::new(
        context(7, 8, true, true, "dd=s:1,vendor=x"),
        vec![KeyValue::new("merge.requests", 9_i64)],
        2,
    ));
    links
        .links
        .push(Link::new(context(9, 10, false, false, ""), Vec::new(), 0));
    links.dropped_count = 4;
    SpanData {
        span_context: context(3, 4, false, false, "dd=p:1"),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Client,
        name: String::from("downstream.merged_call").into(),
        start_time: at(5),
        end_time: at(600),
        attributes: vec![KeyValue::new("dependency", "feature-service")],
        dropped_attributes_count: 5,
        events,
        links,
        status: Status::error("deadline exceeded after 40 ms"),
        instrumentation_scope: scope.clone(),
    }
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("gateway")
        .with_attributes([
            KeyValue::new("service.version", "1.2.3"),
            KeyValue::new("deployment.environment.name", "test"),
        ])
        .with_schema_url(Vec::<KeyValue>::new(), "https://opentelemetry.io/schemas/1.30.0")
        .build()
}

/// What this module writes for `batch`, decoded with opentelemetry-proto's types.
fn written(scratch: &mut Scratch, batch: &[SpanData], resource: &Resource) -> ExportTraceServiceRequest {
    let mut encoded = Vec::new();
    encode_resource(&mut encoded, resource);
    let bytes = scratch.request(batch, &encoded, resource.schema_url().unwrap_or_default());
    ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decodes")
}

/// What opentelemetry-proto's own conversion makes of `batch`.
fn converted(batch: &[SpanData], resource: &Resource) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(
            batch.to_vec(),
            &ResourceAttributesWithSchema::from(resource),
        ),
    }
}

/// Resource attributes come from a map: compared in key order.
fn sorted(mut request: ExportTraceServiceRequest) -> ExportTraceServiceRequest {
    for resource_spans in &mut request.resource_spans {
        if let Some(resource) = &mut resource_spans.resource {
            resource.attributes.sort_by(|a, b| a.key.cmp(&b.key));
        }
    }
    request
}

#[test]
fn a_batch_decodes_as_the_sdk_conversion_of_it() {
    let ours = InstrumentationScope::builder(SCOPE_NAME_FOR_TESTS).build();
    let library = InstrumentationScope::builder("some-library")
        .with_version("0.9")
        .with_schema_url("https://opentelemetry.io/schemas/1.21.0")
        .with_attributes([KeyValue::new("scope.attribute", 1_i64)])
        .build();
    let resource = resource();
    let mut scratch = Scratch::default();

    // Two scopes, interleaved: grouped by scope in the order first seen.
    let batch = vec![
        server_span(&ours),
        busy_span(&library),
        busy_span(&ours),
        server_span(&library),
    ];
    let ours_written = sorted(written(&mut scratch, &batch, &resource));
    assert_eq!(ours_written, sorted(converted(&batch, &resource)));
    assert_eq!(ours_written.resource_spans[0].scope_spans.len(), 2);

    // The buffers kept from that batch leave nothing behind in the next, whose scopes come the other way.
    let batch = vec![server_span(&library), server_span(&library), busy_span(&ours)];
    assert_eq!(
        sorted(written(&mut scratch, &batch, &resource)),
        sorted(converted(&batch, &resource))
    );
    let batch = vec![busy_span(&ours)];
    assert_eq!(
        sorted(written(&mut scratch, &batch, &Resource::builder_empty().build())),
        sorted(converted(&batch, &Resource::builder_empty().build()))
    );
}

const SCOPE_NAME_FOR_TESTS: &str = "telemetry";

/// An OTLP intake that answers each export with the next code in its script (OK once it runs out),
/// counting the spans it receives.
#[derive(Clone, Default)]
struct ScriptedAgent {
    script: Arc<Vec<Code>>,
    calls: Arc<AtomicUsize>,
    spans: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl TraceService for ScriptedAgent {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(&code) = self.script.get(call)
            && code != Code::Ok
        {
            return Err(tonic::Status::new(code, "scripted"));
        }
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(spans, Ordering::SeqCst);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// `agent` served on a loopback port of `runtime`.
fn serve(runtime: &tokio::runtime::Runtime, agent: ScriptedAgent) -> SocketAddr {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(agent))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    addr
}

fn exporter(runtime: &tokio::runtime::Runtime, addr: SocketAddr) -> OtlpExporter {
    let _entered = runtime.enter();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_lazy();
    let mut exporter = OtlpExporter::new(channel, runtime.handle().clone(), Duration::from_secs(2));
    exporter.set_resource(&resource());
    exporter
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_batch_is_retried_while_the_agent_is_unavailable_and_then_taken() {
    let runtime = runtime();
    let agent = ScriptedAgent {
        script: Arc::new(vec![Code::Unavailable, Code::Unavailable]),
        ..ScriptedAgent::default()
    };
    let exporter = exporter(&runtime, serve(&runtime, agent.clone()));
    let scope = InstrumentationScope::builder(SCOPE_NAME_FOR_TESTS).build();
    // The SDK's batch processor drives exports from its own thread, outside any runtime.
    let result = futures_executor_block_on(exporter.export(vec![server_span(&scope), busy_span(&scope)]));
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(agent.calls.load(Ordering::SeqCst), 3, "two refusals, then taken");
    assert_eq!(agent.spans.load(Ordering::SeqCst), 2);
}

#[test]
fn a_batch_the_agent_rejects_is_not_retried_and_fails() {
    let runtime = runtime();
    let agent = ScriptedAgent {
        script: Arc::new(vec![Code::InvalidArgument]),
        ..ScriptedAgent::default()
    };
    let exporter = exporter(&runtime, serve(&runtime, agent.clone()));
    let scope = InstrumentationScope::builder(SCOPE_NAME_FOR_TESTS).build();
    let result = futures_executor_block_on(exporter.export(vec![server_span(&scope)]));
    let error = result.expect_err("rejected");
    assert!(
        error.to_string().contains("InvalidArgument") || error.to_string().contains("invalid"),
        "{error}"
    );
    assert_eq!(agent.calls.load(Ordering::SeqCst), 1, "not retried");
    assert_eq!(agent.spans.load(Ordering::SeqCst), 0);
}

#[test]
fn with_no_agent_an_export_fails_after_its_retries() {
    let runtime = runtime();
    // A port nobody listens on (bound, then released).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("port");
    let exporter = exporter(&runtime, addr);
    let scope = InstrumentationScope::builder(SCOPE_NAME_FOR_TESTS).build();
    let started = std::time::Instant::now();
    let result = futures_executor_block_on(exporter.export(vec![server_span(&scope)]));
    assert!(result.is_err());
    // Two backoffs (100 and 200 ms), no more.
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_millis(300)..Duration::from_secs(2)).contains(&elapsed),
        "{elapsed:?}"
    );
}

/// Drives `future` on this thread, as the SDK's batch processor does.
fn futures_executor_block_on<F: std::future::Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}
