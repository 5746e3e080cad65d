//! Steady load on the gateway for fault-injection tests: a few workers, each sending one request at a
//! time (customer risk, demand surge and price quotes in turn, over many entity ids so the feature cache
//! cannot answer everything), recording when each call started, how long it took and how it ended.
//! [`Window`] summarises any stretch of that record: error rate, degraded answers, slowest call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use proto::inference::v1::inference_service_client::InferenceServiceClient;
use proto::inference::v1::{
    PredictCustomerRiskRequest, PredictDemandSurgeRequest, PredictionMetadata, QuotePriceRequest,
};
use tonic::transport::Channel;

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered; `degraded`, `fallback` and whether any feature was `unavailable`, as the response's
    /// metadata said.
    Ok {
        degraded: bool,
        fallback: bool,
        unavailable: bool,
    },
    /// A gRPC error: its code and message.
    Err(tonic::Code, String),
}

/// One call.
#[derive(Debug, Clone)]
pub struct Sample {
    pub started: Instant,
    pub latency: Duration,
    /// `risk:<customer>`, `surge:<zone>` or `quote:<customer>/<zone>`: what was asked.
    pub key: String,
    /// The `x-request-id` it was sent with (unique per call: `load-<worker>-<n>`); the gateway logs it.
    pub request_id: String,
    pub outcome: Outcome,
}

impl Sample {
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }

    pub fn degraded(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { degraded: true, .. })
    }

    /// Answered, with every feature read (none unavailable) by the model itself (no fallback).
    pub fn fully_served(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Ok {
                fallback: false,
                unavailable: false,
                ..
            }
        )
    }
}

