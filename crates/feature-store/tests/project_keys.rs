//! [`OnlineStore::check_project_keys`] on real redis-servers: whether Redis holds any key of the store's
//! Feast project, standalone and on every primary of a cluster, sent as `features.project_keys_found`.
//! Keys of another project whose name ends the same way do not count.

use crate::common;

use common::*;
use feature_store::{OnlineStore, ProjectKeys, StoreConfig};
use testkit::redis::{RedisCluster, RedisServer};

/// A store of `project` on `url`, its metrics sent to `agent`.
async fn store(url: &str, project: &str, agent: &StatsdAgent) -> OnlineStore {
    let mut config = StoreConfig::new(registry());
    config.redis = Some(redis_config(url));
    config.project = Some(project.to_owned());
    config.metrics = agent.metrics.clone();
    open_connected(config).await
}

/// What `check_project_keys` answers for `project` on `url`, and the gauge it sent.
async fn check(url: &str, project: &str) -> (ProjectKeys, Option<String>) {
    let agent = StatsdAgent::start(SERVICE);
    let keys = store(url, project, &agent)
        .await
        .check_project_keys()
        .await
        .expect("Redis answers SCAN");
    let gauge = value_of(&agent.lines(), "features.project_keys_found", "g", "");
    (keys, gauge)
}

#[tokio::test]
async fn a_standalone_redis_holds_the_project_or_not() {
    let redis = RedisServer::start().expect("redis-server");
    assert_eq!(
        check(&redis.url(), "pricing").await,
        (ProjectKeys::Missing, Some("0".into()))
    );
    fill(&redis.url()).await;
    assert_eq!(
        check(&redis.url(), "pricing").await,
        (ProjectKeys::Found, Some("1".into()))
    );
    for other in ["wrong", "ricing", "*"] {
        assert_eq!(
            check(&redis.url(), other).await,
            (ProjectKeys::Missing, Some("0".into())),
            "{other}"
        );
    }
}

#[tokio::test]
async fn every_primary_of_a_cluster_is_walked() {
    let cluster = RedisCluster::start(3).expect("Redis Cluster");
    let url = cluster.url();
    assert_eq!(check(&url, "pricing").await.0, ProjectKeys::Missing);
    fill(&url).await;
    assert_eq!(
        check(&url, "pricing").await,
        (ProjectKeys::Found, Some("1".into()))
    );
    assert_eq!(
        check(&url, "wrong").await,
        (ProjectKeys::Missing, Some("0".into()))
    );
}
