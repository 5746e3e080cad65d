//! Starts a real model-service on an ephemeral port with the bundled model repository (or a writable
//! copy of it, `testkit::models::ModelRepositoryCopy`); [`Datagrams`] collects what it sends a DogStatsD
//! socket.

#![allow(dead_code)] // Each test file uses a different part of this.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use model_service::{Config, Error, run, run_with_metrics};
use proto::models::v1::model_service_client::ModelServiceClient;
use proto::models::v1::{FeatureRow, PredictRequest};
use testkit::statsd::DogStatsdSocket;
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
        values: Vec::new(),
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
        values: Vec::new(),
    }
}

/// A metrics sink flushing every 100 ms to a DogStatsD socket, and [`Datagrams`] collecting every line
/// the socket receives.
pub fn statsd_agent() -> (Datagrams, telemetry::Metrics) {
    let socket = DogStatsdSocket::bind();
    let tags = telemetry::ServiceTags {
        env: "test".into(),
        service: "model-service".into(),
        version: "0.1.0".into(),
    };
    let options = telemetry::MetricsOptions {
        flush_interval: Duration::from_millis(100),
        ..telemetry::MetricsOptions::new(socket.target(), tags)
    };
    let metrics = telemetry::Metrics::start(options).expect("metrics sink");
    (Datagrams::collect(socket), metrics)
}

/// Every DogStatsD line a socket receives, read on a thread of its own so the socket never fills up
/// (the sink re-sends every gauge each flush) and dropped events cannot happen.
pub struct Datagrams {
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Datagrams {
    fn collect(socket: DogStatsdSocket) -> Self {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (lines, stop) = (Arc::clone(&lines), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(datagram) = socket.next_datagram() {
                        let mut lines = lines.lock().unwrap_or_else(PoisonError::into_inner);
                        lines.extend(datagram.lines().map(str::to_owned));
                    }
                }
            })
        };
        Self {
            lines,
            stop,
            reader: Some(reader),
        }
    }

    /// Every line received so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The lines received once `done` holds for them; fails the test naming `what` after 20 s.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines = self.lines();
            if done(&lines) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within 20 s:\n{}",
                lines.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Datagrams {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The DogStatsD events among `lines` named `event` (`event:<name>` tag) for `model` version `version`.
pub fn events<'a>(lines: &'a [String], event: &str, model: &str, version: &str) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|line| line.starts_with("_e{"))
        .filter(|line| {
            let Some((_, tags)) = line.rsplit_once("|#") else {
                return false;
            };
            let tags: Vec<&str> = tags.split(',').collect();
            [
                format!("event:{event}"),
                format!("model:{model}"),
                format!("model_version:{version}"),
            ]
            .iter()
            .all(|tag| tags.contains(&tag.as_str()))
        })
        .collect()
}

/// The sum of the `metric` count's values among `lines` for `model` version `version`.
pub fn count(lines: &[String], metric: &str, model: &str, version: &str) -> u64 {
    let tags = format!("model:{model},model_version:{version},");
    u64::try_from(testkit::statsd::count_sum(lines, metric, &tags)).expect("a count")
}
