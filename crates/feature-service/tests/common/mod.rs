//! Starts the feature-service on 127.0.0.1:0 and connects the generated gRPC client to it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use feature_service::Config;
use proto::features::v1::feature_service_client::FeatureServiceClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

pub struct Server {
    pub addr: SocketAddr,
    pub client: FeatureServiceClient<Channel>,
    pub channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), feature_service::Error>>>,
}

/// A configuration without reading the process's arguments; `redis_url` overrides REDIS_URL either way,
/// and without one the embedded snapshot is asked for.
pub fn config(redis_url: Option<&str>, extra: &[&str]) -> Config {
    let mut config = Config::parse_from(std::iter::once("feature-service").chain(extra.iter().copied()));
    config.redis_url = redis_url.map(Into::into);
    config.embedded_features = config.redis_url.is_none();
    config
}

impl Server {
    /// Starts the service and waits until health reports SERVING.
    pub async fn start(config: Config) -> Self {
        Self::start_with_metrics(config, telemetry::metrics().clone()).await
    }

    /// Serves with metrics sent to `metrics` (e.g. a [`StatsdAgent`]'s), once SERVING.
    pub async fn start_with_metrics(config: Config, metrics: telemetry::Metrics) -> Self {
        let server = Self::start_listening(config, metrics).await;
        server
            .wait_for_health(ServingStatus::Serving, Duration::from_secs(10))
            .await;
        server
    }

    /// Starts the service and returns once it answers health checks, whatever they say (NOT_SERVING while
    /// its Redis is not connected yet).
    pub async fn start_listening(config: Config, metrics: telemetry::Metrics) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(feature_service::run_with_metrics(
            config,
            metrics,
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        // The socket accepts before `run` serves; the first health answer comes once it does.
        HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: feature_service::SERVICE_NAME.into(),
            })
            .await
            .expect("health check");
        Self {
            addr,
            client: FeatureServiceClient::new(channel.clone()),
            channel,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// What health reports for the feature service now.
    pub async fn health(&self) -> ServingStatus {
        let status = HealthClient::new(self.channel.clone())
            .check(HealthCheckRequest {
                service: feature_service::SERVICE_NAME.into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status;
        ServingStatus::try_from(status).expect("known serving status")
    }

    /// Waits until health reports `want`, following `grpc.health.v1.Health/Watch`; returns how long it took.
    pub async fn wait_for_health(&self, want: ServingStatus, within: Duration) -> Duration {
        let started = Instant::now();
        let watched = async {
            let mut updates = HealthClient::new(self.channel.clone())
                .watch(HealthCheckRequest {
                    service: feature_service::SERVICE_NAME.into(),
                })
                .await
                .expect("health watch")
                .into_inner();
            while let Some(update) = updates.message().await.expect("health update") {
                if update.status == want as i32 {
                    return;
                }
            }
            panic!("health watch ended before {want:?}");
        };
        tokio::time::timeout(within, watched)
            .await
            .unwrap_or_else(|_| panic!("health not {want:?} within {within:?}"));
        started.elapsed()
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), feature_service::Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("running").await.expect("run task")
    }
}

pub async fn fill_redis(url: &str) {
    let files = vec![
        feature_store::CsvFile::new(
            "customer_profile.csv",
            "customer_profile",
            "customer_id,event_timestamp,account_age_days,cancellation_rate\n\
             c-1,2025-06-10T12:00:00Z,365,0.05\n\
             c-old,2025-06-01T12:00:00Z,10,\n",
        ),
        feature_store::CsvFile::new(
            "zone_demand.csv",
            "zone_demand",
            "zone_id,event_timestamp,available_drivers\nz-1,2025-06-10T11:59:00Z,12\n",
        ),
    ];
    let options = feature_store::MaterializeOptions {
        rebase_timestamps: true,
        ..Default::default()
    };
    let registry = feature_store::Registry::bundled().expect("registry");
    feature_store::materialize(&feature_store::RedisConfig::new(url), &registry, &files, &options)
        .await
        .expect("materialize");
}

// Not every test binary that includes this module uses it (as with the module's dead code).
#[allow(unused_imports)]
pub use testkit::features::{online_request as request, string_value as string};
#[allow(unused_imports)]
pub use testkit::statsd::StatsdAgent;

/// The service the metrics of these tests are tagged with.
pub const SERVICE: &str = "feature-service";

/// The value part of the line of `metric` with exactly `tags` (see [`testkit::statsd::value_of`]).
pub fn value_of(lines: &[String], metric: &str, kind: &str, tags: &str) -> Option<String> {
    testkit::statsd::value_of(lines, SERVICE, metric, kind, tags)
}

/// Every sample of distribution `metric` with exactly `tags`.
pub fn samples_of(lines: &[String], metric: &str, tags: &str) -> Vec<f64> {
    testkit::statsd::samples_of(lines, SERVICE, metric, tags)
}
