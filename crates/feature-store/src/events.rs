//! The feature store's domain events: small structs whose `emit` writes the log line and the metric
//! together (see `telemetry::events`). The batch job's own event is [`telemetry::events::BatchJobFinished`].
//!
//! Redis trouble is counted every time but logged through a [`LogLimiter`]: an outage fails every request
//! (and every reconnection attempt), and one line per failure would bury the logs and cost more than the
//! requests themselves. Each line that passes says how many were held back since the previous one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use telemetry::catalog::REDIS_COMMAND_ERRORS;
use telemetry::{Metrics, Tag};

use crate::Error;

/// How often a Redis failure may be logged, per Redis backend (one per process in the service).
pub(crate) const REDIS_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Lets one line through per interval and counts the ones held back. Lock-free: it sits on the request
/// path of every failing read.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    interval_ms: u64,
    origin: Instant,
    /// Milliseconds since `origin` before which no line passes.
    next_ms: AtomicU64,
    held_back: AtomicU64,
}

impl LogLimiter {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            origin: Instant::now(),
            next_ms: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one let through)` when this line may be written.
    pub fn admit(&self) -> Option<u64> {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        let due = now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(self.interval_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if due {
            Some(self.held_back.swap(0, Ordering::Relaxed))
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// A Redis pipeline failed (or could not be sent): `redis.command.errors{command,error_type}` always, and
/// an error log line with the redacted URL when the limiter lets it through.
#[derive(Debug)]
pub(crate) struct RedisCommandFailed<'a> {
    /// `HGETALL`, `HMGET` or `HSET`.
    pub command: &'static str,
    /// [`Error::error_type`]: `timeout`, `unavailable`, `reply`, `protocol`.
    pub error_type: &'static str,
    /// Commands (one per key) in the pipeline.
    pub keys: usize,
    /// The Redis URL, password already redacted.
    pub url: &'a str,
    pub error: &'a Error,
}

impl RedisCommandFailed<'_> {
    pub fn emit(&self, metrics: &Metrics, limiter: &LogLimiter) {
        metrics.incr(
            &REDIS_COMMAND_ERRORS,
            &[Tag::command(self.command), Tag::error_type(self.error_type)],
        );
        let Some(held_back) = limiter.admit() else {
            return;
        };
        tracing::error!(
            redis.command = self.command,
            error_type = self.error_type,
            redis.keys = self.keys,
            redis.url = self.url,
            error = %self.error,
            // Failures (commands or connection attempts) not logged since the previous line.
            held_back,
            "Redis command failed"
        );
    }
}

/// A connection (or reconnection) attempt failed, or an open connection broke. Logged only (through the
/// limiter): the failed reads it causes are what `redis.command.errors` counts.
#[derive(Debug)]
pub(crate) struct RedisConnectionFailed<'a> {
    /// `auth`, `tls`, `io`, `timeout`, `config`, `connect` (see `store::redis::connection`).
    pub error_type: &'static str,
    /// The Redis URL, password already redacted.
    pub url: &'a str,
    /// The node, when the error is about one.
    pub server: Option<&'a str>,
    pub error: &'a fred::error::Error,
}

impl RedisConnectionFailed<'_> {
    pub fn emit(&self, limiter: &LogLimiter) {
        let Some(held_back) = limiter.admit() else {
            return;
        };
        tracing::error!(
            error_type = self.error_type,
            redis.url = self.url,
            redis.server = self.server,
            error = %self.error,
            held_back,
            "Redis connection failed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_lets_one_line_through_per_interval_and_counts_the_rest() {
        let limiter = LogLimiter::new(Duration::from_millis(50));
        assert_eq!(limiter.admit(), Some(0));
        assert_eq!(limiter.admit(), None);
        assert_eq!(limiter.admit(), None);
        // Waiting out the interval is the behaviour under test.
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(limiter.admit(), Some(2));
        assert_eq!(limiter.admit(), None);
    }
}
