//! Scoring a batch of entities: their features from the feature-service, one model run on the
//! model-service, and the fallbacks `Policy` allows when either fails.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proto::features::v1::GetOnlineFeaturesRequest;
use proto::models::v1::{FeatureRow, PredictRequest};
use server_kit::Deadline;
use telemetry::Tag;
use telemetry::catalog::{API_PREDICT_FEATURE_FETCH_MS, API_PREDICT_INFERENCE_MS};

use super::features::{Row, entity_column, fill_features};
use super::{Predictor, Scored};
use crate::downstream::{MODEL_SERVICE, ModelRef};
use crate::error::Error;

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

/// The entities to score with one model: values of `join_key`, and the inputs the model takes from the
/// request rather than the feature store.
pub struct Batch<'a, F: Fn(&str) -> Option<f64>> {
    pub model: &'a ModelRef,
    pub join_key: &'static str,
    pub ids: &'a [String],
    pub request_input: F,
}

/// The `model_version` a fallback answer reports.
pub const FALLBACK_VERSION: &str = "fallback";

/// Fallback answers are logged at most once a second: an outage must not flood the logs (metrics and
/// spans count every one).
static FALLBACK_LOG: telemetry::logs::Throttle = telemetry::logs::Throttle::new(Duration::from_secs(1));
static FEATURE_FALLBACK_LOG: telemetry::logs::Throttle =
    telemetry::logs::Throttle::new(Duration::from_secs(1));

impl Predictor {
    /// Scores `batch` within `deadline`, recording the feature-fetch and inference times.
    ///
    /// A feature-service failure is answered with the model's defaults when the policy says so, a
    /// model-service failure with the neutral fallback; both are marked degraded. Rejections (bad
    /// input, unknown model) are never papered over.
    pub(super) async fn score<F: Fn(&str) -> Option<f64>>(
        &self,
        batch: &Batch<'_, F>,
        deadline: Deadline,
    ) -> Result<Vec<Scored>, Error> {
        match self.score_on_model(batch, deadline).await {
            Err(error)
                if error.is_dependency_failure() && self.policy.model_fallback == ModelFallback::Neutral =>
            {
                let model = batch.model;
                if let Some(held_back) = FALLBACK_LOG.ready() {
                    tracing::warn!(model = %model.name, %error, held_back, "model-service failed: answering the neutral fallback");
                }
                Ok(batch
                    .ids
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

    pub(super) async fn score_on_model<F: Fn(&str) -> Option<f64>>(
        &self,
        batch: &Batch<'_, F>,
        deadline: Deadline,
    ) -> Result<Vec<Scored>, Error> {
        let Batch {
            model,
            ids,
            request_input,
            ..
        } = batch;
        let spec = self.downstream.model_spec(model, deadline).await?;
        let mut rows: Vec<Row> = ids.iter().map(|_| Row::default()).collect();
        if !spec.feature_refs.is_empty() {
            let request = GetOnlineFeaturesRequest {
                features: spec.feature_refs.clone(),
                entities: HashMap::from([(batch.join_key.to_owned(), entity_column(ids))]),
            };
            let started = Instant::now();
            let fetched = self
                .downstream
                .online_features(request, deadline.capped(self.policy.feature_timeout))
                .await;
            // A call the open breaker refused was no fetch: its near-zero time would only pull the
            // percentiles down while the feature-service is away.
            if !matches!(fetched, Err(Error::CircuitOpen(_))) {
                self.metrics.distribution(
                    &API_PREDICT_FEATURE_FETCH_MS,
                    millis(started),
                    &[Tag::model(&spec.model)],
                );
            }
            match fetched {
                Ok(response) => fill_features(&spec, &response, &mut rows)?,
                Err(error)
                    if error.is_dependency_failure()
                        && self.policy.feature_fallback == FeatureFallback::Defaults =>
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
        let request = PredictRequest {
            model: spec.model.clone(),
            version: spec.version.clone(),
            variant: model.variant.clone(),
            rows: rows
                .iter_mut()
                .map(|row| FeatureRow {
                    features: std::mem::take(&mut row.features),
                })
                .collect(),
        };
        let response = self.downstream.predict(request, deadline).await?;
        self.metrics.distribution(
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
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
