//! Plumbing every gRPC server in the workspace shares, so each service's `run` holds only what is its own:
//!
//! - [`shutdown_signal`]: resolves on SIGTERM or Ctrl-C (what Kubernetes and people send).
//! - [`incoming`]: serves an already-bound listener, so tests bind port 0 and read the address first.
//! - [`Health`]: the `grpc.health.v1` service, flipped to NOT_SERVING as shutdown begins.
#![forbid(unsafe_code)]

use std::future::Future;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use tonic_health::pb::health_server::{Health as HealthService, HealthServer};

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
/// delay would dominate a sub-millisecond hop).
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// The service's `grpc.health.v1` status: both the overall status ("") and the named service.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    service_name: &'static str,
}

impl Health {
    /// Starts NOT_SERVING; call [`Health::serving`] once the service can answer.
    /// `service_name` is the fully qualified gRPC service name, e.g. `inference.v1.InferenceService`.
    pub async fn new(service_name: &'static str) -> (Self, HealthServer<impl HealthService>) {
        let (reporter, server) = tonic_health::server::health_reporter();
        let health = Self {
            reporter,
            service_name,
        };
        health.set(ServingStatus::NotServing).await;
        (health, server)
    }

    pub async fn serving(&self) {
        self.set(ServingStatus::Serving).await;
    }

    pub async fn not_serving(&self) {
        self.set(ServingStatus::NotServing).await;
    }

    async fn set(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        self.reporter.set_service_status(self.service_name, status).await;
    }

    /// Wraps a shutdown future so health reports NOT_SERVING as soon as shutdown begins, before the
    /// server stops accepting; load balancers then drain the pod while in-flight requests finish.
    pub fn on_shutdown<F>(&self, shutdown: F) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let health = self.clone();
        async move {
            shutdown.await;
            health.not_serving().await;
        }
    }
}
