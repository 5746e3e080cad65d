//! The gateway: the public `inference.v1` gRPC API for dynamic-pricing predictions.
//!
//! A request is validated ([`validate`]), its features fetched from the feature-service and scored on the
//! model-service ([`predict`], [`downstream`]) within the request's budget, and a quote is kept in the
//! [`quotes`] store so its outcome can be joined to it later. [`run`] serves it all on a bound listener.
#![forbid(unsafe_code)]
// No request may reach a panic: failures are values, mapped to a status.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod downstream;
pub mod error;
pub mod predict;
pub mod quotes;
pub mod service;
pub mod validate;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proto::inference::v1::inference_service_server::InferenceServiceServer;
use telemetry::events::ConversionWindow;
use telemetry::grpc::GrpcServerLayer;
use tokio::net::TcpListener;

use crate::downstream::{Downstream, ModelRef, Resilience, channel};
use crate::predict::{FeatureFallback, ModelFallback, Policy};
use crate::quotes::QuoteStore;
use crate::service::Gateway;

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "inference.v1.InferenceService";

/// The public API's methods, measured by `api.predict.*`.
pub const PUBLIC_RPCS: [&str; 6] = [
    "PredictCustomerRisk",
    "PredictDemandSurge",
    "QuotePrice",
    "RecordOutcome",
    "BatchPredictCustomerRisk",
    "BatchPredictDemandSurge",
];

/// Gateway settings: each flag falls back to the environment variable named in `--help`.
#[derive(Clone, clap::Parser)]
#[command(
    name = "gateway",
    version,
    about = "Public gRPC API for dynamic-pricing predictions"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:50051")]
    pub listen_addr: SocketAddr,
    /// The feature-service's URL.
    #[arg(long, env = "FEATURE_SERVICE_URL", default_value = "http://127.0.0.1:50052")]
    pub feature_service_url: String,
    /// The model-service's URL.
    #[arg(long, env = "MODEL_SERVICE_URL", default_value = "http://127.0.0.1:50053")]
    pub model_service_url: String,
    /// Redis keeping quotes for RecordOutcome (`redis://`, `rediss://`, `redis-cluster://`). Unset: an
    /// embedded in-memory store, lost on restart (local work only).
    #[arg(long, env = "QUOTE_REDIS_URL")]
    pub quote_redis_url: Option<String>,
    /// Each request's budget in milliseconds: downstream calls get what remains of it.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 100)]
    pub request_timeout_ms: u64,
    /// The most of the budget the feature fetch may take, in milliseconds, so the model call keeps the rest.
    #[arg(long, env = "FEATURE_TIMEOUT_MS", default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..))]
    pub feature_timeout_ms: u64,
    /// When features cannot be read at all: score with the model's defaults (degraded) or fail.
    #[arg(long, env = "FEATURE_FALLBACK", value_enum, default_value_t = FeatureFallback::Defaults)]
    pub feature_fallback: FeatureFallback,
    /// When the model-service cannot score: fail fast (UNAVAILABLE) or answer neutral pricing (degraded).
    #[arg(long, env = "MODEL_FALLBACK", value_enum, default_value_t = ModelFallback::Fail)]
    pub model_fallback: ModelFallback,
    /// Consecutive failed calls to a dependency that open its circuit breaker.
    #[arg(long, env = "BREAKER_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_failures: u32,
    /// How long an open breaker fails fast before probing, in milliseconds (grows to 4x while probes fail).
    #[arg(long, env = "BREAKER_OPEN_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub breaker_open_ms: u64,
    /// Retries of idempotent reads allowed, as a fraction of calls (10 s window, plus 3 a second).
    #[arg(long, env = "RETRY_BUDGET_RATIO", default_value_t = 0.1)]
    pub retry_budget_ratio: f32,
    /// How long a quote can take an outcome, in seconds.
    #[arg(long, env = "QUOTE_TTL_SECS", default_value_t = 900)]
    pub quote_ttl_secs: u64,
    /// How long a recorded outcome is kept with its quote, in seconds.
    #[arg(long, env = "OUTCOME_RETENTION_SECS", default_value_t = 30 * 24 * 3600)]
    pub outcome_retention_secs: u64,
    /// Customer-risk model name in the model repository.
    #[arg(long, env = "RISK_MODEL", default_value = "customer_risk")]
    pub risk_model: String,
    /// Pinned customer-risk model version; empty follows the model-service's default version.
    #[arg(long, env = "RISK_MODEL_VERSION", default_value = "")]
    pub risk_model_version: String,
    /// Demand-surge model name in the model repository.
    #[arg(long, env = "SURGE_MODEL", default_value = "demand_surge")]
    pub surge_model: String,
    /// Pinned demand-surge model version; empty follows the default version.
    #[arg(long, env = "SURGE_MODEL_VERSION", default_value = "")]
    pub surge_model_version: String,
    #[command(flatten)]
    pub server: server_kit::ServerArgs,
    #[command(flatten)]
    pub downstream_tls: server_kit::ClientTlsArgs,
    #[command(flatten)]
    pub telemetry: telemetry::TelemetryConfig,
}

