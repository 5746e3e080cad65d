//! Starts a real model-service on an ephemeral port with the bundled model repository.

#![allow(dead_code)] // Each test file uses a different part of this.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use model_service::{Config, Error, run, run_with_metrics};
use proto::models::v1::model_service_client::ModelServiceClient;
use proto::models::v1::{FeatureRow, PredictRequest};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

pub fn bundled_repository() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub channel: Channel,
    pub client: ModelServiceClient<Channel>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), Error>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(1000).await
    }

    pub async fn start_with(max_batch_rows: u32) -> Self {
        Self::start_configured(|config| config.max_batch_rows = max_batch_rows, None).await
    }

    /// A server with the test defaults changed by `configure`, sending its metrics to `metrics` (the
    /// process's sink, a disabled one in tests, when `None`).
    pub async fn start_configured(
        configure: impl FnOnce(&mut Config),
        metrics: Option<telemetry::Metrics>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("local address");
        let mut config = config(addr);
        configure(&mut config);
        let (shutdown, stop) = oneshot::channel::<()>();
        let stop = async {
            let _ = stop.await;
        };
        let task = match metrics {
            None => tokio::spawn(run(config, listener, stop)),
            Some(metrics) => tokio::spawn(run_with_metrics(config, listener, stop, metrics)),
        };
        // The listener is bound, so connecting cannot race the server: the handshake waits in the backlog
        // until the repository is loaded and serving begins.
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let client = ModelServiceClient::new(channel.clone());
        Self {
            addr,
            channel,
            client,
            shutdown,
            task,
        }
    }

    /// Stops the server and checks it exited cleanly.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task
            .await
            .expect("server task")
            .expect("server exits cleanly");
    }
}

/// The bundled repository, at most 1000 rows per call, drift evaluated every minute.
pub fn config(listen_addr: SocketAddr) -> Config {
    Config {
        listen_addr,
        model_repository: bundled_repository(),
        max_batch_rows: 1000,
        drift_interval_secs: 60,
        drift_min_rows: 500,
        // Generous: these tests are not about the timeout, and debug builds share two cores.
        inference_timeout_ms: 10_000,
        reload_interval_secs: 5,
        retire_after_secs: 120,
        server: server_kit::ServerArgs::default(),
        telemetry: telemetry::TelemetryConfig::for_service("model-service"),
    }
}

pub fn row(features: &[(&str, f64)]) -> FeatureRow {
    FeatureRow {
        features: features
            .iter()
            .map(|(name, value)| (name.to_string(), *value))
            .collect(),
    }
}

pub fn request(model: &str, version: &str, rows: Vec<FeatureRow>) -> PredictRequest {
    PredictRequest {
        model: model.into(),
        version: version.into(),
        rows,
        variant: String::new(),
    }
}

pub fn features(map: &HashMap<String, f64>) -> FeatureRow {
    FeatureRow {
        features: map.clone(),
    }
}
