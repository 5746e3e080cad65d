//! Every numeric setting of the model-service has a documented range that clap enforces: whatever a
//! flag or variable holds, the service either refuses to start with clap's one-line reason naming the
//! flag, or runs with a value inside the range. A drift interval past `Instant`'s range used to panic in
//! the drift reporter.

use model_service::Config;
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
        ("DRIFT_INTERVAL_SECS", "18446744073709551615"),
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("MODEL_REPOSITORY", concat!(env!("CARGO_MANIFEST_DIR"), "/models")),
    ];
    let bin = env!("CARGO_BIN_EXE_model-service");
    assert_refused_at_start(bin, &[], &env, "--drift-interval-secs", "is not in 1..=86400").await;
}

/// Tokio reads `TOKIO_WORKER_THREADS` itself, and panicked on 0 or a word: the server's settings refuse
/// them first.
#[tokio::test]
async fn a_bad_worker_count_stops_the_service_at_start_with_one_line() {
    let env = [
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("MODEL_REPOSITORY", concat!(env!("CARGO_MANIFEST_DIR"), "/models")),
    ];
    assert_bad_worker_counts_refused(env!("CARGO_BIN_EXE_model-service"), &env).await;
}

/// Every numeric setting of `config`, by flag: its own, the server's and telemetry's.
#[allow(clippy::cast_precision_loss)]
fn numbers(config: &Config) -> Vec<(&'static str, f64)> {
    let own = [
        ("max-batch-rows", f64::from(config.max_batch_rows)),
        ("drift-interval-secs", config.drift_interval_secs as f64),
        ("drift-min-rows", config.drift_min_rows as f64),
        ("inference-timeout-ms", config.inference_timeout_ms as f64),
        ("reload-interval-secs", config.reload_interval_secs as f64),
        ("retire-after-secs", config.retire_after_secs as f64),
    ];
    let server = server_numbers!(&config.server);
    [&own[..], &server, &telemetry_numbers(&config.telemetry)].concat()
}

fn ranges() -> SettingRanges<Config> {
    SettingRanges {
        name: "model-service",
        // The one flag the service requires.
        required: &["--model-repository", "models"],
        integer: [Config::BOUNDS, ServerArgs::BOUNDS, TelemetryConfig::BOUNDS].concat(),
        fraction: TelemetryConfig::FRACTION_BOUNDS.to_vec(),
        numbers,
    }
}
