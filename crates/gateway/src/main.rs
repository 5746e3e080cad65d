//! The gateway binary: parse the configuration, start telemetry, bind, serve until SIGTERM.

/// mimalloc: per-thread free lists, no global lock or consolidation pass on the request path (glibc's
/// malloc and free were ~14% of the gateway's CPU under load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let config = gateway::Config::parse_checked();
    server_kit::block_on("gateway", config.server.worker_threads, async move {
        let _telemetry = telemetry::init(&config.telemetry, "gateway", env!("CARGO_PKG_VERSION"));
        // Bound now, listened on once the service is ready to serve (`server_kit::Listen`).
        let addr = config.listen_addr;
        server_kit::run_process("gateway", addr, |listener| {
            gateway::run(config, listener, server_kit::shutdown_signal())
        })
        .await
    })
}
