//! `model-service`: parses the configuration, starts telemetry, binds, loads the models, then listens and
//! serves until SIGTERM/Ctrl-C.

use std::process::ExitCode;

use clap::Parser;
use model_service::{Config, run};

/// mimalloc: per-thread free lists, no global lock or consolidation pass on the request path (glibc's
/// malloc and free were ~14% of the gateway's CPU under load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = Config::parse();
    server_kit::block_on("model-service", config.server.worker_threads, async move {
        let _guard = telemetry::init(&config.telemetry, "model-service", env!("CARGO_PKG_VERSION"));
        // Bound now, listened on once the service is ready to serve (`server_kit::Listen`).
        let addr = config.listen_addr;
        server_kit::run_process("model-service", addr, |listener| {
            run(config, listener, server_kit::shutdown_signal())
        })
        .await
    })
}
