//! Every numeric setting of the feature-service has a documented range that clap enforces: whatever a
//! flag or variable holds, the service either refuses to start with clap's one-line reason naming the
//! flag, or runs with a value inside the range. A cache TTL past moka's limit (1000 years) used to panic
//! as the Redis store was built.

use feature_service::Config;
use server_kit::ServerArgs;
use telemetry::TelemetryConfig;
use testkit::server_numbers;
use testkit::settings::{
    SettingRanges, assert_bad_worker_counts_refused, assert_refused_at_start, telemetry_numbers,
};

testkit::setting_ranges_tests!(ranges());

#[tokio::test]
async fn a_bad_value_in_the_environment_stops_the_service_at_start_with_one_line() {
    let env = [
        ("FEATURE_CACHE_TTL_MS", "18446744073709551615"),
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("REDIS_URL", "redis://127.0.0.1:1"),
    ];
    let bin = env!("CARGO_BIN_EXE_feature-service");
    assert_refused_at_start(bin, &[], &env, "--cache-ttl-ms", "is not in 0..=86400000").await;
}

/// Tokio reads `TOKIO_WORKER_THREADS` itself, and panicked on 0 or a word: the server's settings refuse
/// them first.
#[tokio::test]
async fn a_bad_worker_count_stops_the_service_at_start_with_one_line() {
    let env = [
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("REDIS_URL", "redis://127.0.0.1:1"),
    ];
    assert_bad_worker_counts_refused(env!("CARGO_BIN_EXE_feature-service"), &env).await;
}

/// Every numeric setting of `config`, by flag: its own, the server's and telemetry's.
#[allow(clippy::cast_precision_loss)]
fn numbers(config: &Config) -> Vec<(&'static str, f64)> {
    let own = [
        ("cache-ttl-ms", config.cache_ttl_ms as f64),
        ("cache-max-bytes", config.cache_max_bytes as f64),
        ("cache-stale-if-error-ms", config.cache_stale_if_error_ms as f64),
        ("redis-timeout-ms", config.redis_timeout_ms as f64),
        ("redis-connect-timeout-ms", config.redis_connect_timeout_ms as f64),
        ("redis-pool-size", config.redis_pool_size as f64),
    ];
    let server = server_numbers!(&config.server);
    [&own[..], &server, &telemetry_numbers(&config.telemetry)].concat()
}

fn ranges() -> SettingRanges<Config> {
    SettingRanges {
        name: "feature-service",
        required: &[],
        integer: [Config::BOUNDS, ServerArgs::BOUNDS, TelemetryConfig::BOUNDS].concat(),
        fraction: TelemetryConfig::FRACTION_BOUNDS.to_vec(),
        numbers,
    }
}
