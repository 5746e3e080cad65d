//! How the gateway protects itself from one dependency, as a client-side tower layer beside
//! `GrpcClientLayer`: a circuit breaker that fails fast while the dependency keeps failing, a retry
//! budget that bounds retries to a fraction of the calls made, and the request's deadline on every
//! attempt.
//!
//! [`ResilienceLayer`] wraps a typed unary RPC (a `tonic::Request<M>` → `tonic::Response<R>` service)
//! into one that takes a [`Call`] — the message and the request's [`Deadline`] — and answers the gateway's
//! own [`Error`]. One layer per dependency is shared by every RPC to it, so they share one breaker and
//! one budget.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use failsafe::StateMachine;
use failsafe::failure_policy::{self, ConsecutiveFailures};
use server_kit::Deadline;
use telemetry::catalog::{CIRCUIT_BREAKER_REJECTED, CIRCUIT_BREAKER_STATE, DOWNSTREAM_RETRIES};
use telemetry::{Metrics, Tag};
use tonic::Status;
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, Service, ServiceExt};

use crate::error::Error;

/// The breaker and retry settings of every dependency.
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

/// One call through the layer: the message (each attempt sends a clone: make it cheap to clone, as
/// [`super::Shared`] is) and when the request must be answered.
#[derive(Debug, Clone)]
pub struct Call<M> {
    pub message: M,
    pub deadline: Deadline,
}

impl<M> Call<super::Shared<M>> {
    /// A call whose attempts all send `message` itself, never a copy.
    pub fn new(message: M, deadline: Deadline) -> Self {
        Self {
            message: super::Shared::new(message),
            deadline,
        }
    }
}

/// The breaker and retry budget of one dependency, as a layer for each RPC made to it.
#[derive(Clone)]
pub struct ResilienceLayer {
    guard: Guard,
}

impl ResilienceLayer {
    /// `service` names the dependency in errors, logs and the `dependency` tag.
    pub fn new(service: &'static str, settings: Resilience, metrics: Metrics) -> Self {
        Self {
            guard: Guard::new(service, settings, metrics),
        }
    }
}

impl<S> Layer<S> for ResilienceLayer {
    type Service = Resilient<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Resilient {
            inner,
            guard: self.guard.clone(),
        }
    }
}

/// A unary RPC behind its dependency's breaker and retry budget.
#[derive(Clone)]
pub struct Resilient<S> {
    inner: S,
    guard: Guard,
}

