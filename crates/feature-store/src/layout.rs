//! Feast's Redis online-store layout, byte for byte as Feast's Python SDK writes it (checked against the
//! golden bytes of `tests/fixtures/feast/`, produced by a real `feast materialize` with feast 0.67.0).
//!
//! - **Key** = serialized entity key + project name (UTF-8): `feast/infra/online_stores/helpers.py`
//!   `_redis_key`. One Redis hash per entity key holds every view keyed by those join keys.
//! - **Entity key**, `entity_key_serialization_version` 3 (Feast's default, `repo_config.py`):
//!   `feast/infra/key_encoding_utils.py` `serialize_entity_key`:
//!   `u32le(number of keys)`, then per join key `u32le(STRING = 2)`, `u32le(len)`, UTF-8 bytes; then per value
//!   `u32le(value type tag)`, `u32le(len)`, bytes (string UTF-8; int32 `<i`; int64 and unix timestamp `<q`;
//!   bytes raw). With more than one join key, keys (and their values with them) are sorted by key.
//! - **Feature field** = Murmur3-32 (seed 0, unsigned) of `"view:feature"`, 4 bytes little endian
//!   (`helpers.py` `_mmh3`: `struct.pack("<Q", mmh3.hash(key, signed=False)).hex()[:8]`).
//! - **Event time field** = `"_ts:<view>"`, value = serialized `google.protobuf.Timestamp` (seconds and
//!   nanos; Feast ≥ 0.50 keeps sub-second precision via `Timestamp.FromDatetime`).
//! - **Values** = serialized `feast.types.Value`; Feast writes a null as an empty `Value` (zero bytes).

use std::io::Cursor;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use prost_types::Timestamp;
use proto::feast::types::Value;
use proto::feast::types::value::Val;

use crate::value_type::ValueType;

/// Feast's default `entity_key_serialization_version`, the only one written and read here.
pub const ENTITY_KEY_SERIALIZATION_VERSION: u32 = 3;

const TIMESTAMP_FIELD_PREFIX: &[u8] = b"_ts:";

/// An entity value that Feast cannot put into a key (lists, doubles, bools, nulls).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {0} value cannot be part of an entity key")]
pub struct UnsupportedEntityValue(pub &'static str);

/// Serializes an entity key exactly as Feast's `serialize_entity_key` (version 3) does.
pub fn serialize_entity_key(pairs: &[(&str, &Value)]) -> Result<Vec<u8>, UnsupportedEntityValue> {
    let mut out = Vec::with_capacity(entity_key_capacity(pairs));
    write_entity_key(pairs, &mut out)?;
    Ok(out)
}

/// The Redis key of an entity: serialized entity key followed by the project name.
pub fn redis_key(serialized_entity_key: &[u8], project: &str) -> Bytes {
    let mut key = BytesMut::with_capacity(serialized_entity_key.len() + project.len());
    key.put_slice(serialized_entity_key);
    key.put_slice(project.as_bytes());
    key.freeze()
}

/// [`redis_key`] of the entity key of `pairs` ([`serialize_entity_key`]), written into one buffer.
pub fn entity_redis_key(pairs: &[(&str, &Value)], project: &str) -> Result<Bytes, UnsupportedEntityValue> {
    let mut key = BytesMut::with_capacity(entity_key_capacity(pairs) + project.len());
    write_entity_key(pairs, &mut key)?;
    key.put_slice(project.as_bytes());
    Ok(key.freeze())
}

/// Room for an entity key of `pairs` whose values are short (ids): key names and framing exactly, 16
/// bytes a value.
fn entity_key_capacity(pairs: &[(&str, &Value)]) -> usize {
    8 + pairs.iter().map(|(k, _)| 24 + k.len()).sum::<usize>()
}

fn write_entity_key(pairs: &[(&str, &Value)], out: &mut impl BufMut) -> Result<(), UnsupportedEntityValue> {
    // Python's `sorted(zip(keys, values))`; `str` ordering is by code point, as is Rust's for UTF-8. Join
    // keys usually come sorted already (or alone), and are then not copied.
    let sorted: std::borrow::Cow<'_, [(&str, &Value)]> = if pairs.is_sorted_by(|a, b| a.0 <= b.0) {
        pairs.into()
    } else {
        let mut sorted = pairs.to_vec();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        sorted.into()
    };
    put_u32(out, sorted.len());
    for (key, _) in sorted.iter() {
        out.put_u32_le(ValueType::String.tag());
        put_u32(out, key.len());
        out.put_slice(key.as_bytes());
    }
    for (_, value) in sorted.iter() {
        let number: [u8; 8];
        let (tag, bytes): (ValueType, &[u8]) = match &value.val {
            Some(Val::StringVal(s)) => (ValueType::String, s.as_bytes()),
            Some(Val::BytesVal(b)) => (ValueType::Bytes, b.as_slice()),
            Some(Val::Int32Val(i)) => {
                // Little endian: an i32's four bytes are the low four of the same number as an i64.
                number = i64::from(*i).to_le_bytes();
                (ValueType::Int32, &number[..4])
            }
            Some(Val::Int64Val(i)) => {
                number = i.to_le_bytes();
                (ValueType::Int64, &number)
            }
            Some(Val::UnixTimestampVal(i)) => {
                number = i.to_le_bytes();
                (ValueType::UnixTimestamp, &number)
            }
            other => return Err(UnsupportedEntityValue(value_kind(other.as_ref()))),
        };
        out.put_u32_le(tag.tag());
        put_u32(out, bytes.len());
        out.put_slice(bytes);
    }
    Ok(())
}

