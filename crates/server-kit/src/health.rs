//! The `grpc.health.v1` status of one service, as load balancers and Kubernetes probes read it.

use std::future::Future;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use tonic_health::pb::health_server::{Health as HealthService, HealthServer};

/// The health "service" name that reports SERVING for as long as the process answers, whether or not it
/// is ready or draining: what a liveness probe asks (the overall status "" is a readiness signal, and
/// failing liveness while starting or draining would get the container restarted).
pub const LIVENESS: &str = "liveness";

/// The service's `grpc.health.v1` status: both the overall status ("") and the named service, plus
/// [`LIVENESS`].
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    service_name: &'static str,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("service_name", &self.service_name)
            .finish_non_exhaustive()
    }
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
        health
            .reporter
            .set_service_status(LIVENESS, ServingStatus::Serving)
            .await;
        (health, server)
    }

    pub async fn serving(&self) {
        self.set(ServingStatus::Serving).await;
    }

    pub async fn not_serving(&self) {
        self.set(ServingStatus::NotServing).await;
    }

    /// Another `grpc.health.v1` server answering from the same statuses (for the plaintext health
    /// listener, `HEALTH_LISTEN_ADDR`).
    pub fn server(&self) -> HealthServer<tonic_health::server::HealthService> {
        HealthServer::new(tonic_health::server::HealthService::from_health_reporter(
            self.reporter.clone(),
        ))
    }

    async fn set(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        self.reporter.set_service_status(self.service_name, status).await;
    }

    /// Wraps a shutdown future so health reports NOT_SERVING as soon as shutdown begins, before the
    /// server stops accepting; load balancers then drain the pod while in-flight requests finish.
    /// [`crate::Server::serve`] does this itself, with a drain delay and a grace period.
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
