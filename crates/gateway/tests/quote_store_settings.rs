//! The quote store's Redis settings read at start, against real servers: a server that evicts keys or
//! frees expired ones on its main thread is named with what it runs and what it needs; one set up as
//! docs/deploy.md asks is not; a server that refuses `CONFIG` (as managed services often do) leaves the
//! settings unread rather than reported safe.

use std::time::Duration;

use feature_store::RedisConfig;
use gateway::quotes::QuoteStore;
use testkit::redis::{RedisOptions, RedisServer};

async fn store(args: &[&str]) -> (RedisServer, QuoteStore) {
    let redis = RedisServer::start_with(RedisOptions {
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        ..RedisOptions::default()
    })
    .expect("redis-server");
    let store = QuoteStore::redis(
        &RedisConfig::new(redis.url()),
        Duration::from_secs(600),
        Duration::from_secs(3600),
    )
    .expect("store");
    assert!(store.wait_connected(Duration::from_secs(10)).await, "connected");
    (redis, store)
}

/// (setting, value) of each unsafe setting found.
async fn found(store: &QuoteStore) -> Option<Vec<(&'static str, String)>> {
    let found = store.unsafe_settings().await?;
    Some(
        found
            .into_iter()
            .map(|unsafe_setting| {
                assert_eq!(unsafe_setting.server, None, "a standalone server");
                (unsafe_setting.setting.name, unsafe_setting.value)
            })
            .collect(),
    )
}

#[tokio::test]
async fn a_server_that_evicts_and_frees_on_its_main_thread_is_reported() {
    let (_redis, store) = store(&[
        "--maxmemory-policy",
        "allkeys-lru",
        "--lazyfree-lazy-expire",
        "no",
    ])
    .await;
    assert_eq!(
        found(&store).await,
        Some(vec![
            ("maxmemory-policy", "allkeys-lru".to_owned()),
            ("lazyfree-lazy-expire", "no".to_owned()),
        ])
    );
}

#[tokio::test]
async fn a_server_set_up_as_the_deploy_guide_asks_is_not() {
    let (_redis, store) = store(&[
        "--maxmemory-policy",
        "noeviction",
        "--lazyfree-lazy-expire",
        "yes",
    ])
    .await;
    assert_eq!(found(&store).await, Some(Vec::new()));
}

#[tokio::test]
async fn settings_a_server_will_not_tell_are_unread_not_safe() {
    let (_redis, store) = store(&["--rename-command", "CONFIG", ""]).await;
    assert_eq!(found(&store).await, None);
}

#[tokio::test]
async fn an_embedded_store_has_no_settings_to_warn_of() {
    let store = QuoteStore::memory(Duration::from_secs(600), Duration::from_secs(3600));
    assert_eq!(store.unsafe_settings().await, Some(Vec::new()));
}
