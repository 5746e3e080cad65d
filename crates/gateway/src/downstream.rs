//! Calls to the feature-service and the model-service, each bounded by what remains of the request's
//! budget, and the model catalog (what each model takes as input), cached from the model-service.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use failsafe::StateMachine;
use failsafe::failure_policy::{self, ConsecutiveFailures};
use proto::features::v1::feature_service_client::FeatureServiceClient;
use proto::features::v1::{GetOnlineFeaturesRequest, GetOnlineFeaturesResponse};
use proto::models::v1::model_service_client::ModelServiceClient;
use proto::models::v1::{GetModelMetadataRequest, PredictRequest, PredictResponse};
use telemetry::catalog::{
    CACHE_MODEL_METADATA_HIT, CACHE_MODEL_METADATA_MISS, CIRCUIT_BREAKER_REJECTED, CIRCUIT_BREAKER_STATE,
    DOWNSTREAM_RETRIES,
};
use telemetry::grpc::{GrpcClient, GrpcClientLayer};
use telemetry::{Metrics, Tag};
use tonic::transport::{Channel, Endpoint};
use tower::Layer;
use tower::retry::budget::{Budget, TpsBudget};

use crate::error::Error;

pub const FEATURE_SERVICE: &str = "feature-service";
pub const MODEL_SERVICE: &str = "model-service";

/// When a request must be answered by. Every downstream call gets what remains, both as the gRPC
/// `grpc-timeout` it sends (so the callee stops working for a caller that has gone) and as a local timer.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// `budget` from now, less a small margin (5%, 1-10 ms) so the request's own answer, naming what was
    /// slow, is sent before the server's hard timeout at `budget` cuts it off.
    pub fn answering_within(budget: Duration) -> Self {
        Self(server_kit::answer_by(Instant::now() + budget))
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// This deadline, or `other` if that comes first (a caller's own, shorter deadline).
    #[must_use]
    pub fn or_sooner(&self, other: Option<Instant>) -> Self {
        Self(other.map_or(self.0, |other| self.0.min(other)))
    }

    /// This deadline, or `limit` from now if that comes first: a step's own share of the budget, so one
    /// slow dependency cannot eat the time the next step needs.
    #[must_use]
    pub fn capped(&self, limit: Duration) -> Self {
        Self(self.0.min(Instant::now() + limit))
    }
}

/// How the gateway protects itself from one dependency: a circuit breaker that fails fast while the
/// dependency keeps failing, and a retry budget that bounds retries to a fraction of the calls made.
#[derive(Debug, Clone, Copy)]
pub struct Resilience {
    /// Consecutive failed calls that open a dependency's breaker.
    pub breaker_failures: u32,
    /// How long an open breaker waits before letting calls probe the dependency again (the first wait;
    /// it grows, jittered, up to 4x while probes keep failing).
    pub breaker_open: Duration,
    /// Retries allowed, as a fraction of calls over the last 10 seconds (plus a floor of a few per
    /// second), so a dependency outage never multiplies the load sent to it.
    pub retry_ratio: f32,
}

impl Default for Resilience {
    fn default() -> Self {
        Self {
            breaker_failures: 5,
            breaker_open: Duration::from_millis(500),
            retry_ratio: 0.1,
        }
    }
}

type Breaker = StateMachine<ConsecutiveFailures<OpenFor>, BreakerReport>;

/// How long a breaker stays open each time in a row it opens: doubling from `start` up to `max`, each
/// wait jittered between half and all of it so that many gateways do not probe in step. (failsafe's own
/// backoffs count whole seconds.)
#[derive(Debug, Clone)]
struct OpenFor {
    start: Duration,
    max: Duration,
    attempt: u32,
}

impl Iterator for OpenFor {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let full = self.start.saturating_mul(1 << self.attempt.min(16)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = full / 2;
        let jitter_us = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
        Some(half + Duration::from_micros(rand::random_range(0..=jitter_us)))
    }
}

