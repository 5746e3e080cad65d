//! Whatever a `GetOnlineFeaturesRequest` holds — feature references valid or not, any entity columns,
//! values of every kind, empty or oversized lists — the store answers it or rejects it with a
//! `RequestError` naming the field at fault; it never panics. Answers have one vector per feature and one
//! entry per entity row, each with a status.
//!
//! Run against the embedded store (no Redis), 512 cases per property.

use crate::common;

use std::cell::RefCell;
use std::collections::HashMap;

use common::*;
use feature_store::{Error, MAX_ENTITY_ROWS, OnlineStore, RequestError, StoreConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use proto::feast::types::value::Val;
use proto::feast::types::{Int64List, RepeatedValue, StringList, Value};
use proto::features::v1::{FieldStatus, GetOnlineFeaturesRequest};

const CASES: u32 = 512;

/// Every feature of the bundled registry, as `view:feature`.
fn known_refs() -> Vec<String> {
    let registry = registry();
    registry
        .views()
        .iter()
        .flat_map(|view| {
            view.features
                .iter()
                .map(move |f| format!("{}:{}", view.name, f.name))
        })
        .collect()
}

fn feature_ref() -> impl Strategy<Value = String> {
    prop_oneof![
        16 => proptest::sample::select(known_refs()),
        1 => "[a-z_]{0,12}:[a-z_0-9]{0,12}",
        1 => "customer_profile:[a-z_]{0,8}",
        1 => ".{0,16}",
        1 => "[a-z:]{0,8}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let val = prop_oneof![
        6 => "[a-zA-Z0-9-]{0,8}".prop_map(Val::StringVal),
        1 => "c-[0-9]".prop_map(Val::StringVal),
        1 => proptest::collection::vec(any::<u8>(), 0..4).prop_map(Val::BytesVal),
        1 => any::<i32>().prop_map(Val::Int32Val),
        1 => any::<i64>().prop_map(Val::Int64Val),
        1 => any::<f64>().prop_map(Val::DoubleVal),
        1 => any::<bool>().prop_map(Val::BoolVal),
        1 => any::<i64>().prop_map(Val::UnixTimestampVal),
        1 => any::<i32>().prop_map(Val::NullVal),
        1 => proptest::collection::vec(".{0,3}", 0..3).prop_map(|val| Val::StringListVal(StringList { val })),
        1 => proptest::collection::vec(any::<i64>(), 0..3).prop_map(|val| Val::Int64ListVal(Int64List { val })),
    ];
    proptest::option::weighted(0.95, val).prop_map(|val| Value { val })
}

/// A number of entity rows: usually a few, sometimes none, sometimes around the row limit.
fn rows() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 1usize..5,
        1 => Just(0usize),
        1 => (MAX_ENTITY_ROWS - 2)..(MAX_ENTITY_ROWS + 3),
    ]
}

/// A column of `n` values drawn from `value`.
fn column_of(n: usize, value: BoxedStrategy<Value>) -> BoxedStrategy<RepeatedValue> {
    // Long columns repeat one value, so a case stays cheap to generate and to shrink.
    let values = if n > 16 {
        value.prop_map(move |v| vec![v; n]).boxed()
    } else {
        proptest::collection::vec(value, n).boxed()
    };
    values.prop_map(|val| RepeatedValue { val }).boxed()
}

/// Entity ids as the registry's join keys take them (strings), now and then something else.
fn id() -> BoxedStrategy<Value> {
    prop_oneof![
        9 => "[a-z0-9-]{1,6}".prop_map(|s| Value { val: Some(Val::StringVal(s)) }),
        1 => value(),
    ]
    .boxed()
}

fn join_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("customer_id".to_owned()),
        4 => Just("zone_id".to_owned()),
        1 => "[a-z_]{0,10}",
        1 => Just(String::new()),
    ]
}

/// Any entity columns: any keys, lengths and values.
fn any_entities() -> impl Strategy<Value = HashMap<String, RepeatedValue>> {
    let column = rows().prop_flat_map(|n| column_of(n, value().boxed()));
    proptest::collection::hash_map(join_key(), column, 0..4)
}

/// Columns for both join keys of the registry, of one length, maybe with an extra column of any length.
fn plausible_entities() -> impl Strategy<Value = HashMap<String, RepeatedValue>> {
    let both = rows().prop_flat_map(|n| (column_of(n, id()), column_of(n, id())));
    let extra = proptest::option::weighted(
        0.2,
        (
            "[a-z_]{1,10}",
            rows().prop_flat_map(|n| column_of(n, value().boxed())),
        ),
    );
    (both, extra).prop_map(|((customers, zones), extra)| {
        let mut entities: HashMap<String, RepeatedValue> = [
            ("customer_id".to_owned(), customers),
            ("zone_id".to_owned(), zones),
        ]
        .into();
        entities.extend(extra);
        entities
    })
}

fn online_request() -> impl Strategy<Value = GetOnlineFeaturesRequest> {
    let features = prop_oneof![
        1 => Just(Vec::new()),
        19 => proptest::collection::vec(feature_ref(), 1..6),
    ];
    let entities = prop_oneof![3 => plausible_entities(), 1 => any_entities()];
    (features, entities).prop_map(|(features, entities)| GetOnlineFeaturesRequest { features, entities })
}