impl std::fmt::Debug for Config {
    // By hand, so that a password in QUOTE_REDIS_URL never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen_addr", &self.listen_addr)
            .field("feature_service_url", &self.feature_service_url)
            .field("model_service_url", &self.model_service_url)
            .field(
                "quote_redis_url",
                &self.quote_redis_url.as_ref().map(|_| "<redacted>"),
            )
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("feature_timeout_ms", &self.feature_timeout_ms)
            .field("feature_fallback", &self.feature_fallback)
            .field("model_fallback", &self.model_fallback)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_open_ms", &self.breaker_open_ms)
            .field("retry_budget_ratio", &self.retry_budget_ratio)
            .field("quote_ttl_secs", &self.quote_ttl_secs)
            .field("outcome_retention_secs", &self.outcome_retention_secs)
            .field("risk_model", &self.risk_model)
            .field("risk_model_version", &self.risk_model_version)
            .field("surge_model", &self.surge_model)
            .field("surge_model_version", &self.surge_model_version)
            .field("server", &self.server)
            .field("downstream_tls", &self.downstream_tls)
            .field("telemetry", &self.telemetry)
            .finish()
    }
}

/// Why the gateway could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid downstream URL: {0}")]
    Url(#[from] tonic::transport::Error),
    #[error(transparent)]
    Server(#[from] server_kit::Error),
    #[error(transparent)]
    QuoteStore(#[from] error::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("request_timeout_ms must be greater than 0")]
    ZeroBudget,
    #[error("retry_budget_ratio must be a number from 0 to 1000, not {0}")]
    RetryRatio(f32),
}

/// Serves the gateway on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    if config.request_timeout_ms == 0 {
        return Err(StartError::ZeroBudget);
    }
    if !(0.0..=1000.0).contains(&config.retry_budget_ratio) {
        return Err(StartError::RetryRatio(config.retry_budget_ratio));
    }
    let budget = Duration::from_millis(config.request_timeout_ms);
    let metrics = telemetry::metrics().clone();
    // First: bad TLS files stop start-up, naming the file.
    let server = server_kit::Server::new(&config.server, metrics.clone())?;
    let connect_timeout = Duration::from_secs(1);
    let tls = &config.downstream_tls;
    let downstream = Downstream::new(
        channel(&config.feature_service_url, connect_timeout, tls)?,
        channel(&config.model_service_url, connect_timeout, tls)?,
        Duration::from_secs(30),
        Resilience {
            breaker_failures: config.breaker_failures,
            breaker_open: Duration::from_millis(config.breaker_open_ms),
            retry_ratio: config.retry_budget_ratio,
        },
        metrics.clone(),
    );
    let quote_ttl = Duration::from_secs(config.quote_ttl_secs);
    let retention = Duration::from_secs(config.outcome_retention_secs);
    let quotes = match &config.quote_redis_url {
        Some(url) => QuoteStore::redis(url, quote_ttl, retention, Duration::from_secs(5))?,
        None => {
            tracing::warn!("QUOTE_REDIS_URL unset: quotes are kept in memory and lost on restart");
            QuoteStore::memory(quote_ttl, retention)
        }
    };
    let gateway = Arc::new(Gateway {
        downstream,
        policy: Policy {
            feature_timeout: Duration::from_millis(config.feature_timeout_ms),
            feature_fallback: config.feature_fallback,
            model_fallback: config.model_fallback,
        },
        quotes,
        risk_model: ModelRef::new(
            &config.risk_model,
            &config.risk_model_version,
            service::CONTROL_VARIANT,
        ),
        surge_model: ModelRef::new(
            &config.surge_model,
            &config.surge_model_version,
            service::CONTROL_VARIANT,
        ),
        budget,
        metrics: metrics.clone(),
        conversion: ConversionWindow::new(Duration::from_secs(15 * 60)),
    });

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let (health, health_service) = server_kit::Health::new(SERVICE_NAME).await;

    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, security = server.security(), config = ?config, "gateway listening");
    // Predictions do not need the quote store; quotes do. Give it a moment to connect so that a healthy
    // start answers every RPC, but never hold the gateway back for it: it keeps reconnecting.
    if !gateway.quotes.wait_connected(Duration::from_secs(5)).await {
        tracing::warn!(
            "quote store not reachable yet: QuotePrice and RecordOutcome answer UNAVAILABLE until it is"
        );
    }
    health.serving().await;
    let router = server
        .builder_without_limit()
        // Nothing outlives its budget: tonic also honours a shorter grpc-timeout sent by the caller.
        .timeout(budget)
        // Outermost: the server span (caller's W3C or Datadog context, made current for the handler so the
        // downstream calls and log lines join the trace) and the public API's RED metrics
        // (api.predict.requests / latency_ms / errors by RPC and status).
        .layer(
            GrpcServerLayer::new()
                .with_api_metrics(&PUBLIC_RPCS)
                .with_metrics(metrics),
        )
        // Inside it, the concurrency limit: a call refused as RESOURCE_EXHAUSTED still shows in the API
        // metrics and in APM.
        .layer(server.overload().clone())
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(
            InferenceServiceServer::from_arc(gateway).max_decoding_message_size(server.max_request_bytes()),
        );
    server.serve(router, listener, shutdown, &health).await?;
    tracing::info!("gateway stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Config;

    #[test]
    fn flags_are_consistent_and_default_to_one_machine() {
        Config::command().debug_assert();
        let config = Config::try_parse_from(["gateway"]).expect("defaults parse");
        assert_eq!(config.listen_addr.port(), 50051);
        assert_eq!(config.request_timeout_ms, 100);
    }

    #[test]
    fn debug_output_redacts_the_quote_store_url() {
        let config = Config::try_parse_from(["gateway", "--quote-redis-url", "redis://:hunter2@redis:6379"])
            .expect("parse");
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}