/// One dependency's breaker and retry budget, shared by every call to it.
#[derive(Clone)]
struct Guard {
    service: &'static str,
    breaker: Breaker,
    /// Set while the breaker is half-open, and whether its one probe is in flight: failsafe lets every
    /// call through when half-open, which against a dependency that hangs would send the whole load to
    /// wait out its timeout; here one call probes and the rest keep failing fast until it answers.
    half_open: Arc<AtomicBool>,
    probing: Arc<AtomicBool>,
    retries: Arc<TpsBudget>,
    metrics: Metrics,
}

/// Clears the probe flag however the probing call ends, cancellation included.
struct Probe(Arc<AtomicBool>);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Guard {
    fn new(service: &'static str, resilience: Resilience, metrics: Metrics) -> Self {
        let open = resilience.breaker_open.max(Duration::from_millis(1));
        let policy = failure_policy::consecutive_failures(
            resilience.breaker_failures.max(1),
            OpenFor {
                start: open,
                max: open.saturating_mul(4),
                attempt: 0,
            },
        );
        let half_open = Arc::new(AtomicBool::new(false));
        let report = BreakerReport {
            service,
            metrics: metrics.clone(),
            half_open: half_open.clone(),
        };
        Self {
            service,
            breaker: failsafe::Config::new()
                .failure_policy(policy)
                .instrument(report)
                .build(),
            half_open,
            probing: Arc::new(AtomicBool::new(false)),
            retries: Arc::new(TpsBudget::new(
                Duration::from_secs(10),
                3,
                resilience.retry_ratio.clamp(0.0, 1000.0),
            )),
            metrics,
        }
    }

    /// Runs `call` within `deadline`: refused at once while the breaker is open; retried once, within the
    /// budget and the deadline, when the dependency could not be reached (every call here is an idempotent
    /// read). Outcomes feed the breaker: unreachable, timed out or erroring dependencies count as
    /// failures; its answers, even rejections, show it is up.
    async fn call<T, F>(&self, deadline: &Deadline, call: impl Fn(Duration) -> F) -> Result<T, Error>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.retries.deposit();
        let mut retried = false;
        loop {
            if !self.breaker.is_call_permitted() {
                return Err(Error::CircuitOpen(self.service));
            }
            let _probe = if self.half_open.load(Ordering::Acquire) {
                if self.probing.swap(true, Ordering::AcqRel) {
                    self.metrics
                        .incr(&CIRCUIT_BREAKER_REJECTED, &[Tag::dependency(self.service)]);
                    return Err(Error::CircuitOpen(self.service));
                }
                Some(Probe(self.probing.clone()))
            } else {
                None
            };
            let remaining = deadline.remaining();
            if remaining.is_zero() {
                return Err(Error::DeadlineExceeded(self.service));
            }
            let outcome = match tokio::time::timeout(remaining, call(remaining)).await {
                Ok(Ok(response)) => Ok(response.into_inner()),
                Ok(Err(status)) => Err(Error::downstream(self.service, status)),
                Err(_) => Err(Error::DeadlineExceeded(self.service)),
            };
            match &outcome {
                // A caller that left almost no time says nothing about the dependency's health.
                Err(Error::DeadlineExceeded(_)) if remaining < MIN_JUDGED_TIME => {}
                Err(error) if error.is_dependency_failure() => self.breaker.on_error(),
                _ => self.breaker.on_success(),
            }
            match outcome {
                Err(error)
                    if !retried
                        && error.is_unreachable()
                        && deadline.remaining() > MIN_RETRY_TIME
                        && self.retries.withdraw() =>
                {
                    retried = true;
                    self.metrics
                        .incr(&DOWNSTREAM_RETRIES, &[Tag::dependency(self.service)]);
                    tracing::debug!(dependency = self.service, %error, "retrying once");
                }
                outcome => return outcome,
            }
        }
    }
}

/// A call given less time than this that times out is not held against the dependency's breaker: the
/// caller's deadline, not the dependency, was the limit.
const MIN_JUDGED_TIME: Duration = Duration::from_millis(10);

/// A retry with less time than this left would only add load: it cannot finish.
const MIN_RETRY_TIME: Duration = Duration::from_millis(5);

/// Reports a breaker's transitions: `circuit_breaker.state` (0 closed, 0.5 half-open, 1 open),
/// `circuit_breaker.rejected`, and a log line when it opens or closes.
struct BreakerReport {
    service: &'static str,
    metrics: Metrics,
    half_open: Arc<AtomicBool>,
}

