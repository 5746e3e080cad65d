//! One feature fetch for several batches ([`FetchPlan`]), and its answer as model input rows.

use std::collections::HashMap;
use std::sync::Arc;

use proto::feast::types::value::Val;
use proto::feast::types::{RepeatedValue, Value};
use proto::features::v1::{FieldStatus, GetOnlineFeaturesRequest};
use proto::models::v1::FeatureRow;

use super::score::Batch;
use crate::downstream::{FEATURE_SERVICE, FeatureFetch, ModelSpec, OnlineFeatures};
use crate::error::Error;

/// One entity's model inputs as they are gathered, and what could not be.
pub(super) struct Row {
    /// By position, in the model's input order; NaN where there is no value (the model's default
    /// stands in).
    pub values: Vec<f64>,
    pub missing: Vec<String>,
    pub stale: Vec<String>,
    pub unavailable: Vec<String>,
}

impl Row {
    /// A row of a model that takes `width` inputs, none of them known yet.
    pub fn new(width: usize) -> Self {
        Self {
            values: vec![f64::NAN; width],
            missing: Vec::new(),
            stale: Vec::new(),
            unavailable: Vec::new(),
        }
    }

    /// The row as the model-service takes it: by position, or by name (`spec.inputs`).
    pub fn inputs(&self, spec: &ModelSpec, by_position: bool) -> FeatureRow {
        if by_position {
            return FeatureRow {
                features: HashMap::new(),
                values: self.values.clone(),
            };
        }
        let features = spec
            .inputs
            .iter()
            .zip(&self.values)
            .filter(|(_, value)| !value.is_nan())
            .map(|(name, value)| (name.clone(), *value))
            .collect();
        FeatureRow {
            features,
            values: Vec::new(),
        }
    }

    /// Whether a prediction that took `defaulted` of the row's inputs from their defaults could only
    /// come from a model-service that did not read the row's values: every input defaulted although
    /// the row had a usable one. A model-service from before rows by position reads one so.
    pub fn read_as_empty(&self, defaulted: usize) -> bool {
        let usable = |value: &f64| value.is_finite() && (*value as f32).is_finite();
        !self.values.is_empty() && defaulted >= self.values.len() && self.values.iter().any(usable)
    }
}

/// One feature-service call for several batches: the union of their feature references, and one column
/// of ids per join key, each batch's ids at an offset in its key's column.
pub(super) struct FetchPlan<'a> {
    /// The batches' models, in the batches' order.
    specs: &'a [Arc<ModelSpec>],
    /// Borrowed from the specs: a request copies each name once, into its message.
    refs: Vec<&'a str>,
    columns: Vec<(&'static str, Vec<String>)>,
    /// Per batch: its ids' offset in its key's column and the index in `refs` of each of its model's
    /// references; `None` for a model that takes no stored features.
    batches: Vec<Option<(usize, Vec<usize>)>>,
    /// Entity rows of the request: the longest column.
    rows: usize,
}

