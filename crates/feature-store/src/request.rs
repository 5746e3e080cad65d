//! Validates a `GetOnlineFeatures` request against the registry and plans its reads: which Redis keys to
//! read (each distinct entity key once, however many views and rows ask for it) and which views of each.
//!
//! An answer holds one value per feature reference and entity row, so the request's size alone does not
//! bound the work: 4 MiB of short references times 1000 rows asks for ~10^8 values. The counts are
//! capped ([`MAX_FEATURE_REFS`], [`MAX_ENTITY_ROWS`], [`MAX_VALUES`]) before anything is parsed or
//! allocated.

use std::collections::HashMap;

use bytes::Bytes;
use proto::feast::types::value::Val;
use proto::feast::types::{RepeatedValue, Value};

use crate::error::RequestError;
use crate::layout;
use crate::registry::Registry;
use crate::value_type::ValueType;

/// The most entity rows one request may ask for.
pub const MAX_ENTITY_ROWS: usize = 1000;

/// The most feature references one request may name. The registry holds a few dozen features and a model
/// takes about ten; more than this is a caller's bug, not a bigger model.
pub const MAX_FEATURE_REFS: usize = 500;

/// The most values (feature references × entity rows) one answer may hold. The gateway asks for at most
/// 500 entities × ~10 features (5,000 values), and every feature of the registry for the most entity
/// rows is ~16,000; numeric values encode in ~20 bytes with their status and event time, so an answer at
/// this cap stays near 2 MB, under gRPC's default 4 MiB a client accepts.
pub const MAX_VALUES: usize = 100_000;

/// Up to this many entity rows, a group's repeated keys are found by comparing each new key with the
/// group's keys so far; past it, through a hash map.
const SCANNED_ROWS: usize = 16;

/// A validated request, ready to be read.
#[derive(Debug)]
pub(crate) struct Plan {
    /// `(view index, feature index)` of each requested feature, in request order.
    pub refs: Vec<(usize, usize)>,
    /// Number of entity rows.
    pub rows: usize,
    /// The distinct Redis keys to read.
    pub keys: Vec<Bytes>,
    /// For each key, the views (indices) to read from it.
    pub key_views: Vec<Vec<usize>>,
    /// For each registry view: `None` when not requested, else the key index of each entity row.
    pub row_keys: Vec<Option<std::sync::Arc<[usize]>>>,
}

impl Plan {
    pub fn new(
        registry: &Registry,
        project: &str,
        features: &[String],
        entities: &HashMap<String, RepeatedValue>,
    ) -> Result<Self, RequestError> {
        check_counts(features.len(), entities)?;
        let mut refs = Vec::with_capacity(features.len());
        for (index, reference) in features.iter().enumerate() {
            refs.push(resolve_ref(registry, index, reference)?);
        }
        let rows = entity_rows(entities)?;

        let mut requested: Vec<usize> = refs.iter().map(|&(view, _)| view).collect();
        requested.sort_unstable();
        requested.dedup();

        // Views keyed by the same join keys share one hash per entity: group them so each row's key is
        // serialized once per group. A request reads a few views, so the groups are a short list.
        let mut groups: Vec<(Vec<&str>, Vec<usize>)> = Vec::new();
        for &view_index in &requested {
            let view = &registry.views()[view_index];
            let mut join_keys = Vec::with_capacity(view.join_keys.len());
            for join_key in &view.join_keys {
                if !entities.contains_key(join_key) {
                    return Err(RequestError::MissingJoinKey {
                        view: view.name.clone(),
                        join_key: join_key.clone(),
                    });
                }
                join_keys.push(join_key.as_str());
            }
            join_keys.sort_unstable();
            match groups.iter_mut().find(|(keys, _)| *keys == join_keys) {
                Some((_, views)) => views.push(view_index),
                None => groups.push((join_keys, vec![view_index])),
            }
        }
        groups.sort();

        let mut keys: Vec<Bytes> = Vec::new();
        let mut key_views: Vec<Vec<usize>> = Vec::new();
        let mut row_keys = vec![None; registry.views().len()];
        for (join_keys, views) in groups {
            let columns = join_keys
                .iter()
                .map(|&join_key| checked_column(registry, entities, join_key, rows))
                .collect::<Result<Vec<_>, _>>()?;
            // A key names its join keys, so groups never share one: each group's keys are new, and
            // repeated rows are found among this group's alone, by a scan when there are few.
            let first = keys.len();
            let mut index: Option<HashMap<Bytes, usize>> = (rows > SCANNED_ROWS).then(HashMap::new);
            let mut pairs: Vec<(&str, &Value)> = Vec::with_capacity(join_keys.len());
            let mut group_row_keys = Vec::with_capacity(rows);
            for row in 0..rows {
                pairs.clear();
                pairs.extend(
                    join_keys
                        .iter()
                        .zip(&columns)
                        .map(|(&k, column)| (k, &column[row])),
                );
                let key = layout::entity_redis_key(&pairs, project).map_err(|e| {
                    RequestError::InvalidEntityValue {
                        join_key: join_keys.join(","),
                        row,
                        expected: ValueType::String,
                        got: e.0,
                    }
                })?;
                let known = match &mut index {
                    Some(index) => index.get(&key).copied(),
                    None => keys[first..].iter().position(|k| *k == key).map(|i| first + i),
                };
                let key_index = known.unwrap_or_else(|| {
                    if let Some(index) = &mut index {
                        index.insert(key.clone(), keys.len());
                    }
                    keys.push(key);
                    key_views.push(Vec::new());
                    keys.len() - 1
                });
                // Within one group every distinct key needs every view of the group.
                if key_views[key_index].is_empty() {
                    key_views[key_index].extend_from_slice(&views);
                }
                group_row_keys.push(key_index);
            }
            let group_row_keys: std::sync::Arc<[usize]> = group_row_keys.into();
            for &view in &views {
                row_keys[view] = Some(group_row_keys.clone());
            }
        }
        Ok(Self {
            refs,
            rows,
            keys,
            key_views,
            row_keys,
        })
    }
}

