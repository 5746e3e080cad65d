//! Each malformed request gets INVALID_ARGUMENT (or NOT_FOUND) with a message naming the field.

use std::collections::HashMap;

use proto::inference::v1::inference_service_client::InferenceServiceClient;
use proto::inference::v1::{
    BatchPredictCustomerRiskRequest, BatchPredictDemandSurgeRequest, PredictCustomerRiskRequest,
    PredictDemandSurgeRequest, QuotePriceRequest, RecordOutcomeRequest,
};
use system_tests::services::Stack;
use tonic::transport::Channel;
use tonic::{Code, Status};

fn expect(result: Result<impl std::fmt::Debug, Status>, code: Code, field: &str) {
    let status = result.expect_err("must be rejected");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(field),
        "message {:?} does not name {field}",
        status.message()
    );
}

fn quote(customer: &str, zone: &str, price: f64, currency: &str) -> QuotePriceRequest {
    QuotePriceRequest {
        customer_id: customer.into(),
        zone_id: zone.into(),
        base_price: price,
        currency: currency.into(),
        ..Default::default()
    }
}

async fn risk(
    client: &mut InferenceServiceClient<Channel>,
    id: String,
    context: HashMap<String, String>,
) -> Result<(), Status> {
    client
        .predict_customer_risk(PredictCustomerRiskRequest {
            customer_id: id,
            context,
        })
        .await
        .map(drop)
}

#[tokio::test]
async fn malformed_requests_are_rejected_naming_the_field() {
    let stack = Stack::start(None).await;
    let mut c = stack.client();
    let none = HashMap::new;

    expect(
        risk(&mut c, String::new(), none()).await,
        Code::InvalidArgument,
        "customer_id",
    );
    expect(
        risk(&mut c, "x".repeat(129), none()).await,
        Code::InvalidArgument,
        "customer_id",
    );
    expect(
        risk(&mut c, "bad\u{0}id".into(), none()).await,
        Code::InvalidArgument,
        "customer_id",
    );
    let big_context: HashMap<String, String> = (0..33).map(|i| (format!("k{i}"), "v".into())).collect();
    expect(
        risk(&mut c, "C000001".into(), big_context).await,
        Code::InvalidArgument,
        "context",
    );

    let surge = |zone: &str, seconds: i64| PredictDemandSurgeRequest {
        zone_id: zone.into(),
        time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        ..Default::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    expect(
        c.predict_demand_surge(surge("", now)).await,
        Code::InvalidArgument,
        "zone_id",
    );
    expect(
        c.predict_demand_surge(surge("Z0001", now + 30 * 86_400)).await,
        Code::InvalidArgument,
        "time",
    );
    expect(
        c.predict_demand_surge(surge("Z0001", 0)).await,
        Code::InvalidArgument,
        "time",
    );

    for price in [f64::NAN, f64::INFINITY, -5.0, 0.0, 1e12] {
        expect(
            c.quote_price(quote("C000001", "Z0001", price, "")).await,
            Code::InvalidArgument,
            "base_price",
        );
    }
    expect(
        c.quote_price(quote("", "Z0001", 10.0, "")).await,
        Code::InvalidArgument,
        "customer_id",
    );
    expect(
        c.quote_price(quote("C000001", "", 10.0, "")).await,
        Code::InvalidArgument,
        "zone_id",
    );
    // Not a code at all, or three capitals that name no circulating currency.
    for currency in ["dollars", "XYZ", "XXX"] {
        expect(
            c.quote_price(quote("C000001", "Z0001", 10.0, currency)).await,
            Code::InvalidArgument,
            "currency",
        );
    }

    let outcome = |id: &str, booked, revenue| RecordOutcomeRequest {
        quote_id: id.into(),
        booked,
        revenue,
        ..Default::default()
    };
    let valid_id = "0193a3b4-0000-7000-8000-000000000000";
    expect(
        c.record_outcome(outcome("", true, 1.0)).await,
        Code::InvalidArgument,
        "quote_id",
    );
    expect(
        c.record_outcome(outcome("not-a-quote", true, 1.0)).await,
        Code::InvalidArgument,
        "quote_id",
    );
    expect(
        c.record_outcome(outcome(valid_id, true, f64::NAN)).await,
        Code::InvalidArgument,
        "revenue",
    );
    expect(
        c.record_outcome(outcome(valid_id, true, -1.0)).await,
        Code::InvalidArgument,
        "revenue",
    );
    expect(
        c.record_outcome(outcome(valid_id, false, 5.0)).await,
        Code::InvalidArgument,
        "revenue",
    );
    for score in [0.0, 5.5, f64::NAN] {
        let unhappy = RecordOutcomeRequest {
            satisfaction: Some(score),
            ..outcome(valid_id, true, 1.0)
        };
        expect(
            c.record_outcome(unhappy).await,
            Code::InvalidArgument,
            "satisfaction",
        );
    }
    expect(
        c.record_outcome(outcome(valid_id, true, 1.0)).await,
        Code::NotFound,
        valid_id,
    );

    let ids = |n: usize| (0..n).map(|i| format!("C{i:06}")).collect::<Vec<_>>();
    let batch = |customer_ids| BatchPredictCustomerRiskRequest {
        customer_ids,
        ..Default::default()
    };
    expect(
        c.batch_predict_customer_risk(batch(ids(501))).await,
        Code::InvalidArgument,
        "customer_ids",
    );
    expect(
        c.batch_predict_customer_risk(batch(vec![])).await,
        Code::InvalidArgument,
        "customer_ids",
    );
    let mut with_empty = ids(3);
    with_empty[1] = String::new();
    expect(
        c.batch_predict_customer_risk(batch(with_empty)).await,
        Code::InvalidArgument,
        "customer_ids[1]",
    );
    let zones = BatchPredictDemandSurgeRequest {
        zone_ids: ids(501),
        ..Default::default()
    };
    expect(
        c.batch_predict_demand_surge(zones).await,
        Code::InvalidArgument,
        "zone_ids",
    );

    stack.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_model_the_repository_lacks_is_an_internal_error_naming_it() {
    let stack = Stack::start_with(None, &["--risk-model", "no_such_model"]).await;
    let status = stack
        .client()
        .predict_customer_risk(PredictCustomerRiskRequest {
            customer_id: "C000001".into(),
            ..Default::default()
        })
        .await
        .expect_err("misconfigured model");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(status.message().contains("no_such_model"), "{}", status.message());
    stack.stop().await.expect("clean stop");
}
