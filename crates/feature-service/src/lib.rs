//! The feature-service: a thin gRPC shell over [`feature_store`]. It serves
//! `features.v1.FeatureService/GetOnlineFeatures` (values, statuses and event times of Feast features for
//! entity rows) and `grpc.health.v1`, reading Feast's Redis online store behind an in-process cache, or
//! the embedded demo snapshot when asked for by name (`EMBEDDED_FEATURES`); without either it refuses to
//! start.
//!
//! - [`Config`]: flags with environment fallbacks (`LISTEN_ADDR`, `REDIS_URL`, `FEAST_PROJECT`, ...).
//! - [`run`]: serves on a bound listener until `shutdown` resolves ([`run_with_metrics`] with a given
//!   metrics sink).
//! - [`Error`]: start-up and serving errors; `From<Error> for tonic::Status` is the one mapping to gRPC.
//!
//! Redis trouble, and what health says about it:
//!
//! - **Configuration errors fail start-up**, loudly: a malformed `REDIS_URL`, TLS files that do not read,
//!   a registry that does not parse. Waiting cannot fix them.
//! - **Redis being away at start-up does not.** The service listens and answers at once; the store
//!   connects in the background (retrying 50 ms doubling to 2 s, forever). Until the first successful
//!   connection, `grpc.health.v1` reports NOT_SERVING and `GetOnlineFeatures` answers OK with every value
//!   UNAVAILABLE. A wrong password or an untrusted certificate is treated the same way: the pod stays
//!   NOT_SERVING (never ready, so it never takes traffic) and logs the AUTH or TLS error on every attempt
//!   (at most once a second); it turns SERVING by itself once the credentials or the trust are fixed on
//!   either side, with no restart. Crash-looping would show the same error less usefully and add restart
//!   back-off to the recovery.
//! - **After the first connection, health stays SERVING through Redis outages.** Answers are degraded,
//!   not failed: cached rows (up to `FEATURE_CACHE_STALE_IF_ERROR_MS` past their TTL) stand in, the rest is
//!   UNAVAILABLE, and callers use their defaults as for any missing value. Every replica shares the one
//!   Redis, so flipping readiness on a Redis error would pull all of them out of the load balancer at
//!   once and turn a Redis blip into a total outage of the service, cache included.
//!
//! A `FEAST_PROJECT` that names no key in Redis cannot be told from a healthy start by its answers (every
//! feature NOT_FOUND), so once connected the service walks Redis for one (a bounded `SCAN`) and, finding
//! none, logs one warning naming the project and sets `features.project_keys_found` to 0 (1 otherwise).
//! It does not stop start-up: the project's keys may be materialized later.
//!
//! Telemetry: a server span per call from `telemetry::grpc::GrpcServerLayer` (the caller's trace joined
//! from W3C or Datadog headers), under which the store traces each Redis round trip; the store sends the
//! cache, feature availability, staleness and Redis metrics (see `feature_store`).
#![forbid(unsafe_code)]
// No request may reach a panic: failures are values, mapped to a status.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod config;
mod error;
mod service;

use std::future::Future;

use feature_store::{BackendKind, OnlineStore, Registry};
use proto::features::v1::feature_service_server::FeatureServiceServer;
use server_kit::Listen;
use telemetry::Metrics;
use telemetry::grpc::GrpcServerLayer;

pub use config::{Config, SettingsError};
pub use error::Error;
pub use service::FeatureServiceImpl;

/// The gRPC service name, as health checks ask for it.
pub const SERVICE_NAME: &str = "features.v1.FeatureService";

/// Opens the feature store (loading the snapshot, or starting to connect to Redis) and serves on
/// `listener` until `shutdown` resolves. Health reports SERVING once the store can read (at once for the
/// snapshot, at the first Redis connection otherwise; see the crate documentation), and NOT_SERVING again
/// as shutdown begins and in-flight requests finish.
pub async fn run(
    config: Config,
    listener: impl Into<Listen>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    run_with_metrics(config, telemetry::metrics().clone(), listener, shutdown).await
}

/// [`run`], sending metrics to `metrics` instead of the process's sink (tests point one at their own
/// socket).
pub async fn run_with_metrics(
    config: Config,
    metrics: Metrics,
    listener: impl Into<Listen>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    // First: no store asked for (`main` refuses it before this, as clap would), then bad TLS files stop
    // start-up, naming the setting or the file.
    config.check()?;
    let server = server_kit::Server::new(&config.server, metrics.clone())?;
    let registry = Registry::load(config.feature_registry.as_deref())?;
    let (health, health_service) = server_kit::Health::new(SERVICE_NAME).await;
    let mut store_config = config.store_config(registry);
    store_config.metrics = metrics;
    let store = OnlineStore::open(store_config).await?;
    let listener = listener.into();
    tracing::info!(
        listen_addr = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
        backend = ?store.backend(),
        project = %store.project(),
        security = server.security(),
        max_concurrent_requests = config.server.max_concurrent_requests,
        "feature-service listening"
    );
    if config.embedded_features {
        tracing::warn!(
            "serving the bundled demo snapshot (EMBEDDED_FEATURES): made-up customers and zones, not for real traffic"
        );
    }
    let readiness = tokio::spawn(serving_once_connected(store.clone(), health.clone()));
    // Also stopped if serving fails or `run` is dropped: it holds the store, and with it the connection.
    let _readiness = AbortOnDrop(readiness.abort_handle());
    let shutdown = async move {
        shutdown.await;
        // Stopped, and waited for, before health turns NOT_SERVING: it must not turn it back.
        readiness.abort();
        let _ = readiness.await;
    };
    // The server stack, outermost first. Cross-cutting concerns live here, not in the handler.
    let stack = tower::ServiceBuilder::new()
        // Tracing: joins the caller's trace (W3C `traceparent` or Datadog `x-datadog-*` headers), opens
        // the server span (`rpc.system=grpc`, `rpc.service`, `rpc.method`: `grpc.server.request` with
        // resource `GetOnlineFeatures features.v1.FeatureService` in APM), runs the handler with it
        // current, so the store's Redis spans and the log lines' `dd.trace_id` belong to it, and ends it
        // with the gRPC status. Health checks are not traced (probes would drown the traces).
        .layer(GrpcServerLayer::new())
        .into_inner();
    // Outside the stack, the concurrency limit (`server.builder()`): a refused call costs nothing more.
    let router = server
        .builder()
        .layer(stack)
        .add_service(health_service)
        .add_service(
            FeatureServiceServer::new(FeatureServiceImpl::new(store))
                .max_decoding_message_size(server.max_request_bytes())
                .max_encoding_message_size(server.max_response_bytes()),
        );
    server.serve(router, listener, shutdown, &health).await?;
    tracing::info!("feature-service stopped");
    Ok(())
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reports SERVING once the store has been able to read, and never reports otherwise afterwards (Redis
/// outages degrade answers, they do not fail them: see the crate documentation).
async fn serving_once_connected(store: OnlineStore, health: server_kit::Health) {
    if !store.is_connected() {
        tracing::info!("waiting for the first Redis connection: NOT_SERVING until then");
    }
    store.wait_connected().await;
    health.serving().await;
    tracing::info!(backend = ?store.backend(), "feature-service serving");
    // Once, after serving began: a FEAST_PROJECT that names no key in Redis answers every feature
    // NOT_FOUND, which looks like a healthy service; say so (a warning and `features.project_keys_found`).
    // It never holds back start-up or fails a request.
    if store.backend() == BackendKind::Redis
        && let Err(error) = store.check_project_keys().await
    {
        tracing::info!(%error, "could not check that Redis holds keys of the Feast project");
    }
}