impl<'a> FetchPlan<'a> {
    pub(super) fn new(batches: &[Batch<'_>], specs: &'a [Arc<ModelSpec>]) -> Self {
        let mut refs: Vec<&'a str> = Vec::new();
        let mut columns: Vec<(&'static str, Vec<String>)> = Vec::new();
        let mut plans = Vec::with_capacity(batches.len());
        for (batch, spec) in batches.iter().zip(specs) {
            if spec.feature_refs.is_empty() {
                plans.push(None);
                continue;
            }
            let indices = spec
                .feature_refs
                .iter()
                .map(|name| match refs.iter().position(|known| *known == name) {
                    Some(index) => index,
                    None => {
                        refs.push(name);
                        refs.len() - 1
                    }
                })
                .collect();
            let index = match columns.iter().position(|(key, _)| *key == batch.join_key) {
                Some(index) => index,
                None => {
                    columns.push((batch.join_key, Vec::new()));
                    columns.len() - 1
                }
            };
            let column = &mut columns[index].1;
            plans.push(Some((column.len(), indices)));
            column.extend(batch.ids.iter().cloned());
        }
        let rows = columns.iter().map(|(_, ids)| ids.len()).max().unwrap_or(0);
        Self {
            specs,
            refs,
            columns,
            batches: plans,
            rows,
        }
    }

    /// The feature-service request, or `None` when no batch's model takes stored features.
    pub(super) fn request(&self) -> Option<FeatureFetch> {
        if self.refs.is_empty() {
            return None;
        }
        let entities = self
            .columns
            .iter()
            .map(|(key, ids)| {
                // Every column as long as the longest: a shorter one repeats its last id, which the
                // feature-service reads once however many rows name it.
                let mut column = entity_column(ids);
                if let Some(last) = column.val.last().cloned() {
                    column.val.resize(self.rows, last);
                }
                ((*key).to_owned(), column)
            })
            .collect();
        let lists = || {
            self.specs
                .iter()
                .map(|spec| &spec.feature_refs)
                .filter(|refs| !refs.is_empty())
        };
        // `refs` is the models' lists one after the other, less the names already listed. When no name
        // is listed twice, the request shares the lists themselves.
        let features = if lists().map(|refs| refs.len()).sum::<usize>() == self.refs.len() {
            lists().cloned().collect()
        } else {
            vec![self.refs.iter().map(|name| (*name).to_owned()).collect()]
        };
        Some(FeatureFetch {
            features,
            rest: GetOnlineFeaturesRequest {
                features: Vec::new(),
                entities,
            },
        })
    }

    /// Turns the feature-service's columns into each batch's model input rows. A stale value is not
    /// used: the view's max age says it no longer describes the entity, so the model's default stands in,
    /// as for a missing one.
    pub(super) fn fill(&self, response: &OnlineFeatures, rows: &mut [Vec<Row>]) -> Result<(), Error> {
        let bad = |reason: String| Error::BadResponse {
            service: FEATURE_SERVICE,
            reason,
        };
        if response.len() != self.refs.len() {
            return Err(bad(format!(
                "{} feature vectors for {} features",
                response.len(),
                self.refs.len()
            )));
        }
        for ((plan, spec), rows) in self.batches.iter().zip(self.specs).zip(rows) {
            let Some((offset, indices)) = plan else { continue };
            let span = *offset..offset + rows.len();
            for ((name, &column), &index) in spec.feature_refs.iter().zip(&spec.feature_columns).zip(indices)
            {
                let vector = response.column(index).unwrap_or_default();
                let (Some(values), Some(statuses)) =
                    (vector.values.get(span.clone()), vector.statuses.get(span.clone()))
                else {
                    return Err(bad(format!(
                        "feature {name} has {} values for {} entities",
                        vector.values.len(),
                        self.rows
                    )));
                };
                for ((row, value), status) in rows.iter_mut().zip(values).zip(statuses) {
                    match FieldStatus::try_from(*status) {
                        Ok(FieldStatus::Present) => match (as_f64(value), row.values.get_mut(column)) {
                            (Some(number), Some(slot)) => *slot = number,
                            _ => row.missing.push(name.clone()),
                        },
                        Ok(FieldStatus::OutsideMaxAge) => row.stale.push(name.clone()),
                        Ok(FieldStatus::Unavailable) => row.unavailable.push(name.clone()),
                        _ => row.missing.push(name.clone()),
                    }
                }
            }
        }
        Ok(())
    }
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

/// Ids as the feature-service takes them: one column of string values.
fn entity_column(ids: &[String]) -> RepeatedValue {
    RepeatedValue {
        val: ids
            .iter()
            .map(|id| Value {
                val: Some(Val::StringVal(id.clone())),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(positional: bool) -> ModelSpec {
        let inputs = ["zone:a", "hour_of_day", "zone:b"].map(str::to_owned).to_vec();
        ModelSpec {
            positional,
            ..ModelSpec::new("m".into(), "1".into(), inputs, HashMap::new())
        }
    }

    #[test]
    fn a_spec_places_each_input_by_its_position() {
        let spec = spec(true);
        assert_eq!(*spec.feature_refs, ["zone:a", "zone:b"]);
        assert_eq!(spec.feature_columns, [0, 2]);
        assert_eq!(spec.request_inputs, [(1, "hour_of_day".to_owned())]);
    }

    #[test]
    fn a_request_names_each_feature_once_in_the_order_the_answer_is_read_in() {
        use super::super::score::RequestInputs;
        use crate::downstream::ModelRef;

        let spec = |inputs: &[&str]| {
            let inputs = inputs.iter().map(|name| (*name).to_owned()).collect();
            Arc::new(ModelSpec::new("m".into(), "1".into(), inputs, HashMap::new()))
        };
        let model = ModelRef::new("m", "1", "control");
        let (customers, zones) = (["C1".to_owned()], ["Z1".to_owned()]);
        let batch = |join_key, ids| Batch {
            model: &model,
            spec: None,
            join_key,
            ids,
            inputs: RequestInputs::None,
        };
        let batches = [batch("customer_id", &customers[..]), batch("zone_id", &zones[..])];
        let request = |specs: &[Arc<ModelSpec>]| {
            let plan = FetchPlan::new(&batches, specs);
            let request = plan.request().expect("a request");
            let names: Vec<&str> = request.names().collect();
            assert_eq!(names, plan.refs, "the answer is read by the plan's order");
            request
        };

        // No feature in both models: the request shares each model's own list.
        let specs = [spec(&["c:a", "c:b"]), spec(&["hour_of_day", "z:a"])];
        let shared = request(&specs);
        assert!(shared.names().eq(["c:a", "c:b", "z:a"]));
        assert_eq!(shared.features.len(), 2);
        for (part, spec) in shared.features.iter().zip(&specs) {
            assert!(Arc::ptr_eq(part, &spec.feature_refs));
        }

        // A feature in both: named once, in a list of the request's own.
        let specs = [spec(&["c:a", "x:y"]), spec(&["x:y", "z:a"])];
        let own = request(&specs);
        assert!(own.names().eq(["c:a", "x:y", "z:a"]));
        assert_eq!(own.features.len(), 1);
    }

    #[test]
    fn a_row_read_as_one_without_inputs_is_told_apart() {
        let row = |values: Vec<f64>| Row {
            values,
            ..Row::new(0)
        };
        // Every input defaulted, though one had a value: the values were not read.
        assert!(row(vec![0.5, f64::NAN, 3.0]).read_as_empty(3));
        // Some defaulted, as the missing ones do: read.
        assert!(!row(vec![0.5, f64::NAN, 3.0]).read_as_empty(1));
        // Nothing usable (NaN, beyond float32): every input defaults however it is read.
        assert!(!row(vec![f64::NAN, 1e300]).read_as_empty(2));
        assert!(!row(Vec::new()).read_as_empty(0));
    }

    #[test]
    fn a_row_goes_by_position_when_the_model_service_takes_it_else_by_name() {
        let filled = || Row {
            values: vec![0.5, f64::NAN, 3.0],
            ..Row::new(3)
        };
        let by_position = filled().inputs(&spec(true), true);
        assert!(by_position.features.is_empty());
        assert_eq!(by_position.values[0], 0.5);
        assert!(by_position.values[1].is_nan());
        assert_eq!(by_position.values[2], 3.0);
        // A model-service that does not read `values`: names, and no entry for what has no value.
        let by_name = filled().inputs(&spec(false), false);
        assert!(by_name.values.is_empty());
        let expected: HashMap<String, f64> = [("zone:a".to_owned(), 0.5), ("zone:b".to_owned(), 3.0)].into();
        assert_eq!(by_name.features, expected);
    }
}
