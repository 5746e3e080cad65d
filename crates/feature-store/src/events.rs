//! The feature store's domain events: small structs whose `emit` writes the log line and the metric
//! together (see `telemetry::events`). The batch job's own event is [`telemetry::events::BatchJobFinished`].

use telemetry::catalog::REDIS_COMMAND_ERRORS;
use telemetry::{Metrics, Tag};

use crate::Error;

/// A Redis pipeline failed (or could not be sent): `redis.command.errors{command,error_type}` and an
/// error log line with the redacted URL.
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
    pub fn emit(&self, metrics: &Metrics) {
        metrics.incr(
            &REDIS_COMMAND_ERRORS,
            &[Tag::command(self.command), Tag::error_type(self.error_type)],
        );
        tracing::error!(
            redis.command = self.command,
            error_type = self.error_type,
            redis.keys = self.keys,
            redis.url = self.url,
            error = %self.error,
            "Redis command failed"
        );
    }
}
