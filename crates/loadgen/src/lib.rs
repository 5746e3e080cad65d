//! Drives the gateway's public API: the demo's sample requests and a load generator, closed loop (fixed
//! concurrency) or open loop (fixed arrival rate), that reports throughput, goodput and latency
//! percentiles per RPC ([`Report`]).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use proto::inference::v1::inference_service_client::InferenceServiceClient;
use proto::inference::v1::{PredictCustomerRiskRequest, PredictDemandSurgeRequest, QuotePriceRequest};
use rand::{Rng, SeedableRng};
use tonic::transport::{Channel, Endpoint};

/// Sample entities that the bundled snapshot holds (C000001..C002000, Z0001..Z0200).
pub fn customer(i: u32) -> String {
    format!("C{:06}", i % 2000 + 1)
}

pub fn zone(i: u32) -> String {
    format!("Z{:04}", i % 200 + 1)
}

pub async fn connect(url: &str) -> anyhow::Result<InferenceServiceClient<Channel>> {
    let channel = Endpoint::from_shared(url.to_owned())?
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(InferenceServiceClient::new(channel))
}

/// Waits until the gateway reports SERVING and answers a prediction end to end (so all three services
/// are up), for at most `timeout`.
pub async fn wait_ready(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_error = String::from("not tried");
    while started.elapsed() < timeout {
        let mut client = connect(url).await?;
        let request = PredictCustomerRiskRequest {
            customer_id: customer(0),
            ..Default::default()
        };
        match client.predict_customer_risk(request).await {
            Ok(_) => return Ok(()),
            Err(status) => last_error = format!("{}: {}", status.code(), status.message()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("gateway at {url} not ready after {timeout:?}: {last_error}")
}

/// Which RPCs the load sends.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Mix {
    /// QuotePrice only (two model runs per request).
    Quote,
    /// PredictCustomerRisk only.
    Risk,
    /// PredictDemandSurge only.
    Surge,
    /// One third each.
    Mixed,
}

#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    pub concurrency: usize,
    pub duration: Duration,
    /// Stop after this many requests in total, whichever comes first.
    pub max_requests: u64,
    pub mix: Mix,
}

/// Open-loop load: requests start on a fixed schedule whatever the answers (see [`run_open_loop`]).
#[derive(Debug, Clone, Copy)]
pub struct OpenLoopOptions {
    /// Requests started a second.
    pub rate: f64,
    pub duration: Duration,
    pub mix: Mix,
}

/// Requests an open loop lets wait for their answers at once; past it a due request is not sent but
/// counted in [`Report::unsent`] (the gateway's deadlines keep the real number far below).
const MAX_OUTSTANDING: usize = 50_000;

/// HTTP/2 connections an open loop spreads its requests over.
const OPEN_LOOP_CONNECTIONS: usize = 4;

/// Latency histograms (µs) and outcome counts per RPC.
#[derive(Debug, Default)]
pub struct Report {
    pub elapsed: Duration,
    pub rpcs: BTreeMap<&'static str, RpcStats>,
    /// Open loop: requests due that were not sent because [`MAX_OUTSTANDING`] were still unanswered.
    pub unsent: u64,
    /// Open loop: the most a request was sent after its scheduled start (the generator falling behind).
    pub max_send_lag: Duration,
}

#[derive(Debug)]
pub struct RpcStats {
    /// Every call's latency (open loop: from its scheduled start, so a backlog is not hidden).
    pub latency_us: Histogram<u64>,
    /// Latency of the good answers: OK and not degraded.
    pub good_us: Histogram<u64>,
    /// Latency of the calls refused RESOURCE_EXHAUSTED (shed by an overloaded server).
    pub refused_us: Histogram<u64>,
    /// The same refusals timed from the moment each call was sent rather than scheduled: how quickly
    /// the server refuses, without the generator's own lag (equal to `refused_us` in a closed loop).
    pub refused_from_send_us: Histogram<u64>,
    /// OK answers built (partly) from default features or fallbacks.
    pub degraded: u64,
    /// Failed calls by gRPC code.
    pub errors: BTreeMap<String, u64>,
}

fn histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)] // constant, valid bounds: 1 µs to 60 s at 3 significant digits
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

impl Default for RpcStats {
    fn default() -> Self {
        Self {
            latency_us: histogram(),
            good_us: histogram(),
            refused_us: histogram(),
            refused_from_send_us: histogram(),
            degraded: 0,
            errors: BTreeMap::new(),
        }
    }
}

/// How one call ended: answered (degraded or not) or failed with a status.
pub type Outcome = Result<Answer, tonic::Status>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Good,
    Degraded,
}

impl Answer {
    fn of(degraded: bool) -> Self {
        if degraded { Self::Degraded } else { Self::Good }
    }
}

