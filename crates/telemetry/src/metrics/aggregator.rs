//! In-process aggregation: the only work on the request path. A recorded value lands in a sharded
//! hash table keyed by (metric, tag values): counters are summed, gauges keep the last value, and
//! distribution samples are appended. Looking a series up neither allocates nor formats anything; a
//! series is allocated (and its tags rendered) once, the first time it is seen.
//!
//! Everything is bounded: at most `max_series` distinct series and `max_samples` buffered samples;
//! past either, the value is dropped and the caller counts it. Idle series are evicted after a few
//! empty flushes; gauges stay (they describe a state) and are re-sent every flush.

use std::{
    hash::{BuildHasher, Hash, Hasher},
    sync::{
        Arc, Mutex, PoisonError,
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

pub(crate) struct Aggregator {
    shards: Box<[Mutex<HashTable<Series>>]>,
    hasher: DefaultHashBuilder,
    series: AtomicUsize,
    samples: AtomicUsize,
    max_series: usize,
    max_samples: usize,
}

impl Aggregator {
    pub(crate) fn new(max_series: usize, max_samples: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
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
        let shard = &self.shards[(hash >> 32) as usize & (SHARDS - 1)];
        let mut table = shard.lock().unwrap_or_else(PoisonError::into_inner);
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
                if self.samples.fetch_add(1, Ordering::Relaxed) >= self.max_samples {
                    self.samples.fetch_sub(1, Ordering::Relaxed);
                    return Err(DropReason::SampleLimit);
                }
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
        let shard = &self.shards[(hash >> 32) as usize & (SHARDS - 1)];
        let mut table = shard.lock().unwrap_or_else(PoisonError::into_inner);
        match table.find_entry(hash, |s| s.matches(metric, slots)) {
            Ok(entry) if matches!(entry.get().state, State::Gauge(_)) => {
                entry.remove();
                self.series.fetch_sub(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    fn hash(&self, metric: &'static MetricDef, slots: &[Option<&str>]) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        std::ptr::hash(metric, &mut hasher);
        slots.hash(&mut hasher);
        hasher.finish()
    }

    /// Moves out everything to send, resets counters, evicts idle series.
    pub(crate) fn drain(&self, out: &mut Vec<Snapshot>) {
        let mut evicted = 0;
        let mut taken_samples = 0;
        for shard in self.shards.iter() {
            let mut table = shard.lock().unwrap_or_else(PoisonError::into_inner);
            table.retain(|series| {
                let value = match &mut series.state {
                    State::Gauge(v) => Some(SnapshotValue::Gauge(*v)),
                    State::Count(0) => None,
                    State::Count(sum) => Some(SnapshotValue::Count(std::mem::take(sum))),
                    State::Samples(samples) if samples.is_empty() => None,
                    State::Samples(samples) => {
                        let next = Vec::with_capacity(samples.len().min(64));
                        let taken = std::mem::replace(samples, next);
                        taken_samples += taken.len();
                        Some(SnapshotValue::Samples(taken))
                    }
                };
                let keep = match value {
                    Some(value) => {
                        let is_gauge = matches!(value, SnapshotValue::Gauge(_));
                        out.push(Snapshot {
                            metric: series.metric,
                            tags: series.rendered.clone(),
                            value,
                        });
                        series.idle_flushes = if is_gauge { 0 } else { series.idle_flushes };
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
        self.samples.fetch_sub(taken_samples, Ordering::Relaxed);
    }

    pub(crate) fn series(&self) -> usize {
        self.series.load(Ordering::Relaxed)
    }

    pub(crate) fn buffered_samples(&self) -> usize {
        self.samples.load(Ordering::Relaxed)
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
    fn sanitizes_tag_values() {
        let mut out = String::new();
        push_sanitized(&mut out, "a,b|c#d\ne f:g/h.i-j");
        assert_eq!(out, "a_b_c_d_e_f:g/h.i-j");
    }
}
