//! The feature-service binary: parse the configuration, start telemetry, bind, serve until SIGTERM.

use std::process::ExitCode;

use feature_service::Config;

/// mimalloc: per-thread free lists, no global lock or consolidation pass on the request path (glibc's
/// malloc and free were ~14% of the gateway's CPU under load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse_checked();
    let _guard = telemetry::init(&config.telemetry, "feature-service", env!("CARGO_PKG_VERSION"));
    // Bound now, listened on once the service is ready to serve (`server_kit::Listen`).
    let listener = match server_kit::Listen::bind(config.listen_addr) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(alert = telemetry::logs::CRITICAL, %error, listen_addr = %config.listen_addr, "cannot bind");
            eprintln!("feature-service: cannot bind {}: {error}", config.listen_addr);
            return ExitCode::FAILURE;
        }
    };
    match feature_service::run(config, listener, server_kit::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(alert = telemetry::logs::CRITICAL, %error, "feature-service stopped");
            eprintln!("feature-service: {error}");
            ExitCode::FAILURE
        }
    }
}
