//! Every numeric server setting has a range that clap enforces and `--help` states, so a bad value stops
//! a service at start instead of misbehaving once it serves.

use clap::{CommandFactory, Parser};
use server_kit::{ClientTlsArgs, ServerArgs};
use telemetry::settings::bounds_problems;

#[derive(Debug, Parser)]
struct Config {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    downstream: ClientTlsArgs,
}

#[test]
fn every_number_has_enforced_and_documented_bounds() {
    let problems = bounds_problems(&Config::command(), &[], ServerArgs::BOUNDS, &[]);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_defaults_lie_within_the_bounds() {
    let defaults = ServerArgs::default();
    let within = |flag: &str, value: u64| {
        ServerArgs::BOUNDS
            .iter()
            .find(|bounds| bounds.flag == flag)
            .is_some_and(|bounds| bounds.contains(value))
    };
    assert!(within(
        "max-concurrent-requests",
        defaults.max_concurrent_requests.into()
    ));
    assert!(within("max-request-bytes", defaults.max_request_bytes.into()));
    assert!(within("max-response-bytes", defaults.max_response_bytes.into()));
    assert!(within(
        "shutdown-drain-delay-ms",
        defaults.shutdown_drain_delay_ms
    ));
    assert!(within("shutdown-grace-ms", defaults.shutdown_grace_ms));
}
