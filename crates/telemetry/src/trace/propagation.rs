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

impl TextMapPropagator for DatadogPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let extras = cx.get::<DatadogExtras>();
        let (upper, lower) = trace_id_halves(sc.trace_id());
        injector.set(TRACE_ID, lower.to_string());
        injector.set(PARENT_ID, span_id_u64(sc.span_id()).to_string());
        let extracted = extras.and_then(|e| e.priority);
        let priority = match (sc.is_sampled(), extracted) {
            (true, Some(p)) if p > 0 => p,
            (true, _) => 1,
            (false, Some(p)) if p <= 0 => p,
            (false, _) => 0,
        };
        injector.set(SAMPLING_PRIORITY, priority.to_string());
        if let Some(origin) = extras.and_then(|e| e.origin.as_ref()) {
            injector.set(ORIGIN, origin.clone());
        }
        let mut tags = String::new();
        if upper != 0 {
            tags.push_str(TID_TAG);
            tags.push('=');
            tags.push_str(&format!("{upper:016x}"));
        }
        for (key, value) in extras.map(|e| e.tags.as_slice()).unwrap_or_default() {
            if !tags.is_empty() {
                tags.push(',');
            }
            tags.push_str(key);
            tags.push('=');
            tags.push_str(value);
        }
        if !tags.is_empty() && tags.len() <= MAX_TAGS_LEN {
            injector.set(TAGS, tags);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let header = |name| extractor.get(name).map(str::trim);
        let Some(lower) = header(TRACE_ID)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v != 0)
        else {
            return cx.clone();
        };
        // A zero or missing parent (RUM, synthetics roots) cannot be an OpenTelemetry parent.
        let Some(parent) = header(PARENT_ID)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v != 0)
        else {
            return cx.clone();
        };
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
        cx.with_remote_span_context(sc).with_value(extras)
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
        let datadog = self.datadog.extract_with_context(cx, extractor);
        let w3c_sc = w3c.span().span_context().clone();
        let dd_sc = datadog.span().span_context().clone();
        match (w3c_sc.is_valid(), dd_sc.is_valid()) {
            (true, true) => {
                let (w3c_upper, w3c_lower) = trace_id_halves(w3c_sc.trace_id());
                let (dd_upper, dd_lower) = trace_id_halves(dd_sc.trace_id());
                let same_trace = w3c_lower == dd_lower && (dd_upper == 0 || dd_upper == w3c_upper);
                match (same_trace, datadog.get::<DatadogExtras>()) {
                    (true, Some(extras)) => w3c.with_value(extras.clone()),
                    (true, None) => w3c,
                    (false, _) => datadog,
                }
            }
            (true, false) => w3c,
            (false, true) => datadog,
            (false, false) => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(self.fields.as_slice())
    }
}

static PROPAGATOR: LazyLock<Propagator> = LazyLock::new(Propagator::default);

/// Writes `cx`'s trace context into request headers, in both formats.
pub fn inject_context(cx: &Context, headers: &mut HeaderMap) {
    PROPAGATOR.inject_context(cx, &mut HeaderInjector(headers));
}

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
            "traceparent" => HeaderName::from_static("traceparent"),
            "tracestate" => HeaderName::from_static("tracestate"),
            TRACE_ID => HeaderName::from_static(TRACE_ID),
            PARENT_ID => HeaderName::from_static(PARENT_ID),
            SAMPLING_PRIORITY => HeaderName::from_static(SAMPLING_PRIORITY),
            ORIGIN => HeaderName::from_static(ORIGIN),
            TAGS => HeaderName::from_static(TAGS),
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
