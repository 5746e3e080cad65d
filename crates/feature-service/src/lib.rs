//! The feature-service: a thin gRPC shell over [`feature_store`]. It serves
//! `features.v1.FeatureService/GetOnlineFeatures` (values, statuses and event times of Feast features for
//! entity rows) and `grpc.health.v1`, reading Feast's Redis online store behind an in-process cache, or the
//! embedded snapshot when no Redis is configured.
//!
//! - [`Config`]: flags with environment fallbacks (`LISTEN_ADDR`, `REDIS_URL`, `FEAST_PROJECT`, ...).
//! - [`run`]: serves on a bound listener until `shutdown` resolves ([`run_with_metrics`] with a given
//!   metrics sink).
//! - [`Error`]: start-up and serving errors; `From<Error> for tonic::Status` is the one mapping to gRPC.
//!
//! Telemetry: a server span per call from `telemetry::grpc::GrpcServerLayer` (the caller's trace joined
//! from W3C or Datadog headers), under which the store traces each Redis round trip; the store sends the
//! cache, feature availability, staleness and Redis metrics (see `feature_store`).
#![forbid(unsafe_code)]

mod config;
mod error;
mod service;

use std::future::Future;

use feature_store::{OnlineStore, Registry};
use proto::features::v1::feature_service_server::FeatureServiceServer;
use telemetry::Metrics;
use telemetry::grpc::GrpcServerLayer;
use tokio::net::TcpListener;

pub use config::Config;
pub use error::Error;
pub use service::{FeatureServiceImpl, grpc_deadline};

/// The gRPC service name, as health checks ask for it.
pub const SERVICE_NAME: &str = "features.v1.FeatureService";

/// Opens the feature store (connecting to Redis, or loading the snapshot), reports SERVING, and serves
/// on `listener` until `shutdown` resolves; health turns NOT_SERVING as shutdown begins and in-flight
/// requests finish.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    run_with_metrics(config, telemetry::metrics().clone(), listener, shutdown).await
}

/// [`run`], sending metrics to `metrics` instead of the process's sink (tests point one at their own
/// socket).
pub async fn run_with_metrics(
    config: Config,
    metrics: Metrics,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let registry = Registry::load(config.feature_registry.as_deref())?;
    let (health, health_service) = server_kit::Health::new(SERVICE_NAME).await;
    let mut store_config = config.store_config(registry);
    store_config.metrics = metrics;
    let store = OnlineStore::open(store_config).await?;
    health.serving().await;
    tracing::info!(
        listen_addr = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
        backend = ?store.backend(),
        project = %store.project(),
        "feature-service serving"
    );
    // The server stack, outermost first. Cross-cutting concerns live here, not in the handler.
    let stack = tower::ServiceBuilder::new()
        // Tracing: joins the caller's trace (W3C `traceparent` or Datadog `x-datadog-*` headers), opens
        // the server span (`rpc.system=grpc`, `rpc.service`, `rpc.method`: `grpc.server.request` with
        // resource `GetOnlineFeatures features.v1.FeatureService` in APM), runs the handler with it
        // current, so the store's Redis spans and the log lines' `dd.trace_id` belong to it, and ends it
        // with the gRPC status. Health checks are not traced (probes would drown the traces).
        .layer(GrpcServerLayer::new())
        .into_inner();
    tonic::transport::Server::builder()
        .layer(stack)
        .add_service(health_service)
        .add_service(FeatureServiceServer::new(FeatureServiceImpl::new(store)))
        .serve_with_incoming_shutdown(server_kit::incoming(listener), health.on_shutdown(shutdown))
        .await?;
    tracing::info!("feature-service stopped");
    Ok(())
}
