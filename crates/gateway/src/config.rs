//! The gateway's settings: each flag falls back to an environment variable (`--help` lists them), each
//! number has a range ([`Config::BOUNDS`]) outside which the gateway refuses to start, each downstream
//! URL must be `http(s)://host:port`, settings that cannot work together are refused too
//! ([`Config::check`]), and neither `Debug` nor `--help` prints a secret.

use std::net::SocketAddr;
use std::path::PathBuf;

use telemetry::{Bounds, Secret};
use tonic::transport::Uri;

use crate::predictor::{FeatureFallback, ModelFallback};

/// A year: the longest a quote or an outcome is kept.
const YEAR_SECS: u64 = 365 * 24 * 3600;
const REQUEST_TIMEOUT_MS: Bounds = Bounds::new("request-timeout-ms", 1, 600_000);
const FEATURE_TIMEOUT_MS: Bounds = Bounds::new("feature-timeout-ms", 1, 600_000);
const BREAKER_FAILURES: Bounds = Bounds::new("breaker-failures", 1, 1_000);
const BREAKER_OPEN_MS: Bounds = Bounds::new("breaker-open-ms", 1, 600_000);
/// tower's retry budget refuses more than 1000 (retries per call).
const RETRY_BUDGET_RATIO: Bounds<f64> = Bounds::new("retry-budget-ratio", 0.0, 1000.0);
const QUOTE_TTL_SECS: Bounds = Bounds::new("quote-ttl-secs", 1, YEAR_SECS);
const OUTCOME_RETENTION_SECS: Bounds = Bounds::new("outcome-retention-secs", 1, YEAR_SECS);
const LOG_SLOW_MS: Bounds = Bounds::new("log-slow-ms", 0, 600_000);
const LOG_SAMPLE_RATE: Bounds<f64> = Bounds::new("log-sample-rate", 0.0, 1.0);
const CRAI_CACHE_TTL_MS: Bounds = Bounds::new("crai-cache-ttl-ms", 0, 3_600_000);
const CRAI_CACHE_CAPACITY: Bounds = Bounds::new("crai-cache-capacity", 0, 10_000_000);
const PREDICTION_TTL_SECS: Bounds = Bounds::new("prediction-ttl-secs", 1, YEAR_SECS);
const QUALITY_REPORT_SECS: Bounds = Bounds::new("quality-report-secs", 1, 3_600);
const TRAFFIC_POLICY_RELOAD_SECS: Bounds = Bounds::new("traffic-policy-reload-secs", 1, 3_600);
const MERGE_CALLS_IN_FLIGHT: Bounds = Bounds::new("merge-calls-in-flight", 0, 64);
/// The feature-service takes up to 1,000 entity rows a call; the model-service scores up to 64 rows a
/// call inline, more on a blocking pool.
const MERGE_MAX_ROWS: Bounds = Bounds::new("merge-max-rows", 1, 1_000);

