//! Trace context propagation in W3C trace context AND Datadog's own headers, so a caller traced by a
//! Datadog tracer (which by default reads and writes `x-datadog-*` first) joins the same trace.
//!
//! Written here because `opentelemetry-datadog` is deprecated and built on another opentelemetry
//! version. The header format follows Datadog's trace context propagation documentation and the
//! dd-trace libraries' `Datadog` propagators:
//! - `x-datadog-trace-id`: decimal of the LOWER 64 bits of the 128-bit trace id;
//! - `x-datadog-parent-id`: decimal span id;
//! - `x-datadog-sampling-priority`: `<= 0` drop, `>= 1` keep (2 = user keep);
//! - `x-datadog-origin`: e.g. `synthetics`, carried through unchanged;
//! - `x-datadog-tags`: comma-separated `key=value` of `_dd.p.*` trace tags, among them
//!   `_dd.p.tid=<16 lowercase hex>`, the UPPER 64 bits of a 128-bit trace id (at most 512 bytes).
//!
//! Extraction when both formats are present follows Datadog's rule: when the trace ids agree, the W3C
//! parent (with its full 128-bit id and `tracestate`) is used; when they disagree, Datadog's headers
//! win (Datadog's default extraction order is `datadog,tracecontext`).

use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter},
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use opentelemetry_sdk::propagation::TraceContextPropagator;

const TRACE_ID: &str = "x-datadog-trace-id";
const PARENT_ID: &str = "x-datadog-parent-id";
const SAMPLING_PRIORITY: &str = "x-datadog-sampling-priority";
const ORIGIN: &str = "x-datadog-origin";
const TAGS: &str = "x-datadog-tags";
const TID_TAG: &str = "_dd.p.tid";
const PROPAGATED_TAG_PREFIX: &str = "_dd.p.";
const MAX_TAGS_LEN: usize = 512;

/// What Datadog's headers carry besides ids, kept in the [`Context`] so it is re-injected downstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct DatadogExtras {
    priority: Option<i32>,
    origin: Option<String>,
    /// `_dd.p.*` tags other than the trace id's upper half.
    tags: Vec<(String, String)>,
}

impl DatadogExtras {
    /// `cx` carrying these extras, for injection downstream. Extras that change nothing there (no
    /// origin, no tags, and a priority that forwards as the sampled flag alone would) are left out: adding a
    /// value to a context copies its map, two allocations on every traced request.
    fn attach(self, cx: Context) -> Context {
        let sampled = cx.span().span_context().is_sampled();
        let changes_nothing = self.origin.is_none()
            && self.tags.is_empty()
            && forwarded_priority(sampled, self.priority) == forwarded_priority(sampled, None);
        if changes_nothing { cx } else { cx.with_value(self) }
    }
}

/// The sampling priority sent downstream for a span whose sampled flag is `sampled`: the caller's
/// (`extracted`) when it agrees with the flag, else the flag's own (1 keep, 0 drop).
fn forwarded_priority(sampled: bool, extracted: Option<i32>) -> i32 {
    match (sampled, extracted) {
        (true, Some(p)) if p > 0 => p,
        (true, _) => 1,
        (false, Some(p)) if p <= 0 => p,
        (false, _) => 0,
    }
}

/// Datadog's `x-datadog-*` headers.
#[derive(Debug, Clone, Default)]
pub struct DatadogPropagator {
    _private: (),
}

static DATADOG_FIELDS: LazyLock<[String; 5]> =
    LazyLock::new(|| [TRACE_ID, PARENT_ID, SAMPLING_PRIORITY, ORIGIN, TAGS].map(String::from));

