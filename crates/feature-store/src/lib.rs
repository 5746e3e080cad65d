//! Everything about Feast's online store in Redis, for the feature-service (and anyone serving or filling
//! that store): the layout Feast's Python SDK writes ([`layout`]), the feature [`Registry`], an
//! [`OnlineStore`] that answers `features.v1` `GetOnlineFeatures` requests from Redis (standalone, TLS or
//! cluster, behind an in-process TTL cache) or from an embedded snapshot, and [`materialize`], which
//! writes CSV rows into Redis exactly as `feast materialize` would.
//!
//! - [`OnlineStore::open`] + [`StoreConfig`]: Redis when a URL is given (connected in the background, so
//!   a Redis that is down at start-up is no error; [`OnlineStore::wait_connected`]), else the bundled
//!   snapshot.
//! - [`OnlineStore::get_online_features`]: one Redis round trip per request; per value a status
//!   (PRESENT, NOT_FOUND, OUTSIDE_MAX_AGE, NULL_VALUE, INVALID, or UNAVAILABLE when Redis cannot be read
//!   and the cache, stale rows included, has nothing) and the event time.
//! - [`RedisConfig`] + [`RedisTls`]: URL (AUTH in its user info), timeouts, pool, TLS trust and client
//!   certificate; [`CacheConfig`]: TTL, size and the stale-if-error window that rides out Redis outages.
//! - [`Error`] / [`RequestError`]: what went wrong, with request errors naming the field at fault.
//!
//! Telemetry (through the `telemetry` crate, to the [`telemetry::Metrics`] given in [`StoreConfig`] and
//! [`MaterializeOptions`]): a `redis.query` span per pipelined round trip under the current OpenTelemetry
//! context, `redis.command.latency_ms` / `redis.command.errors`, `cache.feast.hit|miss|stale_served`,
//! `features.lookups` and `features.staleness_s` per feature view, and `batch_job.*` for each
//! materialization; an answer degraded by a Redis outage marks the current span (`features.degraded`,
//! `features.stale_rows`, `features.unavailable_rows`). Redis failures are logged at most once a second
//! per backend. No metric carries an entity id.
#![forbid(unsafe_code)]
// No request may reach a panic: failures are values, mapped to a status.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod csv_rows;
mod error;
mod events;
pub mod layout;
mod materialize;
mod registry;
mod request;
mod store;

pub use csv_rows::{CsvFile, Record, encode_record, latest_per_entity, read_records, rebase_timestamps};
pub use error::{Error, RequestError};
pub use materialize::{JOB as MATERIALIZE_JOB, MaterializeOptions, MaterializeReport, materialize};
pub use registry::{BUNDLED_REGISTRY, Entity, Feature, FeatureView, Registry, ValueType};
pub use request::MAX_ENTITY_ROWS;
pub use store::{
    BackendKind, CacheConfig, CacheObserver, CacheStats, OnlineStore, ReadStrategy, RedisConfig, RedisTls,
    StoreConfig,
};

/// The CSV column holding a row's event time.
pub const EVENT_TIMESTAMP_COLUMN: &str = "event_timestamp";

/// `url` with the password of its user info replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user_info = &rest[..at];
    let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
    // A URL with only a user part (`redis://secret@host`) is how some clients pass a password alone.
    let redacted = if user_info.contains(':') {
        format!("{user}:***")
    } else {
        "***".to_owned()
    };
    format!("{}{redacted}{}", &url[..scheme_end], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact_url("rediss://user:p@ss@host:6380"),
            "rediss://user:***@host:6380"
        );
        assert_eq!(redact_url("redis://token@host"), "redis://***@host");
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            redact_url("redis-cluster://u:pw@a:1?node=b:2&node=c:3"),
            "redis-cluster://u:***@a:1?node=b:2&node=c:3"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
