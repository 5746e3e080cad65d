//! Drives the gateway's public API: the demo's sample requests and a load generator, closed loop (fixed
//! concurrency) or open loop (fixed arrival rate), that reports throughput, goodput and latency
//! percentiles per RPC ([`Report`], as text or a JSON [`Summary`]) and plots them ([`plot`]).
#![forbid(unsafe_code)]

pub mod plot;
mod progress;
mod report;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::inference::v1::inference_service_client::InferenceServiceClient;
use proto::inference::v1::{PredictCustomerRiskRequest, PredictDemandSurgeRequest, QuotePriceRequest};
use rand::{Rng, SeedableRng};
use tonic::transport::{Channel, Endpoint};

use progress::Progress;
pub use report::{Answer, Outcome, Percentiles, Report, RpcStats, RpcSummary, Summary};

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
pub(crate) const MAX_OUTSTANDING: usize = 50_000;

/// HTTP/2 connections an open loop spreads its requests over.
const OPEN_LOOP_CONNECTIONS: usize = 4;

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
    let (progress, _shown) = Progress::start(options.duration);
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..options.concurrency.max(1) {
        let (mut client, progress) = (client.clone(), progress.clone());
        workers.spawn(async move {
            let mut stats: BTreeMap<&'static str, RpcStats> = BTreeMap::new();
            let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
            let mut sent = 0u64;
            while sent < per_worker && Instant::now() < deadline {
                let rpc = pick(options.mix, sent + worker as u64);
                let begun = Instant::now();
                let (name, outcome) = send(&mut client, rpc, rng.random()).await;
                let latency = begun.elapsed();
                progress.ended(outcome.is_err());
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
    let (progress, _shown) = Progress::start(options.duration);
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
            let (rpc, i, scheduled) = (pick(options.mix, n), rng.random(), due);
            let (stats, progress) = (stats.clone(), progress.clone());
            tasks.spawn(async move {
                let sent = Instant::now();
                let (name, outcome) = send(&mut client, rpc, i).await;
                let (latency, from_send) = (scheduled.elapsed(), sent.elapsed());
                progress.ended(outcome.is_err());
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
