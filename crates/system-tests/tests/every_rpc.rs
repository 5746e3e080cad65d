//! Every public RPC through the three servers (embedded feature snapshot, bundled models): shapes,
//! ranges, the price arithmetic, and the quote/outcome lifecycle.

use proto::inference::v1::{
    BatchPredictCustomerRiskRequest, BatchPredictDemandSurgeRequest, PredictCustomerRiskRequest,
    PredictDemandSurgeRequest, QuotePriceRequest, RecordOutcomeRequest,
};
use system_tests::services::Stack;
use tonic::Code;

const MULTIPLIERS: [f64; 4] = [0.95, 1.0, 1.15, 1.35];

fn customer_ids(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("C{i:06}")).collect()
}

#[tokio::test]
async fn predictions_quotes_and_outcomes() {
    let stack = Stack::start(None).await;
    let mut client = stack.client();

    let risk = client
        .predict_customer_risk(PredictCustomerRiskRequest {
            customer_id: "C000010".into(),
            ..Default::default()
        })
        .await
        .expect("risk")
        .into_inner();
    assert_eq!(risk.customer_id, "C000010");
    assert!((0.0..=1.0).contains(&risk.risk_score), "{}", risk.risk_score);
    assert!(
        MULTIPLIERS.contains(&risk.risk_multiplier),
        "{}",
        risk.risk_multiplier
    );
    let meta = risk.metadata.expect("metadata");
    assert_eq!(meta.model_name, "customer_risk");
    assert_eq!(meta.model_version, "1");
    assert_eq!(meta.experiment_variant, "control");
    assert!(!meta.request_id.is_empty());

    let surge = client
        .predict_demand_surge(PredictDemandSurgeRequest {
            zone_id: "Z0010".into(),
            ..Default::default()
        })
        .await
        .expect("surge")
        .into_inner();
    assert!(
        (1.0..=3.0).contains(&surge.surge_factor),
        "{}",
        surge.surge_factor
    );
    assert_eq!(surge.metadata.expect("metadata").model_name, "demand_surge");

    let quote = client
        .quote_price(QuotePriceRequest {
            customer_id: "C000010".into(),
            zone_id: "Z0010".into(),
            base_price: 40.0,
            ..Default::default()
        })
        .await
        .expect("quote")
        .into_inner();
    let (r, s) = (quote.risk.expect("risk"), quote.surge.expect("surge"));
    assert!((quote.price - 40.0 * r.risk_multiplier * s.surge_factor).abs() < 1e-9);
    assert_eq!(quote.currency, "USD");
    assert_eq!(
        r.risk_score, risk.risk_score,
        "same customer, same features, same score"
    );
    assert!(quote.expires_at.is_some());

    let record = |booked, revenue| RecordOutcomeRequest {
        quote_id: quote.quote_id.clone(),
        booked,
        revenue,
        ..Default::default()
    };
    let first = client
        .record_outcome(record(true, quote.price))
        .await
        .expect("outcome")
        .into_inner();
    assert!(!first.duplicate);
    let again = client
        .record_outcome(record(true, quote.price))
        .await
        .expect("retry")
        .into_inner();
    assert!(again.duplicate, "a retried outcome is recognised");
    let conflict = client
        .record_outcome(record(false, 0.0))
        .await
        .expect_err("conflicting outcome");
    assert_eq!(conflict.code(), Code::AlreadyExists);
    let unknown = RecordOutcomeRequest {
        quote_id: uuid_like(),
        booked: true,
        revenue: 1.0,
        ..Default::default()
    };
    assert_eq!(
        client.record_outcome(unknown).await.expect_err("unknown").code(),
        Code::NotFound
    );

    stack.stop().await.expect("clean stop");
}

#[tokio::test]
async fn batches_keep_order_and_match_single_calls() {
    let stack = Stack::start(None).await;
    let mut client = stack.client();
    let ids = customer_ids(300);
    let batch = client
        .batch_predict_customer_risk(BatchPredictCustomerRiskRequest {
            customer_ids: ids.clone(),
            ..Default::default()
        })
        .await
        .expect("batch")
        .into_inner()
        .results;
    assert_eq!(batch.len(), ids.len());
    for (id, result) in ids.iter().zip(&batch) {
        assert_eq!(&result.customer_id, id);
    }
    let most_healthy = batch
        .iter()
        .filter(|r| !r.metadata.as_ref().is_some_and(|m| m.degraded))
        .count();
    assert!(
        most_healthy > 250,
        "only {most_healthy} of 300 snapshot customers had all features"
    );
    for i in [0, 17, 299] {
        let single = client
            .predict_customer_risk(PredictCustomerRiskRequest {
                customer_id: ids[i].clone(),
                ..Default::default()
            })
            .await
            .expect("single")
            .into_inner();
        assert!((single.risk_score - batch[i].risk_score).abs() < 1e-6, "row {i}");
    }

    let zones: Vec<String> = (1..=50).map(|i| format!("Z{i:04}")).collect();
    let surges = client
        .batch_predict_demand_surge(BatchPredictDemandSurgeRequest {
            zone_ids: zones.clone(),
            ..Default::default()
        })
        .await
        .expect("surge batch")
        .into_inner()
        .results;
    assert_eq!(
        surges.iter().map(|s| s.zone_id.clone()).collect::<Vec<_>>(),
        zones
    );
    assert!(surges.iter().all(|s| (1.0..=3.0).contains(&s.surge_factor)));
    stack.stop().await.expect("clean stop");
}

#[tokio::test]
async fn unknown_entities_get_default_based_degraded_predictions() {
    let stack = Stack::start(None).await;
    let mut client = stack.client();
    let risk = client
        .predict_customer_risk(PredictCustomerRiskRequest {
            customer_id: "NO-SUCH-CUSTOMER".into(),
            ..Default::default()
        })
        .await
        .expect("an unknown customer is not an error")
        .into_inner();
    let meta = risk.metadata.expect("metadata");
    assert!(meta.degraded);
    assert_eq!(meta.missing_features.len(), 9, "{:?}", meta.missing_features);
    assert!(
        meta.missing_features
            .contains(&"customer_profile:account_age_days".to_owned())
    );
    assert!(meta.stale_features.is_empty());

    let surge = client
        .predict_demand_surge(PredictDemandSurgeRequest {
            zone_id: "NO-SUCH-ZONE".into(),
            ..Default::default()
        })
        .await
        .expect("an unknown zone is not an error")
        .into_inner();
    let meta = surge.metadata.expect("metadata");
    assert!(meta.degraded);
    assert_eq!(
        meta.missing_features.len(),
        7,
        "request-time inputs are never missing: {:?}",
        meta.missing_features
    );
    assert!((1.0..=3.0).contains(&surge.surge_factor));
    stack.stop().await.expect("clean stop");
}

fn uuid_like() -> String {
    "0193a3b4-0000-7000-8000-000000000000".into()
}
