//! A Redis that is down or too slow degrades answers instead of failing them: what the cache holds is
//! served (stale rows too, within the stale-if-error window), every other value is UNAVAILABLE, and the
//! answer comes within the configured timeout or before the request's deadline. A fresh cache hit never
//! touches Redis. A deadline already spent and a malformed URL are still errors.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use feature_store::{CacheConfig, Error, OnlineStore, RedisConfig, StoreConfig};
use proto::features::v1::{FieldStatus, GetOnlineFeaturesRequest, GetOnlineFeaturesResponse};
use server_kit::Deadline;
use testkit::redis::RedisServer;

fn req() -> GetOnlineFeaturesRequest {
    request(&["zone_demand:available_drivers"], &[("zone_id", &["z-1"])])
}

fn statuses(response: &GetOnlineFeaturesResponse) -> Vec<FieldStatus> {
    response
        .results
        .iter()
        .flat_map(|vector| &vector.statuses)
        .map(|&s| FieldStatus::try_from(s).expect("known status"))
        .collect()
}

async fn store_with(
    url: &str,
    timeout: Duration,
    cache: CacheConfig,
    agent: Option<&StatsdAgent>,
) -> OnlineStore {
    let mut redis = RedisConfig::new(url);
    redis.timeout = timeout;
    let mut config = StoreConfig::new(registry());
    config.redis = Some(redis);
    config.cache = cache;
    if let Some(agent) = agent {
        config.metrics = agent.metrics.clone();
    }
    open_connected(config).await
}

#[tokio::test]
async fn redis_down_answers_unavailable_values_and_never_hangs() {
    let mut server = RedisServer::start().expect("redis-server");
    fill(&server.url()).await;
    let timeout = Duration::from_millis(300);
    let store = store_with(&server.url(), timeout, no_cache(), None).await;
    let up = store
        .get_online_features(req(), None)
        .await
        .expect("read while up");
    assert_eq!(statuses(&up), [FieldStatus::Present]);
    server.kill();

    // Every answer is OK and UNAVAILABLE from the first; the first few may wait for fred to notice the
    // closed socket (at most the timeout), then calls fail at once while it reconnects in the background.
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let started = Instant::now();
        let response = store
            .get_online_features(req(), None)
            .await
            .expect("an outage is no error");
        let took = started.elapsed();
        assert!(took < timeout + Duration::from_millis(200), "call took {took:?}");
        assert_eq!(statuses(&response), [FieldStatus::Unavailable]);
        if took < Duration::from_millis(50) && !store.is_connected() {
            break;
        }
        assert!(Instant::now() < give_up, "calls never failed fast");
    }
}

#[tokio::test]
async fn a_paused_redis_answers_unavailable_within_the_timeout_and_the_deadline() {
    let server = RedisServer::start().expect("redis-server");
    let timeout = Duration::from_millis(200);
    let store = store_with(&server.url(), timeout, no_cache(), None).await;
    server
        .command(&["CLIENT", "PAUSE", "3000", "ALL"])
        .expect("CLIENT PAUSE");
    let started = Instant::now();
    let response = store.get_online_features(req(), None).await.expect("answered");
    assert_eq!(statuses(&response), [FieldStatus::Unavailable]);
    let took = started.elapsed();
    assert!(took >= timeout && took < Duration::from_secs(1), "{took:?}");

    // A request deadline shorter than the configured timeout wins, and the answer makes it: the store is
    // given the deadline less the answering margin, as the server's door computes it, and its Redis call
    // stops there, leaving that margin for answering without Redis.
    let started = Instant::now();
    let deadline = started + Duration::from_millis(60);
    let response = store
        .get_online_features(req(), Some(Deadline::at(deadline).answering()))
        .await
        .expect("answered");
    let answered = Instant::now();
    assert_eq!(statuses(&response), [FieldStatus::Unavailable]);
    // Timer granularity and a loaded 2-core machine get a few milliseconds of slack.
    assert!(
        answered <= deadline + Duration::from_millis(10),
        "answered {:?} after the deadline",
        answered.saturating_duration_since(deadline)
    );
}

