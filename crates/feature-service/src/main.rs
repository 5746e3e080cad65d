//! The feature-service binary: parse the configuration, start telemetry, bind, serve until SIGTERM.

use std::process::ExitCode;

use feature_service::Config;

/// mimalloc: per-thread free lists, no global lock or consolidation pass on the request path (glibc's
/// malloc and free were ~14% of the gateway's CPU under load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = Config::parse_checked();
    server_kit::block_on("feature-service", config.server.worker_threads, async move {
        let _guard = telemetry::init(&config.telemetry, "feature-service", env!("CARGO_PKG_VERSION"));
        // Bound now, listened on once the service is ready to serve (`server_kit::Listen`).
        let addr = config.listen_addr;
        server_kit::run_process("feature-service", addr, |listener| {
            feature_service::run(config, listener, server_kit::shutdown_signal())
        })
        .await
    })
}
