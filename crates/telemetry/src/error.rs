//! The crate's one error type. Telemetry never fails a request, so these errors only come out of
//! start-up ([`crate::Metrics::start`], the trace pipeline inside [`crate::init`]) and configuration
//! parsing.

/// Why telemetry (or one of its parts) could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `DD_DOGSTATSD_URL` is neither `unix://<path>` nor `udp://<host>:<port>`.
    #[error("DD_DOGSTATSD_URL {url:?} is invalid: {reason}")]
    InvalidDogStatsdUrl { url: String, reason: &'static str },
    /// `OTEL_TRACES_SAMPLER_ARG` is not a ratio in [0, 1].
    #[error("OTEL_TRACES_SAMPLER_ARG {0} is not a ratio between 0 and 1")]
    InvalidSamplerArg(f64),
    /// The OTLP exporter could not be built (bad endpoint, TLS requested without TLS support...).
    #[error("OTLP trace exporter: {0}")]
    OtlpExporter(String),
    /// A background thread or the exporter runtime could not be started.
    #[error("cannot start telemetry worker: {0}")]
    Worker(#[source] std::io::Error),
}
