//! Whatever bytes a hash holds, decoding a row never panics: undecodable values are INVALID, unreadable
//! event times count as missing, and what decodes to the registry's type comes back as stored.
//!
//! The stored bytes are drawn from three families: arbitrary bytes (mostly not protobuf at all),
//! well-formed encodings of arbitrary `feast.types.Value`s and `Timestamp`s (every member, any type), and
//! those encodings truncated or with one byte flipped (protobuf that is almost right, where decoders break).

use std::sync::OnceLock;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::Config;
use proto::feast::types::{
    BoolList, BytesList, DoubleList, FloatList, Int32List, Int64List, Null, StringList,
};

use super::*;
use crate::Registry;

/// A view with one feature of every value type, so every member of `Value` meets its own type and others.
const ALL_TYPES: &str = r#"{
  "project": "props",
  "entities": [{ "name": "thing", "join_key": "thing_id", "value_type": "STRING" }],
  "feature_views": [{
    "name": "every_type",
    "entities": ["thing_id"],
    "ttl_seconds": 3600,
    "features": [
      { "name": "bytes", "value_type": "BYTES" },
      { "name": "string", "value_type": "STRING" },
      { "name": "int32", "value_type": "INT32" },
      { "name": "int64", "value_type": "INT64" },
      { "name": "double", "value_type": "DOUBLE" },
      { "name": "float", "value_type": "FLOAT" },
      { "name": "bool", "value_type": "BOOL" },
      { "name": "unix_timestamp", "value_type": "UNIX_TIMESTAMP" },
      { "name": "bytes_list", "value_type": "BYTES_LIST" },
      { "name": "string_list", "value_type": "STRING_LIST" },
      { "name": "int32_list", "value_type": "INT32_LIST" },
      { "name": "int64_list", "value_type": "INT64_LIST" },
      { "name": "double_list", "value_type": "DOUBLE_LIST" },
      { "name": "float_list", "value_type": "FLOAT_LIST" },
      { "name": "bool_list", "value_type": "BOOL_LIST" },
      { "name": "unix_timestamp_list", "value_type": "UNIX_TIMESTAMP_LIST" }
    ]
  }]
}"#;

fn view() -> &'static FeatureView {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| Registry::from_json(ALL_TYPES, "props").expect("registry"));
    &registry.views()[0]
}

fn config() -> Config {
    Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    }
}

fn val() -> impl Strategy<Value = Val> {
    let list = |n| proptest::collection::vec(any::<u8>(), 0..n);
    prop_oneof![
        list(16).prop_map(Val::BytesVal),
        ".{0,12}".prop_map(Val::StringVal),
        any::<i32>().prop_map(Val::Int32Val),
        any::<i64>().prop_map(Val::Int64Val),
        any::<f64>().prop_map(Val::DoubleVal),
        any::<f32>().prop_map(Val::FloatVal),
        any::<bool>().prop_map(Val::BoolVal),
        any::<i64>().prop_map(Val::UnixTimestampVal),
        proptest::collection::vec(list(8), 0..4).prop_map(|val| Val::BytesListVal(BytesList { val })),
        proptest::collection::vec(".{0,6}", 0..4).prop_map(|val| Val::StringListVal(StringList { val })),
        proptest::collection::vec(any::<i32>(), 0..6).prop_map(|val| Val::Int32ListVal(Int32List { val })),
        proptest::collection::vec(any::<i64>(), 0..6).prop_map(|val| Val::Int64ListVal(Int64List { val })),
        proptest::collection::vec(any::<f64>(), 0..6).prop_map(|val| Val::DoubleListVal(DoubleList { val })),
        proptest::collection::vec(any::<f32>(), 0..6).prop_map(|val| Val::FloatListVal(FloatList { val })),
        proptest::collection::vec(any::<bool>(), 0..6).prop_map(|val| Val::BoolListVal(BoolList { val })),
        proptest::collection::vec(any::<i64>(), 0..6)
            .prop_map(|val| Val::UnixTimestampListVal(Int64List { val })),
        any::<i32>().prop_map(Val::NullVal),
        Just(Val::NullVal(Null::Null as i32)),
    ]
}

/// Valid encodings, optionally broken: truncated to a prefix, or with one byte replaced.
fn damaged(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (valid, 0usize..3, any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut bytes, damage, at, byte)| {
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            match damage {
                1 => bytes.truncate(i),
                2 => bytes[i] = byte,
                _ => {}
            }
        }
        bytes
    })
}

fn value_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..48),
        damaged(proptest::option::of(val()).prop_map(|val| Value { val }.encode_to_vec())),
    ]
}

fn timestamp_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..24),
        damaged(
            (any::<i64>(), any::<i32>())
                .prop_map(|(seconds, nanos)| Timestamp { seconds, nanos }.encode_to_vec())
        ),
        // In range, so some rows have a usable event time.
        (-62_135_596_800i64..=253_402_300_799, 0i32..1_000_000_000).prop_map(|(seconds, nanos)| Timestamp {
            seconds,
            nanos
        }
        .encode_to_vec()),
    ]
}

