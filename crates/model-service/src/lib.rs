//! The model-service: serves `models.v1.ModelService` (Predict, GetModelMetadata) and `grpc.health.v1`
//! for the ONNX models of a model repository on disk.
//!
//! It is a thin gRPC shell: loading, validation and scoring live in `model-runtime`. This crate holds
//! the [`Config`], [`run`] (load the repository, then serve until shutdown), the handlers
//! ([`service::Models`]), feature drift against the manifest baselines ([`drift`]) and the mapping of
//! every failure to a gRPC status ([`Error`]). Serving itself (TLS, the concurrency limit, draining
//! shutdown) is `server_kit`'s, configured by the flattened [`server_kit::ServerArgs`].
//!
//! Loading policy: at start every version folder is loaded and validated (probe rows included); a
//! model with no loadable version fails start-up. While serving, [`reload`] follows the folder every
//! `RELOAD_INTERVAL_SECS`: a new or changed version folder is served once it loads and validates (a
//! failing one is reported once and left out, the versions served keep serving), requests naming no
//! version get the newest version whose folder is there, and a version whose folder is gone is still
//! served to requests that name it until none has for `RETIRE_AFTER_SECS`, then retired (never a
//! model's last version). Several versions of a model are served side by side throughout.
#![forbid(unsafe_code)]
// No request may reach a panic: failures are values, mapped to a status.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod drift;
pub mod error;
pub mod events;
pub mod reload;
pub mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use model_runtime::ModelRepository;
use proto::models::v1::model_service_server::ModelServiceServer;
use server_kit::{Health, Listen, ServerArgs};
use telemetry::Metrics;
use telemetry::grpc::GrpcServerLayer;
use tower::ServiceBuilder;

use crate::drift::DriftMonitor;
pub use crate::error::Error;
use crate::reload::{Reloader, Served, Snapshot};
use crate::service::Models;

/// The gRPC service name, as health checks know it.
pub const SERVICE_NAME: &str = "models.v1.ModelService";

const MAX_BATCH_ROWS: telemetry::Bounds = telemetry::Bounds::new("max-batch-rows", 1, 100_000);
const DRIFT_INTERVAL_SECS: telemetry::Bounds = telemetry::Bounds::new("drift-interval-secs", 1, 86_400);
const DRIFT_MIN_ROWS: telemetry::Bounds = telemetry::Bounds::new("drift-min-rows", 1, 100_000_000);
const INFERENCE_TIMEOUT_MS: telemetry::Bounds = telemetry::Bounds::new("inference-timeout-ms", 1, 600_000);
const RELOAD_INTERVAL_SECS: telemetry::Bounds = telemetry::Bounds::new("reload-interval-secs", 1, 3600);
const RETIRE_AFTER_SECS: telemetry::Bounds = telemetry::Bounds::new("retire-after-secs", 1, 86_400);

/// Model-service settings: each flag falls back to the environment variable named in `--help`; each
/// number has a range ([`Config::BOUNDS`]) outside which the service refuses to start.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "model-service",
    version,
    about = "Scores rows of features with the ONNX models of a model repository"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:50053")]
    pub listen_addr: SocketAddr,
    /// Model repository folder, laid out as `<model>/<version>/{model.onnx, manifest.json}` (required:
    /// `crates/model-service/models` in a checkout, `/models` in the container image).
    #[arg(long, env = "MODEL_REPOSITORY")]
    pub model_repository: PathBuf,
    /// Most rows one Predict call may carry (1 to 100000).
    #[arg(
        long,
        env = "MAX_BATCH_ROWS",
        default_value_t = 1000,
        value_parser = MAX_BATCH_ROWS.parser::<u32>()
    )]
    pub max_batch_rows: u32,
    /// Seconds between feature-drift evaluations: each one reports the PSI of every feature whose
    /// window reached `--drift-min-rows`, and starts its next window (1 to 86400: a day).
    #[arg(
        long,
        env = "DRIFT_INTERVAL_SECS",
        default_value_t = 60,
        value_parser = DRIFT_INTERVAL_SECS.parser::<u64>()
    )]
    pub drift_interval_secs: u64,
    /// Rows a feature's drift window needs before its PSI is reported; a smaller window keeps
    /// accumulating. Sampling noise alone gives PSI ≈ (bins − 1) / rows: 0.018 for 10 bins and 500 rows
    /// (1 to 100000000).
    #[arg(
        long,
        env = "DRIFT_MIN_ROWS",
        default_value_t = 500,
        value_parser = DRIFT_MIN_ROWS.parser::<u64>()
    )]
    pub drift_min_rows: u64,
    /// Milliseconds a batch of more than 64 rows may take to get a blocking-pool slot and run, or less
    /// when the caller's deadline comes first; past it the call is answered DEADLINE_EXCEEDED. Smaller
    /// batches run inline in well under a millisecond and are not bounded (1 to 600000: 10 min).
    #[arg(
        long,
        env = "INFERENCE_TIMEOUT_MS",
        default_value_t = 50,
        value_parser = INFERENCE_TIMEOUT_MS.parser::<u64>()
    )]
    pub inference_timeout_ms: u64,
    /// Seconds between scans of the model repository for version folders that are new, changed or
    /// gone: a new or changed one is served once it loads and passes its probe rows, one that fails is
    /// reported once and left out (1 to 3600: an hour).
    #[arg(
        long,
        env = "RELOAD_INTERVAL_SECS",
        default_value_t = 5,
        value_parser = RELOAD_INTERVAL_SECS.parser::<u64>()
    )]
    pub reload_interval_secs: u64,
    /// Seconds a version whose folder was removed is still served to requests that name it, counted
    /// from the last such request (and from the removal); then it is retired. Longer than the gateway's
    /// 30 s model-metadata cache, so a gateway still routing to it is not cut off. A model's last
    /// version is never retired (1 to 86400: a day).
    #[arg(
        long,
        env = "RETIRE_AFTER_SECS",
        default_value_t = 120,
        value_parser = RETIRE_AFTER_SECS.parser::<u64>()
    )]
    pub retire_after_secs: u64,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub telemetry: telemetry::TelemetryConfig,
}

