//! Domain events shared by several binaries: small structs whose `emit` writes the log line and the
//! metrics together, so the two never drift apart and a test can assert that the event happened.
//! Services define their own events the same way, next to their code, using [`crate::catalog`].
//!
//! Also [`ConversionWindow`], which computes `business.booking.conversion_rate` in process over a
//! rolling window.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::{
    Metrics,
    catalog::{
        BATCH_JOB_DURATION_S, BATCH_JOB_ROWS, BATCH_JOB_RUNS, BATCH_JOB_STATUS,
        BUSINESS_BOOKING_CONVERSION_RATE,
    },
    tags::{JobStatus, Tag},
};

/// A batch job (e.g. feature materialization) finished.
#[derive(Debug, Clone)]
pub struct BatchJobFinished<'a> {
    pub job: &'static str,
    pub status: JobStatus,
    pub duration: Duration,
    /// Rows written per feature view.
    pub rows: &'a [(&'a str, u64)],
    /// Why it failed, for the log line.
    pub error: Option<&'a str>,
}

impl BatchJobFinished<'_> {
    /// Emits to the global sink.
    pub fn emit(&self) {
        self.emit_to(Metrics::global());
    }

    /// `batch_job.runs`, `batch_job.status` (1 ok / 0 failed), `batch_job.duration_s`, `batch_job.rows`
    /// and one log line.
    pub fn emit_to(&self, metrics: &Metrics) {
        let job = Tag::job(self.job);
        metrics.incr(&BATCH_JOB_RUNS, &[job, Tag::job_status(self.status)]);
        let ok = self.status == JobStatus::Success;
        metrics.gauge(&BATCH_JOB_STATUS, if ok { 1.0 } else { 0.0 }, &[job]);
        metrics.distribution(&BATCH_JOB_DURATION_S, self.duration.as_secs_f64(), &[job]);
        let mut total = 0;
        for (view, rows) in self.rows {
            metrics.count(&BATCH_JOB_ROWS, *rows, &[job, Tag::feature_view(view)]);
            total += rows;
        }
        let duration_s = self.duration.as_secs_f64();
        match (ok, self.error) {
            (true, _) => tracing::info!(job = self.job, duration_s, rows = total, "batch job succeeded"),
            (false, error) => {
                tracing::error!(
                    job = self.job,
                    duration_s,
                    rows = total,
                    error = error.unwrap_or(""),
                    "batch job failed"
                )
            }
        }
    }
}

/// Bookings / outcomes per experiment variant over a rolling window, published as the
/// `business.booking.conversion_rate` gauge each time an outcome is recorded.
#[derive(Debug)]
pub struct ConversionWindow {
    bucket: Duration,
    variants: Mutex<HashMap<String, Ring>>,
}

/// Buckets per window: the rate moves in steps of 1/60 of the window.
const BUCKETS: usize = 60;
/// Variants tracked at most (experiment arms are few; this bounds memory if a caller misbehaves).
const MAX_VARIANTS: usize = 64;

#[derive(Debug)]
struct Ring {
    start: Instant,
    /// (bucket index since `start`, outcomes, bookings)
    buckets: [(u64, u64, u64); BUCKETS],
}

impl ConversionWindow {
    /// A window of `window` (e.g. one hour).
    pub fn new(window: Duration) -> Self {
        let bucket = (window / BUCKETS as u32).max(Duration::from_millis(1));
        Self {
            bucket,
            variants: Mutex::new(HashMap::new()),
        }
    }

    /// Records one outcome and publishes the variant's rate to `metrics`; returns the rate.
    pub fn record(&self, metrics: &Metrics, variant: &str, booked: bool) -> Option<f64> {
        let now = Instant::now();
        let mut variants = self.variants.lock().unwrap_or_else(PoisonError::into_inner);
        if !variants.contains_key(variant) && variants.len() >= MAX_VARIANTS {
            return None;
        }
        let ring = variants.entry(variant.to_owned()).or_insert_with(|| Ring {
            start: now,
            buckets: [(u64::MAX, 0, 0); BUCKETS],
        });
        let index = (now.duration_since(ring.start).as_nanos() / self.bucket.as_nanos().max(1)) as u64;
        let slot = &mut ring.buckets[(index % BUCKETS as u64) as usize];
        if slot.0 != index {
            *slot = (index, 0, 0);
        }
        slot.1 += 1;
        slot.2 += u64::from(booked);
        let oldest = index.saturating_sub(BUCKETS as u64 - 1);
        let (outcomes, bookings) = ring
            .buckets
            .iter()
            .filter(|(i, _, _)| *i != u64::MAX && *i >= oldest)
            .fold((0, 0), |(o, b), (_, outcomes, bookings)| {
                (o + outcomes, b + bookings)
            });
        drop(variants);
        let rate = bookings as f64 / outcomes.max(1) as f64;
        metrics.gauge(&BUSINESS_BOOKING_CONVERSION_RATE, rate, &[Tag::variant(variant)]);
        Some(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_rate_over_the_window() {
        let window = ConversionWindow::new(Duration::from_secs(3600));
        let metrics = Metrics::disabled();
        assert_eq!(window.record(&metrics, "a", true), Some(1.0));
        assert_eq!(window.record(&metrics, "a", false), Some(0.5));
        assert_eq!(window.record(&metrics, "b", false), Some(0.0));
        assert_eq!(window.record(&metrics, "a", true), Some(2.0 / 3.0));
    }

    #[test]
    fn old_buckets_leave_the_window() {
        let window = ConversionWindow::new(Duration::from_millis(60));
        let metrics = Metrics::disabled();
        window.record(&metrics, "a", true);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(window.record(&metrics, "a", false), Some(0.0));
    }
}
