//! The service's configuration: flags with environment fallbacks, as Helm and Kubernetes set them. Each
//! number has a range ([`Config::BOUNDS`]) outside which the service refuses to start; the Redis URL is a
//! [`Secret`], so neither `Debug` nor `--help` prints its password.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use feature_store::{CacheConfig, RedisConfig, RedisTls, Registry, StoreConfig};
use telemetry::{Bounds, Secret};

/// A day, in milliseconds: the longest a row is served from the cache, fresh or stale.
const DAY_MS: u64 = 24 * 3600 * 1000;
const CACHE_TTL_MS: Bounds = Bounds::new("cache-ttl-ms", 0, DAY_MS);
const CACHE_MAX_BYTES: Bounds = Bounds::new("cache-max-bytes", 0, 64 << 30);
const CACHE_STALE_IF_ERROR_MS: Bounds = Bounds::new("cache-stale-if-error-ms", 0, DAY_MS);
const REDIS_TIMEOUT_MS: Bounds = Bounds::new("redis-timeout-ms", 1, 600_000);
const REDIS_CONNECT_TIMEOUT_MS: Bounds = Bounds::new("redis-connect-timeout-ms", 1, 600_000);
const REDIS_POOL_SIZE: Bounds = Bounds::new("redis-pool-size", 1, 64);

/// feature-service: online features (`features.v1.FeatureService/GetOnlineFeatures`) from Feast's Redis
/// online store, or from the bundled demo snapshot when asked for (`EMBEDDED_FEATURES`).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "feature-service", version, about, long_about = None)]
pub struct Config {
    /// Address to serve gRPC on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:50052")]
    pub listen_addr: SocketAddr,
    /// Redis holding Feast's online store: redis://[:password@]host:port, rediss:// (TLS),
    /// redis-cluster://host:port?node=host:port... Required unless EMBEDDED_FEATURES is true.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,
    /// Serve the bundled demo snapshot from memory instead of Redis: made-up customers and zones, for
    /// local work and tests only. Never together with REDIS_URL; without either the service refuses to
    /// start, so a deployment that lost its REDIS_URL cannot price real customers from demo data.
    #[arg(long, env = "EMBEDDED_FEATURES", default_value_t = false,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub embedded_features: bool,
    /// Feast project name (part of every Redis key); a project with no key in Redis is warned about once
    /// at start (`features.project_keys_found` 0).
    #[arg(long, env = "FEAST_PROJECT", default_value = "pricing")]
    pub feast_project: String,
    /// Feature registry JSON file; unset: the bundled registry.
    #[arg(long, env = "FEATURE_REGISTRY")]
    pub feature_registry: Option<PathBuf>,
    /// How long a row read from Redis is served from the in-process cache, in milliseconds; 0: no cache
    /// (0 to 86400000: a day).
    #[arg(
        long,
        env = "FEATURE_CACHE_TTL_MS",
        default_value_t = 5_000,
        value_parser = CACHE_TTL_MS.parser::<u64>()
    )]
    pub cache_ttl_ms: u64,
    /// Upper bound of the memory the cache holds, in bytes; 0: no cache (0 to 68719476736: 64 GiB).
    #[arg(
        long,
        env = "FEATURE_CACHE_MAX_BYTES",
        default_value_t = 64 * 1024 * 1024,
        value_parser = CACHE_MAX_BYTES.parser::<u64>()
    )]
    pub cache_max_bytes: u64,
    /// How long past its TTL a cached row is kept to answer with while Redis cannot be read, in
    /// milliseconds; 0: values not fresh in the cache are UNAVAILABLE during an outage (0 to 86400000).
    #[arg(
        long,
        env = "FEATURE_CACHE_STALE_IF_ERROR_MS",
        default_value_t = 300_000,
        value_parser = CACHE_STALE_IF_ERROR_MS.parser::<u64>()
    )]
    pub cache_stale_if_error_ms: u64,
    /// Longest a Redis read may take, in milliseconds; the request's own deadline can shorten it (1 to
    /// 600000: 10 min).
    #[arg(
        long,
        env = "REDIS_TIMEOUT_MS",
        default_value_t = 250,
        value_parser = REDIS_TIMEOUT_MS.parser::<u64>()
    )]
    pub redis_timeout_ms: u64,
    /// Longest one attempt to connect to Redis (TCP, TLS, AUTH) may take, in milliseconds; failed
    /// attempts are retried in the background, the service answering UNAVAILABLE values meanwhile (1 to
    /// 600000).
    #[arg(
        long,
        env = "REDIS_CONNECT_TIMEOUT_MS",
        default_value_t = 5_000,
        value_parser = REDIS_CONNECT_TIMEOUT_MS.parser::<u64>()
    )]
    pub redis_connect_timeout_ms: u64,
    /// Redis connections (per node) requests are spread over (1 to 64).
    #[arg(
        long,
        env = "REDIS_POOL_SIZE",
        default_value_t = 2,
        value_parser = REDIS_POOL_SIZE.parser::<u64>()
    )]
    pub redis_pool_size: u64,
    /// PEM CA certificate(s) that sign Redis's certificate, trusted instead of the system's roots
    /// (rediss:// URLs only).
    #[arg(long, env = "REDIS_TLS_CA_FILE")]
    pub redis_tls_ca_file: Option<PathBuf>,
    /// PEM client certificate for Redis servers that verify clients (`tls-auth-clients yes`); needs
    /// --redis-tls-key-file.
    #[arg(long, env = "REDIS_TLS_CERT_FILE", requires = "redis_tls_key_file")]
    pub redis_tls_cert_file: Option<PathBuf>,
    /// PEM private key of --redis-tls-cert-file.
    #[arg(long, env = "REDIS_TLS_KEY_FILE", requires = "redis_tls_cert_file")]
    pub redis_tls_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub server: server_kit::ServerArgs,
    #[command(flatten)]
    pub telemetry: telemetry::TelemetryConfig,
}

