//! `model-service`: parses the configuration, starts telemetry, binds, loads the models, then listens and
//! serves until SIGTERM/Ctrl-C.

use std::process::ExitCode;

use clap::Parser;
use model_service::{Config, run};

/// mimalloc: per-thread free lists, no global lock or consolidation pass on the request path (glibc's
/// malloc and free were ~14% of the gateway's CPU under load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let _guard = telemetry::init(&config.telemetry, "model-service", env!("CARGO_PKG_VERSION"));
    // Bound now, listened on once the models are loaded (`server_kit::Listen`).
    let listener = match server_kit::Listen::bind(config.listen_addr) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(alert = telemetry::logs::CRITICAL, addr = %config.listen_addr, %error, "cannot bind");
            eprintln!("model-service: cannot bind {}: {error}", config.listen_addr);
            return ExitCode::FAILURE;
        }
    };
    match run(config, listener, server_kit::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(alert = telemetry::logs::CRITICAL, %error, "model-service failed");
            eprintln!("model-service: {error}");
            ExitCode::FAILURE
        }
    }
}
