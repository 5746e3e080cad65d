//! Every numeric telemetry setting has a range that clap enforces and `--help` states, so a bad value
//! stops a binary at start instead of overflowing an allocation or a queue once it runs.

use clap::{CommandFactory, Parser};
use telemetry::TelemetryConfig;
use telemetry::settings::bounds_problems;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    telemetry: TelemetryConfig,
}

#[test]
fn every_number_has_enforced_and_documented_bounds() {
    let problems = bounds_problems(
        &Cli::command(),
        &[],
        TelemetryConfig::BOUNDS,
        TelemetryConfig::FRACTION_BOUNDS,
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn overflowing_and_meaningless_values_are_refused_naming_their_flag() {
    for (flag, value) in [
        ("--otel-bsp-max-queue-size", "18446744073709551615"),
        ("--log-buffer-lines", "18446744073709551615"),
        ("--metrics-flush-interval-ms", "0"),
        ("--dd-dogstatsd-port", "0"),
        ("--otel-traces-sampler-arg", "NaN"),
    ] {
        let error = Cli::try_parse_from(["bin", &format!("{flag}={value}")]).expect_err(flag);
        assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation, "{error}");
        assert!(error.to_string().contains(flag), "{error}");
    }
}