/// Gateway settings: each flag falls back to the environment variable named in `--help`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "gateway",
    version,
    about = "Public gRPC API for dynamic-pricing predictions"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:50051")]
    pub listen_addr: SocketAddr,
    /// The feature-service's URL: http://host:port, or https://host:port with DOWNSTREAM_TLS_CA_FILE.
    #[arg(
        long,
        env = "FEATURE_SERVICE_URL",
        default_value = "http://127.0.0.1:50052",
        value_parser = service_url
    )]
    pub feature_service_url: String,
    /// The model-service's URL: http://host:port, or https://host:port with DOWNSTREAM_TLS_CA_FILE.
    #[arg(
        long,
        env = "MODEL_SERVICE_URL",
        default_value = "http://127.0.0.1:50053",
        value_parser = service_url
    )]
    pub model_service_url: String,
    /// Redis keeping quotes for RecordOutcome (`redis://`, `rediss://`, `redis-cluster://`). Unset: an
    /// embedded in-memory store, lost on restart (local work only).
    #[arg(long, env = "QUOTE_REDIS_URL", hide_env_values = true)]
    pub quote_redis_url: Option<Secret>,
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
    /// Each request's budget in milliseconds: downstream calls get what remains of it (1 to 600000: 10 min).
    #[arg(
        long,
        env = "REQUEST_TIMEOUT_MS",
        default_value_t = 100,
        value_parser = REQUEST_TIMEOUT_MS.parser::<u64>()
    )]
    pub request_timeout_ms: u64,
    /// The most of the budget the feature fetch may take, in milliseconds, so the model call keeps the rest:
    /// below --request-timeout-ms, or the gateway refuses to start (1 to 600000).
    #[arg(
        long,
        env = "FEATURE_TIMEOUT_MS",
        default_value_t = 40,
        value_parser = FEATURE_TIMEOUT_MS.parser::<u64>()
    )]
    pub feature_timeout_ms: u64,
    /// Move the concurrency limit below MAX_CONCURRENT_REQUESTS to keep the median latency of the calls
    /// served near its no-queue level or within a tenth of --request-timeout-ms, whichever is higher,
    /// refusing the excess at once with RESOURCE_EXHAUSTED (a spike costs only the excess); `false` keeps
    /// the fixed limit.
    #[arg(long, env = "ADAPTIVE_CONCURRENCY", default_value_t = true,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub adaptive_concurrency: bool,
    /// Calls of each downstream RPC in flight at once before concurrent requests wait to share one: the
    /// waiting requests that ask the same of the same models then go as one call, each taking its rows of
    /// the answer (a call costs far more than a row). 0 turns merging off: every request makes its own
    /// calls (0 to 64).
    #[arg(
        long,
        env = "MERGE_CALLS_IN_FLIGHT",
        default_value_t = 2,
        value_parser = MERGE_CALLS_IN_FLIGHT.parser::<usize>()
    )]
    pub merge_calls_in_flight: usize,
    /// The most entity rows of a merged feature fetch, and rows per model of a merged model call; a
    /// request with more goes alone (1 to 1000).
    #[arg(
        long,
        env = "MERGE_MAX_ROWS",
        default_value_t = 64,
        value_parser = MERGE_MAX_ROWS.parser::<usize>()
    )]
    pub merge_max_rows: usize,
    /// When features cannot be read at all: score with the model's defaults (degraded) or fail.
    #[arg(long, env = "FEATURE_FALLBACK", value_enum, default_value_t = FeatureFallback::Defaults)]
    pub feature_fallback: FeatureFallback,
    /// When the model-service cannot score: fail fast (UNAVAILABLE) or answer neutral pricing (degraded).
    #[arg(long, env = "MODEL_FALLBACK", value_enum, default_value_t = ModelFallback::Fail)]
    pub model_fallback: ModelFallback,
    /// Consecutive failed calls to a dependency that open its circuit breaker (1 to 1000).
    #[arg(
        long,
        env = "BREAKER_FAILURES",
        default_value_t = 5,
        value_parser = BREAKER_FAILURES.parser::<u32>()
    )]
    pub breaker_failures: u32,
    /// How long an open breaker fails fast before probing, in milliseconds; grows to 4x while probes fail
    /// (1 to 600000).
    #[arg(
        long,
        env = "BREAKER_OPEN_MS",
        default_value_t = 500,
        value_parser = BREAKER_OPEN_MS.parser::<u64>()
    )]
    pub breaker_open_ms: u64,
    /// Retries of idempotent reads allowed, as a fraction of the calls of the last 10 s plus 3 a second
    /// (0 to 1000).
    #[arg(
        long,
        env = "RETRY_BUDGET_RATIO",
        default_value_t = 0.1,
        value_parser = RETRY_BUDGET_RATIO.parser::<f32>()
    )]
    pub retry_budget_ratio: f32,
    /// How long a quote can take an outcome, in seconds (1 to 31536000: a year).
    #[arg(
        long,
        env = "QUOTE_TTL_SECS",
        default_value_t = 900,
        value_parser = QUOTE_TTL_SECS.parser::<u64>()
    )]
    pub quote_ttl_secs: u64,
    /// How long a recorded outcome is kept with its quote, in seconds (1 to 31536000: a year).
    #[arg(
        long,
        env = "OUTCOME_RETENTION_SECS",
        default_value_t = 30 * 24 * 3600,
        value_parser = OUTCOME_RETENTION_SECS.parser::<u64>()
    )]
    pub outcome_retention_secs: u64,
    /// Share of routine answered requests (not degraded, not slow) whose line (`price quoted`, `risk
    /// predicted`, ...) is written; degraded and slow ones always are, failed ones always are, and metrics
    /// count every request (0 to 1). 0.1 keeps the logs of 100 times the design record's traffic
    /// within its log budget.
    #[arg(
        long,
        env = "LOG_SAMPLE_RATE",
        default_value_t = 0.1,
        value_parser = LOG_SAMPLE_RATE.parser::<f64>()
    )]
    pub log_sample_rate: f64,
    /// An answered request at least this slow, in milliseconds, is always logged (0 to 600000; 0 logs
    /// every request).
    #[arg(
        long,
        env = "LOG_SLOW_MS",
        default_value_t = 50,
        value_parser = LOG_SLOW_MS.parser::<u64>()
    )]
    pub log_slow_ms: u64,
    /// How long a customer's risk answer is served again from the CRAI cache, in milliseconds, for the
    /// same model version and experiment arm (degraded answers are never kept): a customer's features
    /// change with each materialization, hours apart, while a shopping customer asks for several quotes
    /// within minutes; 0 turns the cache off (0 to 3600000: an hour).
    #[arg(
        long,
        env = "CRAI_CACHE_TTL_MS",
        default_value_t = 300_000,
        value_parser = CRAI_CACHE_TTL_MS.parser::<u64>()
    )]
    pub crai_cache_ttl_ms: u64,
    /// Most customer-risk answers the CRAI cache holds, least recently used out first; ~100 bytes each
    /// (0 to 10000000; 0 turns it off).
    #[arg(
        long,
        env = "CRAI_CACHE_CAPACITY",
        default_value_t = 100_000,
        value_parser = CRAI_CACHE_CAPACITY.parser::<u64>()
    )]
    pub crai_cache_capacity: u64,
    /// How long a prediction's record waits for its label (RecordLabel), in seconds, in the quote store
    /// (1 to 31536000: a year). Each costs ~200 bytes of Redis memory: 30 days at 100K predictions a day
    /// is ~600 MB.
    #[arg(
        long,
        env = "PREDICTION_TTL_SECS",
        default_value_t = 30 * 24 * 3600,
        value_parser = PREDICTION_TTL_SECS.parser::<u64>()
    )]
    pub prediction_ttl_secs: u64,
    /// Seconds between reports of each model version's online quality from its labels (1 to 3600).
    #[arg(
        long,
        env = "QUALITY_REPORT_SECS",
        default_value_t = 60,
        value_parser = QUALITY_REPORT_SECS.parser::<u64>()
    )]
    pub quality_report_secs: u64,
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
    /// Traffic policy file (YAML or JSON; a ConfigMap in Kubernetes): per model, a pinned version, or an
    /// A/B experiment's weighted arms chosen by a sticky hash of the entity id, and a shadow version that
    /// scores a copy of the traffic. Models it does not name keep RISK_MODEL_VERSION / SURGE_MODEL_VERSION.
    /// Unset: those pins, variant `control`. Invalid at start: the gateway refuses to start.
    #[arg(long, env = "TRAFFIC_POLICY_FILE")]
    pub traffic_policy_file: Option<PathBuf>,
    /// Seconds between reads of --traffic-policy-file; a changed file is validated and applied, or
    /// rejected with the policy in force kept (1 to 3600).
    #[arg(
        long,
        env = "TRAFFIC_POLICY_RELOAD_SECS",
        default_value_t = 5,
        value_parser = TRAFFIC_POLICY_RELOAD_SECS.parser::<u64>()
    )]
    pub traffic_policy_reload_secs: u64,
    #[command(flatten)]
    pub server: server_kit::ServerArgs,
    #[command(flatten)]
    pub downstream_tls: server_kit::ClientTlsArgs,
    #[command(flatten)]
    pub telemetry: telemetry::TelemetryConfig,
}