impl DatadogPropagator {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The 128-bit trace id as (upper, lower) 64-bit halves.
pub(crate) fn trace_id_halves(trace_id: TraceId) -> (u64, u64) {
    let id = u128::from_be_bytes(trace_id.to_bytes());
    ((id >> 64) as u64, id as u64)
}

/// The span id as Datadog's unsigned 64-bit number.
pub(crate) fn span_id_u64(span_id: SpanId) -> u64 {
    u64::from_be_bytes(span_id.to_bytes())
}

/// What Datadog's headers carry for one span context.
struct DatadogHeaders<'a> {
    trace_id: u64,
    parent_id: u64,
    priority: i32,
    origin: Option<&'a str>,
    /// `x-datadog-tags`, when there is any tag and it is within Datadog's limit.
    tags: Option<String>,
}

impl<'a> DatadogHeaders<'a> {
    /// The headers for `cx`'s span, or `None` when it has no valid span context.
    fn of(cx: &'a Context) -> Option<Self> {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return None;
        }
        let extras = cx.get::<DatadogExtras>();
        let (upper, lower) = trace_id_halves(sc.trace_id());
        let priority = forwarded_priority(sc.is_sampled(), extras.and_then(|e| e.priority));
        let extra_tags = extras.map(|e| e.tags.as_slice()).unwrap_or_default();
        // Sized for all it may hold (`key=value` joined by commas), so it is allocated once.
        let tid_len = if upper == 0 { 0 } else { TID_TAG.len() + 17 };
        let extras_len: usize = extra_tags.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        let mut tags = String::with_capacity(tid_len + extras_len);
        if upper != 0 {
            tags.push_str(TID_TAG);
            tags.push('=');
            push_hex(&mut tags, upper);
        }
        for (key, value) in extra_tags {
            if !tags.is_empty() {
                tags.push(',');
            }
            tags.push_str(key);
            tags.push('=');
            tags.push_str(value);
        }
        Some(Self {
            trace_id: lower,
            parent_id: span_id_u64(sc.span_id()),
            priority,
            origin: extras.and_then(|e| e.origin.as_deref()),
            tags: (!tags.is_empty() && tags.len() <= MAX_TAGS_LEN).then_some(tags),
        })
    }
}

/// Appends `value` as 16 lowercase hex digits.
fn push_hex(out: &mut String, value: u64) {
    let mut digits = [0; 16];
    write_hex(&mut digits, value);
    out.extend(digits.map(char::from));
}

/// The parent a caller's Datadog headers name, and what else they carry; `None` when they name none.
fn datadog_parent(extractor: &dyn Extractor) -> Option<(SpanContext, DatadogExtras)> {
    let header = |name| extractor.get(name).map(str::trim);
    let lower = header(TRACE_ID)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v != 0)?;
    // A zero or missing parent (RUM, synthetics roots) cannot be an OpenTelemetry parent.
    let parent = header(PARENT_ID)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v != 0)?;
    let priority = header(SAMPLING_PRIORITY).and_then(|v| v.parse::<i32>().ok());
    let mut extras = DatadogExtras {
        priority,
        origin: header(ORIGIN).filter(|o| !o.is_empty()).map(str::to_owned),
        tags: Vec::new(),
    };
    let mut upper = 0u64;
    if let Some(tags) = header(TAGS).filter(|t| t.len() <= MAX_TAGS_LEN) {
        for (key, value) in tags.split(',').filter_map(|kv| kv.trim().split_once('=')) {
            if key == TID_TAG {
                upper = parse_tid(value).unwrap_or(0);
            } else if key.starts_with(PROPAGATED_TAG_PREFIX) {
                extras.tags.push((key.to_owned(), value.to_owned()));
            }
        }
    }
    let trace_id = TraceId::from_bytes((u128::from(upper) << 64 | u128::from(lower)).to_be_bytes());
    // A missing priority leaves the decision to us; at this volume we keep.
    let flags = if priority.is_none_or(|p| p > 0) {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let sc = SpanContext::new(
        trace_id,
        SpanId::from_bytes(parent.to_be_bytes()),
        flags,
        true,
        TraceState::NONE,
    );
    Some((sc, extras))
}