impl failsafe::Instrument for BreakerReport {
    fn on_call_rejected(&self) {
        self.metrics
            .incr(&CIRCUIT_BREAKER_REJECTED, &[Tag::dependency(self.service)]);
    }

    fn on_open(&self) {
        self.half_open.store(false, Ordering::Release);
        tracing::error!(
            alert = telemetry::logs::CRITICAL,
            dependency = self.service,
            "circuit breaker open: failing fast until a probe succeeds"
        );
        self.state(1.0);
    }

    fn on_half_open(&self) {
        self.half_open.store(true, Ordering::Release);
        tracing::info!(dependency = self.service, "circuit breaker half-open: probing");
        self.state(0.5);
    }

    fn on_closed(&self) {
        self.half_open.store(false, Ordering::Release);
        self.state(0.0);
    }
}

impl BreakerReport {
    fn state(&self, value: f64) {
        self.metrics
            .gauge(&CIRCUIT_BREAKER_STATE, value, &[Tag::dependency(self.service)]);
    }
}

/// A lazily connected channel: the gateway starts (and reports its own health) whatever the state of its
/// dependencies, and reconnects by itself when they come back.
///
/// With `tls` configured the URL must be `https://` (and without it `http://`): a mismatch is refused
/// rather than silently sent in plaintext.
pub fn channel(
    url: &str,
    connect_timeout: Duration,
    tls: &server_kit::ClientTlsArgs,
) -> Result<Channel, crate::StartError> {
    let endpoint = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(tls.configure(endpoint)?.connect_lazy())
}

fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// What the gateway needs to know of a model version to build its input rows.
#[derive(Debug)]
pub struct ModelSpec {
    pub model: String,
    pub version: String,
    /// Inputs fetched from the feature-service ("view:feature"), in the model's order.
    pub feature_refs: Vec<String>,
    /// Inputs the gateway derives from the request itself (e.g. "hour_of_day").
    pub request_inputs: Vec<String>,
}

/// A model as configured on the gateway: its name, pinned version (empty: the default version) and the
/// experiment arm its predictions are reported under.
#[derive(Debug, Clone)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
    pub variant: String,
    /// `name@version`, the model catalog's key, built once rather than on every request.
    catalog_key: String,
}

impl ModelRef {
    pub fn new(name: &str, version: &str, variant: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            variant: variant.to_owned(),
            catalog_key: format!("{name}@{version}"),
        }
    }
}

/// A model spec and when it was fetched.
type CachedSpec = (Instant, Arc<ModelSpec>);

/// A channel whose calls are traced as client spans and carry the trace context (W3C and Datadog).
type Traced = GrpcClient<Channel>;

#[derive(Clone)]
pub struct Downstream {
    features: FeatureServiceClient<Traced>,
    models: ModelServiceClient<Traced>,
    feature_guard: Guard,
    model_guard: Guard,
    catalog: Arc<RwLock<HashMap<String, CachedSpec>>>,
    catalog_ttl: Duration,
    metrics: Metrics,
}

impl Downstream {
    pub fn new(
        features: Channel,
        models: Channel,
        catalog_ttl: Duration,
        resilience: Resilience,
        metrics: Metrics,
    ) -> Self {
        Self {
            features: FeatureServiceClient::new(GrpcClientLayer::new(FEATURE_SERVICE).layer(features)),
            models: ModelServiceClient::new(GrpcClientLayer::new(MODEL_SERVICE).layer(models)),
            feature_guard: Guard::new(FEATURE_SERVICE, resilience, metrics.clone()),
            model_guard: Guard::new(MODEL_SERVICE, resilience, metrics.clone()),
            catalog: Arc::default(),
            catalog_ttl,
            metrics,
        }
    }

    pub async fn online_features(
        &self,
        message: GetOnlineFeaturesRequest,
        deadline: &Deadline,
    ) -> Result<GetOnlineFeaturesResponse, Error> {
        self.feature_guard
            .call(deadline, |t| {
                let mut client = self.features.clone();
                let message = message.clone();
                async move { client.get_online_features(request(message, t)).await }
            })
            .await
    }

