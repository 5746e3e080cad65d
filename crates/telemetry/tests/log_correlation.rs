//! The JSON log line: one object per line with the top-level keys Datadog correlates, `dd.trace_id`
//! being the decimal of the span's lower 64 trace-id bits.

use opentelemetry::{
    Context,
    trace::{TraceContextExt, Tracer, TracerProvider as _},
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use telemetry::{
    ServiceTags,
    logs::{capture::Logs, json_layer},
};
use tracing_subscriber::prelude::*;

/// The gateway's service tags, in prod.
fn gateway_tags() -> ServiceTags {
    ServiceTags {
        env: "prod".into(),
        service: "gateway".into(),
        version: "1.4.0".into(),
    }
}

/// What `emit` logs through the JSON layer with the gateway's tags.
fn gateway_logs(emit: impl FnOnce()) -> Logs {
    let tags = gateway_tags();
    let buffer = Logs::default();
    let subscriber = tracing_subscriber::registry().with(json_layer(&tags, buffer.clone()));
    tracing::subscriber::with_default(subscriber, emit);
    buffer
}

#[test]
fn json_lines_carry_fields_service_tags_and_the_trace_ids_datadog_correlates() {
    let provider = SdkTracerProvider::builder().build();
    let tracer = provider.tracer("test");

    let buffer = gateway_logs(|| {
        tracing::info!(answer = 42, "before any trace");
        let span = tracer.start("QuotePrice");
        let cx = Context::current_with_span(span);
        let _attached = cx.clone().attach();
        let request = tracing::info_span!("request", request_id = "req-1", customer_id = "c-9");
        let _entered = request.enter();
        tracing::warn!(
            model_version = "3",
            degraded = true,
            latency_ms = 12.5,
            "quote served"
        );
    });

    let lines = buffer.lines();
    assert_eq!(lines.len(), 2);
    let first = &lines[0];
    assert_eq!(first["message"], "before any trace");
    assert_eq!(first["answer"], 42);
    assert!(first.get("dd.trace_id").is_none(), "no trace, no ids");

    let line = &lines[1];
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["message"], "quote served");
    assert_eq!(
        line["target"],
        module_path!(),
        "the target is the logging module's path"
    );
    assert!(
        line["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T'))
    );
    assert_eq!(line["model_version"], "3");
    assert_eq!(line["degraded"], true);
    assert_eq!(line["latency_ms"], 12.5);
    assert_eq!(
        line["request_id"], "req-1",
        "fields of the enclosing span are on the line"
    );
    assert_eq!(line["customer_id"], "c-9");
    assert_eq!(line["dd.service"], "gateway");
    assert_eq!(line["dd.env"], "prod");
    assert_eq!(line["dd.version"], "1.4.0");

    // Decimal strings (exact values: see the next test).
    let trace_id = line["dd.trace_id"].as_str().expect("dd.trace_id is a string");
    let span_id = line["dd.span_id"].as_str().expect("dd.span_id is a string");
    assert!(trace_id.parse::<u64>().is_ok() && span_id.parse::<u64>().is_ok());
}

#[test]
fn dd_trace_id_is_the_lower_64_bits_of_the_128_bit_trace_id() {
    let tags = ServiceTags {
        env: "e".into(),
        service: "s".into(),
        version: "v".into(),
    };
    let buffer = Logs::default();
    let subscriber = tracing_subscriber::registry().with(json_layer(&tags, buffer.clone()));
    let provider = SdkTracerProvider::builder().build();
    let tracer = provider.tracer("test");
    let cx = Context::current_with_span(tracer.start("op"));
    let sc = cx.span().span_context().clone();
    let full = u128::from_be_bytes(sc.trace_id().to_bytes());
    assert!(full >> 64 != 0, "OpenTelemetry ids are 128-bit random");

    tracing::subscriber::with_default(subscriber, || {
        let _attached = cx.clone().attach();
        tracing::info!("inside");
    });

    let line = &buffer.lines()[0];
    assert_eq!(line["dd.trace_id"], (full as u64).to_string());
    assert_eq!(
        line["dd.span_id"],
        u64::from_be_bytes(sc.span_id().to_bytes()).to_string()
    );
}

#[test]
fn fields_named_like_datadogs_own_attributes_do_not_refile_the_line() {
    let buffer = gateway_logs(|| {
        let span = tracing::info_span!("call", host = "redis-0");
        let _entered = span.enter();
        tracing::error!(service = "model-service", status = "down", "dependency failed");
    });
    let line = &buffer.lines()[0];
    for key in ["service", "status", "host"] {
        assert!(
            line.get(key).is_none(),
            "`{key}` would re-file the line in Datadog: {line}"
        );
    }
    assert_eq!(line["field.service"], "model-service", "{line}");
    assert_eq!(line["field.status"], "down", "{line}");
    assert_eq!(line["field.host"], "redis-0", "{line}");
    assert_eq!(line["dd.service"], "gateway", "{line}");
}

#[test]
fn span_fields_recorded_later_or_twice_appear_once_with_their_last_value() {
    let buffer = gateway_logs(|| {
        let request = tracing::info_span!(
            "request",
            request_id = "req-1",
            customer_id = tracing::field::Empty,
            variant = tracing::field::Empty,
            attempts = 1u64,
        );
        let _entered = request.enter();
        tracing::info!("before the customer is known");
        request.record("customer_id", "C \"quoted\" \\ ü");
        request.record("variant", "control");
        request.record("variant", "treatment");
        request.record("attempts", 2u64);
        let inner = tracing::info_span!("call", variant = "shadow", ratio = 0.5, on = true);
        let _inner = inner.enter();
        tracing::info!("in the inner span");
    });
    let lines = buffer.lines();
    assert_eq!(lines[0]["request_id"], "req-1", "{}", lines[0]);
    assert!(lines[0].get("customer_id").is_none(), "{}", lines[0]);
    assert!(lines[0].get("variant").is_none(), "{}", lines[0]);
    let line = &lines[1];
    assert_eq!(line["request_id"], "req-1", "{line}");
    assert_eq!(line["customer_id"], "C \"quoted\" \\ ü", "{line}");
    assert_eq!(line["attempts"], 2, "{line}");
    assert_eq!(line["variant"], "shadow", "the inner span's value wins: {line}");
    assert_eq!(line["ratio"], 0.5, "{line}");
    assert_eq!(line["on"], true, "{line}");
    let raw = buffer.text();
    let second = raw.lines().nth(1).expect("two lines");
    assert_eq!(second.matches("\"variant\"").count(), 1, "{second}");
}

#[test]
fn span_fields_of_every_kind_keep_their_json_and_reserved_or_event_keys_win() {
    let failure = std::io::Error::other("redis \"down\"");
    let buffer = gateway_logs(|| {
        let request = tracing::info_span!(
            "request",
            ratio = f64::NAN,
            skew = -3i64,
            arm = ?Some("tr\teat"),
            cause = &failure as &(dyn std::error::Error + 'static),
            level = "span level",
            customer_id = "from the span",
            service = "feature-service",
        );
        let _entered = request.enter();
        tracing::info!(customer_id = "from the event", "served");
    });
    let raw = buffer.text();
    let line = &buffer.lines()[0];
    assert_eq!(line["ratio"], serde_json::Value::Null, "a NaN is null: {raw}");
    assert_eq!(line["skew"], -3, "{raw}");
    assert_eq!(line["arm"], "Some(\"tr\\teat\")", "{raw}");
    assert_eq!(line["cause"], "redis \"down\"", "{raw}");
    assert_eq!(line["level"], "INFO", "the line's own key is not repeated: {raw}");
    assert_eq!(raw.matches("\"level\"").count(), 1, "{raw}");
    assert_eq!(line["customer_id"], "from the event", "{raw}");
    assert_eq!(raw.matches("\"customer_id\"").count(), 1, "{raw}");
    assert_eq!(line["field.service"], "feature-service", "{raw}");
    assert_eq!(line["dd.service"], "gateway", "{raw}");
}

#[test]
fn the_line_format_also_reads_span_fields_kept_as_whole_objects() {
    let tags = gateway_tags();
    let buffer = Logs::default();
    let layer = tracing_subscriber::fmt::layer()
        .event_format(telemetry::logs::DatadogJsonFormat::new(&tags))
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .with_writer(buffer.clone());
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!("request", request_id = "req-2");
        let _entered = request.enter();
        tracing::info!("served");
    });
    assert_eq!(buffer.lines()[0]["request_id"], "req-2");
}
