//! The gateway: the public `inference.v1` gRPC API for dynamic-pricing predictions.
//!
//! A request passes the server stack in [`run`] (server span and RED metrics, concurrency limit, then
//! [`context`]: request id, log span, deadline), is validated ([`validate`]) by its handler
//! ([`service`]), predicted by the [`predictor`] (features from the feature-service, scores from the
//! model-service, through the resilient clients of [`downstream`]), and a quote is kept in the
//! [`quotes`] store so its outcome can be joined to it later. Business results are [`events`]; every
//! failure is an [`error::Error`] with one mapping to a gRPC status.
#![forbid(unsafe_code)]
// No request may reach a panic: failures are values, mapped to a status.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod config;
pub mod context;
pub mod downstream;
pub mod error;
pub mod events;
pub mod predictions;
pub mod predictor;
pub mod quality;
pub mod quotes;
pub mod service;
pub mod traffic;
pub mod validate;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use feature_store::{RedisConfig, RedisTls};
use proto::inference::v1::inference_service_server::InferenceServiceServer;
use server_kit::Listen;
use telemetry::grpc::GrpcServerLayer;
use tonic_health::pb::health_check_response::ServingStatus;

pub use crate::config::{Config, SettingsError};
use crate::context::RequestContextLayer;
use crate::downstream::{Downstream, Merging, Resilience, channel};
use crate::events::LogPolicy;
use crate::predictions::PredictionStore;
use crate::predictor::{MAX_SHADOWS_IN_FLIGHT, Policy, Predictor, RiskCache};
use crate::quality::Quality;
use crate::quotes::QuoteStore;
use crate::service::Gateway;
use crate::traffic::{Traffic, TrafficPolicy};

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "inference.v1.InferenceService";

/// The public API's methods, measured by `api.predict.*`.
pub const PUBLIC_RPCS: [&str; 7] = [
    "PredictCustomerRisk",
    "PredictDemandSurge",
    "QuotePrice",
    "RecordOutcome",
    "RecordLabel",
    "BatchPredictCustomerRisk",
    "BatchPredictDemandSurge",
];

/// The adaptive concurrency limit never refuses while the median request takes at most this share of
/// the budget (`REQUEST_TIMEOUT_MS / 10`: 10 ms by default).
const TOLERATED_SHARE_OF_BUDGET: u32 = 10;

/// How long, once serving has ended, the records of answered predictions still queued may take to
/// reach Redis: a batch takes milliseconds; past this (Redis away) the gateway exits with a warning and
/// they are lost. Within the room the default grace period leaves under Kubernetes' 30 s.
const RECORDS_FINISH: Duration = Duration::from_secs(2);

