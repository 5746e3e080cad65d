//! Drives the gateway's public API: the demo's sample requests and a closed-loop load generator that
//! reports throughput and latency percentiles per RPC ([`Report`]).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
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

/// Latency histograms (µs) and error counts per RPC.
#[derive(Debug, Default)]
pub struct Report {
    pub elapsed: Duration,
    pub rpcs: BTreeMap<&'static str, RpcStats>,
}

#[derive(Debug)]
pub struct RpcStats {
    pub latency_us: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
}

impl Default for RpcStats {
    fn default() -> Self {
        #[allow(clippy::expect_used)] // constant, valid bounds: 1 µs to 60 s at 3 significant digits
        let latency_us = Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
        Self {
            latency_us,
            errors: BTreeMap::new(),
        }
    }
}

impl RpcStats {
    fn record(&mut self, started: Instant, result: Result<(), tonic::Status>) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(micros.max(1));
        if let Err(status) = result {
            *self.errors.entry(format!("{:?}", status.code())).or_default() += 1;
        }
    }

    fn merge(&mut self, other: &Self) {
        let _ = self.latency_us.add(&other.latency_us);
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
    }
}

impl Report {
    pub fn total_requests(&self) -> u64 {
        self.rpcs.values().map(|s| s.latency_us.len()).sum()
    }

    /// A table: one line per RPC with count, throughput, error count and latency percentiles in ms.
    pub fn render(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut out = format!(
            "{:<22} {:>8} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8}\n",
            "rpc", "requests", "req/s", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        for (rpc, stats) in &self.rpcs {
            let h = &stats.latency_us;
            let errors: u64 = stats.errors.values().sum();
            out.push_str(&format!(
                "{:<22} {:>8} {:>9.0} {:>7} {:>8.3} {:>8.3} {:>8.3} {:>8.3}\n",
                rpc,
                h.len(),
                h.len() as f64 / secs,
                errors,
                ms(h, 0.50),
                ms(h, 0.95),
                ms(h, 0.99),
                h.max() as f64 / 1000.0
            ));
            for (code, n) in &stats.errors {
                out.push_str(&format!("    {n} x {code}\n"));
            }
        }
        out
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
                let i: u32 = rng.random();
                let kind = match options.mix {
                    Mix::Quote => 0,
                    Mix::Risk => 1,
                    Mix::Surge => 2,
                    Mix::Mixed => (sent as usize + worker) % 3,
                };
                let begun = Instant::now();
                let (rpc, result) = match kind {
                    0 => ("QuotePrice", client.quote_price(quote_request(i)).await.map(drop)),
                    1 => {
                        let req = PredictCustomerRiskRequest {
                            customer_id: customer(i),
                            ..Default::default()
                        };
                        (
                            "PredictCustomerRisk",
                            client.predict_customer_risk(req).await.map(drop),
                        )
                    }
                    _ => {
                        let req = PredictDemandSurgeRequest {
                            zone_id: zone(i),
                            ..Default::default()
                        };
                        (
                            "PredictDemandSurge",
                            client.predict_demand_surge(req).await.map(drop),
                        )
                    }
                };
                stats.entry(rpc).or_default().record(begun, result);
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

pub fn quote_request(i: u32) -> QuotePriceRequest {
    QuotePriceRequest {
        customer_id: customer(i),
        zone_id: zone(i / 7),
        base_price: 20.0 + f64::from(i % 80),
        currency: "USD".into(),
        ..Default::default()
    }
}
