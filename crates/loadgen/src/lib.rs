//! Drives the gateway's public API: the demo's sample requests and a load generator, closed loop (fixed
//! concurrency) or open loop (fixed arrival rate), that reports throughput, goodput and latency
//! percentiles per RPC ([`Report`], as text or a JSON [`Summary`]) and plots them ([`plot`]).
#![forbid(unsafe_code)]

pub mod bare;
pub mod plot;
mod progress;
mod report;
pub mod sink;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::inference::v1::inference_service_client::InferenceServiceClient;
use proto::inference::v1::{
    BatchPredictCustomerRiskRequest, BatchPredictDemandSurgeRequest, PredictCustomerRiskRequest,
    PredictDemandSurgeRequest, PredictionMetadata, QuotePriceRequest,
};
use rand::{Rng, SeedableRng};
use tonic::transport::{Channel, Endpoint};

use progress::Progress;
pub use report::{Answer, Outcome, Percentiles, Report, RpcStats, RpcSummary, Summary};

/// Entities in each batch RPC unless a load says otherwise.
pub const DEFAULT_PER_BATCH: u32 = 10;
/// The most entities the gateway takes in one batch RPC.
pub const MAX_PER_BATCH: u32 = 500;

/// Customers and zones the bundled snapshot holds (C000001..C002000, Z0001..Z0200).
pub const BUNDLED_CUSTOMERS: u32 = 2000;
pub const BUNDLED_ZONES: u32 = 200;

/// The `i`th customer id of the feature data's scheme (`C000001` is the first), among the bundled ones.
pub fn customer(i: u32) -> String {
    customer_id(i % BUNDLED_CUSTOMERS)
}

/// The `i`th zone id (`Z0001` is the first), among the bundled ones.
pub fn zone(i: u32) -> String {
    zone_id(i % BUNDLED_ZONES)
}

fn customer_id(index: u32) -> String {
    format!("C{:06}", u64::from(index) + 1)
}

fn zone_id(index: u32) -> String {
    format!("Z{:04}", u64::from(index) + 1)
}

/// The entities a load asks about: the first `customers` customers and `zones` zones of the feature
/// data's id scheme, in the order `order` says, `per_batch` of them in each batch RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub customers: u32,
    pub zones: u32,
    pub order: IdOrder,
    pub per_batch: u32,
}

impl Default for Ids {
    /// The bundled snapshot's entities, at random.
    fn default() -> Self {
        Self {
            customers: BUNDLED_CUSTOMERS,
            zones: BUNDLED_ZONES,
            order: IdOrder::Random,
            per_batch: DEFAULT_PER_BATCH,
        }
    }
}

/// How a load walks its entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdOrder {
    /// At random: entities repeat as in real traffic, and caches hit as they would.
    Random,
    /// Each in turn, none again until all were asked for: with more entities than the run sends
    /// requests, no request finds an entity that an earlier one brought into a cache.
    Unique,
}

impl Ids {
    /// The customer and zone of the `n`th request of a run.
    fn pick(&self, n: u64, rng: &mut impl Rng) -> (String, String) {
        let (customers, zones) = (self.customers.max(1), self.zones.max(1));
        let (customer, zone) = match self.order {
            IdOrder::Random => (rng.random_range(0..customers), rng.random_range(0..zones)),
            IdOrder::Unique => ((n % u64::from(customers)) as u32, (n % u64::from(zones)) as u32),
        };
        (customer_id(customer), zone_id(zone))
    }
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
    /// BatchPredictCustomerRisk only, `--per-batch` customers a call.
    BatchRisk,
    /// BatchPredictDemandSurge only, `--per-batch` zones a call.
    BatchSurge,
}

#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    pub concurrency: usize,
    pub duration: Duration,
    /// Stop after this many requests in total, whichever comes first.
    pub max_requests: u64,
    pub mix: Mix,
    pub ids: Ids,
}

