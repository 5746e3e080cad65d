//! The prediction path on a real redis-server filled in Feast's layout: fresh, stale and missing features
//! are reported per entity, the gateway feeds the model exactly the stored values, and quotes and outcomes
//! live in Redis so a second gateway sees them.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use proto::inference::v1::{
    PredictCustomerRiskRequest, PredictDemandSurgeRequest, QuotePriceRequest, RecordOutcomeRequest,
};
use proto::models::v1::model_service_client::ModelServiceClient;
use proto::models::v1::{FeatureRow, PredictRequest};
use system_tests::materialize_csv;
use system_tests::services::{Stack, gateway};
use testkit::features::rfc3339;
use testkit::redis::{RedisServer, Reply};
use tonic::Code;

const PROFILE: &str = "customer_id,event_timestamp,account_age_days,lifetime_bookings,cancellation_rate,avg_booking_value,payment_failures_90d,chargebacks_1y";
const ACTIVITY: &str = "customer_id,event_timestamp,sessions_7d,bookings_30d,days_since_last_booking";
const DEMAND: &str = "zone_id,event_timestamp,open_requests_15m,available_drivers,demand_supply_ratio,avg_wait_minutes,cancellations_1h";
const WEATHER: &str = "zone_id,event_timestamp,precipitation_mm,temperature_c";

fn ago(secs: u64) -> String {
    rfc3339(SystemTime::now() - Duration::from_secs(secs))
}

async fn fill(redis: &RedisServer) {
    let hour = 3_600;
    let profile = format!(
        "{PROFILE}\nC-FRESH,{},30,2,0.5,80.25,3,1\nC-STALE,{},900,40,0.05,55.5,0,0\nC-PARTIAL,{},400,12,0.1,60.0,0,0\n",
        ago(hour),
        ago(8 * 24 * hour),
        ago(hour)
    );
    let activity = format!(
        "{ACTIVITY}\nC-FRESH,{},14,3,2.5\nC-STALE,{},1,0,40.0\n",
        ago(hour),
        ago(2 * hour)
    );
    let demand = format!(
        "{DEMAND}\nZ-FRESH,{},120,30,4.0,11.5,6\nZ-DRY,{},10,40,0.25,2.0,0\n",
        ago(60),
        ago(60)
    );
    let weather = format!("{WEATHER}\nZ-FRESH,{},7.5,3.0\n", ago(600));
    materialize_csv(
        &redis.url(),
        &[
            ("customer_profile", &profile),
            ("customer_activity", &activity),
            ("zone_demand", &demand),
            ("zone_weather", &weather),
        ],
    )
    .await;
}

