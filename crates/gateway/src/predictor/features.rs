//! Turning the feature-service's answer into model input rows.

use std::collections::HashMap;

use proto::feast::types::value::Val;
use proto::feast::types::{RepeatedValue, Value};
use proto::features::v1::{FieldStatus, GetOnlineFeaturesResponse};

use crate::downstream::{FEATURE_SERVICE, ModelSpec};
use crate::error::Error;

/// One entity's model inputs as they are gathered, and what could not be.
#[derive(Default)]
pub(super) struct Row {
    pub features: HashMap<String, f64>,
    pub missing: Vec<String>,
    pub stale: Vec<String>,
    pub unavailable: Vec<String>,
}

/// Turns the feature-service's columns into model input rows. A stale value is not used: the view's
/// max age says it no longer describes the entity, so the model's default stands in, as for a missing one.
pub(super) fn fill_features(
    spec: &ModelSpec,
    response: &GetOnlineFeaturesResponse,
    rows: &mut [Row],
) -> Result<(), Error> {
    let bad = |reason: String| Error::BadResponse {
        service: FEATURE_SERVICE,
        reason,
    };
    if response.results.len() != spec.feature_refs.len() {
        return Err(bad(format!(
            "{} feature vectors for {} features",
            response.results.len(),
            spec.feature_refs.len()
        )));
    }
    for (name, vector) in spec.feature_refs.iter().zip(&response.results) {
        if vector.values.len() != rows.len() || vector.statuses.len() != rows.len() {
            return Err(bad(format!(
                "feature {name} has {} values for {} entities",
                vector.values.len(),
                rows.len()
            )));
        }
        for ((row, value), status) in rows.iter_mut().zip(&vector.values).zip(&vector.statuses) {
            match FieldStatus::try_from(*status) {
                Ok(FieldStatus::Present) => match as_f64(value) {
                    Some(number) => {
                        row.features.insert(name.clone(), number);
                    }
                    None => row.missing.push(name.clone()),
                },
                Ok(FieldStatus::OutsideMaxAge) => row.stale.push(name.clone()),
                Ok(FieldStatus::Unavailable) => row.unavailable.push(name.clone()),
                _ => row.missing.push(name.clone()),
            }
        }
    }
    Ok(())
}

fn as_f64(value: &Value) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)] // feature magnitudes are far below 2^52
    let number = match value.val.as_ref()? {
        Val::DoubleVal(v) => *v,
        Val::FloatVal(v) => f64::from(*v),
        Val::Int64Val(v) | Val::UnixTimestampVal(v) => *v as f64,
        Val::Int32Val(v) => f64::from(*v),
        Val::BoolVal(v) => f64::from(u8::from(*v)),
        _ => return None,
    };
    number.is_finite().then_some(number)
}

/// The ids of a batch as the feature-service takes them: one column of string values.
pub(super) fn entity_column(ids: &[String]) -> RepeatedValue {
    RepeatedValue {
        val: ids
            .iter()
            .map(|id| Value {
                val: Some(Val::StringVal(id.clone())),
            })
            .collect(),
    }
}