impl TextMapPropagator for DatadogPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let Some(headers) = DatadogHeaders::of(cx) else {
            return;
        };
        injector.set(TRACE_ID, headers.trace_id.to_string());
        injector.set(PARENT_ID, headers.parent_id.to_string());
        injector.set(SAMPLING_PRIORITY, headers.priority.to_string());
        if let Some(origin) = headers.origin {
            injector.set(ORIGIN, origin.to_owned());
        }
        if let Some(tags) = headers.tags {
            injector.set(TAGS, tags);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match datadog_parent(extractor) {
            Some((sc, extras)) => extras.attach(cx.with_remote_span_context(sc)),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(DATADOG_FIELDS.as_slice())
    }
}

/// `_dd.p.tid` must be exactly 16 lowercase hex digits; anything else is ignored (Datadog drops it).
fn parse_tid(value: &str) -> Option<u64> {
    let valid = value.len() == 16
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if valid {
        u64::from_str_radix(value, 16).ok()
    } else {
        None
    }
}

/// W3C trace context and Datadog headers together: injects both, extracts either.
#[derive(Debug)]
pub struct Propagator {
    w3c: TraceContextPropagator,
    datadog: DatadogPropagator,
    fields: Vec<String>,
}

impl Default for Propagator {
    fn default() -> Self {
        let w3c = TraceContextPropagator::new();
        let datadog = DatadogPropagator::new();
        let fields = w3c.fields().chain(datadog.fields()).map(str::to_owned).collect();
        Self { w3c, datadog, fields }
    }
}

impl TextMapPropagator for Propagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.w3c.inject_context(cx, injector);
        self.datadog.inject_context(cx, injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let w3c = self.w3c.extract_with_context(cx, extractor);
        let Some((dd_sc, extras)) = datadog_parent(extractor) else {
            return w3c;
        };
        let w3c_trace = {
            let span = w3c.span();
            let sc = span.span_context();
            sc.is_valid().then(|| trace_id_halves(sc.trace_id()))
        };
        let (dd_upper, dd_lower) = trace_id_halves(dd_sc.trace_id());
        match w3c_trace {
            Some((w3c_upper, w3c_lower))
                if w3c_lower == dd_lower && (dd_upper == 0 || dd_upper == w3c_upper) =>
            {
                extras.attach(w3c)
            }
            _ => extras.attach(cx.with_remote_span_context(dd_sc)),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(self.fields.as_slice())
    }
}

static PROPAGATOR: LazyLock<Propagator> = LazyLock::new(Propagator::default);

/// Writes `cx`'s trace context into request headers, in both formats: what [`Propagator`] injects,
/// written straight into header values (no string formatting, one buffer per value), since every
/// downstream call does it.
pub fn inject_context(cx: &Context, headers: &mut HeaderMap) {
    let Some(datadog) = DatadogHeaders::of(cx) else {
        return;
    };
    let span = cx.span();
    let sc = span.span_context();
    let (upper, lower) = trace_id_halves(sc.trace_id());
    // `00-<trace id>-<span id>-<flags>`, as the W3C propagator writes it.
    let mut traceparent = *b"00-00000000000000000000000000000000-0000000000000000-00";
    write_hex(&mut traceparent[3..19], upper);
    write_hex(&mut traceparent[19..35], lower);
    write_hex(&mut traceparent[36..52], span_id_u64(sc.span_id()));
    if sc.is_sampled() {
        traceparent[54] = b'1';
    }
    insert(
        headers,
        TRACEPARENT_HEADER,
        HeaderValue::from_bytes(&traceparent).map(unindexed),
    );
    let state = sc.trace_state().header();
    if state.is_empty() {
        headers.insert(TRACESTATE_HEADER, HeaderValue::from_static(""));
    } else {
        insert(headers, TRACESTATE_HEADER, HeaderValue::try_from(state));
    }
    headers.insert(TRACE_ID_HEADER, unindexed(HeaderValue::from(datadog.trace_id)));
    headers.insert(PARENT_ID_HEADER, unindexed(HeaderValue::from(datadog.parent_id)));
    let priority = match datadog.priority {
        0 => HeaderValue::from_static("0"),
        1 => HeaderValue::from_static("1"),
        2 => HeaderValue::from_static("2"),
        other => HeaderValue::from(other),
    };
    headers.insert(SAMPLING_PRIORITY_HEADER, priority);
    if let Some(origin) = datadog.origin {
        insert(headers, ORIGIN_HEADER, HeaderValue::try_from(origin));
    }
    if let Some(tags) = datadog.tags {
        insert(headers, TAGS_HEADER, HeaderValue::try_from(tags).map(unindexed));
    }
}