impl Config {
    /// The range of each numeric setting of the service's own, as its `--help` states it (the flattened
    /// ones are [`ServerArgs::BOUNDS`] and [`telemetry::TelemetryConfig::BOUNDS`]).
    pub const BOUNDS: &'static [telemetry::Bounds] = &[
        MAX_BATCH_ROWS,
        DRIFT_INTERVAL_SECS,
        DRIFT_MIN_ROWS,
        INFERENCE_TIMEOUT_MS,
        RELOAD_INTERVAL_SECS,
        RETIRE_AFTER_SECS,
    ];
}

/// Loads the model repository, then serves on `listener` until `shutdown` resolves and in-flight calls
/// finish (within `SHUTDOWN_GRACE_MS`), following changes of the repository meanwhile ([`reload`]).
/// Health reports SERVING once the repository is loaded, NOT_SERVING as soon as shutdown begins.
/// Metrics go to the process's sink ([`telemetry::metrics`]).
pub async fn run(
    config: Config,
    listener: impl Into<Listen>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    run_with_metrics(config, listener, shutdown, telemetry::metrics().clone()).await
}

/// [`run`], sending the service's metrics to `metrics` (tests inject a sink of their own).
pub async fn run_with_metrics(
    config: Config,
    listener: impl Into<Listen>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    metrics: Metrics,
) -> Result<(), Error> {
    // First: bad TLS files stop start-up before the models load.
    let server = server_kit::Server::new(&config.server, metrics.clone())?;
    let (health, health_server) = Health::new(SERVICE_NAME).await;
    let repository = Arc::new(load(config.model_repository.clone(), &metrics).await?);
    let drift = Arc::new(DriftMonitor::new(&repository, config.drift_min_rows));
    let served = Served::new(Snapshot::new(repository, &drift));
    // Stop the drift reporter and the reloader however serving ends.
    let _reporter = drift::spawn_reporter(
        Arc::clone(&drift),
        Duration::from_secs(config.drift_interval_secs),
        metrics.clone(),
    );
    let _reloader = reload::spawn(
        Reloader::new(
            served.clone(),
            drift,
            metrics.clone(),
            Duration::from_secs(config.retire_after_secs),
        ),
        Duration::from_secs(config.reload_interval_secs),
    );
    let models = Models::new(served, config.max_batch_rows as usize)
        .with_inference_timeout(Duration::from_millis(config.inference_timeout_ms))
        .with_metrics(metrics);
    // Bound by `main` before the models loaded; `serve` listens on it as serving starts.
    let listener = listener.into();
    health.serving().await;
    let addr = listener
        .local_addr()
        .map(|addr| addr.to_string())
        .unwrap_or_default();
    tracing::info!(
        %addr,
        security = server.security(),
        max_concurrent_requests = config.server.max_concurrent_requests,
        max_batch_rows = config.max_batch_rows,
        inference_timeout_ms = config.inference_timeout_ms,
        drift_interval_secs = config.drift_interval_secs,
        drift_min_rows = config.drift_min_rows,
        reload_interval_secs = config.reload_interval_secs,
        retire_after_secs = config.retire_after_secs,
        "serving"
    );
    // Every call, outermost first:
    // 0. server_kit's concurrency limit (in `server.builder()`): past MAX_CONCURRENT_REQUESTS a call is
    //    answered RESOURCE_EXHAUSTED at once, before anything below runs; health checks are exempt.
    // 1. GrpcServerLayer: the server span (`rpc.system=grpc`, `rpc.service`, `rpc.method`, so APM
    //    names it `grpc.server.request` with resource `<Method> models.v1.ModelService`), a child of
    //    the caller's context from its W3C or Datadog headers, made current for the handler so the
    //    inference span and log lines join the caller's trace; ended with the gRPC status. Health
    //    checks are not traced. No API metrics: `api.predict.*` are the gateway's (public API).
    let layers = ServiceBuilder::new().layer(GrpcServerLayer::new());
    let router = server
        .builder()
        .layer(layers)
        .add_service(health_server)
        .add_service(
            ModelServiceServer::new(models)
                .max_decoding_message_size(server.max_request_bytes())
                .max_encoding_message_size(server.max_response_bytes()),
        );
    server.serve(router, listener, shutdown, &health).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Loads and optimizes every model on the blocking pool (file I/O and graph optimization).
async fn load(root: PathBuf, metrics: &Metrics) -> Result<ModelRepository, Error> {
    let started = Instant::now();
    let repository = tokio::task::spawn_blocking(move || ModelRepository::load(root)).await??;
    for model in repository.models() {
        let default = model.default_version().version();
        for version in model.versions() {
            events::ModelVersionLoaded {
                model: model.name(),
                version: version.version(),
                default: version.version() == default,
                dir: version.dir(),
            }
            .emit(metrics);
        }
    }
    for skipped in repository.skipped() {
        events::ModelVersionRejected {
            model: &skipped.model,
            version: &skipped.version,
            dir: &repository.root().join(&skipped.model).join(&skipped.version),
            error: &skipped.error,
        }
        .emit(metrics);
    }
    tracing::info!(
        repository = %repository.root().display(),
        load_ms = started.elapsed().as_secs_f64() * 1e3,
        "model repository loaded"
    );
    Ok(repository)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The bundled repository, as a checkout passes it.
    const REPO: [&str; 3] = ["model-service", "--model-repository", "models"];

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(REPO.iter().chain(args))
    }

    #[test]
    fn the_model_repository_is_required() {
        // No default: a path of the machine that built the binary means nothing where it runs.
        let error = Config::try_parse_from(["model-service"]).expect_err("no repository given");
        assert_eq!(error.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(error.to_string().contains("--model-repository"), "{error}");
    }

    #[test]
    fn defaults() {
        let config = parse(&[]).expect("defaults parse");
        assert_eq!(config.max_batch_rows, 1000);
        assert_eq!((config.drift_interval_secs, config.drift_min_rows), (60, 500));
        assert_eq!(config.inference_timeout_ms, 50);
        assert_eq!((config.reload_interval_secs, config.retire_after_secs), (5, 120));
        assert_eq!(config.server, ServerArgs::default());
        assert_eq!(config.model_repository, PathBuf::from("models"));
    }

    #[test]
    fn a_zero_row_cap_is_rejected() {
        assert!(parse(&["--max-batch-rows", "0"]).is_err());
        let config = parse(&["--max-batch-rows", "7"]).expect("parses");
        assert_eq!(config.max_batch_rows, 7);
    }

    #[test]
    fn server_settings_are_flattened_in() {
        assert!(parse(&["--inference-timeout-ms", "0"]).is_err());
        let config = parse(&[
            "--max-concurrent-requests",
            "64",
            "--shutdown-drain-delay-ms",
            "5000",
            "--inference-timeout-ms",
            "20",
        ])
        .expect("parses");
        assert_eq!(config.server.max_concurrent_requests, 64);
        assert_eq!(config.server.shutdown_drain_delay_ms, 5000);
        assert_eq!(config.inference_timeout_ms, 20);
    }

    #[test]
    fn drift_settings_must_be_positive() {
        for flag in ["--drift-interval-secs", "--drift-min-rows"] {
            assert!(parse(&[flag, "0"]).is_err(), "{flag}");
        }
        let config = parse(&["--drift-interval-secs", "5", "--drift-min-rows", "100"]).expect("parses");
        assert_eq!((config.drift_interval_secs, config.drift_min_rows), (5, 100));
    }

    #[test]
    fn reload_settings_have_ranges() {
        for (flag, past) in [
            ("--reload-interval-secs", "3601"),
            ("--retire-after-secs", "86401"),
        ] {
            assert!(parse(&[flag, "0"]).is_err(), "{flag}");
            assert!(parse(&[flag, past]).is_err(), "{flag}");
        }
        let config = parse(&["--reload-interval-secs", "1", "--retire-after-secs", "3"]).expect("parses");
        assert_eq!((config.reload_interval_secs, config.retire_after_secs), (1, 3));
    }
}
