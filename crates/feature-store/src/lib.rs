//! Everything about Feast's online store in Redis, for the feature-service (and anyone serving or filling
//! that store): the layout Feast's Python SDK writes ([`layout`]), the feature [`Registry`], an
//! [`OnlineStore`] that answers `features.v1` `GetOnlineFeatures` requests from Redis (standalone, TLS or
//! cluster, behind an in-process TTL cache) or from an embedded snapshot, and [`materialize()`], which
//! writes CSV rows into Redis exactly as `feast materialize` would.
//!
//! - [`OnlineStore::open`] + [`StoreConfig`]: Redis when a URL is given (connected in the background, so
//!   a Redis that is down at start-up is no error; [`OnlineStore::wait_connected`]), else the bundled
//!   snapshot.
//! - [`OnlineStore::check_project_keys`]: whether Redis holds any key of the project at all (a bounded
//!   `SCAN`), reported once as `features.project_keys_found` and, when it holds none, a warning.
//! - [`OnlineStore::get_online_features`]: one Redis round trip per request (per primary in a cluster,
//!   so that a lost primary costs only the keys in its slots); per value a status
//!   (PRESENT, NOT_FOUND, OUTSIDE_MAX_AGE, NULL_VALUE, INVALID, or UNAVAILABLE when Redis cannot be read
//!   and the cache, stale rows included, has nothing) and the event time.
//! - [`RedisConfig`] + [`RedisTls`]: URL (AUTH in its user info), timeouts, pool, TLS trust and client
//!   certificate; [`CacheConfig`]: TTL, size and the stale-if-error window that rides out Redis outages.
//! - [`RedisConnection`]: the Redis connection under the store, for any crate that keeps data in Redis:
//!   [`RedisConnection::open`] returns at once (only a bad URL or TLS files fail), the pool connects and
//!   reconnects in the background logging failures at most once a second, and
//!   [`RedisConnection::client`] hands out a connected client or fails at once with [`Error::Unavailable`].
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
mod redact;
mod registry;
mod request;
mod store;
mod value_type;

pub use csv_rows::{CsvFile, Record, encode_record, latest_per_entity, read_records, rebase_timestamps};
pub use error::{Error, RequestError};
pub use materialize::{JOB as MATERIALIZE_JOB, MaterializeOptions, MaterializeReport, materialize};
pub use redact::redact_url;
pub use registry::{BUNDLED_REGISTRY, EVENT_TIMESTAMP_COLUMN, Entity, Feature, FeatureView, Registry};
pub use request::{MAX_ENTITY_ROWS, MAX_FEATURE_REFS, MAX_VALUES};
pub use store::{
    BackendKind, CacheConfig, CacheObserver, CacheStats, OnlineStore, ProjectKeys, ReadStrategy, RedisConfig,
    RedisConnection, RedisTls, StoreConfig,
};
pub use value_type::ValueType;
