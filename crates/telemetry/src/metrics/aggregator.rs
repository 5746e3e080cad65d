//! In-process aggregation: the only work on the request path. A recorded value lands in a sharded
//! hash table keyed by (metric, tag values): counters are summed, gauges keep the last value, and
//! distribution samples are appended. Looking a series up neither allocates nor formats anything; a
//! series is allocated (and its tags rendered) once, the first time it is seen.
//!
//! Counts and distributions are kept in the recording thread's own shard, so that two runtime workers
//! on two cores recording the same series (every request records the same few) do not pass its lock,
//! its table and its samples between their caches at every call: with shards chosen by series, that
//! cost the gateway 2 to 8 µs of CPU a quote at 64 callers (docs/benchmarks.md). A series recorded on
//! several threads is kept once per thread, and a flush sends it once, its copies added together.
//! Gauges keep the last value set, wherever from, so each lives in the one shard its series hashes to.
//!
//! Everything is bounded: at most `max_series` series (a copy per recording thread counting as one) and
//! `max_samples` buffered samples; past either, the value is dropped and the caller counts it. A shard
//! takes room for samples from the shared bound [`SAMPLE_CREDITS`] at a time, so the bound's counter is
//! not touched at every sample either: room taken and not yet used counts against it until the next
//! flush. Idle series are evicted after a few empty flushes; gauges stay (they describe a state) and are
//! re-sent every flush.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, Hasher},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::{
    catalog::{MAX_TAGS, MetricDef, MetricKind},
    tags::{DropReason, Tag},
};

/// Power of two; more shards than cores keeps lock contention negligible.
const SHARDS: usize = 16;
/// Room for samples a shard takes from the shared bound at a time.
const SAMPLE_CREDITS: usize = 64;
/// A count or distribution series that had nothing to send this many flushes in a row is evicted.
const IDLE_FLUSHES_BEFORE_EVICTION: u8 = 3;
/// Longest tag value sent (Datadog allows 200 characters per `key:value`).
const MAX_TAG_VALUE: usize = 100;

/// A value to record.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value {
    Count(i64),
    Gauge(f64),
    Sample(f64),
}

impl Value {
    fn kind(self) -> MetricKind {
        match self {
            Value::Count(_) => MetricKind::Count,
            Value::Gauge(_) => MetricKind::Gauge,
            Value::Sample(_) => MetricKind::Distribution,
        }
    }
}

/// What one series has to send at a flush.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub metric: &'static MetricDef,
    /// Rendered `key:value,key:value` (without the service tags).
    pub tags: Arc<str>,
    pub value: SnapshotValue,
}

#[derive(Debug)]
pub(crate) enum SnapshotValue {
    Count(i64),
    Gauge(f64),
    Samples(Vec<f64>),
}

struct Series {
    hash: u64,
    metric: &'static MetricDef,
    values: [Option<Box<str>>; MAX_TAGS],
    rendered: Arc<str>,
    state: State,
    idle_flushes: u8,
}

enum State {
    Count(i64),
    Gauge(f64),
    Samples(Vec<f64>),
}

#[derive(Default)]
struct Shard {
    table: HashTable<Series>,
    /// Samples buffered in this shard's series.
    samples: usize,
    /// Room for more, taken from [`Aggregator::samples`] and not used yet.
    credits: usize,
}

/// The next thread's home shard.
static NEXT_HOME: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard for counts and distributions, given out in turn.
    static HOME: usize = NEXT_HOME.fetch_add(1, Ordering::Relaxed) & (SHARDS - 1);
}

pub(crate) struct Aggregator {
    shards: Box<[Mutex<Shard>]>,
    hasher: DefaultHashBuilder,
    series: AtomicUsize,
    /// Samples buffered, plus the room shards took for more and have not used yet.
    samples: AtomicUsize,
    max_series: usize,
    max_samples: usize,
}

