//! The gateway binary: parse the configuration, start telemetry, bind, serve until SIGTERM.

/// mimalloc: per-thread free lists, no global lock or consolidation pass on the request path (glibc's
/// malloc and free were ~14% of the gateway's CPU under load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = gateway::Config::parse_checked();
    let _telemetry = telemetry::init(&config.telemetry, "gateway", env!("CARGO_PKG_VERSION"));
    // Bound now, listened on once the service is ready to serve (`server_kit::Listen`).
    let listener = match server_kit::Listen::bind(config.listen_addr) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(alert = telemetry::logs::CRITICAL, %error, listen_addr = %config.listen_addr, "cannot bind");
            eprintln!("gateway: cannot listen on {}: {error}", config.listen_addr);
            return std::process::ExitCode::FAILURE;
        }
    };
    match gateway::run(config, listener, server_kit::shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(alert = telemetry::logs::CRITICAL, %error, "gateway stopped");
            eprintln!("gateway: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