impl Config {
    /// The range of each integer setting of the gateway's own, as its `--help` states it (the flattened
    /// ones are [`server_kit::ServerArgs::BOUNDS`] and [`telemetry::TelemetryConfig::BOUNDS`]).
    pub const BOUNDS: &'static [Bounds] = &[
        REQUEST_TIMEOUT_MS,
        MERGE_CALLS_IN_FLIGHT,
        MERGE_MAX_ROWS,
        FEATURE_TIMEOUT_MS,
        BREAKER_FAILURES,
        BREAKER_OPEN_MS,
        QUOTE_TTL_SECS,
        OUTCOME_RETENTION_SECS,
        LOG_SLOW_MS,
        CRAI_CACHE_TTL_MS,
        CRAI_CACHE_CAPACITY,
        PREDICTION_TTL_SECS,
        QUALITY_REPORT_SECS,
        TRAFFIC_POLICY_RELOAD_SECS,
    ];
    /// The range of each fractional setting, as its `--help` states it.
    pub const FRACTION_BOUNDS: &'static [Bounds<f64>] = &[RETRY_BUDGET_RATIO, LOG_SAMPLE_RATE];

    /// Parses the flags and the environment as [`clap::Parser::parse`] does, then refuses what
    /// [`Config::check`] refuses the same way: a one-line reason and exit code 2.
    pub fn parse_checked() -> Self {
        server_kit::parse_checked(Self::check)
    }

    /// Refuses settings that are each within their range but cannot work together.
    pub fn check(&self) -> Result<(), SettingsError> {
        // The feature fetch is bounded by its own timeout and the model call gets what remains of the
        // budget: a feature timeout as long as the budget can leave the model call nothing.
        if self.feature_timeout_ms >= self.request_timeout_ms {
            return Err(SettingsError::FeatureTimeout {
                feature_ms: self.feature_timeout_ms,
                request_ms: self.request_timeout_ms,
            });
        }
        Ok(())
    }
}