/// Workers sending requests until [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `workers` concurrent callers on `channel`, each pausing `pace` between calls; customers
    /// `C000001..=C<customers>` and zones `Z0001..=Z<zones>` are cycled through.
    pub fn start(channel: Channel, workers: usize, pace: Duration, customers: u32, zones: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..workers)
            .map(|w| {
                let (stop, samples) = (stop.clone(), samples.clone());
                let mut client = InferenceServiceClient::new(channel.clone());
                tokio::spawn(async move {
                    let mut n = u32::try_from(w).unwrap_or(0).wrapping_mul(7919);
                    while !stop.load(Ordering::Relaxed) {
                        n = n.wrapping_add(1);
                        let customer = format!("C{:06}", n % customers.max(1) + 1);
                        let zone = format!("Z{:04}", n % zones.max(1) + 1);
                        let request_id = format!("load-{w}-{n}");
                        let sample = call(&mut client, n % 3, customer, zone, request_id).await;
                        samples
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(sample);
                        tokio::time::sleep(pace).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            samples,
            workers,
        }
    }

    /// The calls so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The calls that started in `[from, to)`.
    pub fn window(&self, from: Instant, to: Instant) -> Window {
        Window::of(
            self.samples()
                .iter()
                .filter(|s| s.started >= from && s.started < to),
        )
    }

    /// Waits until at least `count` calls have started since `since`, or `timeout` passes.
    pub async fn wait_for(&self, since: Instant, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let done = self
                .samples
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter(|s| s.started >= since)
                .count();
            if done >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the workers (each finishes its call in flight) and returns every call.
    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            let _ = worker.await;
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// How long after `since` calls were fully served again ([`Sample::fully_served`]) and stayed so: from
/// `since` to the first call after the last one that was not. `None` if no call after `since` was.
pub fn recovery(samples: &[Sample], since: Instant) -> Option<Duration> {
    let mut after: Vec<&Sample> = samples.iter().filter(|s| s.started >= since).collect();
    after.sort_by_key(|s| s.started);
    let first_good = match after.iter().rposition(|s| !s.fully_served()) {
        None => after.first(),
        Some(last_bad) => after.get(last_bad + 1),
    };
    first_good.map(|s| s.started.saturating_duration_since(since))
}

async fn call(
    client: &mut InferenceServiceClient<Channel>,
    kind: u32,
    customer: String,
    zone: String,
    request_id: String,
) -> Sample {
    let started = Instant::now();
    let (key, result) = match kind {
        0 => (
            format!("risk:{customer}"),
            client
                .predict_customer_risk(with_id(
                    &request_id,
                    PredictCustomerRiskRequest {
                        customer_id: customer,
                        ..Default::default()
                    },
                ))
                .await
                .map(|r| flags(r.into_inner().metadata.as_ref())),
        ),
        1 => (
            format!("surge:{zone}"),
            client
                .predict_demand_surge(with_id(
                    &request_id,
                    PredictDemandSurgeRequest {
                        zone_id: zone,
                        ..Default::default()
                    },
                ))
                .await
                .map(|r| flags(r.into_inner().metadata.as_ref())),
        ),
        _ => (
            format!("quote:{customer}/{zone}"),
            client
                .quote_price(with_id(
                    &request_id,
                    QuotePriceRequest {
                        customer_id: customer,
                        zone_id: zone,
                        base_price: 20.0,
                        currency: "EUR".into(),
                        ..Default::default()
                    },
                ))
                .await
                .map(|r| {
                    let quote = r.into_inner();
                    let risk = flags(quote.risk.as_ref().and_then(|r| r.metadata.as_ref()));
                    let surge = flags(quote.surge.as_ref().and_then(|s| s.metadata.as_ref()));
                    (risk.0 || surge.0, risk.1 || surge.1, risk.2 || surge.2)
                }),
        ),
    };
    Sample {
        started,
        latency: started.elapsed(),
        key,
        request_id,
        outcome: match result {
            Ok((degraded, fallback, unavailable)) => Outcome::Ok {
                degraded,
                fallback,
                unavailable,
            },
            Err(status) => Outcome::Err(status.code(), status.message().to_owned()),
        },
    }
}

/// `message` with its `x-request-id`.
fn with_id<T>(request_id: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = request_id.parse() {
        request.metadata_mut().insert("x-request-id", value);
    }
    request
}

/// (degraded, fallback, any feature unavailable)
fn flags(metadata: Option<&PredictionMetadata>) -> (bool, bool, bool) {
    metadata.map_or((false, false, false), |m| {
        (m.degraded, m.fallback, !m.unavailable_features.is_empty())
    })
}

/// A summary of some calls.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub total: usize,
    pub ok: usize,
    pub degraded: usize,
    pub fallback: usize,
    /// Errors by gRPC code, with one message of each.
    pub errors: BTreeMap<String, (usize, String)>,
    pub max_latency: Duration,
    pub p99_latency: Duration,
}

impl Window {
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Self {
        let mut window = Self::default();
        let mut latencies = Vec::new();
        for sample in samples {
            window.total += 1;
            latencies.push(sample.latency);
            match &sample.outcome {
                Outcome::Ok {
                    degraded, fallback, ..
                } => {
                    window.ok += 1;
                    window.degraded += usize::from(*degraded);
                    window.fallback += usize::from(*fallback);
                }
                Outcome::Err(code, message) => {
                    let entry = window
                        .errors
                        .entry(format!("{code:?}"))
                        .or_insert_with(|| (0, message.clone()));
                    entry.0 += 1;
                }
            }
        }
        latencies.sort();
        window.max_latency = latencies.last().copied().unwrap_or_default();
        window.p99_latency = latencies
            .get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default();
        window
    }

    /// Failed calls / calls (0 when there were none).
    pub fn error_rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)] // counts far below 2^52
            let rate = (self.total - self.ok) as f64 / self.total as f64;
            rate
        }
    }

    /// Error codes seen, without their counts.
    pub fn error_codes(&self) -> Vec<&str> {
        self.errors.keys().map(String::as_str).collect()
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} calls, error rate {:.1}%, {} degraded ({} fallback), p99 {:.1} ms, max {:.1} ms",
            self.total,
            self.error_rate() * 100.0,
            self.degraded,
            self.fallback,
            self.p99_latency.as_secs_f64() * 1e3,
            self.max_latency.as_secs_f64() * 1e3,
        )?;
        for (code, (count, message)) in &self.errors {
            write!(f, "; {count} x {code} ({message})")?;
        }
        Ok(())
    }
}