/// Where a rejection's message must point: the request field it names.
fn names_its_field(error: &RequestError) -> bool {
    let message = error.to_string();
    match error {
        RequestError::NoFeatures
        | RequestError::TooManyFeatureRefs { .. }
        | RequestError::MalformedFeatureRef { .. }
        | RequestError::UnknownFeatureView { .. }
        | RequestError::UnknownFeature { .. } => message.starts_with("features"),
        RequestError::TooManyValues { .. } => message.starts_with("features × entities"),
        RequestError::EntityColumnLengths { .. }
        | RequestError::MissingJoinKey { .. }
        | RequestError::TooManyEntityRows { .. }
        | RequestError::EmptyEntityId { .. }
        | RequestError::InvalidEntityValue { .. } => message.starts_with("entities"),
    }
}

fn rows_of(request: &GetOnlineFeaturesRequest) -> usize {
    request.entities.values().map(|c| c.val.len()).max().unwrap_or(0)
}

#[test]
fn any_request_is_answered_or_rejected_with_a_named_field() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = runtime.block_on(async {
        let mut config = StoreConfig::new(registry());
        config.snapshot = Some(tiny_csvs());
        OnlineStore::open(config).await.expect("embedded store")
    });
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let outcomes: RefCell<HashMap<&'static str, u32>> = RefCell::new(HashMap::new());
    runner
        .run(&online_request(), |request| {
            let result = runtime.block_on(store.get_online_features(request.clone(), None));
            match result {
                Ok(response) => {
                    *outcomes.borrow_mut().entry("answered").or_default() += 1;
                    prop_assert_eq!(&response.feature_names, &request.features);
                    prop_assert_eq!(response.results.len(), request.features.len());
                    let rows = rows_of(&request);
                    prop_assert!(rows <= MAX_ENTITY_ROWS);
                    for vector in &response.results {
                        prop_assert_eq!(vector.values.len(), rows);
                        prop_assert_eq!(vector.statuses.len(), rows);
                        prop_assert_eq!(vector.event_timestamps.len(), rows);
                        for &status in &vector.statuses {
                            let status = FieldStatus::try_from(status);
                            // The embedded store has no outage to report.
                            prop_assert!(
                                matches!(
                                    status,
                                    Ok(FieldStatus::Present
                                        | FieldStatus::NotFound
                                        | FieldStatus::OutsideMaxAge
                                        | FieldStatus::NullValue)
                                ),
                                "{:?}",
                                status
                            );
                        }
                    }
                }
                Err(Error::Request(error)) => {
                    *outcomes.borrow_mut().entry(variant(&error)).or_default() += 1;
                    prop_assert!(names_its_field(&error), "{}", error);
                }
                Err(other) => prop_assert!(false, "not a request error: {:?}", other),
            }
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    // The generators reach both answers and rejections of several kinds, or the property says little.
    let outcomes = outcomes.into_inner();
    eprintln!("outcomes: {outcomes:?}");
    assert!(outcomes.get("answered").is_some_and(|&n| n >= 20), "{outcomes:?}");
    assert!(outcomes.len() >= 6, "{outcomes:?}");
}

fn variant(error: &RequestError) -> &'static str {
    match error {
        RequestError::NoFeatures => "no_features",
        RequestError::TooManyFeatureRefs { .. } => "too_many_refs",
        RequestError::MalformedFeatureRef { .. } => "malformed_ref",
        RequestError::UnknownFeatureView { .. } => "unknown_view",
        RequestError::UnknownFeature { .. } => "unknown_feature",
        RequestError::EntityColumnLengths { .. } => "column_lengths",
        RequestError::MissingJoinKey { .. } => "missing_join_key",
        RequestError::TooManyEntityRows { .. } => "too_many_rows",
        RequestError::TooManyValues { .. } => "too_many_values",
        RequestError::EmptyEntityId { .. } => "empty_id",
        RequestError::InvalidEntityValue { .. } => "invalid_value",
    }
}

#[test]
fn a_well_formed_request_for_known_entities_is_always_answered() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = runtime.block_on(async {
        let mut config = StoreConfig::new(registry());
        config.snapshot = Some(tiny_csvs());
        OnlineStore::open(config).await.expect("embedded store")
    });
    let ids = || proptest::collection::vec("[a-z0-9-]{1,6}", 0..8);
    let strategy = (
        proptest::collection::vec(proptest::sample::select(known_refs()), 1..8),
        ids(),
        ids(),
    );
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |(features, customers, zones)| {
            let rows = customers.len().min(zones.len());
            let customers: Vec<&str> = customers.iter().take(rows).map(String::as_str).collect();
            let zones: Vec<&str> = zones.iter().take(rows).map(String::as_str).collect();
            let features: Vec<&str> = features.iter().map(String::as_str).collect();
            let request = request(&features, &[("customer_id", &customers), ("zone_id", &zones)]);
            let response = runtime
                .block_on(store.get_online_features(request, None))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(response.results.len(), features.len());
            for vector in &response.results {
                prop_assert_eq!(vector.statuses.len(), rows);
            }
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
}
