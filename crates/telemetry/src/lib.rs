//! Telemetry for every service: one [`init`] call at start-up, configured by the standard Datadog and
//! OpenTelemetry variables ([`TelemetryConfig`]), returning a [`Guard`] that flushes on drop.
//!
//! - **Metrics** ([`Metrics`], [`catalog`], [`Tag`]): DogStatsD to the agent (UDP or its Unix socket),
//!   aggregated in process and flushed every second by a background thread; every metric's name,
//!   kind, unit and tag keys live in [`catalog`]. On Kubernetes each line carries the origin fields
//!   ([`MetricsOrigin`]: container id, `DD_EXTERNAL_ENV`) so the agent adds the pod's tags.
//! - **Traces** ([`trace`], [`grpc`]): OpenTelemetry spans exported over OTLP/gRPC to the agent;
//!   context propagated in W3C trace context and Datadog headers; tower layers for tonic servers and
//!   channels.
//! - **Logs** ([`logs`]): JSON on stdout with `dd.trace_id`/`dd.span_id` and the service tags, or a
//!   human format.
//! - **Settings** ([`settings`]): what every binary's clap `Config` shares beyond these flags:
//!   [`Secret`] for values `Debug` and `--help` must not show, [`Bounds`] for the range of a number.
//!
//! Every signal carries the unified service tags `env`, `service` and `version`. Telemetry never
//! blocks or fails a request: with the agent away, metrics and spans are dropped and counted in
//! `telemetry.dropped`.
#![forbid(unsafe_code)]
// No request may reach a panic: failures are values, mapped to a status.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod catalog;
mod config;
mod dropped;
mod error;
pub mod events;
pub mod grpc;
pub mod logs;
mod metrics;
pub mod settings;
mod tags;
pub mod trace;

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

pub use config::{DogStatsdUrl, LogFormat, SamplerKind, TelemetryConfig};
pub use dropped::spans_dropped;
pub use error::TelemetryError;
pub use metrics::{EventAlert, Metrics, MetricsOptions, MetricsOrigin, MetricsStats};
pub use settings::{Bounds, Secret};
pub use tags::{
    DegradedReason, DropReason, ERROR_KINDS, ERROR_TYPE_HEADER, JobStatus, LookupStatus, Signal, Tag,
    error_type_of, grpc_code_name, grpc_fault,
};
use tracing_appender::non_blocking::WorkerGuard;

/// How long shutdown waits for each of metrics and traces before giving up (SIGTERM must exit fast
/// even with no agent).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// The unified service tags, resolved once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTags {
    pub env: String,
    pub service: String,
    pub version: String,
}

/// The process's metrics sink (a no-op before [`init`] or with `DD_DOGSTATSD_DISABLE=true`).
pub fn metrics() -> &'static Metrics {
    Metrics::global()
}

/// Keeps telemetry running; [`Guard::shutdown`] or dropping it flushes what is buffered.
#[must_use = "telemetry stops when the guard is dropped"]
pub struct Guard {
    tags: ServiceTags,
    /// Only the first `init` of a process owns the pipelines.
    owned: Option<Owned>,
}

struct Owned {
    metrics: Option<Metrics>,
    tracing: Option<trace::Tracing>,
    logs: Option<WorkerGuard>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("tags", &self.tags)
            .field("owner", &self.owned.is_some())
            .finish()
    }
}

impl Guard {
    pub fn tags(&self) -> &ServiceTags {
        &self.tags
    }

    /// Flushes metrics and spans (at most 2 s each) and stops the pipelines this guard owns.
    pub fn shutdown(mut self) {
        self.close();
    }

    fn close(&mut self) {
        let Some(mut owned) = self.owned.take() else {
            // A later `init` (tests): flush the shared sink, leave it running for the owner.
            Metrics::global().flush(SHUTDOWN_WAIT);
            return;
        };
        let traces_flushed = owned
            .tracing
            .as_mut()
            .is_none_or(|tracing| tracing.shutdown(SHUTDOWN_WAIT));
        let metrics_flushed = owned
            .metrics
            .as_ref()
            .is_none_or(|metrics| metrics.shutdown(SHUTDOWN_WAIT));
        tracing::info!(
            traces_flushed,
            metrics_flushed,
            spans_dropped = spans_dropped(),
            metrics_dropped = owned.metrics.as_ref().map_or(0, |m| m.stats().dropped),
            "telemetry stopped"
        );
        if let Some(logs) = owned.logs.take() {
            logs::stop_writer(logs);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.close();
    }
}

static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Starts logs, traces and metrics for `default_service` (the binary's name, used when `DD_SERVICE`
/// is unset) at `default_version` (used when `DD_VERSION` is unset).
///
/// Safe to call more than once in a process (tests do): later calls keep the first pipelines and
/// return a guard that only flushes. A part that cannot start (say, a malformed OTLP endpoint) is
/// reported on stderr and in the logs and left off; the service still runs.
pub fn init(config: &TelemetryConfig, default_service: &str, default_version: &str) -> Guard {
    let tags = ServiceTags {
        env: config.env.clone(),
        service: config
            .service
            .clone()
            .unwrap_or_else(|| default_service.to_owned()),
        version: config
            .version
            .clone()
            .unwrap_or_else(|| default_version.to_owned()),
    };
    if INITIALIZED.swap(true, Ordering::SeqCst) {
        return Guard { tags, owned: None };
    }
    let logs = logs::install(config, &tags);
    trace::install_propagator();
    let tracing = match config.trace_enabled {
        false => None,
        true => trace::start(config, &tags)
            .inspect_err(|error| report_start_failure("traces", error))
            .ok(),
    };
    // Read once, here: procfs never again, and never on a request.
    let origin = match config.dogstatsd_disable {
        true => MetricsOrigin::default(),
        false => MetricsOrigin::detect(config),
    };
    let metrics = match config.dogstatsd_disable {
        true => None,
        false => {
            let options = MetricsOptions {
                flush_interval: config.metrics_flush_interval(),
                max_series: config.metrics_max_series,
                max_samples: config.metrics_max_samples,
                origin: origin.clone(),
                ..MetricsOptions::new(config.dogstatsd_target(), tags.clone())
            };
            Metrics::start_inner(options, true)
                .inspect(|metrics| {
                    metrics.install_global();
                })
                .inspect_err(|error| report_start_failure("metrics", error))
                .ok()
        }
    };
    tracing::info!(
        env = %tags.env,
        service = %tags.service,
        version = %tags.version,
        dogstatsd = %metrics.as_ref().map_or("disabled".to_owned(), |_| config.dogstatsd_target().to_string()),
        otlp = %tracing.as_ref().map_or("disabled".to_owned(), |_| config.otlp_endpoint()),
        origin_container = origin.container.as_deref().unwrap_or("none"),
        origin_external_data = origin.external_data.is_some(),
        "telemetry started"
    );
    Guard {
        tags,
        owned: Some(Owned {
            metrics,
            tracing,
            logs,
        }),
    }
}

fn report_start_failure(part: &str, error: &TelemetryError) {
    eprintln!("telemetry: {part} disabled: {error}");
    tracing::error!(part, %error, "telemetry part disabled");
}
