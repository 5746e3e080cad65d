//! Redis trouble is an error the caller can act on, quickly: down → `Unavailable`, too slow → `Timeout`
//! (within the configured timeout or the request's deadline), deadline already gone → `DeadlineExceeded`,
//! unreachable at start-up → `Connect`. Never a panic or a hang.

mod common;

use std::time::{Duration, Instant};

use common::*;
use feature_store::{Error, OnlineStore, RedisConfig, StoreConfig};
use testkit::redis::{RedisOptions, RedisServer};

fn req() -> proto::features::v1::GetOnlineFeaturesRequest {
    request(&["zone_demand:available_drivers"], &[("zone_id", &["z-1"])])
}

async fn store_with_timeout(url: &str, timeout: Duration) -> OnlineStore {
    let mut redis = RedisConfig::new(url);
    redis.timeout = timeout;
    let mut config = StoreConfig::new(registry());
    config.redis = Some(redis);
    config.cache = no_cache();
    OnlineStore::open(config).await.expect("store opens")
}

#[tokio::test]
async fn redis_down_is_unavailable_and_never_hangs() {
    let mut server = RedisServer::start().expect("redis-server");
    let timeout = Duration::from_millis(300);
    let store = store_with_timeout(&server.url(), timeout).await;
    store
        .get_online_features(&req(), None)
        .await
        .expect("read while up");
    server.kill();

    // The first calls may still race fred noticing the closed socket (then they time out); once it has,
    // calls fail at once with Unavailable while it reconnects in the background.
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let started = Instant::now();
        let result = store.get_online_features(&req(), None).await;
        assert!(
            started.elapsed() < timeout + Duration::from_millis(200),
            "call took {:?}",
            started.elapsed()
        );
        match result {
            Err(Error::Unavailable(_)) => break,
            Err(Error::Timeout(_)) => {}
            other => panic!("expected Unavailable or Timeout, got {other:?}"),
        }
        assert!(Instant::now() < give_up, "never reported Unavailable");
    }
}

#[tokio::test]
async fn a_paused_redis_times_out_within_the_timeout() {
    let server = RedisServer::start().expect("redis-server");
    let timeout = Duration::from_millis(200);
    let store = store_with_timeout(&server.url(), timeout).await;
    server
        .command(&["CLIENT", "PAUSE", "3000", "ALL"])
        .expect("CLIENT PAUSE");
    let started = Instant::now();
    let result = store.get_online_features(&req(), None).await;
    assert!(
        matches!(result, Err(Error::Timeout(t)) if t == timeout),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));

    // A request deadline shorter than the configured timeout wins.
    let started = Instant::now();
    let deadline = started + Duration::from_millis(50);
    let result = store.get_online_features(&req(), Some(deadline)).await;
    assert!(
        matches!(result, Err(Error::Timeout(t)) if t <= Duration::from_millis(50)),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn a_spent_deadline_fails_before_calling_redis() {
    let server = RedisServer::start().expect("redis-server");
    let store = store_with_timeout(&server.url(), Duration::from_secs(1)).await;
    let result = store.get_online_features(&req(), Some(Instant::now())).await;
    assert!(matches!(result, Err(Error::DeadlineExceeded)), "{result:?}");
}

#[tokio::test]
async fn unreachable_redis_fails_to_open() {
    let server = RedisServer::start().expect("redis-server");
    let url = server.url();
    drop(server);
    let mut redis = RedisConfig::new(url);
    redis.connect_timeout = Duration::from_secs(2);
    let mut config = StoreConfig::new(registry());
    config.redis = Some(redis);
    let result = OnlineStore::open(config).await;
    assert!(matches!(result, Err(Error::Connect { .. })), "{:?}", result.err());
}

#[tokio::test]
async fn auth_comes_from_the_url_and_is_never_printed() {
    let server = RedisServer::start_with(RedisOptions {
        password: Some("s3cret-pw".into()),
        ..Default::default()
    })
    .expect("redis-server");
    fill(&server.url()).await;
    let store = redis_store(&server.url(), no_cache()).await;
    store
        .get_online_features(&req(), None)
        .await
        .expect("authenticated read");

    let config = RedisConfig::new(server.url());
    assert!(!format!("{config:?}").contains("s3cret-pw"));

    let wrong = server.url().replace("s3cret-pw", "wrong");
    let mut config = StoreConfig::new(registry());
    config.redis = Some(RedisConfig::new(wrong));
    let error = OnlineStore::open(config)
        .await
        .err()
        .expect("wrong password fails");
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(!error.to_string().contains("wrong"), "{error}");
}

#[tokio::test]
async fn a_bad_url_is_a_clear_error() {
    let mut config = StoreConfig::new(registry());
    config.redis = Some(RedisConfig::new("http://user:pw@host"));
    let error = OnlineStore::open(config).await.err().expect("bad scheme fails");
    assert!(matches!(error, Error::InvalidRedisUrl { .. }), "{error:?}");
    assert!(!error.to_string().contains("pw@"), "{error}");
}
