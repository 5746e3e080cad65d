//! Helpers shared by the integration tests: tiny CSV inputs, requests, stores.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::Duration;

use feature_store::{CacheConfig, CsvFile, OnlineStore, RedisConfig, Registry, StoreConfig};
use proto::feast::types::value::Val;
use proto::feast::types::{RepeatedValue, Value};
use proto::features::v1::{FieldStatus, GetOnlineFeaturesRequest, GetOnlineFeaturesResponse};

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

pub fn string(s: &str) -> Value {
    Value {
        val: Some(Val::StringVal(s.to_owned())),
    }
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

/// A request for `features` with string entity columns.
pub fn request(features: &[&str], entities: &[(&str, &[&str])]) -> GetOnlineFeaturesRequest {
    GetOnlineFeaturesRequest {
        features: features.iter().map(|f| (*f).to_owned()).collect(),
        entities: entities
            .iter()
            .map(|(k, ids)| {
                (
                    (*k).to_owned(),
                    RepeatedValue {
                        val: ids.iter().map(|id| string(id)).collect(),
                    },
                )
            })
            .collect::<HashMap<_, _>>(),
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
    OnlineStore::open(config).await.expect("store opens")
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

/// A stand-in for the Datadog agent's DogStatsD port: a UDP socket on 127.0.0.1:0 and a metrics sink
/// pointed at it, flushed only when a test asks.
pub struct StatsdAgent {
    socket: UdpSocket,
    pub metrics: telemetry::Metrics,
}

/// The unified service tags every line of a [`StatsdAgent`] ends with.
pub const SERVICE_TAGS: &str = "env:test,service:feature-store,version:0.0.0-test";

impl StatsdAgent {
    pub fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind test agent");
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("read timeout");
        let target = telemetry::DogStatsdUrl::Udp {
            host: "127.0.0.1".into(),
            port: socket.local_addr().expect("addr").port(),
        };
        let tags = telemetry::ServiceTags {
            env: "test".into(),
            service: "feature-store".into(),
            version: "0.0.0-test".into(),
        };
        let options = telemetry::MetricsOptions {
            flush_interval: Duration::from_secs(3600),
            ..telemetry::MetricsOptions::new(target, tags)
        };
        let metrics = telemetry::Metrics::start(options).expect("metrics sink");
        Self { socket, metrics }
    }

    /// Flushes the sink and returns every DogStatsD line received since the last call.
    pub fn lines(&self) -> Vec<String> {
        assert!(self.metrics.flush(Duration::from_secs(2)), "metrics flush");
        let mut lines = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = self.socket.recv(&mut buf) {
            let datagram = String::from_utf8_lossy(&buf[..n]).into_owned();
            lines.extend(datagram.lines().map(str::to_owned));
        }
        lines
    }
}

/// The value part of the line of `metric` (kind `c`, `g` or `d`) whose own tags are exactly `tags`.
pub fn value_of(lines: &[String], metric: &str, kind: &str, tags: &str) -> Option<String> {
    let tags = if tags.is_empty() {
        SERVICE_TAGS.to_owned()
    } else {
        format!("{tags},{SERVICE_TAGS}")
    };
    let suffix = format!("|{kind}|#{tags}");
    lines.iter().find_map(|line| {
        line.strip_prefix(metric)?
            .strip_prefix(':')?
            .strip_suffix(&suffix)
            .map(str::to_owned)
    })
}
