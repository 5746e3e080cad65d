//! HGETALL vs HMGET against a real redis-server at concurrency 1, through the real read path
//! (`OnlineStore`, cache off, one connection) and as the bare commands through fred (one pipeline per
//! request), for 1 and 20 entity rows: the figures behind `ReadStrategy`'s default (recorded in
//! `src/store/redis/mod.rs`).
//!
//! `cargo bench -p feature-store --bench read_strategy` (needs `redis-server`, as the tests do).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use feature_store::{
    CacheConfig, CsvFile, MaterializeOptions, OnlineStore, ReadStrategy, RedisConfig, Registry, StoreConfig,
};
use fred::prelude::*;
use testkit::features::{online_request, string_value};
use testkit::redis::RedisServer;

const CUSTOMERS: usize = 1000;
const ROWS: [usize; 2] = [1, 20];

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

/// `CUSTOMERS` customers in the two customer views.
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

/// The ids of request `n` with `rows` rows, spread over the customers.
fn ids(n: u64, rows: usize) -> Vec<String> {
    (0..rows)
        .map(|r| format!("c-{}", (n as usize * 37 + r * 101) % CUSTOMERS))
        .collect()
}

fn registry() -> Registry {
    Registry::bundled().expect("bundled registry")
}

async fn store(url: &str, strategy: ReadStrategy) -> OnlineStore {
    let mut redis = RedisConfig::new(url);
    redis.read_strategy = strategy;
    redis.pool_size = 1;
    let mut config = StoreConfig::new(registry());
    config.redis = Some(redis);
    config.cache = CacheConfig {
        ttl: Duration::ZERO,
        ..CacheConfig::default()
    };
    let store = OnlineStore::open(config).await.expect("store");
    store.wait_connected().await;
    store
}

async fn fred_client(url: &str) -> Client {
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
    client
}

/// One pipeline of HGETALL (or HMGET of the two views' fields) for the keys of `ids`.
async fn raw_read(client: &Client, ids: &[String], fields: Option<&[bytes::Bytes]>) {
    let pipeline = client.pipeline();
    for id in ids {
        let value = string_value(id);
        let key = feature_store::layout::serialize_entity_key(&[("customer_id", &value)]).expect("key");
        let key = Key::from(feature_store::layout::redis_key(&key, "pricing"));
        let queued: Result<(), Error> = match fields {
            Some(fields) => {
                pipeline
                    .hmget(key, fields.iter().cloned().map(Key::from).collect::<Vec<_>>())
                    .await
            }
            None => pipeline.hgetall(key).await,
        };
        queued.expect("queued");
    }
    let _: Vec<fred::types::Value> = black_box(pipeline.all().await.expect("pipeline"));
}

fn bench_read_strategy(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = RedisServer::start().expect("redis-server");
    let url = server.url();
    runtime
        .block_on(feature_store::materialize(
            &RedisConfig::new(&url),
            &registry(),
            &files(),
            &MaterializeOptions::default(),
        ))
        .expect("materialize");

    let mut group = c.benchmark_group("store");
    for rows in ROWS {
        group.throughput(Throughput::Elements(rows as u64));
        for strategy in [ReadStrategy::HashGetAll, ReadStrategy::HashGetFields] {
            let store = runtime.block_on(store(&url, strategy));
            let id = BenchmarkId::new(format!("{strategy:?}"), rows);
            group.bench_function(id, |b| {
                b.iter_custom(|iterations| {
                    runtime.block_on(async {
                        let mut spent = Duration::ZERO;
                        for n in 0..iterations {
                            let ids = ids(n, rows);
                            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                            let request = online_request(FEATURES, &[("customer_id", &ids)]);
                            let started = Instant::now();
                            black_box(store.get_online_features(request, None).await.expect("read"));
                            spent += started.elapsed();
                        }
                        spent
                    })
                });
            });
        }
    }
    group.finish();

    let client = runtime.block_on(fred_client(&url));
    let registry = registry();
    let fields: Vec<bytes::Bytes> = ["customer_profile", "customer_activity"]
        .iter()
        .flat_map(|v| {
            let view = registry.view(v).expect("view");
            std::iter::once(view.timestamp_field.clone()).chain(view.features.iter().map(|f| f.field.clone()))
        })
        .collect();
    let mut group = c.benchmark_group("fred");
    for rows in ROWS {
        group.throughput(Throughput::Elements(rows as u64));
        for (name, hmget) in [("HGETALL", None), ("HMGET", Some(fields.as_slice()))] {
            group.bench_function(BenchmarkId::new(name, rows), |b| {
                b.iter_custom(|iterations| {
                    runtime.block_on(async {
                        let mut spent = Duration::ZERO;
                        for n in 0..iterations {
                            let ids = ids(n, rows);
                            let started = Instant::now();
                            raw_read(&client, &ids, hmget).await;
                            spent += started.elapsed();
                        }
                        spent
                    })
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_read_strategy);
criterion_main!(benches);