impl RpcStats {
    /// A call that took `latency` from its scheduled start and `from_send` from the moment it was sent.
    fn record(&mut self, latency: Duration, from_send: Duration, outcome: &Outcome) {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        let (latency, from_send) = (micros(latency), micros(from_send));
        self.latency_us.saturating_record(latency);
        match outcome {
            Ok(Answer::Good) => self.good_us.saturating_record(latency),
            Ok(Answer::Degraded) => self.degraded += 1,
            Err(status) => {
                if status.code() == tonic::Code::ResourceExhausted {
                    self.refused_us.saturating_record(latency);
                    self.refused_from_send_us.saturating_record(from_send);
                }
                *self.errors.entry(format!("{:?}", status.code())).or_default() += 1;
            }
        }
    }

    fn merge(&mut self, other: &Self) {
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.good_us.add(&other.good_us);
        let _ = self.refused_us.add(&other.refused_us);
        let _ = self.refused_from_send_us.add(&other.refused_from_send_us);
        self.degraded += other.degraded;
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
    }

    /// Failed calls with this gRPC code.
    pub fn errors_with(&self, code: tonic::Code) -> u64 {
        self.errors.get(&format!("{code:?}")).copied().unwrap_or(0)
    }
}

impl Report {
    pub fn total_requests(&self) -> u64 {
        self.rpcs.values().map(|s| s.latency_us.len()).sum()
    }

    /// Good answers (OK, not degraded) in all RPCs.
    pub fn good(&self) -> u64 {
        self.rpcs.values().map(|s| s.good_us.len()).sum()
    }