/// Feast writes lengths as `struct.pack("<I", len)`; lengths past `u32::MAX` cannot occur for keys a
/// request or a CSV cell can carry, and saturate rather than wrap if they ever did.
fn put_u32(out: &mut impl BufMut, len: usize) {
    out.put_u32_le(u32::try_from(len).unwrap_or(u32::MAX));
}

/// The project of a Redis key laid out by [`redis_key`]: what follows the serialized entity key (its
/// count, then a type tag, a length and the bytes of each join key and of each value), or `None` when
/// `key` does not start with a whole serialized entity key. Tells a key of project `pricing` from one of
/// `dynamic_pricing`, which a suffix match alone would not.
pub fn key_project(key: &[u8]) -> Option<&[u8]> {
    let take_u32 = |rest: &mut &[u8]| -> Option<usize> {
        let (word, tail) = rest.split_first_chunk::<4>()?;
        *rest = tail;
        usize::try_from(u32::from_le_bytes(*word)).ok()
    };
    let mut rest = key;
    let count = take_u32(&mut rest)?;
    // Every join key and every value takes at least its 8-byte tag and length: a count past that is no
    // entity key (and is not looped over).
    if count == 0 || count > rest.len() / 16 {
        return None;
    }
    for _ in 0..2 * count {
        take_u32(&mut rest)?;
        let len = take_u32(&mut rest)?;
        rest = rest.get(len..)?;
    }
    Some(rest)
}

/// The hash field of a feature: Murmur3-32 (seed 0) of `"view:feature"`, little endian.
pub fn field_hash(view: &str, feature: &str) -> std::io::Result<Bytes> {
    let name = format!("{view}:{feature}");
    let hash = murmur3::murmur3_32(&mut Cursor::new(name.as_bytes()), 0)?;
    Ok(Bytes::copy_from_slice(&hash.to_le_bytes()))
}

/// The hash field holding a view's event time: `"_ts:<view>"`.
pub fn timestamp_field(view: &str) -> Bytes {
    let mut field = BytesMut::with_capacity(TIMESTAMP_FIELD_PREFIX.len() + view.len());
    field.put_slice(TIMESTAMP_FIELD_PREFIX);
    field.put_slice(view.as_bytes());
    field.freeze()
}

/// A serialized `feast.types.Value`.
pub fn encode_value(value: &Value) -> Bytes {
    Bytes::from(value.encode_to_vec())
}

/// A serialized `google.protobuf.Timestamp`.
pub fn encode_timestamp(timestamp: &Timestamp) -> Bytes {
    Bytes::from(timestamp.encode_to_vec())
}

/// Bytes that are not what the layout says they should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a serialized feast.types.Value: {0}")]
    Value(String),
    #[error("not a serialized google.protobuf.Timestamp: {0}")]
    Timestamp(String),
    #[error("timestamp out of range: {seconds}s {nanos}ns")]
    TimestampRange { seconds: i64, nanos: i32 },
}

/// Decodes stored value bytes. Never panics, whatever the bytes.
pub fn decode_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    Value::decode(bytes).map_err(|e| DecodeError::Value(e.to_string()))
}

/// Decodes a stored event time; rejects timestamps outside the range protobuf allows (years 1-9999,
/// nanos in 0..1e9), so later arithmetic on them cannot overflow.
pub fn decode_timestamp(bytes: &[u8]) -> Result<Timestamp, DecodeError> {
    let ts = Timestamp::decode(bytes).map_err(|e| DecodeError::Timestamp(e.to_string()))?;
    const MIN_SECONDS: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    const MAX_SECONDS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&ts.seconds) || !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(DecodeError::TimestampRange {
            seconds: ts.seconds,
            nanos: ts.nanos,
        });
    }
    Ok(ts)
}

