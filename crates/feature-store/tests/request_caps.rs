//! An answer holds one value per feature reference and entity row: requests over the caps on references,
//! rows and their product are refused before any reference is parsed, and requests at the caps are served.

use crate::common;

use common::*;
use feature_store::{
    Error, MAX_ENTITY_ROWS, MAX_FEATURE_REFS, MAX_VALUES, OnlineStore, RequestError, StoreConfig,
};
use proto::features::v1::{GetOnlineFeaturesRequest, GetOnlineFeaturesResponse};

const KNOWN: &str = "customer_profile:account_age_days";

async fn store() -> OnlineStore {
    let mut config = StoreConfig::new(registry());
    config.snapshot = Some(tiny_csvs());
    OnlineStore::open(config).await.expect("store")
}

/// `refs` copies of `reference`, for `rows` customers.
fn sized(reference: &str, refs: usize, rows: usize) -> GetOnlineFeaturesRequest {
    let ids: Vec<String> = (0..rows).map(|i| format!("c-{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    request(&vec![reference; refs], &[("customer_id", &ids)])
}

async fn rejection(request: GetOnlineFeaturesRequest) -> RequestError {
    match store().await.get_online_features(request, None).await {
        Err(Error::Request(error)) => error,
        other => panic!(
            "expected a request error, got {:?}",
            other.map(|r| r.results.len())
        ),
    }
}

async fn answer(request: GetOnlineFeaturesRequest) -> GetOnlineFeaturesResponse {
    store()
        .await
        .get_online_features(request, None)
        .await
        .expect("answered")
}

#[tokio::test]
async fn too_many_feature_refs_are_refused_before_any_is_parsed() {
    // Malformed references: refused for their number, not for the first one's shape.
    let error = rejection(sized("nope", MAX_FEATURE_REFS + 1, 1)).await;
    assert_eq!(
        error,
        RequestError::TooManyFeatureRefs {
            refs: MAX_FEATURE_REFS + 1,
            max: MAX_FEATURE_REFS
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "features: {} feature references is more than the limit of {MAX_FEATURE_REFS} per request",
            MAX_FEATURE_REFS + 1
        )
    );
}

#[tokio::test]
async fn too_many_entity_rows_are_refused_before_any_reference_is_parsed() {
    let error = rejection(sized("nope", 1, MAX_ENTITY_ROWS + 1)).await;
    assert_eq!(
        error,
        RequestError::TooManyEntityRows {
            rows: MAX_ENTITY_ROWS + 1,
            max: MAX_ENTITY_ROWS
        }
    );
}

#[tokio::test]
async fn references_times_rows_over_the_value_cap_are_refused() {
    // Each count within its own cap, their product one row's worth over.
    let refs = MAX_VALUES / MAX_ENTITY_ROWS + 1;
    assert!(refs <= MAX_FEATURE_REFS);
    let error = rejection(sized(KNOWN, refs, MAX_ENTITY_ROWS)).await;
    assert_eq!(
        error,
        RequestError::TooManyValues {
            refs,
            rows: MAX_ENTITY_ROWS,
            max: MAX_VALUES
        }
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "features × entities: {refs} feature references × {MAX_ENTITY_ROWS} entity rows is {} \
             values, more than the limit of {MAX_VALUES} per request",
            refs * MAX_ENTITY_ROWS
        )),
        "{message}"
    );
    // Checked before the references: malformed ones are refused for the size first.
    assert!(matches!(
        rejection(sized("nope", refs, MAX_ENTITY_ROWS)).await,
        RequestError::TooManyValues { .. }
    ));
}

#[tokio::test]
async fn requests_at_the_caps_are_answered() {
    let refs = MAX_VALUES / MAX_ENTITY_ROWS;
    let response = answer(sized(KNOWN, refs, MAX_ENTITY_ROWS)).await;
    assert_eq!(response.results.len(), refs);
    assert!(
        response
            .results
            .iter()
            .all(|vector| vector.values.len() == MAX_ENTITY_ROWS)
    );

    let response = answer(sized(KNOWN, MAX_FEATURE_REFS, 1)).await;
    assert_eq!(response.results.len(), MAX_FEATURE_REFS);

    // The gateway's largest call: a batch of 500 customers, every customer feature of the registry.
    let customer_features: Vec<String> = registry()
        .views()
        .iter()
        .filter(|view| view.join_keys == ["customer_id"])
        .flat_map(|view| {
            view.features
                .iter()
                .map(move |f| format!("{}:{}", view.name, f.name))
        })
        .collect();
    assert!(customer_features.len() >= 9);
    let ids: Vec<String> = (0..500).map(|i| format!("c-{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let features: Vec<&str> = customer_features.iter().map(String::as_str).collect();
    let response = answer(request(&features, &[("customer_id", &ids)])).await;
    assert_eq!(response.results.len(), customer_features.len());
}
