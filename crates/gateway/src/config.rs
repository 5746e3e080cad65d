//! The gateway's settings: each flag falls back to an environment variable (`--help` lists them), and
//! `Debug` never prints a secret.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::predictor::{FeatureFallback, ModelFallback};

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
    /// PEM CA certificate(s) that sign the quote store's certificate, trusted instead of the system's
    /// roots (rediss:// URLs only).
    #[arg(long, env = "QUOTE_REDIS_TLS_CA_FILE")]
    pub quote_redis_tls_ca_file: Option<PathBuf>,
    /// PEM client certificate for a quote store that verifies clients (`tls-auth-clients yes`); needs
    /// --quote-redis-tls-key-file.
    #[arg(
        long,
        env = "QUOTE_REDIS_TLS_CERT_FILE",
        requires = "quote_redis_tls_key_file"
    )]
    pub quote_redis_tls_cert_file: Option<PathBuf>,
    /// PEM private key of --quote-redis-tls-cert-file.
    #[arg(
        long,
        env = "QUOTE_REDIS_TLS_KEY_FILE",
        requires = "quote_redis_tls_cert_file"
    )]
    pub quote_redis_tls_key_file: Option<PathBuf>,
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
            .field("quote_redis_tls_ca_file", &self.quote_redis_tls_ca_file)
            .field("quote_redis_tls_cert_file", &self.quote_redis_tls_cert_file)
            .field("quote_redis_tls_key_file", &self.quote_redis_tls_key_file)
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