/// A short name of a value's kind, for messages.
pub fn value_kind(value: Option<&Val>) -> &'static str {
    match value {
        None => "empty",
        Some(Val::BytesVal(_)) => "bytes",
        Some(Val::StringVal(_)) => "string",
        Some(Val::Int32Val(_)) => "int32",
        Some(Val::Int64Val(_)) => "int64",
        Some(Val::DoubleVal(_)) => "double",
        Some(Val::FloatVal(_)) => "float",
        Some(Val::BoolVal(_)) => "bool",
        Some(Val::UnixTimestampVal(_)) => "unix_timestamp",
        Some(Val::BytesListVal(_)) => "bytes list",
        Some(Val::StringListVal(_)) => "string list",
        Some(Val::Int32ListVal(_)) => "int32 list",
        Some(Val::Int64ListVal(_)) => "int64 list",
        Some(Val::DoubleListVal(_)) => "double list",
        Some(Val::FloatListVal(_)) => "float list",
        Some(Val::BoolListVal(_)) => "bool list",
        Some(Val::UnixTimestampListVal(_)) => "unix_timestamp list",
        Some(Val::NullVal(_)) => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_field_is_prefixed_view_name() {
        assert_eq!(&timestamp_field("zone_demand")[..], b"_ts:zone_demand");
    }

    #[test]
    fn single_string_key_matches_feast_v3() {
        let value = Value {
            val: Some(Val::StringVal("c-001".into())),
        };
        let key = serialize_entity_key(&[("customer_id", &value)]).expect("string keys serialize");
        let mut want = vec![1, 0, 0, 0, 2, 0, 0, 0, 11, 0, 0, 0];
        want.extend_from_slice(b"customer_id");
        want.extend_from_slice(&[2, 0, 0, 0, 5, 0, 0, 0]);
        want.extend_from_slice(b"c-001");
        assert_eq!(key, want);
    }

    #[test]
    fn keys_sort_by_name_and_numbers_take_their_own_width() {
        let (zone, hour) = (
            Value {
                val: Some(Val::Int32Val(-5)),
            },
            Value {
                val: Some(Val::UnixTimestampVal(1_700_000_000)),
            },
        );
        let unsorted = [("zone_id", &zone), ("hour", &hour)];
        let key = serialize_entity_key(&unsorted).expect("serializes");
        let mut want = vec![2, 0, 0, 0];
        for name in ["hour", "zone_id"] {
            want.extend_from_slice(&[2, 0, 0, 0, name.len() as u8, 0, 0, 0]);
            want.extend_from_slice(name.as_bytes());
        }
        want.extend_from_slice(&[ValueType::UnixTimestamp.tag() as u8, 0, 0, 0, 8, 0, 0, 0]);
        want.extend_from_slice(&1_700_000_000i64.to_le_bytes());
        want.extend_from_slice(&[ValueType::Int32.tag() as u8, 0, 0, 0, 4, 0, 0, 0]);
        want.extend_from_slice(&(-5i32).to_le_bytes());
        assert_eq!(key, want);
        // Sorted or not, the same key; and the Redis key written at once is the two steps' own.
        let sorted = [("hour", &hour), ("zone_id", &zone)];
        assert_eq!(serialize_entity_key(&sorted).expect("serializes"), want);
        for pairs in [&unsorted, &sorted] {
            let at_once = entity_redis_key(pairs, "pricing").expect("serializes");
            assert_eq!(at_once, redis_key(&want, "pricing"));
        }
        let null = Value::default();
        assert!(entity_redis_key(&[("k", &null)], "pricing").is_err());
    }

    #[test]
    fn the_project_is_what_follows_the_entity_key() {
        let value = Value {
            val: Some(Val::Int64Val(7)),
        };
        let entity = serialize_entity_key(&[("zone_id", &value), ("a", &value)]).expect("serializes");
        let key = redis_key(&entity, "dynamic_pricing");
        assert_eq!(key_project(&key), Some(&b"dynamic_pricing"[..]));
        assert_eq!(key_project(&entity), Some(&b""[..]));
        assert_eq!(key_project(&key[..entity.len() - 1]), None);
        assert_eq!(key_project(b"pricing"), None);
        assert_eq!(key_project(&[0, 0, 0, 0]), None);
        assert_eq!(key_project(&[255, 255, 255, 255, 2, 0, 0, 0]), None);
    }

    #[test]
    fn list_and_null_entity_values_are_rejected() {
        let null = Value {
            val: Some(Val::NullVal(0)),
        };
        assert!(serialize_entity_key(&[("k", &null)]).is_err());
        assert!(serialize_entity_key(&[("k", &Value::default())]).is_err());
    }

    #[test]
    fn out_of_range_timestamps_are_rejected() {
        let bad = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert!(decode_timestamp(&bad.encode_to_vec()).is_err());
        let bad = Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert!(decode_timestamp(&bad.encode_to_vec()).is_err());
    }
}
