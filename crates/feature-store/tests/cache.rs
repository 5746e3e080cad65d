//! The TTL cache in front of Redis: hits skip Redis, misses and absent entities are cached too, HGETALL
//! fills the views a request did not ask for, and the counters and the observer see every lookup.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use feature_store::{CacheConfig, CacheObserver, CacheStats, StoreConfig};
use proto::features::v1::FieldStatus;
use testkit::redis::RedisServer;

fn long_cache() -> CacheConfig {
    CacheConfig {
        ttl: Duration::from_secs(60),
        max_bytes: 1 << 20,
        ..CacheConfig::default()
    }
}

#[tokio::test]
async fn second_read_is_served_from_the_cache() {
    let server = RedisServer::start().expect("redis-server");
    fill(&server.url()).await;
    let store = redis_store(&server.url(), long_cache()).await;
    let req = request(
        &["customer_profile:account_age_days"],
        &[("customer_id", &["c-1", "nobody"])],
    );

    let first = store.get_online_features(req.clone(), None).await.expect("read");
    assert_eq!(
        store.cache_stats(),
        CacheStats {
            hits: 0,
            misses: 2,
            entries: store.cache_stats().entries
        }
    );

    // Redis loses everything; the cache still answers, absent entities included.
    server.command(&["FLUSHALL"]).expect("FLUSHALL");
    let second = store.get_online_features(req.clone(), None).await.expect("read");
    assert_eq!(second, first);
    assert_eq!(cell(&second, 0, 0), (int64(100), FieldStatus::Present));
    let stats = store.cache_stats();
    assert_eq!((stats.hits, stats.misses), (2, 2));

    // A store without a cache sees the flushed Redis.
    let uncached = redis_store(&server.url(), no_cache()).await;
    let third = uncached.get_online_features(req, None).await.expect("read");
    assert_eq!(cell(&third, 0, 0).1, FieldStatus::NotFound);
    assert_eq!(uncached.cache_stats(), CacheStats::default());
}

#[tokio::test]
async fn hgetall_fills_the_cache_for_views_sharing_the_key() {
    let server = RedisServer::start().expect("redis-server");
    fill(&server.url()).await;
    let store = redis_store(&server.url(), long_cache()).await;
    store
        .get_online_features(
            request(
                &["customer_profile:account_age_days"],
                &[("customer_id", &["c-1"])],
            ),
            None,
        )
        .await
        .expect("read");
    server.command(&["FLUSHALL"]).expect("FLUSHALL");
    let response = store
        .get_online_features(
            request(&["customer_activity:sessions_7d"], &[("customer_id", &["c-1"])]),
            None,
        )
        .await
        .expect("read");
    assert_eq!(cell(&response, 0, 0), (int64(7), FieldStatus::Present));
    assert_eq!(store.cache_stats().hits, 1);
}

#[tokio::test]
async fn entries_expire_after_the_ttl() {
    let server = RedisServer::start().expect("redis-server");
    fill(&server.url()).await;
    let ttl = Duration::from_millis(200);
    let store = redis_store(
        &server.url(),
        CacheConfig {
            ttl,
            max_bytes: 1 << 20,
            ..CacheConfig::default()
        },
    )
    .await;
    let req = request(&["zone_demand:available_drivers"], &[("zone_id", &["z-1"])]);
    store.get_online_features(req.clone(), None).await.expect("read");
    server.command(&["FLUSHALL"]).expect("FLUSHALL");
    // Waiting out the TTL is the behaviour under test.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let response = store.get_online_features(req, None).await.expect("read");
    assert_eq!(cell(&response, 0, 0).1, FieldStatus::NotFound);
    assert_eq!(store.cache_stats().misses, 2);
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, bool)>>);

impl CacheObserver for Recorder {
    fn on_lookup(&self, view: &str, hit: bool) {
        self.0.lock().expect("lock").push((view.to_owned(), hit));
    }
}

#[tokio::test]
async fn the_observer_sees_every_lookup() {
    let server = RedisServer::start().expect("redis-server");
    fill(&server.url()).await;
    let recorder = Arc::new(Recorder::default());
    let mut config = StoreConfig::new(registry());
    config.redis = Some(redis_config(&server.url()));
    config.cache = long_cache();
    config.cache_observer = Some(recorder.clone());
    let store = open_connected(config).await;
    let req = request(
        &["zone_demand:available_drivers", "zone_weather:temperature_c"],
        &[("zone_id", &["z-1"])],
    );
    store.get_online_features(req.clone(), None).await.expect("read");
    store.get_online_features(req, None).await.expect("read");
    let mut seen = recorder.0.lock().expect("lock").clone();
    seen.sort();
    let want: Vec<(String, bool)> = [
        ("zone_demand", false),
        ("zone_demand", true),
        ("zone_weather", false),
        ("zone_weather", true),
    ]
    .iter()
    .map(|(v, h)| ((*v).to_owned(), *h))
    .collect();
    assert_eq!(seen, want);
}
