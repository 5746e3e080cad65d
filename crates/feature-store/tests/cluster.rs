//! A 3-primary Redis Cluster on loopback: materialize into it, then read every entity back in one request
//! (fred routes each pipelined command to the node owning its slot).

use crate::common;

use std::time::Duration;

use common::*;
use feature_store::{CacheConfig, CsvFile, MaterializeOptions};
use proto::features::v1::FieldStatus;
use testkit::redis::{RedisCluster, Reply};

#[tokio::test]
async fn materialize_then_read_across_a_cluster() {
    let cluster = RedisCluster::start(3).expect("Redis Cluster");
    let ids: Vec<String> = (0..200).map(|i| format!("c-{i:04}")).collect();
    let mut csv = String::from("customer_id,event_timestamp,account_age_days,cancellation_rate\n");
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&format!(
            "{id},2025-06-10T12:00:{:02}Z,{i},{}\n",
            i % 60,
            i as f64 / 1000.0
        ));
    }
    let files = vec![CsvFile::new("profile.csv", "customer_profile", csv)];
    let options = MaterializeOptions {
        rebase_timestamps: true,
        batch_size: 64,
        ..Default::default()
    };
    let report = feature_store::materialize(&redis_config(&cluster.url()), &registry(), &files, &options)
        .await
        .expect("materialize");
    assert_eq!(report.rows, 200);
    assert_eq!(report.batches, 4);

    // The keys really are spread over the nodes.
    for node in cluster.nodes() {
        let Reply::Integer(n) = node.command(&["DBSIZE"]).expect("DBSIZE") else {
            panic!("DBSIZE")
        };
        assert!(n > 0, "node {} holds no key", node.port());
    }

    let store = redis_store(
        &cluster.url(),
        CacheConfig {
            ttl: Duration::from_secs(5),
            max_bytes: 1 << 20,
            ..CacheConfig::default()
        },
    )
    .await;
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let response = store
        .get_online_features(
            request(
                &[
                    "customer_profile:account_age_days",
                    "customer_profile:cancellation_rate",
                    "customer_profile:chargebacks_1y",
                ],
                &[("customer_id", &id_refs)],
            ),
            None,
        )
        .await
        .expect("read");
    for (i, _) in ids.iter().enumerate() {
        assert_eq!(cell(&response, 0, i), (int64(i as i64), FieldStatus::Present));
        assert_eq!(
            cell(&response, 1, i),
            (double(i as f64 / 1000.0), FieldStatus::Present)
        );
        assert_eq!(cell(&response, 2, i).1, FieldStatus::NotFound);
    }
}
