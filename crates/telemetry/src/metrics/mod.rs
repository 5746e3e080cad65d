//! DogStatsD metrics: [`Metrics`], a cheap-to-clone handle whose `count`/`gauge`/`distribution` only
//! aggregate in process (about 0.1 µs, see `benches/hot_path.rs`), and a background thread that sends
//! the aggregates to the agent every flush interval (1 s by default) and at shutdown.
//!
//! ```no_run
//! use telemetry::{Metrics, Tag, catalog};
//! let metrics = Metrics::global();
//! metrics.incr(&catalog::MODEL_PREDICTIONS_COUNT, &[Tag::model("risk"), Tag::model_version("3"), Tag::variant("a")]);
//! metrics.distribution(&catalog::API_PREDICT_LATENCY_MS, 12.5, &[Tag::rpc("QuotePrice"), Tag::grpc_status(tonic::Code::Ok)]);
//! ```
//!
//! Nothing here blocks, allocates without bound or fails because the agent is away: values past the
//! series/sample caps, and everything the agent could not take, are dropped and counted in
//! `telemetry.dropped{signal:metric}`.
//!
//! On Kubernetes every line also carries the DogStatsD origin fields (`|c:<container>|e:<external
//! data>`, see [`MetricsOrigin`]), found once at start-up, so the agent adds the pod's tags to metrics
//! received over UDP.

mod aggregator;
mod events;
mod format;
mod origin;
mod sink;
mod transport;

use std::{
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::Duration,
};

pub use self::events::EventAlert;
pub use self::origin::MetricsOrigin;
use self::{
    aggregator::{Aggregator, Value},
    events::{EventQueue, PendingEvent},
    sink::{Command, SinkCounters, Worker},
    transport::Transport,
};
use crate::{
    ServiceTags, TelemetryError,
    catalog::{EventDef, MetricDef},
    config::DogStatsdUrl,
    dropped::DropCounters,
    tags::{Signal, Tag},
};

/// How a [`Metrics`] sink is set up.
#[derive(Debug, Clone)]
pub struct MetricsOptions {
    pub target: DogStatsdUrl,
    /// Sent on every datagram as `env:`, `service:`, `version:`.
    pub service_tags: ServiceTags,
    pub flush_interval: Duration,
    pub max_series: usize,
    pub max_samples: usize,
    /// Largest datagram; defaults to the transport's limit (1432 UDP, 8192 UDS).
    pub max_datagram: usize,
    /// Origin detection fields sent on every line; none by default ([`crate::init`] detects them).
    pub origin: MetricsOrigin,
}

impl MetricsOptions {
    /// Defaults for `target`: 1 s flushes, 4096 series, 262,144 buffered samples.
    pub fn new(target: DogStatsdUrl, service_tags: ServiceTags) -> Self {
        let max_datagram = target.max_datagram();
        Self {
            target,
            service_tags,
            flush_interval: Duration::from_secs(1),
            max_series: 4096,
            max_samples: 262_144,
            max_datagram,
            origin: MetricsOrigin::default(),
        }
    }
}

/// What a sink has done so far, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsStats {
    /// Distinct series held now.
    pub series: usize,
    /// Distribution samples waiting for the next flush.
    pub buffered_samples: usize,
    /// Values dropped since start (caps, invalid, agent unavailable, send failures).
    pub dropped: u64,
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    pub flushes: u64,
}

/// Handle to a DogStatsD sink; clones share it. A disabled handle ignores everything.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    aggregator: Arc<Aggregator>,
    events: Arc<EventQueue>,
    drops: Arc<DropCounters>,
    counters: Arc<SinkCounters>,
    commands: mpsc::Sender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
}

static GLOBAL: OnceLock<Metrics> = OnceLock::new();
static DISABLED: Metrics = Metrics { inner: None };

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

impl Metrics {
    /// Starts a sink and its flush thread. Does not touch the network: the agent may come later.
    pub fn start(options: MetricsOptions) -> Result<Self, TelemetryError> {
        Self::start_inner(options, false)
    }

    pub(crate) fn start_inner(
        options: MetricsOptions,
        report_process_drops: bool,
    ) -> Result<Self, TelemetryError> {
        let aggregator = Arc::new(Aggregator::new(options.max_series, options.max_samples));
        let drops = Arc::new(DropCounters::new());
        let counters = Arc::new(SinkCounters::default());
        let tags = &options.service_tags;
        let default_tags = ["env", "service", "version"]
            .into_iter()
            .zip([&tags.env, &tags.service, &tags.version])
            .map(|(key, value)| {
                let mut tag = format!("{key}:");
                aggregator::push_sanitized(&mut tag, value);
                tag
            })
            .chain(options.origin.entity_tag())
            .collect();
        let events = Arc::new(EventQueue::default());
        let worker = Worker {
            aggregator: aggregator.clone(),
            events: events.clone(),
            transport: Transport::new(options.target, default_tags, &options.origin.fields()),
            max_datagram: options.max_datagram,
            interval: options.flush_interval,
            drops: drops.clone(),
            report_process_drops,
            counters: counters.clone(),
        };
        let (commands, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("telemetry-dogstatsd".into())
            .spawn(move || worker.run(receiver))
            .map_err(TelemetryError::Worker)?;
        let inner = Inner {
            aggregator,
            events,
            drops,
            counters,
            commands,
            thread: Mutex::new(Some(thread)),
            closed: AtomicBool::new(false),
        };
        Ok(Self {
            inner: Some(Arc::new(inner)),
        })
    }

    /// A handle that records nothing (metrics disabled).
    pub const fn disabled() -> Self {
        Self { inner: None }
    }

    /// The process's sink, installed by [`crate::init`]; a disabled handle before that.
    pub fn global() -> &'static Metrics {
        GLOBAL.get().unwrap_or(&DISABLED)
    }

