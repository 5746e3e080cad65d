//! The whole path on a 3-node Redis Cluster: features materialized across slots are served, prediction
//! records and their labels, quotes and outcomes are kept on the cluster; the quote store's settings are
//! read from each primary.

use proto::inference::v1::record_label_request::Label;
use proto::inference::v1::{
    BatchPredictCustomerRiskRequest, CustomerOutcome, QuotePriceRequest, RecordLabelRequest,
    RecordOutcomeRequest,
};
use std::collections::HashSet;
use std::time::Duration;

use feature_store::RedisConfig;
use gateway::quotes::QuoteStore;
use system_tests::materialize_snapshot;
use system_tests::services::Stack;
use testkit::redis::RedisCluster;

#[tokio::test]
async fn predictions_and_quotes_on_a_cluster() {
    let cluster = RedisCluster::start(3).expect("redis cluster");
    let written = materialize_snapshot(&cluster.url()).await;
    assert!(written > 4000, "{written} rows");
    let stack = Stack::start(Some(&cluster.url())).await;
    let mut client = stack.client();

    // 200 customers hash to slots on every node; one request reads them all.
    let ids: Vec<String> = (1..=200).map(|i| format!("C{i:06}")).collect();
    let results = client
        .batch_predict_customer_risk(BatchPredictCustomerRiskRequest {
            customer_ids: ids,
            ..Default::default()
        })
        .await
        .expect("batch on cluster")
        .into_inner()
        .results;
    let healthy = results
        .iter()
        .filter(|r| !r.metadata.as_ref().is_some_and(|m| m.degraded))
        .count();
    assert!(
        healthy > 180,
        "only {healthy} of 200 had all features on the cluster"
    );

    // Their records (in hashes across the cluster's slots) take labels, once.
    let labelled: Vec<String> = results
        .iter()
        .filter_map(|r| r.metadata.as_ref().map(|m| m.prediction_id.clone()))
        .filter(|id| !id.is_empty())
        .step_by(10)
        .collect();
    assert!(labelled.len() >= 18, "{} prediction ids", labelled.len());
    for id in &labelled {
        let request = RecordLabelRequest {
            prediction_id: id.clone(),
            label: Some(Label::CustomerOutcome(CustomerOutcome::Good as i32)),
        };
        let first = client
            .record_label(request.clone())
            .await
            .expect("label on cluster");
        assert!(!first.into_inner().duplicate, "{id}");
        let again = client.record_label(request).await.expect("label retried");
        assert!(again.into_inner().duplicate, "{id}");
    }

    let quote = client
        .quote_price(QuotePriceRequest {
            customer_id: "C000042".into(),
            zone_id: "Z0042".into(),
            base_price: 12.0,
            ..Default::default()
        })
        .await
        .expect("quote")
        .into_inner();
    let outcome = RecordOutcomeRequest {
        quote_id: quote.quote_id,
        booked: true,
        revenue: quote.price,
        ..Default::default()
    };
    assert!(
        !client
            .record_outcome(outcome.clone())
            .await
            .expect("outcome")
            .into_inner()
            .duplicate
    );
    assert!(
        client
            .record_outcome(outcome)
            .await
            .expect("retry")
            .into_inner()
            .duplicate
    );
    stack.stop().await.expect("clean stop");

    // The settings the gateway warns of at start are read from every primary. The nodes run Redis's
    // defaults: noeviction, as wanted, and `lazyfree-lazy-expire no`, which is not.
    let quotes = QuoteStore::redis(
        &RedisConfig::new(cluster.url()),
        Duration::from_secs(60),
        Duration::from_secs(60),
    )
    .expect("quote store");
    assert!(quotes.wait_connected(Duration::from_secs(10)).await);
    let found = quotes.unsafe_settings().await.expect("settings read");
    let servers: HashSet<String> = found
        .iter()
        .map(|unsafe_setting| {
            assert_eq!(
                (unsafe_setting.setting.name, unsafe_setting.value.as_str()),
                ("lazyfree-lazy-expire", "no")
            );
            unsafe_setting.server.clone().expect("a cluster node")
        })
        .collect();
    assert_eq!((found.len(), servers.len()), (3, 3), "{found:?}");
}
