//! The store needs no Redis to open and follows Redis through restarts by itself: opened while Redis is
//! down it answers UNAVAILABLE values and connects when Redis comes up; killed and restarted on the same
//! port (loading what it saved), Redis is read again within a few seconds (fred's reconnect policy: 50 ms
//! doubling to 2 s).

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use feature_store::{OnlineStore, StoreConfig};
use proto::features::v1::{FieldStatus, GetOnlineFeaturesRequest};
use testkit::redis::RedisServer;

fn req() -> GetOnlineFeaturesRequest {
    request(&["zone_demand:available_drivers"], &[("zone_id", &["z-1"])])
}

/// Reads until the value is PRESENT (every answer along the way OK) or `within` passes; returns how long.
async fn until_present(store: &OnlineStore, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let response = store
            .get_online_features(req(), None)
            .await
            .expect("never an error");
        match cell(&response, 0, 0).1 {
            FieldStatus::Present => return started.elapsed(),
            FieldStatus::Unavailable => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            started.elapsed() < within,
            "Redis not read again within {within:?}"
        );
        // Polling a condition with a deadline: nothing announces "readable" besides a read.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn opens_without_redis_and_connects_when_it_comes_up() {
    let mut server = RedisServer::start().expect("redis-server");
    server.kill();
    let mut config = StoreConfig::new(registry());
    config.redis = Some(redis_config(&server.url()));
    config.cache = no_cache();
    let store = OnlineStore::open(config).await.expect("opens without Redis");
    assert!(!store.is_connected());

    let started = Instant::now();
    let response = store
        .get_online_features(req(), None)
        .await
        .expect("answered without Redis");
    assert_eq!(cell(&response, 0, 0).1, FieldStatus::Unavailable);
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );

    server.restart().expect("redis-server starts");
    fill(&server.url()).await;
    tokio::time::timeout(Duration::from_secs(5), store.wait_connected())
        .await
        .expect("connected within 5 s of Redis starting");
    assert!(store.is_connected());
    until_present(&store, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn reads_resume_after_redis_restarts_on_the_same_port() {
    let mut server = RedisServer::start().expect("redis-server");
    fill(&server.url()).await;
    let port = server.port();
    let store = redis_store(&server.url(), no_cache()).await;
    until_present(&store, Duration::from_secs(1)).await;

    // Saved, so the restarted server (same directory) loads the features again.
    server.command(&["SAVE"]).expect("SAVE");
    server.kill();
    // Down long enough for fred to notice and back off a few times.
    let give_up = Instant::now() + Duration::from_secs(10);
    while store.is_connected() {
        store.get_online_features(req(), None).await.expect("answered");
        assert!(Instant::now() < give_up, "the kill went unnoticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = store.get_online_features(req(), None).await.expect("answered");
    assert_eq!(cell(&response, 0, 0).1, FieldStatus::Unavailable);

    server.restart().expect("redis-server restarts");
    assert_eq!(server.port(), port);
    let took = until_present(&store, Duration::from_secs(5)).await;
    eprintln!("read again {took:?} after the restart");
}
