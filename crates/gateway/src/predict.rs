//! The prediction path: features for a batch of entities from the feature-service, one model run for the
//! batch on the model-service, and the per-entity result with its degraded-feature report.

use std::collections::HashMap;
use std::time::Instant;

use proto::feast::types::value::Val;
use proto::feast::types::{RepeatedValue, Value};
use proto::features::v1::{FieldStatus, GetOnlineFeaturesRequest, GetOnlineFeaturesResponse};
use proto::models::v1::{FeatureRow, PredictRequest};
use telemetry::Tag;
use telemetry::catalog::{API_PREDICT_FEATURE_FETCH_MS, API_PREDICT_INFERENCE_MS};

use crate::downstream::{Deadline, Downstream, FEATURE_SERVICE, MODEL_SERVICE, ModelRef, ModelSpec};
use crate::error::Error;

/// One entity's prediction.
#[derive(Debug, Clone)]
pub struct Scored {
    pub outputs: HashMap<String, f64>,
    pub model: String,
    pub version: String,
    /// The experiment arm the prediction is reported under.
    pub variant: String,
    /// Feature refs with no value (not found, null or undecodable); the model used its default.
    pub missing: Vec<String>,
    /// Feature refs whose value was older than the view's max age; the model used its default.
    pub stale: Vec<String>,
}

impl Scored {
    pub fn degraded(&self) -> bool {
        !self.missing.is_empty() || !self.stale.is_empty()
    }

    /// A named output the model's manifest promises; its absence is a broken contract, not bad input.
    pub fn output(&self, name: &str) -> Result<f64, Error> {
        self.outputs.get(name).copied().ok_or_else(|| Error::BadResponse {
            service: MODEL_SERVICE,
            reason: format!(
                "model {} {} returned no {name:?} output",
                self.model, self.version
            ),
        })
    }
}

/// Scores `ids` (values of `join_key`) with `model`. `request_input` supplies the inputs the model takes
/// from the request rather than the feature store. Records the feature-fetch and inference times.
pub async fn score(
    metrics: &telemetry::Metrics,
    downstream: &Downstream,
    model: &ModelRef,
    join_key: &str,
    ids: &[String],
    request_input: impl Fn(&str) -> Option<f64>,
    deadline: &Deadline,
) -> Result<Vec<Scored>, Error> {
    let spec = downstream.model_spec(model, deadline).await?;
    let mut rows: Vec<Row> = ids.iter().map(|_| Row::default()).collect();
    if !spec.feature_refs.is_empty() {
        let request = GetOnlineFeaturesRequest {
            features: spec.feature_refs.clone(),
            entities: HashMap::from([(
                join_key.to_owned(),
                RepeatedValue {
                    val: ids.iter().map(|id| string_value(id)).collect(),
                },
            )]),
        };
        let started = Instant::now();
        let response = downstream.online_features(request, deadline).await?;
        metrics.distribution(
            &API_PREDICT_FEATURE_FETCH_MS,
            millis(started),
            &[Tag::model(&spec.model)],
        );
        fill_features(&spec, &response, &mut rows)?;
    }
    for row in &mut rows {
        for name in &spec.request_inputs {
            if let Some(value) = request_input(name) {
                row.features.insert(name.clone(), value);
            }
        }
    }
    let started = Instant::now();
    let response = downstream
        .predict(
            PredictRequest {
                model: spec.model.clone(),
                version: spec.version.clone(),
                variant: model.variant.clone(),
                rows: rows
                    .iter_mut()
                    .map(|row| FeatureRow {
                        features: std::mem::take(&mut row.features),
                    })
                    .collect(),
            },
            deadline,
        )
        .await?;
    metrics.distribution(
        &API_PREDICT_INFERENCE_MS,
        millis(started),
        &[Tag::model(&response.model), Tag::model_version(&response.version)],
    );
    if response.predictions.len() != ids.len() {
        return Err(Error::BadResponse {
            service: MODEL_SERVICE,
            reason: format!(
                "{} predictions for {} rows",
                response.predictions.len(),
                ids.len()
            ),
        });
    }
    Ok(response
        .predictions
        .into_iter()
        .zip(rows)
        .map(|(prediction, row)| Scored {
            outputs: prediction.outputs,
            model: response.model.clone(),
            version: response.version.clone(),
            variant: model.variant.clone(),
            missing: row.missing,
            stale: row.stale,
        })
        .collect())
}

#[derive(Default)]
struct Row {
    features: HashMap<String, f64>,
    missing: Vec<String>,
    stale: Vec<String>,
}

/// Turns the feature-service's columns into model input rows. A stale value is not used: the view's
/// max age says it no longer describes the entity, so the model's default stands in, as for a missing one.
fn fill_features(
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

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn string_value(id: &str) -> Value {
    Value {
        val: Some(Val::StringVal(id.to_owned())),
    }
}
