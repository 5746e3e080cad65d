//! Spans kept in memory for tests (feature `testing`): [`install`] makes, once per process, a global
//! tracer provider that exports to memory and points this crate's spans at it; [`spans_of`] and
//! [`wait_for`] read what was exported, [`attribute`] one of a span's attributes.
//!
//! ```ignore
//! telemetry::trace::capture::install();
//! // ... a traced call with trace id `trace_id` ...
//! let spans = telemetry::trace::capture::wait_for(trace_id, |spans| spans.len() >= 2).await;
//! ```

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use opentelemetry::trace::TraceId;
use opentelemetry::{Value, global};
pub use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

/// How long [`wait_for`] waits for the spans it wants.
const WAIT: Duration = Duration::from_secs(5);

/// The process's in-memory exporter, installed as the global tracer provider on first use.
pub fn install() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        super::spans::use_provider(&provider);
        global::set_tracer_provider(provider);
        exporter
    })
}

/// Every exported span of `trace_id`, in export order.
pub fn spans_of(trace_id: TraceId) -> Vec<SpanData> {
    install()
        .get_finished_spans()
        .unwrap_or_default()
        .into_iter()
        .filter(|span| span.span_context.trace_id() == trace_id)
        .collect()
}

/// The spans of `trace_id` once `enough` says so, or what there is after five seconds.
pub async fn wait_for(trace_id: TraceId, enough: impl Fn(&[SpanData]) -> bool) -> Vec<SpanData> {
    let deadline = Instant::now() + WAIT;
    loop {
        let spans = spans_of(trace_id);
        if enough(&spans) || Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The value of attribute `key` of `span`.
pub fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}
