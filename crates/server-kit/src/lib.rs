//! Plumbing every gRPC server in the workspace shares, so each service's `run` holds only what is its own:
//!
//! - [`ServerArgs`]: the server settings every service flattens into its `Config` (concurrency limit,
//!   request size, shutdown drain and grace, TLS and mutual TLS); [`ClientTlsArgs`] for services that call
//!   others.
//! - [`Server`]: built from those settings; [`Server::builder`] hands out the tonic builder (TLS, HTTP/2
//!   keepalive, [`OverloadLayer`] outermost) and [`Server::serve`] serves a router until shutdown, then
//!   drains: health NOT_SERVING at once, the drain delay, stop accepting, in-flight requests within the
//!   grace period.
//! - [`OverloadLayer`]: past the concurrency limit a request is answered RESOURCE_EXHAUSTED at once
//!   rather than queued; health checks are exempt.
//! - [`Health`]: the `grpc.health.v1` service, NOT_SERVING until the service is ready and again as
//!   shutdown begins.
//! - [`Deadline`]: when a request must be answered by (the caller's `grpc-timeout`, the service's own
//!   budget, one answering margin), used by every service and its downstream steps.
//! - [`reject`] ([`Failure`], [`Blame`], [`RequestFailed`]): the one way a service logs a request it could
//!   not answer and turns the error into its status.
//! - [`shutdown_signal`], [`incoming`]: SIGTERM/Ctrl-C, and serving an already-bound listener (tests bind
//!   port 0 and read the address first); [`Listen`], [`run_process`]: the address bound at start-up and
//!   listened on once the service serves, and what each `main` does with it.
//! - [`io`]: connections on which HTTP/2 batches small messages into one write, for servers
//!   ([`incoming`]) and for clients ([`io::connector`]).
//! - `test_certs` (feature `test-certs`): server and client settings from the test kit's throwaway PKI.
#![forbid(unsafe_code)]
// No request may reach a panic: failures are values, mapped to a status.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod args;
mod deadline;
mod error;
mod failure;
mod health;
pub mod io;
mod listen;
mod overload;
mod serve;
#[cfg(feature = "test-certs")]
pub mod test_certs;
mod tls;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

pub use args::{ClientTlsArgs, ServerArgs, parse_checked};
pub use deadline::Deadline;
pub use error::Error;
pub use failure::{Blame, Failure, RequestFailed, reject};
pub use health::{Health, HealthServer, HealthService, LIVENESS};
pub use listen::{Listen, block_on, run_process};
pub use overload::{OverloadBody, OverloadFuture, OverloadLayer, OverloadService};
pub use serve::{Builder, Server};

/// Resolves when the process is asked to stop: SIGTERM (Kubernetes) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Accepts connections on a bound listener with TCP_NODELAY (a request is a few small frames; Nagle's
/// delay would dominate a sub-millisecond hop), as [`io::BatchedWrites`].
pub fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<io::BatchedWrites<tokio::net::TcpStream>>> {
    use tokio_stream::StreamExt as _;
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(|accepted| accepted.map(io::BatchedWrites::new))
}