#[tokio::test]
async fn fresh_stale_and_missing_features_on_redis() {
    let redis = RedisServer::start().expect("redis-server");
    fill(&redis).await;
    let stack = Stack::start(Some(&redis.url())).await;
    let mut client = stack.client();
    let risk = |id: &str| PredictCustomerRiskRequest {
        customer_id: id.into(),
        ..Default::default()
    };

    let fresh = client
        .predict_customer_risk(risk("C-FRESH"))
        .await
        .expect("fresh")
        .into_inner();
    let meta = fresh.metadata.clone().expect("metadata");
    assert!(!meta.degraded, "{meta:?}");

    // The gateway must hand the model exactly what Redis holds: score the same row directly.
    let row: HashMap<String, f64> = [
        ("customer_profile:account_age_days", 30.0),
        ("customer_profile:lifetime_bookings", 2.0),
        ("customer_profile:cancellation_rate", 0.5),
        ("customer_profile:avg_booking_value", 80.25),
        ("customer_profile:payment_failures_90d", 3.0),
        ("customer_profile:chargebacks_1y", 1.0),
        ("customer_activity:sessions_7d", 14.0),
        ("customer_activity:bookings_30d", 3.0),
        ("customer_activity:days_since_last_booking", 2.5),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let direct = ModelServiceClient::new(stack.models.channel())
        .predict(PredictRequest {
            model: "customer_risk".into(),
            version: String::new(),
            variant: String::new(),
            rows: vec![FeatureRow {
                features: row,
                values: Vec::new(),
            }],
        })
        .await
        .expect("direct predict")
        .into_inner();
    let expected = direct.predictions[0].outputs["risk_score"];
    assert!(
        (fresh.risk_score - expected).abs() < 1e-12,
        "gateway {} vs direct {expected}",
        fresh.risk_score
    );

    let stale = client
        .predict_customer_risk(risk("C-STALE"))
        .await
        .expect("stale")
        .into_inner();
    let meta = stale.metadata.expect("metadata");
    assert!(meta.degraded);
    assert_eq!(meta.stale_features.len(), 6, "{meta:?}");
    assert!(
        meta.stale_features
            .iter()
            .all(|f| f.starts_with("customer_profile:"))
    );
    assert!(meta.missing_features.is_empty(), "{meta:?}");

    let partial = client
        .predict_customer_risk(risk("C-PARTIAL"))
        .await
        .expect("partial")
        .into_inner();
    let meta = partial.metadata.expect("metadata");
    assert!(meta.degraded);
    assert_eq!(
        meta.missing_features,
        [
            "customer_activity:sessions_7d",
            "customer_activity:bookings_30d",
            "customer_activity:days_since_last_booking"
        ]
    );

    let surge = |id: &str| PredictDemandSurgeRequest {
        zone_id: id.into(),
        ..Default::default()
    };
    let busy = client
        .predict_demand_surge(surge("Z-FRESH"))
        .await
        .expect("zone")
        .into_inner();
    assert!(!busy.metadata.expect("metadata").degraded);
    let dry = client
        .predict_demand_surge(surge("Z-DRY"))
        .await
        .expect("zone")
        .into_inner();
    let meta = dry.metadata.expect("metadata");
    assert_eq!(
        meta.missing_features,
        ["zone_weather:precipitation_mm", "zone_weather:temperature_c"]
    );
    assert!(
        busy.surge_factor > dry.surge_factor,
        "rain and a 4x demand/supply ratio surge more than a quiet zone"
    );
    stack.stop().await.expect("clean stop");
}

#[tokio::test]
async fn quotes_and_outcomes_are_kept_in_redis() {
    let redis = RedisServer::start().expect("redis-server");
    fill(&redis).await;
    let stack = Stack::start(Some(&redis.url())).await;
    let request = QuotePriceRequest {
        customer_id: "C-FRESH".into(),
        zone_id: "Z-FRESH".into(),
        base_price: 25.0,
        ..Default::default()
    };
    let first = stack
        .client()
        .quote_price(request.clone())
        .await
        .expect("quote")
        .into_inner();
    let second = stack
        .client()
        .quote_price(request)
        .await
        .expect("quote")
        .into_inner();
    assert_ne!(first.quote_id, second.quote_id);
    let outcome = |id: &str, booked: bool, revenue: f64| RecordOutcomeRequest {
        quote_id: id.into(),
        booked,
        revenue,
        ..Default::default()
    };
    // A booking claiming more than five times its quote is refused, and nothing is recorded.
    let inflated = stack
        .client()
        .record_outcome(outcome(&first.quote_id, true, first.price * 5.0 + 0.01))
        .await
        .expect_err("revenue over the quote");
    assert_eq!(inflated.code(), Code::InvalidArgument, "{inflated:?}");
    assert!(
        inflated
            .message()
            .starts_with("revenue: must be at most 5 times the quoted price"),
        "{inflated:?}"
    );
    let recorded = stack
        .client()
        .record_outcome(outcome(&first.quote_id, true, first.price))
        .await
        .expect("outcome");
    assert!(!recorded.into_inner().duplicate);

    // The quote key carries the TTL; once an outcome is in, the retention.
    let ttl_of_key = |key: &str| match redis.command(&["TTL", key]).expect("TTL") {
        Reply::Integer(ttl) => ttl,
        other => panic!("TTL answered {other:?}"),
    };
    let ttl_of = |id: &str| ttl_of_key(&format!("quote:{id}"));
    let ttl = ttl_of(&second.quote_id);
    assert!((1..=900).contains(&ttl), "quote TTL {ttl}");
    let kept = ttl_of(&first.quote_id);
    assert!(kept > 29 * 24 * 3600, "outcome retention {kept}");
    // The quote is one string key, written by one SET; its outcome sits beside it in the same cluster
    // slot, kept as long.
    let quote_json = match redis.command(&["GET", &format!("quote:{}", second.quote_id)]) {
        Ok(Reply::Bulk(Some(json))) => String::from_utf8(json).expect("UTF-8"),
        other => panic!("GET quote answered {other:?}"),
    };
    let outcome_key = format!("{{quote:{}}}:outcome", first.quote_id);
    let kept = ttl_of_key(&outcome_key);
    assert!(kept > 29 * 24 * 3600, "outcome key TTL {kept}");
    match redis.command(&["GET", &outcome_key]) {
        Ok(Reply::Bulk(Some(json))) => {
            let stored: serde_json::Value = serde_json::from_slice(&json).expect("outcome JSON");
            assert_eq!(stored["booked"], true, "{stored}");
            assert!(stored["recorded_at_ms"].as_u64().is_some(), "{stored}");
        }
        other => panic!("GET outcome answered {other:?}"),
    }

    // A quote an earlier release stored as a hash still takes one outcome, kept in its hash.
    let legacy = "0190a0b1-0000-7000-8000-00000000c0de";
    let legacy_json = quote_json.replace(&second.quote_id, legacy);
    let legacy_key = format!("quote:{legacy}");
    redis
        .command(&["HSET", &legacy_key, "quote", &legacy_json])
        .expect("HSET");
    redis.command(&["EXPIRE", &legacy_key, "900"]).expect("EXPIRE");
    let legacy_price = serde_json::from_str::<serde_json::Value>(&legacy_json).expect("quote JSON")["price"]
        .as_f64()
        .expect("price");
    for duplicate in [false, true] {
        let recorded = stack
            .client()
            .record_outcome(outcome(legacy, true, legacy_price))
            .await
            .expect("outcome of a hash-stored quote")
            .into_inner();
        assert_eq!(recorded.duplicate, duplicate);
    }
    let conflict = stack
        .client()
        .record_outcome(outcome(legacy, false, 0.0))
        .await
        .expect_err("conflict");
    assert_eq!(conflict.code(), Code::AlreadyExists, "{conflict:?}");
    match redis.command(&["HGET", &legacy_key, "outcome"]) {
        Ok(Reply::Bulk(Some(_))) => {}
        other => panic!("the hash-stored quote's outcome: {other:?}"),
    }
    assert!(ttl_of(legacy) > 29 * 24 * 3600, "hash-stored quote's retention");

    // A second gateway (a restart, or another replica) sees both.
    let other = gateway(
        &stack.features,
        &stack.models,
        &["--quote-redis-url", &redis.url()],
    )
    .await;
    let mut client =
        proto::inference::v1::inference_service_client::InferenceServiceClient::new(other.channel());
    assert!(
        client
            .record_outcome(outcome(&first.quote_id, true, first.price))
            .await
            .expect("retry")
            .into_inner()
            .duplicate
    );
    let conflict = client
        .record_outcome(outcome(&first.quote_id, false, 0.0))
        .await
        .expect_err("conflict");
    assert_eq!(conflict.code(), Code::AlreadyExists);
    assert!(
        !client
            .record_outcome(outcome(&second.quote_id, false, 0.0))
            .await
            .expect("new")
            .into_inner()
            .duplicate
    );
    other.stop().await.expect("clean stop");
    stack.stop().await.expect("clean stop");
}
