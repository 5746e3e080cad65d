//! Helpers shared by the integration tests: tiny CSV inputs, requests, stores.
#![allow(dead_code)]

pub mod logs;

use std::time::Duration;

use feature_store::{CacheConfig, CsvFile, OnlineStore, RedisConfig, Registry, StoreConfig};
use proto::feast::types::Value;
use proto::feast::types::value::Val;
use proto::features::v1::{FieldStatus, GetOnlineFeaturesResponse};

/// Small inputs for all four views. Relative to the newest row (zone_demand z-1 at 12:00:00), `c-stale`'s
/// profile is 8 days old (max age 7 days) and `z-stale`'s demand 2 hours old (max age 1 hour).
pub fn tiny_csvs() -> Vec<CsvFile> {
    vec![
        CsvFile::new(
            "customer_profile.csv",
            "customer_profile",
            "customer_id,event_timestamp,account_age_days,lifetime_bookings,cancellation_rate,avg_booking_value,payment_failures_90d,chargebacks_1y\n\
             c-1,2025-06-10T11:00:00Z,100,10,0.1,20.5,0,0\n\
             c-1,2025-06-09T11:00:00Z,99,9,0.9,1.0,9,9\n\
             c-2,2025-06-10T10:00:00Z,5,1,,12.25,1,\n\
             c-stale,2025-06-02T12:00:00Z,700,70,0.5,30.0,2,1\n",
        ),
        CsvFile::new(
            "customer_activity.csv",
            "customer_activity",
            "customer_id,event_timestamp,sessions_7d,bookings_30d,days_since_last_booking\n\
             c-1,2025-06-10T11:30:00Z,7,3,2.5\n",
        ),
        CsvFile::new(
            "zone_demand.csv",
            "zone_demand",
            "zone_id,event_timestamp,open_requests_15m,available_drivers,demand_supply_ratio,avg_wait_minutes,cancellations_1h\n\
             z-1,2025-06-10T12:00:00Z,40,20,2.0,6.5,3\n\
             z-stale,2025-06-10T10:00:00Z,1,1,1.0,1.0,0\n",
        ),
        CsvFile::new(
            "zone_weather.csv",
            "zone_weather",
            "zone_id,event_timestamp,precipitation_mm,temperature_c\n\
             z-1,2025-06-10T11:45:00Z,0.0,21.5\n",
        ),
    ]
}

pub fn registry() -> Registry {
    Registry::bundled().expect("bundled registry")
}

pub fn int64(i: i64) -> Value {
    Value {
        val: Some(Val::Int64Val(i)),
    }
}

pub fn double(d: f64) -> Value {
    Value {
        val: Some(Val::DoubleVal(d)),
    }
}

/// `(value, status)` of feature `f`, entity row `row`.
pub fn cell(response: &GetOnlineFeaturesResponse, f: usize, row: usize) -> (Value, FieldStatus) {
    let vector = &response.results[f];
    (
        vector.values[row].clone(),
        FieldStatus::try_from(vector.statuses[row]).expect("known status"),
    )
}

pub fn redis_config(url: &str) -> RedisConfig {
    let mut config = RedisConfig::new(url);
    config.timeout = Duration::from_secs(2);
    config
}

pub async fn redis_store(url: &str, cache: CacheConfig) -> OnlineStore {
    let mut config = StoreConfig::new(registry());
    config.redis = Some(redis_config(url));
    config.cache = cache;
    open_connected(config).await
}

/// Opens the store and waits for its first Redis connection (opening alone does not wait).
pub async fn open_connected(config: StoreConfig) -> OnlineStore {
    let store = OnlineStore::open(config).await.expect("store opens");
    tokio::time::timeout(Duration::from_secs(10), store.wait_connected())
        .await
        .expect("connected to Redis within 10 s");
    store
}

/// A cache that keeps rows fresh for `ttl` and stale for `stale_if_error` more.
pub fn cache(ttl: Duration, stale_if_error: Duration) -> CacheConfig {
    CacheConfig {
        ttl,
        max_bytes: 1 << 20,
        stale_if_error,
    }
}

pub fn no_cache() -> CacheConfig {
    CacheConfig {
        ttl: Duration::ZERO,
        ..CacheConfig::default()
    }
}

/// Materializes the tiny CSVs into `url`, timestamps rebased to now.
pub async fn fill(url: &str) {
    let options = feature_store::MaterializeOptions {
        rebase_timestamps: true,
        ..Default::default()
    };
    feature_store::materialize(&redis_config(url), &registry(), &tiny_csvs(), &options)
        .await
        .expect("materialize");
}

// Not every test binary that includes this module uses it (as with the module's dead code).
#[allow(unused_imports)]
pub use testkit::features::{online_request as request, string_value as string};
#[allow(unused_imports)]
pub use testkit::statsd::StatsdAgent;

/// The service the metrics of these tests are tagged with.
pub const SERVICE: &str = "feature-store";

/// The value part of the line of `metric` with exactly `tags` (see [`testkit::statsd::value_of`]).
pub fn value_of(lines: &[String], metric: &str, kind: &str, tags: &str) -> Option<String> {
    testkit::statsd::value_of(lines, SERVICE, metric, kind, tags)
}