/// Settings that cannot work together ([`Config::check`]); the message names each of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "--feature-timeout-ms (FEATURE_TIMEOUT_MS) {feature_ms} must be below --request-timeout-ms \
         (REQUEST_TIMEOUT_MS) {request_ms}: the feature fetch must leave the model call part of the budget"
    )]
    FeatureTimeout { feature_ms: u64, request_ms: u64 },
}

/// clap's parser of a downstream service's URL: `http://` or `https://`, a host and a port. tonic takes
/// `127.0.0.1:50053` (no scheme) as well, and then every call fails with a bare "transport error" while
/// the gateway reports SERVING; a missing port would quietly mean 80 or 443, where no service listens.
fn service_url(raw: &str) -> Result<String, String> {
    let problem = match raw.parse::<Uri>() {
        Err(error) => format!("not a URL ({error})"),
        Ok(uri) => match uri.scheme_str() {
            None => "no scheme".to_owned(),
            Some(scheme) if scheme != "http" && scheme != "https" => format!("{scheme}:// is no gRPC scheme"),
            Some(_) if uri.host().is_none_or(str::is_empty) => "no host".to_owned(),
            Some(_) => match uri.port_u16() {
                None => "no port".to_owned(),
                Some(0) => "port 0".to_owned(),
                Some(_) => return Ok(raw.to_owned()),
            },
        },
    };
    Err(format!(
        "{problem}: expected http://host:port or https://host:port"
    ))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Config, SettingsError};

    #[test]
    fn flags_are_consistent_and_default_to_one_machine() {
        Config::command().debug_assert();
        let config = Config::try_parse_from(["gateway"]).expect("defaults parse");
        assert_eq!(config.listen_addr.port(), 50051);
        assert_eq!(config.request_timeout_ms, 100);
    }

    #[test]
    fn downstream_urls_need_a_scheme_a_host_and_a_port() {
        for url in [
            "http://feature-service:50052",
            "https://[::1]:443",
            "http://10.0.0.7:1/",
        ] {
            let config = Config::try_parse_from(["gateway", "--feature-service-url", url]);
            assert_eq!(config.expect(url).feature_service_url, url);
        }
        for (url, problem) in [
            ("127.0.0.1:58053", "no scheme"),
            ("ftp://x:21", "ftp:// is no gRPC scheme"),
            ("http://:50053", "no host"),
            ("http://model-service", "no port"),
            ("http://model-service:0", "port 0"),
            ("", "not a URL"),
        ] {
            let error = Config::try_parse_from(["gateway", "--model-service-url", url])
                .expect_err(url)
                .to_string();
            let first = error.lines().next().unwrap_or_default();
            assert!(
                first.contains("--model-service-url") && first.contains(problem),
                "{url}: {error}"
            );
        }
    }

    #[test]
    fn the_feature_timeout_must_leave_part_of_the_budget() {
        let parse = |feature: &str, request: &str| {
            let args = [
                "gateway",
                "--feature-timeout-ms",
                feature,
                "--request-timeout-ms",
                request,
            ];
            Config::try_parse_from(args).expect("in range").check()
        };
        assert_eq!(parse("40", "100"), Ok(()));
        assert_eq!(
            parse("100", "100"),
            Err(SettingsError::FeatureTimeout {
                feature_ms: 100,
                request_ms: 100
            })
        );
        assert!(parse("200", "100").is_err());
    }

    #[test]
    fn debug_output_redacts_the_quote_store_url() {
        let config = Config::try_parse_from(["gateway", "--quote-redis-url", "redis://:hunter2@redis:6379"])
            .expect("parse");
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("redis://:***@redis:6379"), "{printed}");
    }
}