/// Open-loop load: requests start on a fixed schedule whatever the answers (see [`run_open_loop`]).
#[derive(Debug, Clone, Copy)]
pub struct OpenLoopOptions {
    /// Requests started a second.
    pub rate: f64,
    pub duration: Duration,
    pub mix: Mix,
    pub ids: Ids,
}

/// Requests an open loop lets wait for their answers at once; past it a due request is not sent but
/// counted in [`Report::unsent`] (the gateway's deadlines keep the real number far below).
pub(crate) const MAX_OUTSTANDING: usize = 50_000;

/// HTTP/2 connections an open loop spreads its requests over.
const OPEN_LOOP_CONNECTIONS: usize = 4;

/// The RPC a load of `mix` sends as its `n`th request.
fn pick(mix: Mix, n: u64) -> Kind {
    match mix {
        Mix::Quote => Kind::One(Rpc::Quote),
        Mix::Risk => Kind::One(Rpc::Risk),
        Mix::Surge => Kind::One(Rpc::Surge),
        Mix::Mixed => Kind::One([Rpc::Quote, Rpc::Risk, Rpc::Surge][(n % 3) as usize]),
        Mix::BatchRisk => Kind::Batch(Batch::Customers),
        Mix::BatchSurge => Kind::Batch(Batch::Zones),
    }
}

/// An RPC for one entity (or a quote's two), or a batch RPC.
#[derive(Debug, Clone, Copy)]
enum Kind {
    One(Rpc),
    Batch(Batch),
}

#[derive(Debug, Clone, Copy)]
enum Rpc {
    Quote,
    Risk,
    Surge,
}