impl<S, M, R> Service<Call<M>> for Resilient<S>
where
    S: Service<tonic::Request<M>, Response = tonic::Response<R>, Error = Status>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
    M: Clone + Send + Sync + 'static,
    R: Send + 'static,
{
    type Response = R;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<R, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Each attempt waits for the inner service itself (`oneshot`); the breaker decides at call time.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call<M>) -> Self::Future {
        let (inner, guard) = (self.inner.clone(), self.guard.clone());
        Box::pin(async move {
            guard
                .call(&call.deadline, |timeout| {
                    let mut request = tonic::Request::new(call.message.clone());
                    // The callee stops working for a caller that has gone.
                    request.set_timeout(timeout);
                    inner.clone().oneshot(request)
                })
                .await
        })
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
    /// When the dependency last answered a call successfully, in microseconds since `epoch` (0: never).
    last_answer: Arc<AtomicU64>,
    epoch: Instant,
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
            tripped: AtomicBool::new(false),
        };
        Self {
            service,
            breaker: failsafe::Config::new()
                .failure_policy(policy)
                .instrument(report)
                .build(),
            half_open,
            probing: Arc::new(AtomicBool::new(false)),
            last_answer: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
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
    /// failures; its answers, even rejections, show it is up; its RESOURCE_EXHAUSTED (shedding load)
    /// counts neither way, nor does a timeout while it answered other calls (busy, not down) or one the
    /// gateway, short of CPU, noticed late (overloaded itself).
    async fn call<T, F>(&self, deadline: &Deadline, call: impl Fn(Duration) -> F) -> Result<T, Error>
    where
        F: Future<Output = Result<tonic::Response<T>, Status>>,
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
            let sent = self.now();
            let outcome = match tokio::time::timeout(remaining, call(remaining)).await {
                Ok(Ok(response)) => {
                    self.last_answer.fetch_max(self.now(), Ordering::Relaxed);
                    Ok(response.into_inner())
                }
                Ok(Err(status)) => Err(Error::downstream(self.service, status, deadline)),
                Err(_) => Err(Error::DeadlineExceeded(self.service)),
            };
            let overdue = Instant::now().saturating_duration_since(deadline.instant());
            match &outcome {
                // A caller that left almost no time says nothing about the dependency's health.
                Err(Error::DeadlineExceeded(_)) if remaining < MIN_JUDGED_TIME => {}
                // Nor does a call that timed out while the dependency answered others: it is busy (or this
                // gateway is, and late to read the answer), not down. Held against the breaker, the
                // timeouts of an overload would open it and fail every call, not just the excess.
                Err(Error::DeadlineExceeded(_)) if self.last_answer.load(Ordering::Relaxed) > sent => {}
                // Nor does one whose timeout this gateway noticed late: starved of CPU, it may not have
                // read an answer that was waiting.
                Err(Error::DeadlineExceeded(_)) if overdue > MAX_TIMER_LAG => {}
                // A dependency that sheds load is up and protecting itself: held against its breaker,
                // its refusals would open it and fail every call, not just the excess.
                Err(error) if error.is_shedding() => {}
                Err(error) if error.is_dependency_failure() => {
                    tracing::debug!(
                        dependency = self.service,
                        ?error,
                        ?overdue,
                        "held against the breaker"
                    );
                    self.breaker.on_error();
                }
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

impl Guard {
    /// Microseconds since the guard was made (at least 1, so that 0 can mean "never").
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// A call given less time than this that times out is not held against the dependency's breaker: the
/// caller's deadline, not the dependency, was the limit.
const MIN_JUDGED_TIME: Duration = Duration::from_millis(10);

/// A timeout noticed this long after the deadline was noticed late because the gateway itself was short
/// of CPU (timers fire within a millisecond otherwise).
const MAX_TIMER_LAG: Duration = Duration::from_millis(5);

/// A retry with less time than this left would only add load: it cannot finish.
const MIN_RETRY_TIME: Duration = Duration::from_millis(5);

/// Reports a breaker's transitions: `circuit_breaker.state` (0 closed, 0.5 half-open, 1 open),
/// `circuit_breaker.rejected`, and a log line when it opens or closes.
struct BreakerReport {
    service: &'static str,
    metrics: Metrics,
    half_open: Arc<AtomicBool>,
    /// Opened since it was last closed: its closing is news (its first closing, at build, is not).
    tripped: AtomicBool,
}

impl failsafe::Instrument for BreakerReport {
    fn on_call_rejected(&self) {
        self.metrics
            .incr(&CIRCUIT_BREAKER_REJECTED, &[Tag::dependency(self.service)]);
    }

    fn on_open(&self) {
        self.half_open.store(false, Ordering::Release);
        self.tripped.store(true, Ordering::Release);
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

    /// Also called when the breaker is built (failsafe starts it closed), so the gauge has data from
    /// the start rather than only after the first trouble; gauges are re-sent every flush. Closing after
    /// an opening is logged, so the last line about a recovered dependency does not say "probing".
    fn on_closed(&self) {
        self.half_open.store(false, Ordering::Release);
        if self.tripped.swap(false, Ordering::AcqRel) {
            tracing::info!(
                dependency = self.service,
                "circuit breaker closed: a probe succeeded, calls go through again"
            );
        }
        self.state(0.0);
    }
}

impl BreakerReport {
    fn state(&self, value: f64) {
        self.metrics
            .gauge(&CIRCUIT_BREAKER_STATE, value, &[Tag::dependency(self.service)]);
    }
}

#[cfg(test)]
mod tests;
