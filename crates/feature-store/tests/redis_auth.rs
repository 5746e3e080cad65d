//! AUTH from the URL's password. The right one reads; a wrong one is a configuration error the store
//! still opens with: it never connects (so the feature-service stays NOT_SERVING), answers UNAVAILABLE
//! values, and logs the AUTH error (at most once a second) without the password, while a batch job
//! (materialize) fails with it. Passwords never appear in errors, logs or `Debug`.

use crate::common;

use std::time::Duration;

use common::*;
use feature_store::{Error, MaterializeOptions, OnlineStore, RedisConfig, StoreConfig};
use proto::features::v1::FieldStatus;
use testkit::redis::{RedisOptions, RedisServer};

const PASSWORD: &str = "s3cret-pw";
const WRONG: &str = "not-the-pw";

fn server() -> RedisServer {
    RedisServer::start_with(RedisOptions {
        password: Some(PASSWORD.into()),
        ..Default::default()
    })
    .expect("redis-server")
}

#[tokio::test]
async fn the_password_in_the_url_authenticates() {
    let server = server();
    fill(&server.url()).await;
    let store = redis_store(&server.url(), no_cache()).await;
    let response = store
        .get_online_features(
            request(&["zone_demand:available_drivers"], &[("zone_id", &["z-1"])]),
            None,
        )
        .await
        .expect("authenticated read");
    assert_eq!(cell(&response, 0, 0).1, FieldStatus::Present);
    let config = RedisConfig::new(server.url());
    assert!(!format!("{config:?}").contains(PASSWORD));
}

#[tokio::test]
async fn a_wrong_password_never_connects_and_says_why() {
    let (logs, _guard) = common::logs::capture();
    let server = server();
    let wrong = server.url().replace(PASSWORD, WRONG);
    let mut config = StoreConfig::new(registry());
    config.redis = Some(RedisConfig::new(wrong.clone()));
    config.cache = no_cache();
    let store = OnlineStore::open(config)
        .await
        .expect("a wrong password does not fail opening");
    // Several attempts (50, 100, 200, 400 ms apart) all refused.
    let waited = tokio::time::timeout(Duration::from_millis(1500), store.wait_connected()).await;
    assert!(waited.is_err(), "connected with a wrong password");
    assert!(!store.is_connected());
    let response = store
        .get_online_features(
            request(&["zone_demand:available_drivers"], &[("zone_id", &["z-1"])]),
            None,
        )
        .await
        .expect("answered");
    assert_eq!(cell(&response, 0, 0).1, FieldStatus::Unavailable);

    let failures = logs.with_message("Redis connection failed");
    assert!(!failures.is_empty(), "{}", logs.text());
    // One line a second at most, however many attempts failed.
    assert!(failures.len() <= 2, "{}", logs.text());
    let line = &failures[0];
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["error_type"], "auth", "{line}");
    let error = line["error"].as_str().expect("error");
    assert!(error.contains("WRONGPASS"), "{error}");
    let url = line["redis.url"].as_str().expect("redis.url");
    assert!(url.contains(":***@"), "{url}");
    let text = logs.text();
    assert!(!text.contains(WRONG) && !text.contains(PASSWORD), "{text}");

    // A batch job has nothing to wait for: it fails, naming the AUTH error.
    let mut redis = RedisConfig::new(wrong);
    redis.connect_timeout = Duration::from_millis(500);
    let error = feature_store::materialize(&redis, &registry(), &tiny_csvs(), &MaterializeOptions::default())
        .await
        .expect_err("wrong password");
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("WRONGPASS"), "{message}");
    assert!(!message.contains(WRONG), "{message}");
}