impl Aggregator {
    pub(crate) fn new(max_series: usize, max_samples: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: DefaultHashBuilder::default(),
            series: AtomicUsize::new(0),
            samples: AtomicUsize::new(0),
            max_series,
            max_samples,
        }
    }

    /// Records one value. `Err` says why it was dropped; the caller counts it.
    #[inline]
    pub(crate) fn record(
        &self,
        metric: &'static MetricDef,
        value: Value,
        tags: &[Tag<'_>],
    ) -> Result<(), DropReason> {
        if metric.kind != value.kind() {
            debug_assert!(
                false,
                "{} is a {:?}, recorded as {:?}",
                metric.name,
                metric.kind,
                value.kind()
            );
            return Err(DropReason::InvalidValue);
        }
        if let Value::Gauge(v) | Value::Sample(v) = value
            && !v.is_finite()
        {
            return Err(DropReason::InvalidValue);
        }
        // Canonical order: the catalog's, so the same tags in any order are the same series.
        let mut slots: [Option<&str>; MAX_TAGS] = [None; MAX_TAGS];
        for tag in tags {
            match metric.tag_slot(tag.key()) {
                Some(slot) if slot < MAX_TAGS => slots[slot] = Some(tag.value()),
                _ => {
                    debug_assert!(false, "tag {:?} is not allowed on {}", tag.key(), metric.name);
                    return Err(DropReason::TagNotAllowed);
                }
            }
        }
        let slots = &slots[..metric.tags.len().min(MAX_TAGS)];
        let hash = self.hash(metric, slots);
        let home = match value {
            Value::Gauge(_) => Self::gauge_shard(hash),
            Value::Count(_) | Value::Sample(_) => HOME.with(|home| *home),
        };
        let mut shard = self.lock(home);
        let Shard {
            table,
            samples: buffered,
            credits,
        } = &mut *shard;
        let series = match table.find_mut(hash, |s| s.matches(metric, slots)) {
            Some(series) => series,
            None => {
                if self.series.fetch_add(1, Ordering::Relaxed) >= self.max_series {
                    self.series.fetch_sub(1, Ordering::Relaxed);
                    return Err(DropReason::SeriesLimit);
                }
                let series = Series::new(hash, metric, slots);
                table.insert_unique(hash, series, |s| s.hash).into_mut()
            }
        };
        series.idle_flushes = 0;
        match (&mut series.state, value) {
            (State::Count(sum), Value::Count(n)) => *sum = sum.saturating_add(n),
            (State::Gauge(last), Value::Gauge(v)) => *last = v,
            (State::Samples(samples), Value::Sample(v)) => {
                if *credits == 0 {
                    *credits = self.take_credits();
                    if *credits == 0 {
                        return Err(DropReason::SampleLimit);
                    }
                }
                *credits -= 1;
                *buffered += 1;
                samples.push(v);
            }
            // Unreachable: the state is built from the metric's kind, checked above.
            _ => return Err(DropReason::InvalidValue),
        }
        Ok(())
    }

    /// Forgets a gauge series, so it is no longer re-sent (the state it described is gone: a model
    /// version retired). True when there was one. Tags are matched as [`Aggregator::record`] files them.
    pub(crate) fn remove_gauge(&self, metric: &'static MetricDef, tags: &[Tag<'_>]) -> bool {
        let mut slots: [Option<&str>; MAX_TAGS] = [None; MAX_TAGS];
        for tag in tags {
            match metric.tag_slot(tag.key()) {
                Some(slot) if slot < MAX_TAGS => slots[slot] = Some(tag.value()),
                _ => return false,
            }
        }
        let slots = &slots[..metric.tags.len().min(MAX_TAGS)];
        let hash = self.hash(metric, slots);
        let mut shard = self.lock(Self::gauge_shard(hash));
        match shard.table.find_entry(hash, |s| s.matches(metric, slots)) {
            Ok(entry) if matches!(entry.get().state, State::Gauge(_)) => {
                entry.remove();
                self.series.fetch_sub(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        self.shards[shard & (SHARDS - 1)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The one shard a gauge series lives in.
    fn gauge_shard(hash: u64) -> usize {
        (hash >> 32) as usize
    }

    /// Room for up to [`SAMPLE_CREDITS`] more samples, taken from the shared bound; 0 when it is full.
    fn take_credits(&self) -> usize {
        let mut taken = self.samples.load(Ordering::Relaxed);
        loop {
            let grant = SAMPLE_CREDITS.min(self.max_samples.saturating_sub(taken));
            if grant == 0 {
                return 0;
            }
            match self.samples.compare_exchange_weak(
                taken,
                taken + grant,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return grant,
                Err(now) => taken = now,
            }
        }
    }

    fn hash(&self, metric: &'static MetricDef, slots: &[Option<&str>]) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        std::ptr::hash(metric, &mut hasher);
        slots.hash(&mut hasher);
        hasher.finish()
    }

    /// Moves out everything to send (a series kept on several threads once, its copies added together),
    /// resets counters, evicts idle series.
    pub(crate) fn drain(&self, out: &mut Vec<Snapshot>) {
        let mut evicted = 0;
        let mut released = 0;
        // Where each series' snapshot went in `out`, to add the copies of other threads to it.
        let mut sent: HashMap<(usize, Arc<str>), usize> = HashMap::new();
        for shard in 0..SHARDS {
            let mut shard = self.lock(shard);
            released += std::mem::take(&mut shard.samples) + std::mem::take(&mut shard.credits);
            shard.table.retain(|series| {
                let value = match &mut series.state {
                    State::Gauge(v) => Some(SnapshotValue::Gauge(*v)),
                    State::Count(0) => None,
                    State::Count(sum) => Some(SnapshotValue::Count(std::mem::take(sum))),
                    State::Samples(samples) if samples.is_empty() => None,
                    State::Samples(samples) => {
                        let next = Vec::with_capacity(samples.len().min(64));
                        Some(SnapshotValue::Samples(std::mem::replace(samples, next)))
                    }
                };
                let keep = match value {
                    Some(value) => {
                        if matches!(value, SnapshotValue::Gauge(_)) {
                            series.idle_flushes = 0;
                        }
                        let key = (
                            std::ptr::from_ref(series.metric) as usize,
                            series.rendered.clone(),
                        );
                        match sent.get(&key) {
                            Some(&at) => out[at].value.add(value),
                            None => {
                                sent.insert(key, out.len());
                                out.push(Snapshot {
                                    metric: series.metric,
                                    tags: series.rendered.clone(),
                                    value,
                                });
                            }
                        }
                        true
                    }
                    None => {
                        series.idle_flushes = series.idle_flushes.saturating_add(1);
                        series.idle_flushes < IDLE_FLUSHES_BEFORE_EVICTION
                    }
                };
                evicted += usize::from(!keep);
                keep
            });
        }
        self.series.fetch_sub(evicted, Ordering::Relaxed);
        self.samples.fetch_sub(released, Ordering::Relaxed);
    }

    pub(crate) fn series(&self) -> usize {
        self.series.load(Ordering::Relaxed)
    }

    /// Samples buffered now (not counting the room shards took for more).
    pub(crate) fn buffered_samples(&self) -> usize {
        (0..SHARDS).map(|shard| self.lock(shard).samples).sum()
    }
}

impl SnapshotValue {
    /// Adds another thread's copy of the same series: counts summed, samples appended, and (never
    /// reached: a gauge has one copy) a gauge's value replaced.
    fn add(&mut self, other: SnapshotValue) {
        match (self, other) {
            (SnapshotValue::Count(sum), SnapshotValue::Count(n)) => *sum = sum.saturating_add(n),
            (SnapshotValue::Samples(samples), SnapshotValue::Samples(more)) => samples.extend(more),
            (this, other) => *this = other,
        }
    }
}

impl Series {
    fn new(hash: u64, metric: &'static MetricDef, slots: &[Option<&str>]) -> Self {
        let mut values: [Option<Box<str>>; MAX_TAGS] = Default::default();
        let mut rendered = String::new();
        for (i, slot) in slots.iter().enumerate() {
            let Some(value) = slot else { continue };
            values[i] = Some((*value).into());
            if !rendered.is_empty() {
                rendered.push(',');
            }
            rendered.push_str(metric.tags[i].as_str());
            rendered.push(':');
            push_sanitized(&mut rendered, value);
        }
        let state = match metric.kind {
            MetricKind::Count => State::Count(0),
            MetricKind::Gauge => State::Gauge(0.0),
            MetricKind::Distribution => State::Samples(Vec::with_capacity(16)),
        };
        Self {
            hash,
            metric,
            values,
            rendered: rendered.into(),
            state,
            idle_flushes: 0,
        }
    }

    #[inline]
    fn matches(&self, metric: &'static MetricDef, slots: &[Option<&str>]) -> bool {
        std::ptr::eq(self.metric, metric)
            && slots
                .iter()
                .zip(self.values.iter())
                .all(|(slot, value)| *slot == value.as_deref())
    }
}

/// Appends a tag value in the characters Datadog keeps (others become `_`), so it can never break the
/// DogStatsD framing (`,`, `|`, `#`, newline). Empty values become `none`.
pub(crate) fn push_sanitized(out: &mut String, value: &str) {
    if value.is_empty() {
        out.push_str("none");
        return;
    }
    for c in value.chars().take(MAX_TAG_VALUE) {
        let keep = c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':');
        out.push(if keep { c } else { '_' });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{API_PREDICT_LATENCY_MS, API_PREDICT_REQUESTS, MODEL_FEATURE_DRIFT_PSI};

    fn drain(agg: &Aggregator) -> Vec<Snapshot> {
        let mut out = Vec::new();
        agg.drain(&mut out);
        out
    }

    #[test]
    fn sums_counts_in_any_tag_order_and_resets() {
        let agg = Aggregator::new(10, 10);
        let ok = tonic::Code::Ok;
        agg.record(
            &API_PREDICT_REQUESTS,
            Value::Count(2),
            &[Tag::rpc("QuotePrice"), Tag::grpc_status(ok)],
        )
        .ok();
        agg.record(
            &API_PREDICT_REQUESTS,
            Value::Count(3),
            &[Tag::grpc_status(ok), Tag::rpc("QuotePrice")],
        )
        .ok();
        let out = drain(&agg);
        assert_eq!(out.len(), 1);
        assert_eq!(&*out[0].tags, "rpc:QuotePrice,status:ok");
        assert!(matches!(out[0].value, SnapshotValue::Count(5)));
        assert!(drain(&agg).is_empty(), "counts reset after a flush");
    }

    #[test]
    fn evicts_idle_series_but_keeps_gauges() {
        let agg = Aggregator::new(10, 10);
        agg.record(
            &API_PREDICT_LATENCY_MS,
            Value::Sample(1.5),
            &[Tag::rpc("QuotePrice")],
        )
        .ok();
        agg.record(&MODEL_FEATURE_DRIFT_PSI, Value::Gauge(0.3), &[Tag::model("risk")])
            .ok();
        assert_eq!(agg.series(), 2);
        assert_eq!(agg.buffered_samples(), 1);
        for _ in 0..=IDLE_FLUSHES_BEFORE_EVICTION {
            drain(&agg);
        }
        assert_eq!(agg.series(), 1);
        assert_eq!(agg.buffered_samples(), 0);
        assert!(matches!(drain(&agg)[0].value, SnapshotValue::Gauge(v) if v == 0.3));
    }

    #[test]
    fn a_removed_gauge_is_no_longer_sent() {
        let agg = Aggregator::new(10, 10);
        let (one, two) = ([Tag::model("risk")], [Tag::model("surge")]);
        agg.record(&MODEL_FEATURE_DRIFT_PSI, Value::Gauge(0.3), &one).ok();
        agg.record(&MODEL_FEATURE_DRIFT_PSI, Value::Gauge(0.1), &two).ok();
        assert!(agg.remove_gauge(&MODEL_FEATURE_DRIFT_PSI, &one));
        assert!(!agg.remove_gauge(&MODEL_FEATURE_DRIFT_PSI, &one), "already gone");
        assert_eq!(agg.series(), 1);
        let out = drain(&agg);
        assert_eq!(out.len(), 1);
        assert_eq!(&*out[0].tags, "model:surge");
        // A count of the same name and tags is not a gauge: left alone.
        agg.record(&API_PREDICT_REQUESTS, Value::Count(1), &[Tag::rpc("QuotePrice")])
            .ok();
        assert!(!agg.remove_gauge(&API_PREDICT_REQUESTS, &[Tag::rpc("QuotePrice")]));
    }

    #[test]
    fn enforces_caps_and_rejects_bad_values() {
        let agg = Aggregator::new(2, 3);
        for model in ["a", "b"] {
            assert!(
                agg.record(&API_PREDICT_LATENCY_MS, Value::Sample(1.0), &[Tag::rpc(model)])
                    .is_ok()
            );
        }
        let third = agg.record(&API_PREDICT_LATENCY_MS, Value::Sample(1.0), &[Tag::rpc("c")]);
        assert_eq!(third, Err(DropReason::SeriesLimit));
        assert!(
            agg.record(&API_PREDICT_LATENCY_MS, Value::Sample(2.0), &[Tag::rpc("a")])
                .is_ok()
        );
        let over = agg.record(&API_PREDICT_LATENCY_MS, Value::Sample(3.0), &[Tag::rpc("a")]);
        assert_eq!(over, Err(DropReason::SampleLimit));
        let nan = agg.record(&API_PREDICT_LATENCY_MS, Value::Sample(f64::NAN), &[]);
        assert_eq!(nan, Err(DropReason::InvalidValue));
    }

    #[test]
    fn a_series_recorded_on_several_threads_is_sent_once_with_every_value() {
        let agg = Aggregator::new(100, 1000);
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let agg = &agg;
                scope.spawn(move || {
                    for i in 0..10 {
                        let tags = [Tag::rpc("QuotePrice"), Tag::grpc_status(tonic::Code::Ok)];
                        agg.record(&API_PREDICT_REQUESTS, Value::Count(1), &tags).unwrap();
                        let sample = f64::from(thread * 100 + i);
                        agg.record(
                            &API_PREDICT_LATENCY_MS,
                            Value::Sample(sample),
                            &[Tag::rpc("QuotePrice")],
                        )
                        .unwrap();
                    }
                    agg.record(
                        &MODEL_FEATURE_DRIFT_PSI,
                        Value::Gauge(f64::from(thread)),
                        &[Tag::model("risk")],
                    )
                    .unwrap();
                });
            }
        });
        assert_eq!(agg.buffered_samples(), 40);
        let out = drain(&agg);
        assert_eq!(out.len(), 3, "one snapshot a series: {out:?}");
        for snapshot in &out {
            match &snapshot.value {
                SnapshotValue::Count(n) => assert_eq!(*n, 40),
                SnapshotValue::Samples(samples) => {
                    let mut samples = samples.clone();
                    samples.sort_by(f64::total_cmp);
                    let every: Vec<f64> = (0..4)
                        .flat_map(|t| (0..10).map(move |i| f64::from(t * 100 + i)))
                        .collect();
                    assert_eq!(samples, every);
                }
                SnapshotValue::Gauge(v) => assert!((0.0..4.0).contains(v), "one of the values set"),
            }
        }
        assert_eq!(agg.buffered_samples(), 0);
    }

    #[test]
    fn the_sample_bound_holds_across_threads_and_frees_at_a_flush() {
        const BOUND: usize = 1000;
        const THREADS: usize = 4;
        let agg = Aggregator::new(100, BOUND);
        let accepted = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    for _ in 0..400 {
                        if agg
                            .record(
                                &API_PREDICT_LATENCY_MS,
                                Value::Sample(1.0),
                                &[Tag::rpc("QuotePrice")],
                            )
                            .is_ok()
                        {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let accepted = accepted.into_inner();
        assert!(
            accepted <= BOUND,
            "{accepted} samples buffered past the bound of {BOUND}"
        );
        // Room the other threads took and left unused counts against the bound until the flush.
        let least = BOUND - (THREADS - 1) * (SAMPLE_CREDITS - 1);
        assert!(
            accepted >= least,
            "{accepted} samples buffered, fewer than {least}"
        );
        assert_eq!(agg.buffered_samples(), accepted);
        let sent: usize = drain(&agg)
            .iter()
            .map(|s| match &s.value {
                SnapshotValue::Samples(samples) => samples.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(sent, accepted);
        for _ in 0..BOUND {
            agg.record(
                &API_PREDICT_LATENCY_MS,
                Value::Sample(1.0),
                &[Tag::rpc("QuotePrice")],
            )
            .expect("the flush gave the room back");
        }
    }

    #[test]
    fn sanitizes_tag_values() {
        let mut out = String::new();
        push_sanitized(&mut out, "a,b|c#d\ne f:g/h.i-j");
        assert_eq!(out, "a_b_c_d_e_f:g/h.i-j");
    }
}