    /// Installs `self` as the global sink unless one is installed already.
    pub(crate) fn install_global(&self) -> bool {
        GLOBAL.set(self.clone()).is_ok()
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Adds `n` to a count.
    #[inline]
    pub fn count(&self, metric: &'static MetricDef, n: u64, tags: &[Tag<'_>]) {
        self.record(metric, Value::Count(i64::try_from(n).unwrap_or(i64::MAX)), tags);
    }

    /// Adds 1 to a count.
    #[inline]
    pub fn incr(&self, metric: &'static MetricDef, tags: &[Tag<'_>]) {
        self.record(metric, Value::Count(1), tags);
    }

    /// Sets a gauge (the last value before a flush is sent, and re-sent every flush after).
    #[inline]
    pub fn gauge(&self, metric: &'static MetricDef, value: f64, tags: &[Tag<'_>]) {
        self.record(metric, Value::Gauge(value), tags);
    }

    /// Stops re-sending a gauge set with [`Metrics::gauge`] (same metric and tags): for a state that
    /// ended, such as a model version retired. Its last value stays in Datadog until it ages out.
    pub fn remove_gauge(&self, metric: &'static MetricDef, tags: &[Tag<'_>]) {
        if let Some(inner) = &self.inner {
            inner.aggregator.remove_gauge(metric, tags);
        }
    }

    /// Adds one sample to a distribution.
    #[inline]
    pub fn distribution(&self, metric: &'static MetricDef, value: f64, tags: &[Tag<'_>]) {
        self.record(metric, Value::Sample(value), tags);
    }

    #[inline]
    fn record(&self, metric: &'static MetricDef, value: Value, tags: &[Tag<'_>]) {
        let Some(inner) = &self.inner else { return };
        if inner.closed.load(Ordering::Relaxed) {
            return;
        }
        if let Err(reason) = inner.aggregator.record(metric, value, tags) {
            inner.drops.add(Signal::Metric, reason, 1);
        }
    }

    /// Sends a DogStatsD event (`_e{..}`) at the next flush, tagged `event:<name>`, `tags` and the
    /// service tags. For rare lifecycle moments (a model version loaded), never per request: a few
    /// dozen may wait at once, past that they are dropped and counted.
    pub fn event(
        &self,
        event: &'static EventDef,
        alert: EventAlert,
        title: &str,
        text: &str,
        tags: &[Tag<'_>],
    ) {
        let Some(inner) = &self.inner else { return };
        if inner.closed.load(Ordering::Relaxed) {
            return;
        }
        let queued = PendingEvent::new(event, alert, title, text, tags).and_then(|e| inner.events.push(e));
        if let Err(reason) = queued {
            inner.drops.add(Signal::Metric, reason, 1);
        }
    }

    /// Sends everything aggregated now; waits at most `timeout`. True when the flush completed.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.command(Command::Flush, timeout)
    }

    /// Flushes, stops the flush thread and turns the handle (and its clones) into a no-op. Waits at
    /// most `timeout`; true when everything was handed to the socket in time.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let Some(inner) = &self.inner else { return true };
        let done = self.command(Command::Shutdown, timeout);
        inner.closed.store(true, Ordering::Relaxed);
        if done {
            let thread = inner.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(thread) = thread {
                let _ = thread.join();
            }
        }
        done
    }

    fn command(&self, make: fn(mpsc::SyncSender<()>) -> Command, timeout: Duration) -> bool {
        let Some(inner) = &self.inner else { return true };
        let (ack, done) = mpsc::sync_channel(1);
        inner.commands.send(make(ack)).is_ok() && done.recv_timeout(timeout).is_ok()
    }

    /// Counters since start.
    pub fn stats(&self) -> MetricsStats {
        let Some(inner) = &self.inner else {
            return MetricsStats::default();
        };
        MetricsStats {
            series: inner.aggregator.series(),
            buffered_samples: inner.aggregator.buffered_samples(),
            dropped: inner.drops.total(Signal::Metric),
            datagrams_sent: inner.counters.datagrams.load(Ordering::Relaxed),
            bytes_sent: inner.counters.bytes.load(Ordering::Relaxed),
            flushes: inner.counters.flushes.load(Ordering::Relaxed),
        }
    }
}
