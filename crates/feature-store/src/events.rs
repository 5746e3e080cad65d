//! The feature store's domain events: small structs whose `emit` writes the log line and the metric
//! together (see `telemetry::events`). The batch job's own event is [`telemetry::events::BatchJobFinished`].
//!
//! Redis trouble is counted every time but logged through a [`Throttle`]: an outage fails every request
//! (and every reconnection attempt), and one line per failure would bury the logs and cost more than the
//! requests themselves. Each line that passes says how many were held back since the previous one.

use std::time::Duration;

use telemetry::catalog::{FEATURES_PROJECT_KEYS_FOUND, REDIS_COMMAND_ERRORS};
use telemetry::logs::Throttle;
use telemetry::{Metrics, Tag};

use crate::Error;
use crate::store::redis::scan::ProjectKeys;

/// How often a Redis failure may be logged, per [`crate::RedisConnection`] (one per process in the service).
pub(crate) const REDIS_LOG_INTERVAL: Duration = Duration::from_secs(1);

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
    pub fn emit(&self, metrics: &Metrics, limiter: &Throttle) {
        metrics.incr(
            &REDIS_COMMAND_ERRORS,
            &[Tag::command(self.command), Tag::error_type(self.error_type)],
        );
        let Some(held_back) = limiter.ready() else {
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
    pub fn emit(&self, limiter: &Throttle) {
        let Some(held_back) = limiter.ready() else {
            return;
        };
        tracing::error!(
            alert = telemetry::logs::CRITICAL,
            error_type = self.error_type,
            redis.url = self.url,
            redis.server = self.server,
            error = %self.error,
            held_back,
            "Redis connection failed"
        );
    }
}

/// What the walk of Redis at start found of the Feast project's keys: `features.project_keys_found` 1 or
/// 0 (a gauge, so it stays visible while the process lives), and a warning when there are none, since
/// every feature will then be NOT_FOUND. Nothing is sent when the walk stopped at its bound.
#[derive(Debug)]
pub(crate) struct ProjectKeysChecked<'a> {
    pub project: &'a str,
    pub keys: ProjectKeys,
}

impl ProjectKeysChecked<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        let project = self.project;
        match self.keys {
            ProjectKeys::Found => {
                metrics.gauge(&FEATURES_PROJECT_KEYS_FOUND, 1.0, &[]);
                tracing::info!(project, "Redis holds keys of the Feast project");
            }
            ProjectKeys::Missing => {
                metrics.gauge(&FEATURES_PROJECT_KEYS_FOUND, 0.0, &[]);
                tracing::warn!(
                    project,
                    "Redis holds no key of the Feast project: every feature will be missing (NOT_FOUND) \
                     until it is materialized; check FEAST_PROJECT"
                );
            }
            ProjectKeys::NotWithinBound => tracing::info!(
                project,
                "no key of the Feast project in the first million keys of Redis; the rest was not walked"
            ),
        }
    }
}
