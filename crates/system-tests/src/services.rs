//! The three services in-process for integration tests: each a separate tonic server on its own ephemeral
//! loopback port, talking real gRPC to the others, started the way their binaries start them (`run` with
//! a bound listener and a shutdown future).

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use clap::Parser;
use proto::inference::v1::inference_service_client::InferenceServiceClient;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One running service.
pub struct Service {
    pub name: &'static str,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), String>>,
}

impl Service {
    /// Binds 127.0.0.1:0, starts the service with `start(listener, shutdown)` and waits until its health
    /// check answers SERVING.
    pub async fn spawn<F, Fut, E>(name: &'static str, start: F) -> Self
    where
        F: FnOnce(TcpListener, Shutdown) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral loopback port");
        let addr = listener.local_addr().expect("bound address");
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown: Shutdown = Box::pin(async move {
            let _ = rx.await;
        });
        let future = start(listener, shutdown);
        let task = tokio::spawn(async move { future.await.map_err(|e| e.to_string()) });
        let service = Self {
            name,
            addr,
            shutdown: Some(tx),
            task,
        };
        service.wait_serving(Duration::from_secs(60)).await;
        service
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn channel(&self) -> Channel {
        Endpoint::from_shared(self.url())
            .expect("valid url")
            .connect_lazy()
    }

    /// Polls the health service until SERVING (a readiness wait, not a fixed sleep).
    pub async fn wait_serving(&self, timeout: Duration) {
        let exited = || {
            self.task
                .is_finished()
                .then(|| "exited while starting".to_owned())
        };
        wait_serving(self.name, &self.channel(), timeout, exited).await;
    }

    /// Asks the service to stop as SIGTERM would, and waits for it to drain and return.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(Duration::from_secs(30), &mut self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(format!("{} panicked: {join}", self.name)),
            Err(_) => Err(format!("{} did not stop within 30 s", self.name)),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The model repository of the checkout (`crates/model-service/models`), which the model-service is
/// started with unless a test names another.
pub fn bundled_models() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../model-service/models")
}

/// The model-service on the bundled model repository, with extra flags.
pub async fn model_service(extra: &[&str]) -> Service {
    let repository = bundled_models();
    let mut args = vec![
        "model-service",
        "--listen-addr",
        "127.0.0.1:0",
        "--model-repository",
        repository.to_str().expect("a UTF-8 checkout path"),
    ];
    args.extend(extra);
    let config = model_service::Config::try_parse_from(args).expect("model-service flags");
    Service::spawn("model-service", |listener, shutdown| {
        model_service::run(config, listener, shutdown)
    })
    .await
}

/// The feature-service on Redis at `redis_url`, or on the embedded snapshot when `None`.
pub async fn feature_service(redis_url: Option<&str>, extra: &[&str]) -> Service {
    let mut args = vec!["feature-service", "--listen-addr", "127.0.0.1:0"];
    match redis_url {
        Some(url) => args.extend(["--redis-url", url]),
        None => args.extend(["--embedded-features", "true"]),
    }
    args.extend(extra);
    let config = feature_service::Config::try_parse_from(args).expect("feature-service flags");
    Service::spawn("feature-service", |listener, shutdown| {
        feature_service::run(config, listener, shutdown)
    })
    .await
}

/// The gateway in front of the given feature-service and model-service.
pub async fn gateway(features: &Service, models: &Service, extra: &[&str]) -> Service {
    let (feature_url, model_url) = (features.url(), models.url());
    let mut args = vec![
        "gateway",
        "--listen-addr",
        "127.0.0.1:0",
        "--feature-service-url",
        &feature_url,
        "--model-service-url",
        &model_url,
    ];
    // Tests read the lines of the requests they send: every one is written unless a test says otherwise.
    if !extra.contains(&"--log-sample-rate") {
        args.extend(["--log-sample-rate", "1"]);
    }
    args.extend(extra);
    let config = gateway::Config::try_parse_from(args).expect("gateway flags");
    Service::spawn("gateway", |listener, shutdown| {
        gateway::run(config, listener, shutdown)
    })
    .await
}

/// The gateway's request budget in tests unless a test sets its own: unoptimised builds on a loaded
/// two-core CI machine can take tens of milliseconds for what takes one in release, and a test about
/// predictions must not fail on the production budget (tests about deadlines set theirs explicitly).
pub const TEST_BUDGET_MS: &str = "2000";
/// The feature fetch's share of [`TEST_BUDGET_MS`] (production: 40 of 100 ms), for the same reason: a
/// batch of hundreds of entities in an unoptimised build can take longer than 40 ms.
pub const TEST_FEATURE_TIMEOUT_MS: &str = "1000";

/// [`TEST_BUDGET_MS`] and [`TEST_FEATURE_TIMEOUT_MS`] as the gateway's environment.
pub fn test_budget_env() -> [(&'static str, String); 2] {
    [
        ("REQUEST_TIMEOUT_MS", TEST_BUDGET_MS.to_owned()),
        ("FEATURE_TIMEOUT_MS", TEST_FEATURE_TIMEOUT_MS.to_owned()),
    ]
}

/// All three services, wired together.
pub struct Stack {
    pub models: Service,
    pub features: Service,
    pub gateway: Service,
}

impl Stack {
    /// The stack on Redis at `redis_url` (also the quote store), or fully embedded when `None`.
    pub async fn start(redis_url: Option<&str>) -> Self {
        Self::start_with(redis_url, &[]).await
    }

    /// As [`Stack::start`], with extra gateway flags.
    pub async fn start_with(redis_url: Option<&str>, gateway_flags: &[&str]) -> Self {
        let models = model_service(&[]).await;
        let features = feature_service(redis_url, &[]).await;
        let mut flags: Vec<&str> = gateway_flags.to_vec();
        if !flags.contains(&"--request-timeout-ms") {
            flags.extend(["--request-timeout-ms", TEST_BUDGET_MS]);
            if !flags.contains(&"--feature-timeout-ms") {
                flags.extend(["--feature-timeout-ms", TEST_FEATURE_TIMEOUT_MS]);
            }
        }
        if let Some(url) = redis_url {
            flags.extend(["--quote-redis-url", url]);
        }
        let gateway = gateway(&features, &models, &flags).await;
        Self {
            models,
            features,
            gateway,
        }
    }

    pub fn client(&self) -> InferenceServiceClient<Channel> {
        InferenceServiceClient::new(self.gateway.channel())
    }

    /// Stops gateway, feature-service, model-service in that order; each must exit cleanly.
    pub async fn stop(self) -> Result<(), String> {
        self.gateway.stop().await?;
        self.features.stop().await?;
        self.models.stop().await
    }
}

/// Polls `channel`'s `grpc.health.v1` service until it reports SERVING; panics after `timeout`, or as
/// soon as `exited` says the server is gone (a readiness wait, not a fixed sleep).
pub(crate) async fn wait_serving(
    name: &str,
    channel: &Channel,
    timeout: Duration,
    mut exited: impl FnMut() -> Option<String>,
) {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < timeout {
        if let Some(why) = exited() {
            panic!("{name} {why}");
        }
        let mut client = HealthClient::new(channel.clone());
        match client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
        {
            Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => return,
            Ok(r) => last = format!("status {}", r.get_ref().status),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{name} not SERVING after {timeout:?}: {last}");
}