impl Config {
    /// The range of each numeric setting of the service's own, as its `--help` states it (the flattened
    /// ones are [`server_kit::ServerArgs::BOUNDS`] and [`telemetry::TelemetryConfig::BOUNDS`]).
    pub const BOUNDS: &'static [Bounds] = &[
        CACHE_TTL_MS,
        CACHE_MAX_BYTES,
        CACHE_STALE_IF_ERROR_MS,
        REDIS_TIMEOUT_MS,
        REDIS_CONNECT_TIMEOUT_MS,
        REDIS_POOL_SIZE,
    ];

    /// [`clap::Parser::parse`], then [`Config::check`]: settings that cannot work together are refused
    /// the way clap refuses a bad value, with one line and exit code 2.
    pub fn parse_checked() -> Self {
        server_kit::parse_checked(Self::check)
    }

    /// Refuses a store that is not asked for: Redis or, explicitly, the embedded snapshot.
    pub fn check(&self) -> Result<(), SettingsError> {
        match (&self.redis_url, self.embedded_features) {
            (None, false) => Err(SettingsError::NoStore),
            (Some(_), true) => Err(SettingsError::TwoStores),
            _ => Ok(()),
        }
    }

    /// The feature store's configuration for `registry`.
    pub fn store_config(&self, registry: Registry) -> StoreConfig {
        let redis = self.redis_url.as_ref().map(|url| {
            let mut redis = RedisConfig::new(url.expose());
            redis.timeout = Duration::from_millis(self.redis_timeout_ms);
            redis.connect_timeout = Duration::from_millis(self.redis_connect_timeout_ms);
            redis.pool_size = usize::try_from(self.redis_pool_size).unwrap_or(1);
            redis.tls = RedisTls {
                ca_file: self.redis_tls_ca_file.clone(),
                client_cert_file: self.redis_tls_cert_file.clone(),
                client_key_file: self.redis_tls_key_file.clone(),
            };
            redis
        });
        let mut config = StoreConfig::new(registry);
        config.project = Some(self.feast_project.clone());
        config.redis = redis;
        config.cache = CacheConfig {
            ttl: Duration::from_millis(self.cache_ttl_ms),
            max_bytes: self.cache_max_bytes,
            stale_if_error: Duration::from_millis(self.cache_stale_if_error_ms),
        };
        config
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn debug_redacts_the_redis_password() {
        let config = Config::parse_from(["feature-service", "--redis-url", "redis://:hunter2@redis:6379"]);
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("redis://:***@redis:6379"), "{debug}");
    }

    #[test]
    fn tls_files_and_the_stale_window_reach_the_store() {
        let config = Config::parse_from([
            "feature-service",
            "--redis-url",
            "rediss://:pw@redis:6380",
            "--redis-tls-ca-file",
            "/etc/redis-tls/ca.crt",
            "--redis-tls-cert-file",
            "/etc/redis-tls/tls.crt",
            "--redis-tls-key-file",
            "/etc/redis-tls/tls.key",
            "--cache-stale-if-error-ms",
            "60000",
        ]);
        let store = config.store_config(feature_store::Registry::bundled().expect("registry"));
        let redis = store.redis.expect("redis");
        assert_eq!(redis.tls.ca_file, Some(PathBuf::from("/etc/redis-tls/ca.crt")));
        assert_eq!(
            redis.tls.client_cert_file,
            Some(PathBuf::from("/etc/redis-tls/tls.crt"))
        );
        assert_eq!(
            redis.tls.client_key_file,
            Some(PathBuf::from("/etc/redis-tls/tls.key"))
        );
        assert_eq!(store.cache.stale_if_error, Duration::from_secs(60));

        let defaults = Config::parse_from(["feature-service"]);
        assert_eq!(defaults.cache_stale_if_error_ms, 300_000);
        assert_eq!(defaults.redis_tls_ca_file, None);
        // A client certificate without its key (or the reverse) is refused at start.
        assert!(Config::try_parse_from(["feature-service", "--redis-tls-cert-file", "/tls.crt"]).is_err());
        assert!(Config::try_parse_from(["feature-service", "--redis-tls-key-file", "/tls.key"]).is_err());
    }

    #[test]
    fn zero_timeouts_are_rejected() {
        assert!(Config::try_parse_from(["feature-service", "--redis-timeout-ms", "0"]).is_err());
        assert!(Config::try_parse_from(["feature-service", "--listen-addr", "nowhere"]).is_err());
    }
}

/// Settings that cannot work together ([`Config::check`]); the message names each of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "--redis-url (REDIS_URL) is not set: set it to the Redis that Feast materializes into, or set \
         --embedded-features (EMBEDDED_FEATURES) true to serve the bundled demo snapshot (local work only)"
    )]
    NoStore,
    #[error(
        "--redis-url (REDIS_URL) and --embedded-features (EMBEDDED_FEATURES) are both set: the features come \
         from Redis or from the embedded demo snapshot, not both"
    )]
    TwoStores,
}