/// Each feature's field present with some bytes, or absent.
fn hash() -> impl Strategy<Value = (Option<Vec<u8>>, Vec<Option<Vec<u8>>>)> {
    (
        proptest::option::of(timestamp_bytes()),
        proptest::collection::vec(proptest::option::of(value_bytes()), view().features.len()),
    )
}

fn build(view: &FeatureView, ts: &Option<Vec<u8>>, values: &[Option<Vec<u8>>]) -> Hash {
    let mut hash = Hash::new();
    if let Some(ts) = ts {
        hash.insert(view.timestamp_field.clone(), Bytes::from(ts.clone()));
    }
    for (feature, value) in view.features.iter().zip(values) {
        if let Some(value) = value {
            hash.insert(feature.field.clone(), Bytes::from(value.clone()));
        }
    }
    hash
}

proptest! {
    #![proptest_config(config())]

    /// The status of every value follows from its bytes alone; nothing panics, whatever the bytes and
    /// whatever the max age and clock.
    #[test]
    fn every_value_gets_the_status_its_bytes_deserve(
        (ts, values) in hash(),
        ttl in proptest::option::of(any::<u64>()),
        now_offset in any::<i32>(),
    ) {
        let view = view();
        let row = ViewRow::decode(&build(view, &ts, &values), view);
        let event = ts.as_deref().and_then(|b| layout::decode_timestamp(b).ok());
        prop_assert_eq!(&row.event_timestamp, &event);
        let now = if now_offset >= 0 {
            SystemTime::now() + Duration::from_secs(now_offset.unsigned_abs().into())
        } else {
            SystemTime::now() - Duration::from_secs(now_offset.unsigned_abs().into())
        };
        let ttl = ttl.map(Duration::from_secs);
        for (index, (feature, stored)) in view.features.iter().zip(&values).enumerate() {
            let (value, status, timestamp) = row.field(index, ttl, now);
            prop_assert_eq!(timestamp, event.unwrap_or_default());
            let Some(bytes) = stored else {
                prop_assert_eq!(status, FieldStatus::NotFound);
                continue;
            };
            match Value::decode(bytes.as_slice()) {
                // Feast's null: zero bytes.
                Ok(decoded) if bytes.is_empty() => {
                    prop_assert_eq!(status, FieldStatus::NullValue);
                    prop_assert_eq!(value, decoded);
                }
                Ok(Value { val: Some(Val::NullVal(n)) }) => {
                    prop_assert_eq!(status, FieldStatus::NullValue);
                    prop_assert_eq!(value.val, Some(Val::NullVal(n)));
                }
                Ok(decoded @ Value { val: Some(_) })
                    if decoded.val.as_ref().is_some_and(|v| feature.value_type.matches(v)) =>
                {
                    prop_assert!(
                        matches!(status, FieldStatus::Present | FieldStatus::OutsideMaxAge),
                        "{:?}", status
                    );
                    // Compared encoded: a NaN is stored as faithfully as any double, but is not equal to itself.
                    prop_assert_eq!(value.encode_to_vec(), decoded.encode_to_vec());
                }
                // Undecodable, an unknown member, or another type than the registry's.
                _ => {
                    prop_assert_eq!(status, FieldStatus::Invalid);
                    prop_assert_eq!(value, Value::default());
                }
            }
        }
        // Past the last feature: NOT_FOUND, not a panic.
        prop_assert_eq!(row.field(view.features.len(), ttl, now).1, FieldStatus::NotFound);
        prop_assert!(row.weight() > 0);
    }

    /// Timestamps decode or are rejected; what decodes is in protobuf's range, so age arithmetic on it
    /// cannot overflow.
    #[test]
    fn timestamps_decode_in_range_or_not_at_all(bytes in timestamp_bytes()) {
        if let Ok(ts) = layout::decode_timestamp(&bytes) {
            prop_assert!((-62_135_596_800..=253_402_300_799).contains(&ts.seconds));
            prop_assert!((0..1_000_000_000).contains(&ts.nanos));
        }
    }
}

#[test]
fn missing_timestamp_means_stale_only_with_a_max_age() {
    let registry = Registry::bundled().expect("registry");
    let view = registry.view("zone_weather").expect("view");
    let value = Value {
        val: Some(Val::DoubleVal(1.0)),
    }
    .encode_to_vec();
    let hash = build(view, &None, &[Some(value.clone()), Some(value)]);
    let row = ViewRow::decode(&hash, view);
    let now = SystemTime::now();
    assert_eq!(
        row.field(0, Some(Duration::from_secs(60)), now).1,
        FieldStatus::OutsideMaxAge
    );
    assert_eq!(row.field(0, None, now).1, FieldStatus::Present);
}

#[test]
fn unavailable_rows_say_so_for_every_feature() {
    let view = view();
    let row = ViewRow::unavailable(view);
    for index in 0..view.features.len() {
        let (value, status, timestamp) = row.field(index, view.ttl, SystemTime::now());
        assert_eq!(
            (value, status, timestamp),
            (Value::default(), FieldStatus::Unavailable, Timestamp::default())
        );
    }
}
