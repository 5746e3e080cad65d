//! Every numeric setting of the gateway has a documented range that clap enforces: whatever a flag or
//! variable holds, the gateway either refuses to start with clap's one-line reason naming the flag, or
//! runs with a value inside the range. A quote TTL past `Instant`'s range used to panic when the first
//! quote was stored.

use gateway::Config;
use server_kit::ServerArgs;
use telemetry::TelemetryConfig;
use testkit::server_numbers;
use testkit::settings::{
    SettingRanges, assert_bad_worker_counts_refused, assert_refused_at_start, telemetry_numbers,
};

testkit::setting_ranges_tests!(ranges());

#[tokio::test]
async fn a_bad_value_in_the_environment_stops_the_gateway_at_start_with_one_line() {
    let env = [
        ("REQUEST_TIMEOUT_MS", "18446744073709551615"),
        ("LISTEN_ADDR", "127.0.0.1:0"),
    ];
    let bin = env!("CARGO_BIN_EXE_gateway");
    assert_refused_at_start(bin, &[], &env, "--request-timeout-ms", "is not in 1..=600000").await;
}

/// Tokio reads `TOKIO_WORKER_THREADS` itself, and panicked on 0 or a word: the server's settings refuse
/// them first.
#[tokio::test]
async fn a_bad_worker_count_stops_the_gateway_at_start_with_one_line() {
    let env = [("LISTEN_ADDR", "127.0.0.1:0")];
    assert_bad_worker_counts_refused(env!("CARGO_BIN_EXE_gateway"), &env).await;
}

/// Every numeric setting of `config`, by flag: its own, the server's and telemetry's.
#[allow(clippy::cast_precision_loss)]
fn numbers(config: &Config) -> Vec<(&'static str, f64)> {
    let own = [
        ("request-timeout-ms", config.request_timeout_ms as f64),
        ("feature-timeout-ms", config.feature_timeout_ms as f64),
        ("merge-calls-in-flight", config.merge_calls_in_flight as f64),
        ("merge-max-rows", config.merge_max_rows as f64),
        ("breaker-failures", f64::from(config.breaker_failures)),
        ("breaker-open-ms", config.breaker_open_ms as f64),
        ("retry-budget-ratio", f64::from(config.retry_budget_ratio)),
        ("quote-ttl-secs", config.quote_ttl_secs as f64),
        ("outcome-retention-secs", config.outcome_retention_secs as f64),
        (
            "traffic-policy-reload-secs",
            config.traffic_policy_reload_secs as f64,
        ),
        ("prediction-ttl-secs", config.prediction_ttl_secs as f64),
        ("crai-cache-ttl-ms", config.crai_cache_ttl_ms as f64),
        ("log-sample-rate", config.log_sample_rate),
        ("log-slow-ms", config.log_slow_ms as f64),
        ("crai-cache-capacity", config.crai_cache_capacity as f64),
        ("quality-report-secs", config.quality_report_secs as f64),
    ];
    let server = server_numbers!(&config.server);
    [&own[..], &server, &telemetry_numbers(&config.telemetry)].concat()
}

fn ranges() -> SettingRanges<Config> {
    SettingRanges {
        name: "gateway",
        required: &[],
        integer: [Config::BOUNDS, ServerArgs::BOUNDS, TelemetryConfig::BOUNDS].concat(),
        fraction: [Config::FRACTION_BOUNDS, TelemetryConfig::FRACTION_BOUNDS].concat(),
        numbers,
    }
}
