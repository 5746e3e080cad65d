//! One view's values for one entity, decoded from a hash (Redis's or the embedded store's), and the
//! status of each value at read time. The single decode path of the crate: malformed bytes become an
//! INVALID status for that value, never an error or a panic (property-tested in `row/tests.rs`).

use std::time::{Duration, SystemTime};

use prost::Message;
use prost_types::Timestamp;
use proto::feast::types::Value;
use proto::feast::types::value::Val;
use proto::features::v1::FieldStatus;

use super::redis::Hash;
use crate::csv_rows::timestamp_nanos;
use crate::layout;
use crate::registry::FeatureView;

/// One feature's stored state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// No field for the feature in the hash.
    NotFound,
    /// The bytes are not a `feast.types.Value`, hold a member of it this platform does not know, or a
    /// value of another type than the registry's.
    Invalid,
    Value(Value),
    /// Redis could not be read and no cached row stood in.
    Unavailable,
}

/// A view's row for one entity: its event time and one cell per feature of the view (registry order).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ViewRow {
    /// `None` when the `_ts:` field is missing or malformed.
    pub event_timestamp: Option<Timestamp>,
    pub cells: Box<[Cell]>,
}

impl ViewRow {
    /// A row for a key that holds no hash at all (WRONGTYPE): every value INVALID.
    pub fn invalid(view: &FeatureView) -> Self {
        Self {
            event_timestamp: None,
            cells: vec![Cell::Invalid; view.features.len()].into(),
        }
    }

    /// A row standing for Redis being unreachable: every value UNAVAILABLE. Never cached.
    pub fn unavailable(view: &FeatureView) -> Self {
        Self {
            event_timestamp: None,
            cells: vec![Cell::Unavailable; view.features.len()].into(),
        }
    }

    pub fn decode(hash: &Hash, view: &FeatureView) -> Self {
        let event_timestamp = hash.get(&view.timestamp_field).and_then(|bytes| {
            layout::decode_timestamp(bytes)
                .inspect_err(|error| tracing::debug!(view = %view.name, %error, "malformed event timestamp"))
                .ok()
        });
        let cells = view
            .features
            .iter()
            .map(|feature| match hash.get(&feature.field) {
                None => Cell::NotFound,
                Some(bytes) => match layout::decode_value(bytes) {
                    // Feast stores a null as zero bytes; bytes that decode to no member we know hold a
                    // member of Feast's newer Value (map, json, uuid, ...) this platform cannot represent.
                    Ok(value) if value.val.is_none() && !bytes.is_empty() => {
                        tracing::debug!(view = %view.name, feature = %feature.name, "unsupported Value member");
                        Cell::Invalid
                    }
                    Ok(value) if value.val.as_ref().is_none_or(|v| feature.value_type.matches(v)) => Cell::Value(value),
                    Ok(value) => {
                        tracing::debug!(
                            view = %view.name, feature = %feature.name, expected = %feature.value_type,
                            got = layout::value_kind(value.val.as_ref()), "stored value has the wrong type"
                        );
                        Cell::Invalid
                    }
                    Err(error) => {
                        tracing::debug!(view = %view.name, feature = %feature.name, %error, "malformed value");
                        Cell::Invalid
                    }
                },
            })
            .collect();
        Self {
            event_timestamp,
            cells,
        }
    }

    /// Approximate bytes held, for the cache's weigher.
    pub fn weight(&self) -> u32 {
        let values: usize = self
            .cells
            .iter()
            .map(|c| match c {
                Cell::Value(v) => v.encoded_len() + 32,
                _ => 32,
            })
            .sum();
        u32::try_from(values + 64).unwrap_or(u32::MAX)
    }

    /// The value, status and event time of feature `index`, judged against `ttl` at `now`.
    ///
    /// A value whose row has no readable event time counts as infinitely old: OUTSIDE_MAX_AGE when the
    /// view has a max age (the value is still returned, as for any stale value).
    pub fn field(
        &self,
        index: usize,
        ttl: Option<Duration>,
        now: SystemTime,
    ) -> (Value, FieldStatus, Timestamp) {
        let timestamp = self.event_timestamp.unwrap_or_default();
        match self.cells.get(index) {
            None | Some(Cell::NotFound) => (Value::default(), FieldStatus::NotFound, timestamp),
            Some(Cell::Invalid) => (Value::default(), FieldStatus::Invalid, timestamp),
            Some(Cell::Unavailable) => (Value::default(), FieldStatus::Unavailable, timestamp),
            Some(Cell::Value(value)) => {
                let status = match value.val {
                    None | Some(Val::NullVal(_)) => FieldStatus::NullValue,
                    Some(_) if self.is_stale(ttl, now) => FieldStatus::OutsideMaxAge,
                    Some(_) => FieldStatus::Present,
                };
                (value.clone(), status, timestamp)
            }
        }
    }

    fn is_stale(&self, ttl: Option<Duration>, now: SystemTime) -> bool {
        let Some(ttl) = ttl else {
            return false;
        };
        let Some(event) = &self.event_timestamp else {
            return true;
        };
        let age = timestamp_nanos(&Timestamp::from(now)) - timestamp_nanos(event);
        age > i128::try_from(ttl.as_nanos()).unwrap_or(i128::MAX)
    }
}

#[cfg(test)]
mod tests;