    /// Good answers a second: the goodput.
    pub fn goodput(&self) -> f64 {
        self.good() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A table: one line per RPC with count, throughput, goodput, outcomes and latency percentiles in ms.
    pub fn render(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut out = format!(
            "{:<22} {:>8} {:>9} {:>9} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>10}\n",
            "rpc",
            "requests",
            "req/s",
            "good/s",
            "degraded",
            "errors",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "good p99 ms"
        );
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        for (rpc, stats) in &self.rpcs {
            let h = &stats.latency_us;
            let errors: u64 = stats.errors.values().sum();
            out.push_str(&format!(
                "{:<22} {:>8} {:>9.0} {:>9.0} {:>8} {:>7} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>10.3}\n",
                rpc,
                h.len(),
                h.len() as f64 / secs,
                stats.good_us.len() as f64 / secs,
                stats.degraded,
                errors,
                ms(h, 0.50),
                ms(h, 0.95),
                ms(h, 0.99),
                h.max() as f64 / 1000.0,
                ms(&stats.good_us, 0.99),
            ));
            for (code, n) in &stats.errors {
                out.push_str(&format!("    {n} x {code}\n"));
            }
            let (refused, from_send) = (&stats.refused_us, &stats.refused_from_send_us);
            if !refused.is_empty() {
                out.push_str(&format!(
                    "    refused in p50 {:.3} ms, p99 {:.3} ms (from the send: p50 {:.3} ms, p99 {:.3} ms)\n",
                    ms(refused, 0.5),
                    ms(refused, 0.99),
                    ms(from_send, 0.5),
                    ms(from_send, 0.99)
                ));
            }
        }
        if self.unsent > 0 {
            out.push_str(&format!(
                "{} requests not sent: {MAX_OUTSTANDING} were still unanswered\n",
                self.unsent
            ));
        }
        if self.max_send_lag > Duration::from_millis(10) {
            out.push_str(&format!(
                "the generator fell behind its schedule by up to {:.1} ms (latencies count from the schedule)\n",
                self.max_send_lag.as_secs_f64() * 1000.0
            ));
        }
        out
    }
}

/// The RPC a load of `mix` sends as its `n`th request, for a random `i`.
fn pick(mix: Mix, n: u64) -> Rpc {
    match mix {
        Mix::Quote => Rpc::Quote,
        Mix::Risk => Rpc::Risk,
        Mix::Surge => Rpc::Surge,
        Mix::Mixed => [Rpc::Quote, Rpc::Risk, Rpc::Surge][(n % 3) as usize],
    }
}

#[derive(Debug, Clone, Copy)]
enum Rpc {
    Quote,
    Risk,
    Surge,
}

/// Sends one request of `rpc` for the random `i`: the RPC's name and how it ended.
async fn send(client: &mut InferenceServiceClient<Channel>, rpc: Rpc, i: u32) -> (&'static str, Outcome) {
    match rpc {
        Rpc::Quote => (
            "QuotePrice",
            client.quote_price(quote_request(i)).await.map(|r| {
                let r = r.into_inner();
                let degraded = [r.risk.and_then(|p| p.metadata), r.surge.and_then(|p| p.metadata)]
                    .iter()
                    .any(|m| m.as_ref().is_some_and(|m| m.degraded));
                Answer::of(degraded)
            }),
        ),
        Rpc::Risk => {
            let req = PredictCustomerRiskRequest {
                customer_id: customer(i),
                ..Default::default()
            };
            (
                "PredictCustomerRisk",
                client
                    .predict_customer_risk(req)
                    .await
                    .map(|r| Answer::of(r.into_inner().metadata.is_some_and(|m| m.degraded))),
            )
        }
        Rpc::Surge => {
            let req = PredictDemandSurgeRequest {
                zone_id: zone(i),
                ..Default::default()
            };
            (
                "PredictDemandSurge",
                client
                    .predict_demand_surge(req)
                    .await
                    .map(|r| Answer::of(r.into_inner().metadata.is_some_and(|m| m.degraded))),
            )
        }
    }
}

/// Closed-loop load: `concurrency` workers each send their next request as soon as the previous answers.
pub async fn run_load(url: &str, options: LoadOptions) -> anyhow::Result<Report> {
    let client = connect(url).await?;
    let started = Instant::now();
    let deadline = started + options.duration;
    let per_worker = options.max_requests.div_ceil(options.concurrency.max(1) as u64);
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..options.concurrency.max(1) {
        let mut client = client.clone();
        workers.spawn(async move {
            let mut stats: BTreeMap<&'static str, RpcStats> = BTreeMap::new();
            let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
            let mut sent = 0u64;
            while sent < per_worker && Instant::now() < deadline {
                let rpc = pick(options.mix, sent + worker as u64);
                let begun = Instant::now();
                let (name, outcome) = send(&mut client, rpc, rng.random()).await;
                let latency = begun.elapsed();
                stats.entry(name).or_default().record(latency, latency, &outcome);
                sent += 1;
            }
            stats
        });
    }
    let mut report = Report::default();
    while let Some(joined) = workers.join_next().await {
        for (rpc, stats) in joined? {
            report.rpcs.entry(rpc).or_default().merge(&stats);
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Open-loop load: the `n`th request starts at `n / rate` seconds whatever became of the others, as
/// traffic from many independent callers does. Each latency counts from the request's scheduled start,
/// so a generator or a server falling behind shows in the figures instead of being hidden by sending
/// less (coordinated omission); how far the generator itself fell behind is reported.
pub async fn run_open_loop(url: &str, options: OpenLoopOptions) -> anyhow::Result<Report> {
    anyhow::ensure!(
        options.rate.is_finite() && options.rate > 0.0,
        "rate must be a positive number of requests a second, not {}",
        options.rate
    );
    let mut clients = Vec::with_capacity(OPEN_LOOP_CONNECTIONS);
    for _ in 0..OPEN_LOOP_CONNECTIONS {
        clients.push(connect(url).await?);
    }
    let stats: Arc<Mutex<BTreeMap<&'static str, RpcStats>>> = Arc::default();
    let outstanding = Arc::new(tokio::sync::Semaphore::new(MAX_OUTSTANDING));
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    let interval = Duration::from_secs_f64(1.0 / options.rate);
    let started = tokio::time::Instant::now();
    let end = started + options.duration;
    let mut report = Report::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0u64;
    let mut due = started;
    while due < end {
        tokio::time::sleep_until(due).await;
        let now = tokio::time::Instant::now();
        report.max_send_lag = report.max_send_lag.max(now - due);
        // Everything due by now goes out now (the timer's resolution is a millisecond).
        while due <= now && due < end {
            let Ok(permit) = outstanding.clone().try_acquire_owned() else {
                report.unsent += 1;
                n += 1;
                due += interval;
                continue;
            };
            let mut client = clients[(n as usize) % clients.len()].clone();
            let (rpc, i, scheduled, stats) = (pick(options.mix, n), rng.random(), due, stats.clone());
            tasks.spawn(async move {
                let sent = Instant::now();
                let (name, outcome) = send(&mut client, rpc, i).await;
                let (latency, from_send) = (scheduled.elapsed(), sent.elapsed());
                lock(&stats)
                    .entry(name)
                    .or_default()
                    .record(latency, from_send, &outcome);
                drop(permit);
            });
            n += 1;
            due += interval;
        }
        // Reap what finished, so the set holds only calls still outstanding.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    // Rates are per second of the schedule: the answers still outstanding at its end came in after.
    report.elapsed = options.duration;
    report.rpcs = std::mem::take(&mut *lock(&stats));
    Ok(report)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn quote_request(i: u32) -> QuotePriceRequest {
    QuotePriceRequest {
        customer_id: customer(i),
        zone_id: zone(i / 7),
        base_price: 20.0 + f64::from(i % 80),
        currency: "USD".into(),
        ..Default::default()
    }
}
