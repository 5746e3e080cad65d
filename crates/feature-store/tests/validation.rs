//! Invalid requests are rejected before any read, with a message naming the field at fault.

use crate::common;

use common::*;
use feature_store::{Error, MAX_ENTITY_ROWS, OnlineStore, RequestError, StoreConfig};
use proto::feast::types::value::Val;
use proto::feast::types::{RepeatedValue, Value};
use proto::features::v1::GetOnlineFeaturesRequest;

async fn rejection(request: GetOnlineFeaturesRequest) -> RequestError {
    let mut config = StoreConfig::new(registry());
    config.snapshot = Some(tiny_csvs());
    let store = OnlineStore::open(config).await.expect("store");
    match store.get_online_features(request, None).await {
        Err(Error::Request(error)) => error,
        other => panic!("expected a request error, got {other:?}"),
    }
}

#[tokio::test]
async fn each_invalid_request_names_its_field() {
    let ids: &[&str] = &["c-1"];
    let cases: Vec<(GetOnlineFeaturesRequest, &str)> = vec![
        (request(&[], &[("customer_id", ids)]), "features: at least one"),
        (
            request(&["customer_profile"], &[("customer_id", ids)]),
            "features[0]: malformed",
        ),
        (
            request(&["customer_profile:a:b"], &[("customer_id", ids)]),
            "features[0]: malformed",
        ),
        (
            request(&[":account_age_days"], &[("customer_id", ids)]),
            "features[0]: malformed",
        ),
        (
            request(&["customer_profile:"], &[("customer_id", ids)]),
            "features[0]: malformed",
        ),
        (
            request(
                &["customer_profile:account_age_days", "nope:x"],
                &[("customer_id", ids)],
            ),
            "features[1]: unknown feature view \"nope\"",
        ),
        (
            request(&["customer_profile:nope"], &[("customer_id", ids)]),
            "unknown feature \"nope\" in feature view \"customer_profile\"",
        ),
        (
            request(
                &["customer_profile:account_age_days"],
                &[("customer_id", &["a", "b"]), ("zone_id", &["z"])],
            ),
            "every entity column must have the same length",
        ),
        (
            request(&["zone_demand:available_drivers"], &[("customer_id", ids)]),
            "missing join key \"zone_id\", needed by feature view \"zone_demand\"",
        ),
        (
            request(&["customer_profile:account_age_days"], &[]),
            "missing join key \"customer_id\"",
        ),
        (
            request(
                &["customer_profile:account_age_days"],
                &[("customer_id", &["c-1", ""])],
            ),
            "entities[\"customer_id\"][1]: empty entity id",
        ),
    ];
    for (req, needle) in cases {
        let error = rejection(req).await;
        assert!(
            error.to_string().contains(needle),
            "{error} does not contain {needle}"
        );
    }
}

#[tokio::test]
async fn unknown_names_are_not_found_the_rest_invalid() {
    let ids: &[&str] = &["c-1"];
    assert!(
        rejection(request(&["nope:x"], &[("customer_id", ids)]))
            .await
            .is_not_found()
    );
    assert!(
        rejection(request(&["customer_profile:x"], &[("customer_id", ids)]))
            .await
            .is_not_found()
    );
    assert!(
        !rejection(request(&["nope"], &[("customer_id", ids)]))
            .await
            .is_not_found()
    );
}

#[tokio::test]
async fn wrong_entity_types_and_too_many_rows() {
    let mut req = request(&["customer_profile:account_age_days"], &[]);
    req.entities.insert(
        "customer_id".into(),
        RepeatedValue {
            val: vec![
                string("c-1"),
                Value {
                    val: Some(Val::Int64Val(7)),
                },
            ],
        },
    );
    let error = rejection(req).await;
    assert_eq!(
        error.to_string(),
        "entities[\"customer_id\"][1]: expected a STRING value, got int64"
    );

    let many: Vec<String> = (0..=MAX_ENTITY_ROWS).map(|i| format!("c-{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let error = rejection(request(
        &["customer_profile:account_age_days"],
        &[("customer_id", &many)],
    ))
    .await;
    assert_eq!(
        error,
        RequestError::TooManyEntityRows {
            rows: MAX_ENTITY_ROWS + 1,
            max: MAX_ENTITY_ROWS
        }
    );
}

#[tokio::test]
async fn the_row_limit_itself_is_fine_and_zero_rows_answer_empty_vectors() {
    let mut config = StoreConfig::new(registry());
    config.snapshot = Some(tiny_csvs());
    let store = OnlineStore::open(config).await.expect("store");
    let ids: Vec<String> = (0..MAX_ENTITY_ROWS).map(|i| format!("c-{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let response = store
        .get_online_features(
            request(&["customer_profile:account_age_days"], &[("customer_id", &ids)]),
            None,
        )
        .await
        .expect("1000 rows are allowed");
    assert_eq!(response.results[0].values.len(), MAX_ENTITY_ROWS);

    let response = store
        .get_online_features(
            request(&["customer_profile:account_age_days"], &[("customer_id", &[])]),
            None,
        )
        .await
        .expect("no rows");
    assert!(response.results[0].values.is_empty());
}
