//! HGETALL vs HMGET, measured through the real read path (`OnlineStore`, cache off) against a real
//! redis-server at concurrency 1. Ignored by default; run in release:
//!
//! `cargo test -p feature-store --release --test read_strategy -- --ignored --nocapture`
//!
//! The figures chosen from are recorded in `src/store/redis.rs`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use feature_store::{CacheConfig, CsvFile, MaterializeOptions, OnlineStore, ReadStrategy, StoreConfig};
use testkit::redis::RedisServer;

const CUSTOMERS: usize = 1000;

fn files() -> Vec<CsvFile> {
    let mut profile = String::from(
        "customer_id,event_timestamp,account_age_days,lifetime_bookings,cancellation_rate,avg_booking_value,payment_failures_90d,chargebacks_1y\n",
    );
    let mut activity =
        String::from("customer_id,event_timestamp,sessions_7d,bookings_30d,days_since_last_booking\n");
    for i in 0..CUSTOMERS {
        profile.push_str(&format!(
            "c-{i},2025-06-10T12:00:00Z,{i},{},0.{i},{i}.5,1,0\n",
            i * 3
        ));
        activity.push_str(&format!(
            "c-{i},2025-06-10T12:00:00Z,{},{},{i}.25\n",
            i % 20,
            i % 7
        ));
    }
    vec![
        CsvFile::new("profile.csv", "customer_profile", profile),
        CsvFile::new("activity.csv", "customer_activity", activity),
    ]
}

const FEATURES: &[&str] = &[
    "customer_profile:account_age_days",
    "customer_profile:lifetime_bookings",
    "customer_profile:cancellation_rate",
    "customer_profile:avg_booking_value",
    "customer_profile:payment_failures_90d",
    "customer_profile:chargebacks_1y",
    "customer_activity:sessions_7d",
    "customer_activity:bookings_30d",
    "customer_activity:days_since_last_booking",
];

async fn measure(store: &OnlineStore, rows: usize, iterations: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(iterations);
    for n in 0..iterations {
        let ids: Vec<String> = (0..rows)
            .map(|r| format!("c-{}", (n * 37 + r * 101) % CUSTOMERS))
            .collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let req = request(FEATURES, &[("customer_id", &ids)]);
        let started = Instant::now();
        store.get_online_features(&req, None).await.expect("read");
        samples.push(started.elapsed());
    }
    samples.sort();
    samples
}

fn summary(samples: &[Duration]) -> String {
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    format!(
        "p50 {:>7.1?}  p99 {:>7.1?}  mean {:>7.1?}",
        at(0.5),
        at(0.99),
        mean
    )
}

/// The commands alone, straight through fred: one pipeline per request, `keys` keys.
async fn measure_raw(url: &str, keys: usize, hmget: bool, iterations: usize) -> Vec<Duration> {
    use fred::prelude::*;
    let client = Builder::from_config(Config::from_url(url).expect("url"))
        .with_connection_config(|c| {
            c.tcp = TcpConfig {
                nodelay: Some(true),
                ..TcpConfig::default()
            }
        })
        .build()
        .expect("client");
    client.init().await.expect("connect");
    let registry = registry();
    let fields: Vec<bytes::Bytes> = ["customer_profile", "customer_activity"]
        .iter()
        .flat_map(|v| {
            let view = registry.view(v).expect("view");
            std::iter::once(view.timestamp_field.clone()).chain(view.features.iter().map(|f| f.field.clone()))
        })
        .collect();
    let mut samples = Vec::with_capacity(iterations);
    for n in 0..iterations {
        let pipeline = client.pipeline();
        for r in 0..keys {
            let id = string(&format!("c-{}", (n * 37 + r * 101) % CUSTOMERS));
            let key = feature_store::layout::serialize_entity_key(&[("customer_id", &id)]).expect("key");
            let key = Key::from(feature_store::layout::redis_key(&key, "pricing"));
            let queued: Result<(), Error> = if hmget {
                pipeline
                    .hmget(key, fields.iter().cloned().map(Key::from).collect::<Vec<_>>())
                    .await
            } else {
                pipeline.hgetall(key).await
            };
            queued.expect("queued");
        }
        let started = Instant::now();
        let _: Vec<fred::types::Value> = pipeline.all().await.expect("pipeline");
        samples.push(started.elapsed());
    }
    samples.sort();
    samples
}

#[tokio::test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
async fn hgetall_vs_hmget() {
    let server = RedisServer::start().expect("redis-server");
    let config = redis_config(&server.url());
    feature_store::materialize(&config, &registry(), &files(), &MaterializeOptions::default())
        .await
        .expect("materialize");
    for rows in [1, 20] {
        for round in 0..2 {
            for strategy in [ReadStrategy::HashGetAll, ReadStrategy::HashGetFields] {
                let mut redis = config.clone();
                redis.read_strategy = strategy;
                redis.pool_size = 1;
                let mut store_config = StoreConfig::new(registry());
                store_config.redis = Some(redis);
                store_config.cache = CacheConfig {
                    ttl: Duration::ZERO,
                    ..CacheConfig::default()
                };
                let store = OnlineStore::open(store_config).await.expect("store");
                store.wait_connected().await;
                measure(&store, rows, 500).await; // warm-up
                let samples = measure(&store, rows, 5_000).await;
                println!(
                    "store round {round} rows {rows:>2} {strategy:<14?} {}",
                    summary(&samples)
                );
            }
            for hmget in [false, true] {
                measure_raw(&server.url(), rows, hmget, 500).await;
                let samples = measure_raw(&server.url(), rows, hmget, 5_000).await;
                let name = if hmget { "HMGET (11)" } else { "HGETALL" };
                println!(
                    "fred  round {round} rows {rows:>2} {name:<14} {}",
                    summary(&samples)
                );
            }
        }
    }
}