#[tokio::test]
async fn a_spent_deadline_fails_before_calling_redis() {
    let server = RedisServer::start().expect("redis-server");
    let store = store_with(&server.url(), Duration::from_secs(1), no_cache(), None).await;
    let result = store
        .get_online_features(req(), Some(Deadline::at(Instant::now())))
        .await;
    assert!(matches!(result, Err(Error::DeadlineExceeded)), "{result:?}");
}

#[tokio::test]
async fn stale_rows_stand_in_while_redis_is_down() {
    let mut server = RedisServer::start().expect("redis-server");
    fill(&server.url()).await;
    let agent = StatsdAgent::start(SERVICE);
    let ttl = Duration::from_millis(100);
    let store = store_with(
        &server.url(),
        Duration::from_millis(300),
        cache(ttl, Duration::from_secs(60)),
        Some(&agent),
    )
    .await;
    let asked = |ids: &[&str]| request(&["zone_demand:available_drivers"], &[("zone_id", ids)]);
    let first = store
        .get_online_features(asked(&["z-1", "z-nobody"]), None)
        .await
        .expect("read");
    assert_eq!(statuses(&first), [FieldStatus::Present, FieldStatus::NotFound]);

    // Waiting out the TTL is the behaviour under test: the rows are stale now, and Redis is gone.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    server.kill();
    agent.lines();
    let degraded = store
        .get_online_features(asked(&["z-1", "z-nobody", "z-new"]), None)
        .await
        .expect("an outage is no error");
    // The stale rows answer as they would have (an absent entity stays NOT_FOUND); the entity never
    // read has nothing to stand in.
    assert_eq!(
        statuses(&degraded),
        [
            FieldStatus::Present,
            FieldStatus::NotFound,
            FieldStatus::Unavailable
        ]
    );
    assert_eq!(cell(&degraded, 0, 0), cell(&first, 0, 0));
    let lines = agent.lines();
    let view = "feature_view:zone_demand";
    assert_eq!(
        value_of(&lines, "cache.feast.stale_served", "c", view).as_deref(),
        Some("2"),
        "{lines:#?}"
    );
    assert_eq!(
        value_of(
            &lines,
            "features.lookups",
            "c",
            &format!("{view},status:unavailable")
        )
        .as_deref(),
        Some("1"),
        "{lines:#?}"
    );
    assert_eq!(
        value_of(&lines, "cache.feast.miss", "c", view).as_deref(),
        Some("3")
    );
    agent.metrics.shutdown(Duration::from_secs(2));
}

#[tokio::test]
async fn a_fresh_cache_hit_never_touches_redis() {
    let mut server = RedisServer::start().expect("redis-server");
    fill(&server.url()).await;
    let agent = StatsdAgent::start(SERVICE);
    let store = store_with(
        &server.url(),
        Duration::from_millis(300),
        cache(Duration::from_secs(60), Duration::from_secs(60)),
        Some(&agent),
    )
    .await;
    store.get_online_features(req(), None).await.expect("read");
    server.kill();
    agent.lines();
    let response = store.get_online_features(req(), None).await.expect("read");
    assert_eq!(statuses(&response), [FieldStatus::Present]);
    let lines = agent.lines();
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("redis.") || l.starts_with("cache.feast.stale_served")),
        "{lines:#?}"
    );
    agent.metrics.shutdown(Duration::from_secs(2));
}

#[tokio::test]
async fn past_the_stale_window_values_are_unavailable() {
    let mut server = RedisServer::start().expect("redis-server");
    fill(&server.url()).await;
    let ttl = Duration::from_millis(100);
    let store = store_with(
        &server.url(),
        Duration::from_millis(300),
        cache(ttl, Duration::ZERO),
        None,
    )
    .await;
    store.get_online_features(req(), None).await.expect("read");
    // Waiting out the TTL is the behaviour under test.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    server.kill();
    let response = store.get_online_features(req(), None).await.expect("read");
    assert_eq!(statuses(&response), [FieldStatus::Unavailable]);
}

#[tokio::test]
async fn a_bad_url_is_a_clear_error() {
    for url in ["http://user:pw@host", "redis://user:pw@host:notaport"] {
        let mut config = StoreConfig::new(registry());
        config.redis = Some(RedisConfig::new(url));
        let error = OnlineStore::open(config).await.err().expect("bad URL fails");
        assert!(matches!(error, Error::InvalidRedisUrl { .. }), "{error:?}");
        assert!(!error.to_string().contains("pw@"), "{error}");
    }
}