/// The request's counts against the caps: the number of references and the longest entity column, read
/// without parsing or allocating anything, so an oversized request costs no more than its decoding.
fn check_counts(refs: usize, entities: &HashMap<String, RepeatedValue>) -> Result<(), RequestError> {
    if refs == 0 {
        return Err(RequestError::NoFeatures);
    }
    if refs > MAX_FEATURE_REFS {
        return Err(RequestError::TooManyFeatureRefs {
            refs,
            max: MAX_FEATURE_REFS,
        });
    }
    // The longest column: columns of unequal length are refused later, with the names of two of them.
    let rows = entities.values().map(|c| c.val.len()).max().unwrap_or(0);
    if rows > MAX_ENTITY_ROWS {
        return Err(RequestError::TooManyEntityRows {
            rows,
            max: MAX_ENTITY_ROWS,
        });
    }
    // Both factors are capped above, so the product cannot overflow.
    if refs * rows > MAX_VALUES {
        return Err(RequestError::TooManyValues {
            refs,
            rows,
            max: MAX_VALUES,
        });
    }
    Ok(())
}

fn resolve_ref(registry: &Registry, index: usize, reference: &str) -> Result<(usize, usize), RequestError> {
    let malformed = || RequestError::MalformedFeatureRef {
        index,
        reference: reference.to_owned(),
    };
    let (view_name, feature) = reference.split_once(':').ok_or_else(malformed)?;
    if view_name.is_empty() || feature.is_empty() || feature.contains(':') {
        return Err(malformed());
    }
    let view_index = registry
        .view_index(view_name)
        .ok_or_else(|| RequestError::UnknownFeatureView {
            index,
            view: view_name.to_owned(),
        })?;
    let feature_index = registry.views()[view_index]
        .feature_index(feature)
        .ok_or_else(|| RequestError::UnknownFeature {
            index,
            view: view_name.to_owned(),
            feature: feature.to_owned(),
        })?;
    Ok((view_index, feature_index))
}

/// The common length of all entity columns (at most [`MAX_ENTITY_ROWS`]: [`check_counts`] ran first).
fn entity_rows(entities: &HashMap<String, RepeatedValue>) -> Result<usize, RequestError> {
    // Sorted, so the error for a given request is always the same one.
    let mut columns: Vec<(&String, usize)> = entities.iter().map(|(k, v)| (k, v.val.len())).collect();
    columns.sort_unstable();
    let Some(&(first_key, rows)) = columns.first() else {
        return Ok(0);
    };
    if let Some(&(join_key, len)) = columns.iter().find(|(_, len)| *len != rows) {
        return Err(RequestError::EntityColumnLengths {
            join_key: join_key.clone(),
            len,
            other_join_key: first_key.clone(),
            other_len: rows,
        });
    }
    Ok(rows)
}

/// An entity column whose every value has the join key's type and is not empty.
fn checked_column<'a>(
    registry: &Registry,
    entities: &'a HashMap<String, RepeatedValue>,
    join_key: &str,
    rows: usize,
) -> Result<&'a [Value], RequestError> {
    let expected = registry
        .entity(join_key)
        .map_or(ValueType::String, |e| e.value_type);
    let column = entities
        .get(join_key)
        .map(|c| c.val.as_slice())
        .unwrap_or_default();
    for (row, value) in column.iter().enumerate().take(rows) {
        let ok = match (&value.val, expected) {
            (Some(Val::StringVal(s)), ValueType::String) => !s.is_empty(),
            (Some(Val::BytesVal(b)), ValueType::Bytes) => !b.is_empty(),
            (Some(Val::Int32Val(_)), ValueType::Int32)
            | (Some(Val::Int64Val(_)), ValueType::Int64)
            | (Some(Val::UnixTimestampVal(_)), ValueType::UnixTimestamp) => true,
            (other, _) => {
                return Err(RequestError::InvalidEntityValue {
                    join_key: join_key.to_owned(),
                    row,
                    expected,
                    got: layout::value_kind(other.as_ref()),
                });
            }
        };
        if !ok {
            return Err(RequestError::EmptyEntityId {
                join_key: join_key.to_owned(),
                row,
            });
        }
    }
    Ok(column)
}