    pub async fn predict(
        &self,
        message: PredictRequest,
        deadline: &Deadline,
    ) -> Result<PredictResponse, Error> {
        self.model_guard
            .call(deadline, |t| {
                let mut client = self.models.clone();
                let message = message.clone();
                async move { client.predict(request(message, t)).await }
            })
            .await
    }

    /// The model's inputs, from the cache while fresh, else asked of the model-service. A stale entry is
    /// still served if the model-service cannot be reached, so a metadata refresh never fails a request
    /// that could otherwise be answered.
    pub async fn model_spec(&self, model: &ModelRef, deadline: &Deadline) -> Result<Arc<ModelSpec>, Error> {
        let cached = self.read_catalog(&model.catalog_key);
        if let Some((fetched, spec)) = &cached
            && fetched.elapsed() < self.catalog_ttl
        {
            self.metrics.incr(&CACHE_MODEL_METADATA_HIT, &[]);
            return Ok(spec.clone());
        }
        self.metrics.incr(&CACHE_MODEL_METADATA_MISS, &[]);
        let message = GetModelMetadataRequest {
            model: model.name.clone(),
            version: model.version.clone(),
        };
        let fetched = self
            .model_guard
            .call(deadline, |t| {
                let mut client = self.models.clone();
                let message = message.clone();
                async move { client.get_model_metadata(request(message, t)).await }
            })
            .await;
        match (fetched, cached) {
            (Ok(metadata), _) => {
                let (feature_refs, request_inputs) = metadata
                    .inputs
                    .into_iter()
                    .map(|input| input.name)
                    .partition(|name| name.contains(':'));
                let spec = Arc::new(ModelSpec {
                    model: metadata.model,
                    version: metadata.version,
                    feature_refs,
                    request_inputs,
                });
                if let Ok(mut catalog) = self.catalog.write() {
                    catalog.insert(model.catalog_key.clone(), (Instant::now(), spec.clone()));
                }
                Ok(spec)
            }
            (Err(error), Some((_, spec))) => {
                tracing::warn!(model = %model.name, %error, "model metadata refresh failed; using cached");
                Ok(spec)
            }
            (Err(error), None) => Err(error),
        }
    }

    fn read_catalog(&self, key: &str) -> Option<CachedSpec> {
        self.catalog
            .read()
            .ok()
            .and_then(|catalog| catalog.get(key).cloned())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tonic::{Code, Status};

    use super::*;

    fn guard(failures: u32, open_ms: u64, retry_ratio: f32) -> Guard {
        let resilience = Resilience {
            breaker_failures: failures,
            breaker_open: Duration::from_millis(open_ms),
            retry_ratio,
        };
        Guard::new(MODEL_SERVICE, resilience, Metrics::default())
    }

    async fn attempt(guard: &Guard, calls: &AtomicU32, answer: Result<(), Code>) -> Result<(), Error> {
        let deadline = Deadline::after(Duration::from_millis(200));
        guard
            .call(&deadline, |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                async move {
                    answer
                        .map(tonic::Response::new)
                        .map_err(|code| Status::new(code, "test"))
                }
            })
            .await
    }

    #[tokio::test]
    async fn the_breaker_opens_after_consecutive_failures_fails_fast_and_closes_on_a_good_probe() {
        let guard = guard(3, 100, 0.0);
        let calls = AtomicU32::new(0);
        for _ in 0..3 {
            let error = attempt(&guard, &calls, Err(Code::Internal)).await.unwrap_err();
            assert!(matches!(error, Error::Downstream { .. }), "{error}");
        }
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        let error = attempt(&guard, &calls, Ok(())).await.unwrap_err();
        assert!(matches!(error, Error::CircuitOpen(MODEL_SERVICE)), "{error}");
        assert_eq!(
            Status::from(error).code(),
            Code::Unavailable,
            "an open breaker answers UNAVAILABLE"
        );
        assert_eq!(calls.load(Ordering::Relaxed), 3, "refused without calling");
        // The first wait is jittered between half and all of 100 ms.
        tokio::time::sleep(Duration::from_millis(120)).await;
        attempt(&guard, &calls, Ok(())).await.expect("probe succeeds");
        attempt(&guard, &calls, Ok(())).await.expect("closed again");
        assert_eq!(calls.load(Ordering::Relaxed), 5);
    }

