//! The feature-service: a thin gRPC shell over [`feature_store`]. It serves
//! `features.v1.FeatureService/GetOnlineFeatures` (values, statuses and event times of Feast features for
//! entity rows) and `grpc.health.v1`, reading Feast's Redis online store behind an in-process cache, or the
//! embedded snapshot when no Redis is configured.
//!
//! - [`Config`]: flags with environment fallbacks (`LISTEN_ADDR`, `REDIS_URL`, `FEAST_PROJECT`, ...).
//! - [`run`]: serves on a bound listener until `shutdown` resolves.
//! - [`Error`]: start-up and serving errors; `From<Error> for tonic::Status` is the one mapping to gRPC.
#![forbid(unsafe_code)]

mod config;
mod error;
mod service;

use std::future::Future;

use feature_store::{OnlineStore, Registry};
use proto::features::v1::feature_service_server::FeatureServiceServer;
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
    let registry = Registry::load(config.feature_registry.as_deref())?;
    let (health, health_service) = server_kit::Health::new(SERVICE_NAME).await;
    let store = OnlineStore::open(config.store_config(registry)).await?;
    health.serving().await;
    tracing::info!(
        listen_addr = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
        backend = ?store.backend(),
        project = %store.project(),
        "feature-service serving"
    );
    tonic::transport::Server::builder()
        // One span per call, named the way Datadog APM names gRPC server spans.
        .trace_fn(request_span)
        .add_service(health_service)
        .add_service(FeatureServiceServer::new(FeatureServiceImpl::new(store)))
        .serve_with_incoming_shutdown(server_kit::incoming(listener), health.on_shutdown(shutdown))
        .await?;
    tracing::info!("feature-service stopped");
    Ok(())
}

fn request_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    tracing::info_span!(
        "grpc.server.request",
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
    )
}
