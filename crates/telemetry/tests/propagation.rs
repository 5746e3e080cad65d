//! Propagation round trips in W3C trace context and Datadog headers, 128-bit ids through
//! `_dd.p.tid`, and callers that send only one of the two formats.

use http::{HeaderMap, HeaderValue};
use opentelemetry::{
    Context,
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use telemetry::trace::propagation::{extract_context, inject_context};

const TRACE_ID: u128 = 0x6665_0a2b_0000_0000_abcd_ef01_2345_6789;
const SPAN_ID: u64 = 0x1122_3344_5566_7788;

fn context(trace_id: u128, span_id: u64, sampled: bool) -> Context {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let sc = SpanContext::new(
        TraceId::from_bytes(trace_id.to_be_bytes()),
        SpanId::from_bytes(span_id.to_be_bytes()),
        flags,
        true,
        TraceState::NONE,
    );
    Context::new().with_remote_span_context(sc)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn ids(cx: &Context) -> (u128, u64, bool, bool) {
    let span = cx.span();
    let sc = span.span_context();
    (
        u128::from_be_bytes(sc.trace_id().to_bytes()),
        u64::from_be_bytes(sc.span_id().to_bytes()),
        sc.is_sampled(),
        sc.is_remote(),
    )
}

#[test]
fn injects_both_formats_with_the_upper_half_in_dd_p_tid() {
    let mut headers = HeaderMap::new();
    inject_context(&context(TRACE_ID, SPAN_ID, true), &mut headers);
    assert_eq!(
        header(&headers, "traceparent"),
        Some("00-66650a2b00000000abcdef0123456789-1122334455667788-01")
    );
    assert_eq!(
        header(&headers, "x-datadog-trace-id"),
        Some(&*(TRACE_ID as u64).to_string())
    );
    assert_eq!(
        header(&headers, "x-datadog-trace-id"),
        Some("12379813738877118345")
    );
    assert_eq!(
        header(&headers, "x-datadog-parent-id"),
        Some(&*SPAN_ID.to_string())
    );
    assert_eq!(header(&headers, "x-datadog-sampling-priority"), Some("1"));
    assert_eq!(
        header(&headers, "x-datadog-tags"),
        Some("_dd.p.tid=66650a2b00000000")
    );
}

#[test]
fn round_trips_through_each_format_alone() {
    let cx = context(TRACE_ID, SPAN_ID, true);
    let mut headers = HeaderMap::new();
    inject_context(&cx, &mut headers);

    let mut w3c_only = headers.clone();
    for name in [
        "x-datadog-trace-id",
        "x-datadog-parent-id",
        "x-datadog-sampling-priority",
        "x-datadog-tags",
    ] {
        w3c_only.remove(name);
    }
    assert_eq!(ids(&extract_context(&w3c_only)), (TRACE_ID, SPAN_ID, true, true));

    let mut datadog_only = headers.clone();
    datadog_only.remove("traceparent");
    assert_eq!(
        ids(&extract_context(&datadog_only)),
        (TRACE_ID, SPAN_ID, true, true)
    );
}

#[test]
fn joins_a_caller_traced_by_a_datadog_tracer() {
    // What dd-trace sends by default for a 128-bit trace: Datadog headers (and here no traceparent).
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-datadog-trace-id",
        HeaderValue::from_static("12379813738877118345"),
    );
    headers.insert("x-datadog-parent-id", HeaderValue::from_static("1234567890"));
    headers.insert("x-datadog-sampling-priority", HeaderValue::from_static("2"));
    headers.insert("x-datadog-origin", HeaderValue::from_static("synthetics"));
    headers.insert(
        "x-datadog-tags",
        HeaderValue::from_static("_dd.p.dm=-4,_dd.p.tid=66650a2b00000000"),
    );
    let cx = extract_context(&headers);
    assert_eq!(ids(&cx), (TRACE_ID, 1_234_567_890, true, true));

    // Forwarded downstream (as our client layer does): same trace, priority, origin and trace tags.
    let mut forwarded = HeaderMap::new();
    inject_context(&cx, &mut forwarded);
    assert_eq!(
        header(&forwarded, "x-datadog-trace-id"),
        Some("12379813738877118345")
    );
    assert_eq!(header(&forwarded, "x-datadog-sampling-priority"), Some("2"));
    assert_eq!(header(&forwarded, "x-datadog-origin"), Some("synthetics"));
    assert_eq!(
        header(&forwarded, "x-datadog-tags"),
        Some("_dd.p.tid=66650a2b00000000,_dd.p.dm=-4")
    );
    assert_eq!(
        header(&forwarded, "traceparent"),
        Some("00-66650a2b00000000abcdef0123456789-00000000499602d2-01")
    );
}

#[test]
fn a_64_bit_datadog_trace_id_extracts_with_a_zero_upper_half() {
    let mut headers = HeaderMap::new();
    headers.insert("x-datadog-trace-id", HeaderValue::from_static("42"));
    headers.insert("x-datadog-parent-id", HeaderValue::from_static("7"));
    headers.insert("x-datadog-sampling-priority", HeaderValue::from_static("0"));
    let (trace_id, span_id, sampled, _) = ids(&extract_context(&headers));
    assert_eq!((trace_id, span_id, sampled), (42, 7, false));
    let mut forwarded = HeaderMap::new();
    inject_context(&extract_context(&headers), &mut forwarded);
    assert_eq!(header(&forwarded, "x-datadog-sampling-priority"), Some("0"));
    assert_eq!(
        header(&forwarded, "x-datadog-tags"),
        None,
        "no _dd.p.tid for a 64-bit id"
    );
}

#[test]
fn when_both_formats_agree_the_w3c_parent_wins_and_when_they_disagree_datadog_does() {
    let mut headers = HeaderMap::new();
    inject_context(&context(TRACE_ID, SPAN_ID, true), &mut headers);
    // A Datadog tracer in between updated only its own parent header (same trace).
    headers.insert("x-datadog-parent-id", HeaderValue::from_static("99"));
    assert_eq!(ids(&extract_context(&headers)).1, SPAN_ID);
    // A different trace in the Datadog headers: Datadog's extraction order puts them first.
    headers.insert("x-datadog-trace-id", HeaderValue::from_static("5"));
    headers.remove("x-datadog-tags");
    assert_eq!(ids(&extract_context(&headers)).0, 5);
}

#[test]
fn malformed_headers_are_ignored() {
    let mut headers = HeaderMap::new();
    headers.insert("x-datadog-trace-id", HeaderValue::from_static("not-a-number"));
    headers.insert("x-datadog-parent-id", HeaderValue::from_static("7"));
    assert!(!extract_context(&headers).span().span_context().is_valid());

    headers.insert("x-datadog-trace-id", HeaderValue::from_static("42"));
    headers.insert("x-datadog-tags", HeaderValue::from_static("_dd.p.tid=XYZ"));
    assert_eq!(
        ids(&extract_context(&headers)).0,
        42,
        "a bad _dd.p.tid leaves a 64-bit id"
    );

    headers.insert("x-datadog-parent-id", HeaderValue::from_static("0"));
    assert!(!extract_context(&headers).span().span_context().is_valid());
}
