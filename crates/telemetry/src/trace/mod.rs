//! Traces: an OpenTelemetry SDK tracer provider exporting OTLP/gRPC to the agent (port 4317; `otlp`
//! writes the requests), a bounded batch queue whose drops are counted, the W3C + Datadog
//! [`propagation`], span helpers in [`spans`], and tonic glue in [`crate::grpc`].
//!
//! The OTLP exporter's tonic channel lives on a one-thread Tokio runtime owned by telemetry, so export
//! works whatever runtime (or none) the service uses, and shutdown never waits on the service's
//! runtime, which may already be gone when the [`crate::Guard`] drops.

#[cfg(feature = "testing")]
pub mod capture;
mod otlp;
pub mod propagation;
pub mod spans;

use std::{
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry::{Context, KeyValue, global};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{
        BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, Span, SpanData, SpanExporter,
        SpanProcessor,
    },
};

use crate::{
    ServiceTags, TelemetryConfig, TelemetryError,
    config::SamplerKind,
    dropped,
    tags::{DropReason, Signal},
};

/// Extra room in the SDK's queue over our admission limit, so concurrent `on_end` calls racing past
/// the limit check never make the SDK drop silently.
const QUEUE_SLACK: usize = 256;
/// Time one OTLP export may take before it is abandoned (agent on the node: normally milliseconds).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// The running trace pipeline; shut it down to flush.
pub(crate) struct Tracing {
    provider: SdkTracerProvider,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for Tracing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracing").finish_non_exhaustive()
    }
}

/// Resource attributes Datadog reads for unified service tagging (both the current and the older
/// deployment environment key, for agents before 7.58).
pub(crate) fn resource(tags: &ServiceTags) -> Resource {
    Resource::builder()
        .with_service_name(tags.service.clone())
        .with_attributes([
            KeyValue::new("service.version", tags.version.clone()),
            KeyValue::new("deployment.environment.name", tags.env.clone()),
            KeyValue::new("deployment.environment", tags.env.clone()),
        ])
        .build()
}

pub(crate) fn sampler(config: &TelemetryConfig) -> Result<Sampler, TelemetryError> {
    let ratio = config.sampler_ratio()?;
    Ok(match config.sampler {
        SamplerKind::AlwaysOn => Sampler::AlwaysOn,
        SamplerKind::AlwaysOff => Sampler::AlwaysOff,
        SamplerKind::TraceIdRatio => Sampler::TraceIdRatioBased(ratio),
        SamplerKind::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerKind::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerKind::ParentBasedTraceIdRatio => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    })
}

/// Sets the global propagator (always, so context flows even with tracing off).
pub(crate) fn install_propagator() {
    global::set_text_map_propagator(propagation::Propagator::default());
}

/// Builds the OTLP pipeline and installs it as the global tracer provider.
pub(crate) fn start(config: &TelemetryConfig, tags: &ServiceTags) -> Result<Tracing, TelemetryError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("telemetry-otlp")
        .enable_all()
        .build()
        .map_err(TelemetryError::Worker)?;
    let endpoint = config.otlp_endpoint();
    let channel = {
        // tonic's lazy channel spawns its connection task on the current runtime: ours.
        let _entered = runtime.enter();
        tonic::transport::Endpoint::from_shared(endpoint.clone())
            .map_err(|error| TelemetryError::OtlpExporter(format!("{endpoint}: {error}")))?
            .connect_timeout(EXPORT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy()
    };
    let exporter = otlp::OtlpExporter::new(channel, runtime.handle().clone(), EXPORT_TIMEOUT);
    let processor = BoundedProcessor::new(exporter, config.span_queue_size);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler(config)?)
        .with_resource(resource(tags))
        .build();
    global::set_tracer_provider(provider.clone());
    spans::use_provider(&provider);
    Ok(Tracing {
        provider,
        runtime: Some(runtime),
    })
}

impl Tracing {
    /// Exports what is queued and stops, waiting at most `timeout`.
    pub(crate) fn shutdown(&mut self, timeout: Duration) -> bool {
        let done = self.provider.shutdown_with_timeout(timeout).is_ok();
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so it is safe inside the service's async context.
            runtime.shutdown_background();
        }
        done
    }
}

/// A batch span processor that admits at most `max_queue` spans waiting for export and counts the
/// rest in `telemetry.dropped{signal:span,reason:queue_full}` (the SDK's own count is private).
#[derive(Debug)]
struct BoundedProcessor {
    inner: BatchSpanProcessor,
    admitted: AtomicUsize,
    handed_to_exporter: Arc<AtomicUsize>,
    max_queue: usize,
}

impl BoundedProcessor {
    fn new<E: SpanExporter + 'static>(exporter: E, max_queue: usize) -> Self {
        let handed_to_exporter = Arc::new(AtomicUsize::new(0));
        let exporter = CountingExporter {
            inner: exporter,
            handed: handed_to_exporter.clone(),
        };
        let max_queue = max_queue.max(1);
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(max_queue + QUEUE_SLACK)
            .with_scheduled_delay(Duration::from_secs(1))
            .with_max_export_batch_size(512.min(max_queue))
            .build();
        let inner = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        Self {
            inner,
            admitted: AtomicUsize::new(0),
            handed_to_exporter,
            max_queue,
        }
    }
}

impl SpanProcessor for BoundedProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let waiting = self
            .admitted
            .load(Ordering::Relaxed)
            .saturating_sub(self.handed_to_exporter.load(Ordering::Relaxed));
        if waiting >= self.max_queue {
            dropped::PROCESS.add(Signal::Span, DropReason::QueueFull, 1);
            return;
        }
        self.admitted.fetch_add(1, Ordering::Relaxed);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// One warning a minute at most: with the agent down every export fails, and the count of lost
/// spans is in `telemetry.dropped` anyway.
fn warn_export_failure(error: &opentelemetry_sdk::error::OTelSdkError) {
    static LAST_WARNING: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST_WARNING.lock().unwrap_or_else(PoisonError::into_inner);
    if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
        *last = Some(Instant::now());
        drop(last);
        tracing::warn!(%error, spans_dropped = dropped::spans_dropped(), "trace export to the agent failed; dropping spans");
    }
}

/// Counts spans handed to the exporter (for the admission limit) and spans lost to failed exports.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    handed: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        self.handed.fetch_add(spans, Ordering::Relaxed);
        let result = self.inner.export(batch).await;
        if let Err(error) = &result {
            dropped::PROCESS.add(Signal::Span, DropReason::ExportFailed, spans as u64);
            warn_export_failure(error);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{Tracer, TracerProvider as _};

    use super::*;

    /// An agent that takes 200 ms per export.
    #[derive(Debug)]
    struct SlowExporter;

    impl SpanExporter for SlowExporter {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        }
    }

    #[test]
    fn a_full_span_queue_drops_and_counts_instead_of_growing() {
        let before = dropped::PROCESS.total(Signal::Span);
        let processor = BoundedProcessor::new(SlowExporter, 10);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("test");
        for _ in 0..100 {
            drop(tracer.start("request"));
        }
        let dropped = dropped::PROCESS.total(Signal::Span) - before;
        // At most the queue (10) plus one batch already handed to the slow exporter (10) got through.
        assert!((80..=90).contains(&dropped), "{dropped} dropped");
        let _ = provider.shutdown_with_timeout(Duration::from_secs(2));
    }
}