/// One request: its entities and a random number for its other fields, or a batch RPC's entities.
enum Call {
    One {
        rpc: Rpc,
        customer: String,
        zone: String,
        i: u32,
    },
    Batch {
        of: Batch,
        ids: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Batch {
    Customers,
    Zones,
}

impl Call {
    /// The `n`th call of a run of `mix` over `ids`. A batch call takes the entities `per_batch` single
    /// calls would have asked about, so `unique` ids stay unique across batches.
    fn nth(n: u64, mix: Mix, ids: &Ids, rng: &mut impl Rng) -> Self {
        match pick(mix, n) {
            Kind::One(rpc) => {
                let (customer, zone) = ids.pick(n, rng);
                Self::One {
                    rpc,
                    customer,
                    zone,
                    i: rng.random(),
                }
            }
            Kind::Batch(of) => {
                let per_batch = u64::from(ids.per_batch.clamp(1, MAX_PER_BATCH));
                let entities = (n * per_batch..(n + 1) * per_batch).map(|m| {
                    let (customer, zone) = ids.pick(m, rng);
                    match of {
                        Batch::Customers => customer,
                        Batch::Zones => zone,
                    }
                });
                Self::Batch {
                    of,
                    ids: entities.collect(),
                }
            }
        }
    }
}

/// Sends `call`: the RPC's name and how it ended.
async fn send(client: &mut InferenceServiceClient<Channel>, call: Call) -> (&'static str, Outcome) {
    let (rpc, customer, zone, i) = match call {
        Call::One {
            rpc,
            customer,
            zone,
            i,
        } => (rpc, customer, zone, i),
        Call::Batch { of, ids } => return send_batch(client, of, ids).await,
    };
    match rpc {
        Rpc::Quote => (
            "QuotePrice",
            client.quote_price(quote_for(customer, zone, i)).await.map(|r| {
                let r = r.into_inner();
                let degraded = [r.risk.and_then(|p| p.metadata), r.surge.and_then(|p| p.metadata)]
                    .iter()
                    .any(|m| m.as_ref().is_some_and(|m| m.degraded));
                Answer::of(degraded)
            }),
        ),
        Rpc::Risk => {
            let req = PredictCustomerRiskRequest {
                customer_id: customer,
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
                zone_id: zone,
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

/// Sends a batch RPC for `ids`; the answer is degraded when any of its predictions is.
async fn send_batch(
    client: &mut InferenceServiceClient<Channel>,
    of: Batch,
    ids: Vec<String>,
) -> (&'static str, Outcome) {
    match of {
        Batch::Customers => {
            let req = BatchPredictCustomerRiskRequest {
                customer_ids: ids,
                ..Default::default()
            };
            let answer = client.batch_predict_customer_risk(req).await;
            let answer = answer.map(|r| any_degraded(r.into_inner().results.iter().map(|p| &p.metadata)));
            ("BatchPredictCustomerRisk", answer)
        }
        Batch::Zones => {
            let req = BatchPredictDemandSurgeRequest {
                zone_ids: ids,
                ..Default::default()
            };
            let answer = client.batch_predict_demand_surge(req).await;
            let answer = answer.map(|r| any_degraded(r.into_inner().results.iter().map(|p| &p.metadata)));
            ("BatchPredictDemandSurge", answer)
        }
    }
}

fn any_degraded<'a>(mut metadata: impl Iterator<Item = &'a Option<PredictionMetadata>>) -> Answer {
    Answer::of(metadata.any(|m| m.as_ref().is_some_and(|m| m.degraded)))
}

/// Closed-loop load: `concurrency` workers each send their next request as soon as the previous answers.
pub async fn run_load(url: &str, options: LoadOptions) -> anyhow::Result<Report> {
    let client = connect(url).await?;
    let started = Instant::now();
    let deadline = started + options.duration;
    let per_worker = options.max_requests.div_ceil(options.concurrency.max(1) as u64);
    let (progress, _shown) = Progress::start(options.duration);
    // The run's request count so far: what numbers each call, so ids are walked across all workers.
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        let (mut client, progress, next) = (client.clone(), progress.clone(), next.clone());
        workers.spawn(async move {
            let mut stats: BTreeMap<&'static str, RpcStats> = BTreeMap::new();
            let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
            let mut sent = 0u64;
            while sent < per_worker && Instant::now() < deadline {
                let call = Call::nth(
                    next.fetch_add(1, Ordering::Relaxed),
                    options.mix,
                    &options.ids,
                    &mut rng,
                );
                let begun = Instant::now();
                let (name, outcome) = send(&mut client, call).await;
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
    let (progress, _shown) = Progress::start(options.duration);
    // The schedule is kept by a thread of its own that sleeps to each due time with the OS's precision
    // (tens of microseconds), not the runtime's millisecond timer, which would start requests up to a
    // millisecond late and in bursts: lateness the generator would then report as the server's.
    let handle = tokio::runtime::Handle::current();
    let pacer = {
        let (stats, outstanding, progress) = (stats.clone(), outstanding.clone(), progress.clone());
        std::thread::Builder::new()
            .name("loadgen-pacer".into())
            .spawn(move || pace(&handle, &clients, options, &stats, &outstanding, &progress))?
    };
    let (unsent, max_send_lag) = tokio::task::spawn_blocking(move || pacer.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the open loop's pacer panicked"))?;
    // Every call sent holds a permit until it is answered: all of them back means all answered.
    let _all = outstanding
        .acquire_many(u32::try_from(MAX_OUTSTANDING).unwrap_or(u32::MAX))
        .await?;
    let mut report = Report {
        unsent,
        max_send_lag,
        ..Report::default()
    };
    // Rates are per second of the schedule: the answers still outstanding at its end came in after.
    report.elapsed = options.duration;
    report.rpcs = std::mem::take(&mut *lock(&stats));
    Ok(report)
}

/// The open loop's schedule: the `n`th call spawned on `handle` at `n / rate` seconds; returns the calls
/// not sent (too many outstanding) and how late the latest call started.
fn pace(
    handle: &tokio::runtime::Handle,
    clients: &[InferenceServiceClient<Channel>],
    options: OpenLoopOptions,
    stats: &Arc<Mutex<BTreeMap<&'static str, RpcStats>>>,
    outstanding: &Arc<tokio::sync::Semaphore>,
    progress: &Arc<Progress>,
) -> (u64, Duration) {
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    let interval = Duration::from_secs_f64(1.0 / options.rate);
    let started = Instant::now();
    let end = started + options.duration;
    let (mut unsent, mut max_lag) = (0u64, Duration::ZERO);
    let mut n = 0u64;
    let mut due = started;
    while due < end {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let now = Instant::now();
        max_lag = max_lag.max(now.saturating_duration_since(due));
        // Everything due by now goes out now.
        while due <= now && due < end {
            let Ok(permit) = outstanding.clone().try_acquire_owned() else {
                unsent += 1;
                n += 1;
                due += interval;
                continue;
            };
            let mut client = clients[(n as usize) % clients.len()].clone();
            let (call, scheduled) = (Call::nth(n, options.mix, &options.ids, &mut rng), due);
            let (stats, progress) = (stats.clone(), progress.clone());
            handle.spawn(async move {
                let sent = Instant::now();
                let (name, outcome) = send(&mut client, call).await;
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
    }
    (unsent, max_lag)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A quote for a bundled customer and zone picked by `i`.
pub fn quote_request(i: u32) -> QuotePriceRequest {
    quote_for(customer(i), zone(i / 7), i)
}

fn quote_for(customer_id: String, zone_id: String, i: u32) -> QuotePriceRequest {
    QuotePriceRequest {
        customer_id,
        zone_id,
        base_price: 20.0 + f64::from(i % 80),
        currency: "USD".into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn unique_ids_are_each_asked_for_once_before_any_again_and_random_ones_stay_in_their_space() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let unique = Ids {
            customers: 1000,
            zones: 10,
            order: IdOrder::Unique,
            per_batch: 1,
        };
        let first: Vec<(String, String)> = (0..1000).map(|n| unique.pick(n, &mut rng)).collect();
        let customers: HashSet<&String> = first.iter().map(|(c, _)| c).collect();
        assert_eq!(customers.len(), 1000, "each customer once");
        assert_eq!(first[0], ("C000001".to_owned(), "Z0001".to_owned()));
        assert_eq!(first[999].0, "C001000");
        assert_eq!(
            unique.pick(1000, &mut rng).0,
            "C000001",
            "then again from the first"
        );

        let random = Ids {
            order: IdOrder::Random,
            ..unique
        };
        let drawn: HashSet<String> = (0..5000).map(|n| random.pick(n, &mut rng).0).collect();
        assert!(
            drawn.len() > 900 && drawn.len() < 1000,
            "repeats, within the space: {}",
            drawn.len()
        );
        assert!(
            drawn
                .iter()
                .all(|c| ("C000001"..="C001000").contains(&c.as_str()))
        );
    }

    #[test]
    fn a_batch_asks_for_the_entities_of_as_many_single_calls_and_unique_ones_stay_unique() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let ids = Ids {
            customers: 1000,
            zones: 100,
            order: IdOrder::Unique,
            per_batch: 25,
        };
        let mut customers = HashSet::new();
        for n in 0..40 {
            let Call::Batch {
                of: Batch::Customers,
                ids: batch,
            } = Call::nth(n, Mix::BatchRisk, &ids, &mut rng)
            else {
                panic!("a BatchRisk call that is not a batch of customers");
            };
            assert_eq!(batch.len(), 25);
            assert_eq!(batch[0], customer_id((n * 25) as u32));
            customers.extend(batch);
        }
        assert_eq!(
            customers.len(),
            1000,
            "40 batches of 25 ask for each of 1,000 customers once"
        );
        let Call::Batch {
            of: Batch::Zones,
            ids: zones,
        } = Call::nth(3, Mix::BatchSurge, &ids, &mut rng)
        else {
            panic!("a BatchSurge call that is not a batch of zones");
        };
        assert_eq!(zones.first().map(String::as_str), Some("Z0076"));
        assert_eq!(zones.len(), 25);
    }
}