    #[tokio::test]
    async fn a_half_open_breaker_lets_one_probe_through_at_a_time() {
        let guard = guard(1, 20, 0.0);
        let calls = AtomicU32::new(0);
        attempt(&guard, &calls, Err(Code::Internal)).await.unwrap_err();
        tokio::time::sleep(Duration::from_millis(30)).await;
        // The probe hangs (a dependency that stopped answering); meanwhile everyone else fails fast.
        let hung = guard.clone();
        let probe = tokio::spawn(async move {
            hung.call(&Deadline::after(Duration::from_millis(300)), |_| {
                std::future::pending::<Result<tonic::Response<()>, Status>>()
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        for _ in 0..5 {
            let error = attempt(&guard, &calls, Ok(())).await.unwrap_err();
            assert!(matches!(error, Error::CircuitOpen(_)), "{error}");
        }
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "only the probe reached the dependency"
        );
        let error = probe.await.expect("probe task").unwrap_err();
        assert!(matches!(error, Error::DeadlineExceeded(_)), "{error}");
        // The failed probe reopened the breaker; once open time passes, a good probe closes it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        attempt(&guard, &calls, Ok(())).await.expect("probe succeeds");
        attempt(&guard, &calls, Ok(())).await.expect("closed");
    }

    #[tokio::test]
    async fn rejections_show_the_dependency_is_up() {
        let guard = guard(2, 10_000, 0.0);
        let calls = AtomicU32::new(0);
        for _ in 0..10 {
            let error = attempt(&guard, &calls, Err(Code::InvalidArgument))
                .await
                .unwrap_err();
            assert!(!matches!(error, Error::CircuitOpen(_)));
        }
        assert_eq!(calls.load(Ordering::Relaxed), 10);
    }

    #[tokio::test]
    async fn unreachable_calls_are_retried_only_within_the_budget() {
        // A breaker that never opens here, so only the budget limits retries.
        let guard = guard(u32::MAX, 10, 0.1);
        let calls = AtomicU32::new(0);
        let requests = 200;
        for _ in 0..requests {
            let _ = attempt(&guard, &calls, Err(Code::Unavailable)).await;
        }
        let retries = calls.load(Ordering::Relaxed) - requests;
        // 10% of the calls plus the floor of 3 a second over the 10 s window.
        assert!(retries > 0, "some retries happen");
        assert!(
            retries <= requests / 10 + 30,
            "{retries} retries for {requests} calls"
        );
    }

    #[tokio::test]
    async fn timeouts_of_calls_given_almost_no_time_do_not_open_the_breaker() {
        let guard = guard(2, 10_000, 0.0);
        for _ in 0..5 {
            let deadline = Deadline::after(Duration::from_millis(2));
            let error = guard
                .call(&deadline, |_| {
                    std::future::pending::<Result<tonic::Response<()>, Status>>()
                })
                .await
                .unwrap_err();
            assert!(matches!(error, Error::DeadlineExceeded(_)), "{error}");
        }
        // Given time, the same timeouts count.
        for _ in 0..2 {
            let deadline = Deadline::after(Duration::from_millis(20));
            let _ = guard
                .call(&deadline, |_| {
                    std::future::pending::<Result<tonic::Response<()>, Status>>()
                })
                .await;
        }
        let error = guard
            .call(&Deadline::after(Duration::from_millis(20)), |_| async {
                Ok::<_, Status>(tonic::Response::new(()))
            })
            .await
            .unwrap_err();
        assert!(matches!(error, Error::CircuitOpen(_)), "{error}");
    }

    #[tokio::test]
    async fn a_spent_deadline_is_not_called() {
        let guard = guard(5, 100, 0.1);
        let deadline = Deadline::after(Duration::ZERO);
        let error = guard
            .call(&deadline, |_| async { Ok::<_, Status>(tonic::Response::new(())) })
            .await
            .unwrap_err();
        assert!(matches!(error, Error::DeadlineExceeded(MODEL_SERVICE)));
    }
}
