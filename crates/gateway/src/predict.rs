//! The prediction path: features for a batch of entities from the feature-service, one model run for the
//! batch on the model-service, and the per-entity result with its degraded-feature report.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proto::feast::types::value::Val;
use proto::feast::types::{RepeatedValue, Value};
use proto::features::v1::{FieldStatus, GetOnlineFeaturesRequest, GetOnlineFeaturesResponse};
use proto::models::v1::{FeatureRow, PredictRequest};
use telemetry::catalog::{API_PREDICT_FEATURE_FETCH_MS, API_PREDICT_INFERENCE_MS};
use telemetry::{DegradedReason, Tag};

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
    /// Feature refs that could not be read (feature store or feature-service down); the model used its
    /// default.
    pub unavailable: Vec<String>,
    /// The model-service could not score: the answer is the neutral fallback ([`ModelFallback::Neutral`]).
    pub fallback: bool,
}

impl Scored {
    pub fn degraded(&self) -> bool {
        self.fallback || !self.missing.is_empty() || !self.stale.is_empty() || !self.unavailable.is_empty()
    }

    /// Why the answer is degraded, one entry per reason that applies.
    pub fn degraded_reasons(&self) -> impl Iterator<Item = DegradedReason> {
        [
            (!self.missing.is_empty(), DegradedReason::MissingFeatures),
            (!self.stale.is_empty(), DegradedReason::StaleFeatures),
            (!self.unavailable.is_empty(), DegradedReason::FeaturesUnavailable),
            (self.fallback, DegradedReason::ModelFallback),
        ]
        .into_iter()
        .filter_map(|(applies, reason)| applies.then_some(reason))
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

/// What to answer when features cannot be read at all (the feature-service is down, slow or shedding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FeatureFallback {
    /// Score with the model's defaults for every feature, marked degraded (`unavailable_features`).
    Defaults,
    /// Fail the request with the feature-service's error.
    Fail,
}

/// What to answer when the model-service cannot score (down, slow, shedding, or its breaker open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelFallback {
    /// Fail fast with UNAVAILABLE (or DEADLINE_EXCEEDED): the caller decides.
    Fail,
    /// Answer neutral pricing, marked degraded and `fallback`: every multiplier and factor 1.0 (the price
    /// is the base price), risk score 0.
    Neutral,
}

/// How the prediction path spends its budget and degrades.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The most of the request's budget the feature fetch may take, so the model call keeps the rest.
    pub feature_timeout: Duration,
    pub feature_fallback: FeatureFallback,
    pub model_fallback: ModelFallback,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            feature_timeout: Duration::from_millis(40),
            feature_fallback: FeatureFallback::Defaults,
            model_fallback: ModelFallback::Fail,
        }
    }
}

/// Scores `ids` (values of `join_key`) with `model`. `request_input` supplies the inputs the model takes
/// from the request rather than the feature store. Records the feature-fetch and inference times.
///
/// A feature-service failure is answered with the model's defaults when `policy` says so, a model-service
/// failure with the neutral fallback; both are marked degraded. Rejections (bad input, unknown model) are
/// never papered over.
#[allow(clippy::too_many_arguments)] // each is a distinct input of one prediction
pub async fn score(
    metrics: &telemetry::Metrics,
    downstream: &Downstream,
    policy: &Policy,
    model: &ModelRef,
    join_key: &str,
    ids: &[String],
    request_input: impl Fn(&str) -> Option<f64>,
    deadline: &Deadline,
) -> Result<Vec<Scored>, Error> {
    let scored = score_on_model(
        metrics,
        downstream,
        policy,
        model,
        join_key,
        ids,
        request_input,
        deadline,
    )
    .await;
    match scored {
        Err(error) if error.is_dependency_failure() && policy.model_fallback == ModelFallback::Neutral => {
            if let Some(held_back) = FALLBACK_LOG.ready() {
                tracing::warn!(model = %model.name, %error, held_back, "model-service failed: answering the neutral fallback");
            }
            Ok(ids
                .iter()
                .map(|_| Scored {
                    outputs: HashMap::new(),
                    model: model.name.clone(),
                    version: FALLBACK_VERSION.to_owned(),
                    variant: model.variant.clone(),
                    missing: Vec::new(),
                    stale: Vec::new(),
                    unavailable: Vec::new(),
                    fallback: true,
                })
                .collect())
        }
        scored => scored,
    }
}

/// The `model_version` a fallback answer reports.
pub const FALLBACK_VERSION: &str = "fallback";

/// Fallback answers are logged at most once a second: an outage must not flood the logs (metrics and
/// spans count every one).
static FALLBACK_LOG: telemetry::logs::Throttle = telemetry::logs::Throttle::new(Duration::from_secs(1));
static FEATURE_FALLBACK_LOG: telemetry::logs::Throttle =
    telemetry::logs::Throttle::new(Duration::from_secs(1));

#[allow(clippy::too_many_arguments)]
async fn score_on_model(
    metrics: &telemetry::Metrics,
    downstream: &Downstream,
    policy: &Policy,
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
        let fetched = downstream
            .online_features(request, &deadline.capped(policy.feature_timeout))
            .await;
        metrics.distribution(
            &API_PREDICT_FEATURE_FETCH_MS,
            millis(started),
            &[Tag::model(&spec.model)],
        );
        match fetched {
            Ok(response) => fill_features(&spec, &response, &mut rows)?,
            Err(error)
                if error.is_dependency_failure() && policy.feature_fallback == FeatureFallback::Defaults =>
            {
                if let Some(held_back) = FEATURE_FALLBACK_LOG.ready() {
                    tracing::warn!(model = %spec.model, %error, held_back, "features unavailable: scoring with the model's defaults");
                }
                for row in &mut rows {
                    row.unavailable.clone_from(&spec.feature_refs);
                }
            }
            Err(error) => return Err(error),
        }
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
            unavailable: row.unavailable,
            fallback: false,
        })
        .collect())
}

#[derive(Default)]
struct Row {
    features: HashMap<String, f64>,
    missing: Vec<String>,
    stale: Vec<String>,
    unavailable: Vec<String>,
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

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn string_value(id: &str) -> Value {
    Value {
        val: Some(Val::StringVal(id.to_owned())),
    }
}