/// Marks a value that differs from call to call (an id, or tags that carry one) as never to be indexed.
/// HTTP/2's header compression would otherwise add it to the dynamic tables at both ends of the
/// connection, where no later call uses it, and where it pushes out the entries later calls do use
/// (the path, the content type, ...): every call would insert and evict several entries on both sides.
fn unindexed(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

/// Inserts a value that formed (a value from a caller's headers always does; anything else is skipped,
/// as [`HeaderInjector`] skips it).
fn insert<E>(headers: &mut HeaderMap, name: HeaderName, value: Result<HeaderValue, E>) {
    if let Ok(value) = value {
        headers.insert(name, value);
    }
}

const TRACEPARENT_HEADER: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE_HEADER: HeaderName = HeaderName::from_static("tracestate");
const TRACE_ID_HEADER: HeaderName = HeaderName::from_static(TRACE_ID);
const PARENT_ID_HEADER: HeaderName = HeaderName::from_static(PARENT_ID);
const SAMPLING_PRIORITY_HEADER: HeaderName = HeaderName::from_static(SAMPLING_PRIORITY);
const ORIGIN_HEADER: HeaderName = HeaderName::from_static(ORIGIN);
const TAGS_HEADER: HeaderName = HeaderName::from_static(TAGS);

/// Writes `value` as 16 lowercase hex digits into `out` (16 bytes).
fn write_hex(out: &mut [u8], value: u64) {
    for (index, byte) in out.iter_mut().enumerate() {
        *byte = HEX_DIGITS[(value >> ((15 - index) * 4)) as usize & 0xf];
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Reads a caller's trace context from request headers (W3C or Datadog); an empty context if none.
pub fn extract_context(headers: &HeaderMap) -> Context {
    PROPAGATOR.extract_with_context(&Context::new(), &HeaderExtractor(headers))
}

/// [`Injector`] over an `http::HeaderMap` (gRPC metadata is HTTP/2 headers).
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // Known names are static (no parsing, no allocation); the value's buffer is reused.
        let name = match key {
            "traceparent" => TRACEPARENT_HEADER,
            "tracestate" => TRACESTATE_HEADER,
            TRACE_ID => TRACE_ID_HEADER,
            PARENT_ID => PARENT_ID_HEADER,
            SAMPLING_PRIORITY => SAMPLING_PRIORITY_HEADER,
            ORIGIN => ORIGIN_HEADER,
            TAGS => TAGS_HEADER,
            other => match HeaderName::from_bytes(other.as_bytes()) {
                Ok(name) => name,
                Err(_) => return,
            },
        };
        if let Ok(value) = HeaderValue::try_from(value) {
            self.0.insert(name, value);
        }
    }
}

/// [`Extractor`] over an `http::HeaderMap`.
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contexts() -> Vec<Context> {
        let mut contexts = Vec::new();
        for trace_id in [
            0x6665_0a2b_0000_0000_abcd_ef01_2345_6789_u128,
            0x0123_4567_89ab_cdef,
        ] {
            for flags in [TraceFlags::SAMPLED, TraceFlags::default()] {
                for state in [
                    TraceState::NONE,
                    TraceState::from_key_value([("dd", "s:1")]).expect("valid"),
                ] {
                    let sc = SpanContext::new(
                        TraceId::from_bytes(trace_id.to_be_bytes()),
                        SpanId::from_bytes(0x0011_2233_4455_6677_u64.to_be_bytes()),
                        flags,
                        true,
                        state,
                    );
                    let cx = Context::new().with_remote_span_context(sc);
                    let extras = DatadogExtras {
                        priority: Some(2),
                        origin: Some("synthetics".into()),
                        tags: vec![("_dd.p.dm".into(), "-4".into())],
                    };
                    contexts.push(cx.with_value(extras));
                    contexts.push(cx);
                }
            }
        }
        contexts.push(Context::new());
        contexts
    }

    #[test]
    fn the_header_map_inject_writes_what_the_propagator_writes() {
        for cx in contexts() {
            let mut fast = HeaderMap::new();
            inject_context(&cx, &mut fast);
            let mut generic = HeaderMap::new();
            PROPAGATOR.inject_context(&cx, &mut HeaderInjector(&mut generic));
            assert_eq!(fast, generic, "{:?}", cx.span().span_context());
        }
    }

    #[test]
    fn values_that_differ_on_every_call_are_never_indexed_and_the_rest_are() {
        let cx = contexts().remove(0);
        let mut headers = HeaderMap::new();
        inject_context(&cx, &mut headers);
        for name in [TRACEPARENT_HEADER, TRACE_ID_HEADER, PARENT_ID_HEADER, TAGS_HEADER] {
            let value = headers.get(&name).unwrap_or_else(|| panic!("no {name}"));
            assert!(value.is_sensitive(), "{name} may be indexed");
        }
        for name in [TRACESTATE_HEADER, SAMPLING_PRIORITY_HEADER, ORIGIN_HEADER] {
            let value = headers.get(&name).unwrap_or_else(|| panic!("no {name}"));
            assert!(
                !value.is_sensitive(),
                "{name} repeats from call to call, and should be indexed"
            );
        }
    }

    #[test]
    fn extraction_takes_what_each_format_alone_extracts() {
        for cx in contexts() {
            let mut headers = HeaderMap::new();
            inject_context(&cx, &mut headers);
            let extracted = extract_context(&headers);
            let w3c = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
            assert_eq!(extracted.span().span_context(), w3c.span().span_context());
            let datadog = DatadogPropagator::new().extract(&HeaderExtractor(&headers));
            assert_eq!(extracted.get::<DatadogExtras>(), datadog.get::<DatadogExtras>());
        }
    }

    #[test]
    fn extras_that_change_nothing_downstream_are_left_out_of_the_context() {
        let mut left_out = 0;
        for cx in contexts() {
            let mut headers = HeaderMap::new();
            inject_context(&cx, &mut headers);
            let extracted = extract_context(&headers);
            let Some((_, extras)) = datadog_parent(&HeaderExtractor(&headers)) else {
                continue;
            };
            let plain = extras.origin.is_none() && extras.tags.is_empty();
            let sampled = extracted.span().span_context().is_sampled();
            // The priority the flag alone sends, or one that disagrees with the flag and is not sent.
            let same_priority =
                forwarded_priority(sampled, extras.priority) == forwarded_priority(sampled, None);
            if plain && same_priority {
                assert_eq!(extracted.get::<DatadogExtras>(), None, "{headers:?}");
                left_out += 1;
            }
            // Forwarded, the context writes what it would with its extras kept.
            let kept = extract_context(&headers).with_value(extras);
            let (mut forwarded, mut forwarded_kept) = (HeaderMap::new(), HeaderMap::new());
            inject_context(&extracted, &mut forwarded);
            inject_context(&kept, &mut forwarded_kept);
            assert_eq!(forwarded, forwarded_kept);
        }
        assert!(left_out > 0, "no context had extras to leave out");
    }
}