/// Why the gateway could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Channel(#[from] downstream::ChannelError),
    #[error(transparent)]
    Server(#[from] server_kit::Error),
    #[error(transparent)]
    QuoteStore(#[from] error::Error),
    #[error(transparent)]
    TrafficPolicy(#[from] traffic::PolicyError),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// How long the start waits for the quote store's settings.
const SETTINGS_READ: Duration = Duration::from_secs(2);

/// Warns of each quote store setting that loses or stalls what it keeps, once, at start.
async fn check_quote_store_settings(quotes: &QuoteStore) {
    match tokio::time::timeout(SETTINGS_READ, quotes.unsafe_settings()).await {
        Ok(Some(found)) => {
            for unsafe_setting in found {
                let setting = unsafe_setting.setting;
                tracing::warn!(
                    setting = setting.name,
                    value = %unsafe_setting.value,
                    wanted = setting.wanted,
                    redis.server = unsafe_setting.server.as_deref(),
                    "the quote store's Redis runs with {} {}, not {}: {} (docs/deploy.md, Known limits)",
                    setting.name,
                    unsafe_setting.value,
                    setting.wanted,
                    setting.why,
                );
            }
        }
        Ok(None) | Err(_) => tracing::info!(
            "the quote store's Redis settings could not be read (CONFIG GET): it needs {}",
            quotes::SETTINGS
                .iter()
                .map(|setting| format!("{} {}", setting.name, setting.wanted))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    }
}

/// How long the start waits for its dependencies' first answers.
const WARM_UP: Duration = Duration::from_secs(2);

/// Before the gateway reports ready: connects to the feature-service (asking its health) and to the
/// model-service (filling the catalog with the inputs of every model version the traffic policy names),
/// so that the first requests after a start, a rollout's new pod, pay for neither a connection nor a
/// metadata fetch within their budget. Each dependency is asked once, within [`WARM_UP`]; one that does
/// not answer is reported and left to the first requests, never holding the start back.
async fn warm_up(downstream: &Downstream, traffic: &Traffic) {
    let deadline = server_kit::Deadline::after(WARM_UP);
    let features = async {
        match downstream.features_health(deadline).await {
            Ok(ServingStatus::Serving) => true,
            Ok(status) => {
                tracing::warn!(
                    status = status.as_str_name(),
                    "the feature-service answers but is not serving yet: predictions are degraded until it is"
                );
                false
            }
            Err(error) => {
                tracing::warn!(
                    %error,
                    "the feature-service could not be reached at start: the first requests connect to it"
                );
                false
            }
        }
    };
    let policy = Arc::clone(&*traffic.load());
    let named = policy.named();
    let models = async {
        let mut known = Vec::new();
        for &model in &named {
            match downstream.model_spec(model, deadline).await {
                Ok(spec) => known.push(format!("{}@{}", spec.model, spec.version)),
                Err(error) => tracing::warn!(
                    model = %model.name,
                    version = %model.version,
                    %error,
                    "the model-service did not give this model's inputs at start: the first requests ask again"
                ),
            }
        }
        known
    };
    let (features, known) = tokio::join!(features, models);
    if features && known.len() == named.len() {
        tracing::info!(
            models = %known.join(", "),
            "connected to the feature-service and the model-service; every model's inputs known"
        );
    }
}

/// Serves the gateway on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    config: Config,
    listener: impl Into<Listen>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    // First: settings that cannot work together (`main` refuses them before this, as clap would), then
    // bad TLS files stop start-up, naming the setting or the file.
    config.check()?;
    let budget = Duration::from_millis(config.request_timeout_ms);
    let metrics = telemetry::metrics().clone();
    let mut server = server_kit::Server::new(&config.server, metrics.clone())?;
    if config.adaptive_concurrency {
        // Queueing up to a tenth of the budget is tolerated: callers are refused only once it would cost
        // them a noticeable part of their budget, and the feature fetch keeps its share.
        server = server.with_adaptive_limit(budget / TOLERATED_SHARE_OF_BUDGET);
    }
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
        (config.merge_calls_in_flight > 0).then_some(Merging {
            calls_in_flight: config.merge_calls_in_flight,
            max_rows: config.merge_max_rows,
        }),
        metrics.clone(),
    );
    let quote_ttl = Duration::from_secs(config.quote_ttl_secs);
    let retention = Duration::from_secs(config.outcome_retention_secs);
    let quotes = match &config.quote_redis_url {
        Some(url) => {
            let mut redis = RedisConfig::new(url.expose());
            redis.tls = RedisTls {
                ca_file: config.quote_redis_tls_ca_file.clone(),
                client_cert_file: config.quote_redis_tls_cert_file.clone(),
                client_key_file: config.quote_redis_tls_key_file.clone(),
            };
            QuoteStore::redis(&redis, quote_ttl, retention)?
        }
        None => {
            tracing::warn!("QUOTE_REDIS_URL unset: quotes are kept in memory and lost on restart");
            QuoteStore::memory(quote_ttl, retention)
        }
    };
    let pinned = TrafficPolicy::pinned([
        (config.risk_model.as_str(), config.risk_model_version.as_str()),
        (config.surge_model.as_str(), config.surge_model_version.as_str()),
    ]);
    let traffic = Arc::new(Traffic::new(
        pinned,
        config.traffic_policy_file.as_deref(),
        metrics.clone(),
    )?);
    traffic.check_started(&downstream).await?;
    // Stops re-reading the policy file however serving ends.
    let _policy_reloader = traffic.spawn_reloader(
        downstream.clone(),
        Duration::from_secs(config.traffic_policy_reload_secs),
    );
    let prediction_ttl = Duration::from_secs(config.prediction_ttl_secs);
    let predictions = Arc::new(match quotes.redis_connection() {
        Some(connection) => PredictionStore::redis(connection, prediction_ttl, metrics.clone()),
        None => PredictionStore::memory(prediction_ttl),
    });
    let records = Arc::clone(&predictions);
    let quality = Arc::new(Quality::new(metrics.clone()));
    // Stops reporting model quality however serving ends.
    let _quality_reporter = quality.spawn_reporter(
        downstream.clone(),
        Duration::from_secs(config.quality_report_secs),
    );
    let predictor = Predictor {
        downstream,
        policy: Policy {
            feature_timeout: Duration::from_millis(config.feature_timeout_ms),
            feature_fallback: config.feature_fallback,
            model_fallback: config.model_fallback,
        },
        traffic,
        risk_model: config.risk_model.clone(),
        surge_model: config.surge_model.clone(),
        metrics: metrics.clone(),
        shadows: Arc::new(tokio::sync::Semaphore::new(MAX_SHADOWS_IN_FLIGHT)),
        shadow_budget: budget,
        predictions,
        risk_cache: Arc::new(RiskCache::new(
            Duration::from_millis(config.crai_cache_ttl_ms),
            config.crai_cache_capacity,
            metrics.clone(),
        )),
    };
    let gateway = Arc::new(Gateway {
        predictor,
        quotes,
        quality,
        log_policy: LogPolicy {
            sample_rate: config.log_sample_rate,
            slow_ms: config.log_slow_ms as f64,
        },
        metrics: metrics.clone(),
    });

    let reflection = advertised("grpc.reflection.v1.ServerReflection").build_v1()?;
    let reflection_alpha = advertised("grpc.reflection.v1alpha.ServerReflection").build_v1alpha()?;
    let (health, health_service) = server_kit::Health::new(SERVICE_NAME).await;

    let listener = listener.into();
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, security = server.security(), config = ?config, "gateway listening");
    // Predictions do not need the quote store; quotes do. Give it a moment to connect so that a healthy
    // start answers every RPC, but never hold the gateway back for it: it keeps reconnecting.
    let (quotes_connected, ()) = tokio::join!(
        gateway.quotes.wait_connected(Duration::from_secs(5)),
        warm_up(&gateway.predictor.downstream, &gateway.predictor.traffic),
    );
    if !quotes_connected {
        tracing::warn!(
            "quote store not reachable yet: QuotePrice and RecordOutcome answer UNAVAILABLE until it is"
        );
    } else {
        check_quote_store_settings(&gateway.quotes).await;
    }
    health.serving().await;
    let (risk_model, surge_model) = (config.risk_model.as_str(), config.surge_model.as_str());
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
                .with_api_models("PredictCustomerRisk", &[risk_model])
                .with_api_models("BatchPredictCustomerRisk", &[risk_model])
                .with_api_models("PredictDemandSurge", &[surge_model])
                .with_api_models("BatchPredictDemandSurge", &[surge_model])
                .with_api_models("QuotePrice", &[risk_model, surge_model])
                .with_metrics(metrics),
        )
        // Inside it, the concurrency limit: a call refused as RESOURCE_EXHAUSTED still shows in the API
        // metrics and in APM.
        .layer(server.overload().clone())
        // Innermost, for the public RPCs only: the request id, the log span every line of the call
        // carries, and the deadline the handler and its downstream calls work to.
        .layer(RequestContextLayer::new(budget, &PUBLIC_RPCS))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(
            InferenceServiceServer::from_arc(gateway)
                .max_decoding_message_size(server.max_request_bytes())
                .max_encoding_message_size(server.max_response_bytes()),
        );
    let served = server.serve(router, listener, shutdown, &health).await;
    // However serving ended, the records of the predictions it answered are written before the exit.
    records.finish(RECORDS_FINISH).await;
    served?;
    tracing::info!("gateway stopped");
    Ok(())
}

/// Server reflection for what the gateway serves: the public API, health and `reflection` itself. The
/// descriptor set also holds the internal services' protos (the public API shares their types), which
/// must not be advertised: their calls would fail here.
fn advertised(reflection: &'static str) -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(SERVICE_NAME)
        .with_service_name(HEALTH_SERVICE)
        .with_service_name(reflection)
}

/// The `grpc.health.v1` service's name.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
