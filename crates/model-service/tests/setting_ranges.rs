//! Every numeric setting of the model-service has a documented range that clap enforces: whatever a
//! flag or variable holds, the service either refuses to start with clap's one-line reason naming the
//! flag, or runs with a value inside the range. A drift interval past `Instant`'s range used to panic in
//! the drift reporter.

use std::time::Duration;

use clap::{CommandFactory, Parser};
use model_service::Config;
use proptest::prelude::*;
use server_kit::ServerArgs;
use telemetry::TelemetryConfig;
use telemetry::settings::{Bounds, bounds_problems, numeric_flags};

const BIN: &str = env!("CARGO_BIN_EXE_model-service");
/// The one flag the service requires.
const REQUIRED: [&str; 2] = ["--model-repository", "models"];

fn integer_bounds() -> Vec<Bounds> {
    [Config::BOUNDS, ServerArgs::BOUNDS, TelemetryConfig::BOUNDS].concat()
}

/// Every numeric setting of `config`, by flag.
#[allow(clippy::cast_precision_loss)]
fn numbers(config: &Config) -> Vec<(&'static str, f64)> {
    let (server, telemetry) = (&config.server, &config.telemetry);
    vec![
        ("max-batch-rows", f64::from(config.max_batch_rows)),
        ("drift-interval-secs", config.drift_interval_secs as f64),
        ("drift-min-rows", config.drift_min_rows as f64),
        ("inference-timeout-ms", config.inference_timeout_ms as f64),
        (
            "max-concurrent-requests",
            f64::from(server.max_concurrent_requests),
        ),
        ("max-request-bytes", f64::from(server.max_request_bytes)),
        ("max-response-bytes", f64::from(server.max_response_bytes)),
        ("shutdown-drain-delay-ms", server.shutdown_drain_delay_ms as f64),
        ("shutdown-grace-ms", server.shutdown_grace_ms as f64),
        ("dd-dogstatsd-port", f64::from(telemetry.dogstatsd_port)),
        (
            "metrics-flush-interval-ms",
            telemetry.metrics_flush_interval_ms as f64,
        ),
        ("metrics-max-series", telemetry.metrics_max_series as f64),
        ("metrics-max-samples", telemetry.metrics_max_samples as f64),
        ("otel-bsp-max-queue-size", telemetry.span_queue_size as f64),
        ("log-buffer-lines", telemetry.log_buffer_lines as f64),
        ("otel-traces-sampler-arg", telemetry.sampler_arg.unwrap_or(0.0)),
    ]
}

/// The long flag of every numeric setting.
fn flags() -> Vec<String> {
    numeric_flags(&Config::command())
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Whether `value` lies within the bounds documented for `flag`.
#[allow(clippy::cast_precision_loss)]
fn within(flag: &str, value: f64) -> bool {
    let integer = integer_bounds()
        .into_iter()
        .find(|bounds| bounds.flag == flag)
        .map(|bounds| Bounds::new(bounds.flag, bounds.min as f64, bounds.max as f64));
    let fraction = TelemetryConfig::FRACTION_BOUNDS
        .iter()
        .copied()
        .find(|bounds| bounds.flag == flag);
    integer.or(fraction).is_some_and(|bounds| bounds.contains(value))
}

/// What a deployment could hand a numeric setting by mistake: the ends of every integer type and past
/// them, negatives, fractions and non-numbers, long runs of digits, and arbitrary numbers.
fn extreme_value() -> impl Strategy<Value = String> {
    let fixed = [
        "0",
        "1",
        "-1",
        "-0",
        "+1",
        "65535",
        "65536",
        "4294967295",
        "4294967296",
        "9223372036854775807",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "0.5",
        "1e3",
        "NaN",
        "inf",
        "-inf",
        "1e309",
        "0x10",
        "1_000",
        " 5",
        "",
    ];
    prop_oneof![
        prop::sample::select(fixed.to_vec()).prop_map(str::to_owned),
        any::<u64>().prop_map(|value| value.to_string()),
        any::<i64>().prop_map(|value| value.to_string()),
        any::<f64>().prop_map(|value| value.to_string()),
        "[0-9]{15,400}",
    ]
}

#[test]
fn every_number_has_enforced_and_documented_bounds() {
    let problems = bounds_problems(
        &Config::command(),
        &REQUIRED,
        &integer_bounds(),
        TelemetryConfig::FRACTION_BOUNDS,
    );
    assert!(problems.is_empty(), "{problems:#?}");
    // The property below checks every numeric setting.
    let config = Config::try_parse_from(["model-service", REQUIRED[0], REQUIRED[1]]).expect("defaults parse");
    let mut checked: Vec<&str> = numbers(&config).into_iter().map(|(flag, _)| flag).collect();
    let command = Config::command();
    let mut numeric = numeric_flags(&command);
    checked.sort_unstable();
    numeric.sort_unstable();
    assert_eq!(checked, numeric);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_value_is_refused_naming_its_flag_or_kept_within_bounds(
        flag in prop::sample::select(flags()),
        value in extreme_value(),
    ) {
        let arg = format!("--{flag}={value}");
        match Config::try_parse_from(["model-service", REQUIRED[0], REQUIRED[1], arg.as_str()]) {
            Err(error) => {
                prop_assert!(
                    matches!(
                        error.kind(),
                        clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue
                    ),
                    "{arg}: {error}"
                );
                prop_assert!(error.to_string().contains(&format!("--{flag} ")), "{arg}: {error}");
            }
            Ok(config) => {
                for (setting, number) in numbers(&config) {
                    prop_assert!(within(setting, number), "{arg}: {setting} = {number}");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_bad_value_in_the_environment_stops_the_service_at_start_with_one_line() {
    let run = tokio::process::Command::new(BIN)
        .env_clear()
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("MODEL_REPOSITORY", concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
        .env("DRIFT_INTERVAL_SECS", "18446744073709551615")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the service refuses to start instead of serving")
        .expect("model-service runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("--drift-interval-secs") && first.contains("is not in 1..=86400"),
        "{stderr}"
    );
}
