//! Scoring batches of entities together: the features of all of them in one feature-service call, all
//! their rows in one model-service call (the fewest hops a quote can take: two), and the fallbacks
//! `Policy` allows when either fails.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::models::v1::{PredictManyRequest, PredictRequest, PredictResponse};
use server_kit::Deadline;
use telemetry::Tag;
use telemetry::catalog::{API_PREDICT_FEATURE_FETCH_MS, API_PREDICT_INFERENCE_MS};

use super::features::{FetchPlan, Row};
use super::{Clock, Predictor, Scored};
use crate::downstream::{MODEL_SERVICE, ModelRef, ModelSpec};
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

/// The entities to score with one model version and arm: values of `join_key`, and where the inputs the
/// model takes from the request rather than the feature store come from.
pub struct Batch<'a> {
    pub model: &'a ModelRef,
    /// `model`'s version as this request already resolved it (for the CRAI cache's lookup), else the
    /// scoring resolves it.
    pub spec: Option<Arc<ModelSpec>>,
    pub join_key: &'static str,
    pub ids: &'a [String],
    pub inputs: RequestInputs,
}

/// The inputs a model takes from the request itself.
#[derive(Debug, Clone, Copy)]
pub enum RequestInputs {
    None,
    /// The surge model's clock inputs at the prediction time.
    Clock(Clock),
}

impl RequestInputs {
    fn input(&self, name: &str) -> Option<f64> {
        match self {
            Self::None => None,
            Self::Clock(clock) => clock.input(name),
        }
    }
}

/// The `model_version` a fallback answer reports.
pub const FALLBACK_VERSION: &str = "fallback";

/// Fallback answers are logged at most once a second: an outage must not flood the logs (metrics and
/// spans count every one).
static FALLBACK_LOG: telemetry::logs::Throttle = telemetry::logs::Throttle::new(Duration::from_secs(1));
static FEATURE_FALLBACK_LOG: telemetry::logs::Throttle =
    telemetry::logs::Throttle::new(Duration::from_secs(1));
static READ_AS_EMPTY_LOG: telemetry::logs::Throttle = telemetry::logs::Throttle::new(Duration::from_secs(1));

impl Predictor {
    /// Scores `batches` together within `deadline`: one feature fetch for the entities of all of them,
    /// one model-service call for all their rows (a quote's risk and surge, an experiment's arms).
    ///
    /// A feature-service failure is answered with the models' defaults when the policy says so, a
    /// model-service failure with the neutral fallback; both are marked degraded. Rejections (bad input,
    /// unknown model) are never papered over.
    pub(super) async fn score(
        &self,
        batches: &[Batch<'_>],
        deadline: Deadline,
    ) -> Result<Vec<Vec<Scored>>, Error> {
        match self.score_on_models(batches, deadline).await {
            Err(error)
                if error.is_dependency_failure() && self.policy.model_fallback == ModelFallback::Neutral =>
            {
                if let Some(held_back) = FALLBACK_LOG.ready() {
                    let models: Vec<&str> = batches.iter().map(|b| b.model.name.as_str()).collect();
                    tracing::warn!(models = ?models, %error, held_back, "model-service failed: answering the neutral fallback");
                }
                Ok(batches.iter().map(fallback).collect())
            }
            scored => scored,
        }
    }

    /// [`Predictor::score`] without the model fallback (a shadow scoring has none: it answers no one).
    pub(super) async fn score_on_models(
        &self,
        batches: &[Batch<'_>],
        deadline: Deadline,
    ) -> Result<Vec<Vec<Scored>>, Error> {
        // Cached: a model-service call only when a spec is missing or stale.
        let mut specs = Vec::with_capacity(batches.len());
        for batch in batches {
            specs.push(match &batch.spec {
                Some(spec) => Arc::clone(spec),
                None => self.downstream.model_spec(batch.model, deadline).await?,
            });
        }
        let mut rows: Vec<Vec<Row>> = batches
            .iter()
            .zip(&specs)
            .map(|(batch, spec)| batch.ids.iter().map(|_| Row::new(spec.inputs.len())).collect())
            .collect();
        let plan = FetchPlan::new(batches, &specs);
        if let Some(request) = plan.request() {
            let started = Instant::now();
            let fetched = self
                .downstream
                .online_features(request, deadline.capped(self.policy.feature_timeout))
                .await;
            // A call the open breaker refused was no fetch: its near-zero time would only pull the
            // percentiles down while the feature-service is away.
            if !matches!(fetched, Err(Error::CircuitOpen(_))) {
                let elapsed = millis(started);
                for model in distinct_models(&specs) {
                    self.metrics
                        .distribution(&API_PREDICT_FEATURE_FETCH_MS, elapsed, &[Tag::model(model)]);
                }
            }
            match fetched {
                Ok(response) => plan.fill(&response, &mut rows)?,
                Err(error)
                    if error.is_dependency_failure()
                        && self.policy.feature_fallback == FeatureFallback::Defaults =>
                {
                    if let Some(held_back) = FEATURE_FALLBACK_LOG.ready() {
                        let models: Vec<&str> = distinct_models(&specs).collect();
                        tracing::warn!(models = ?models, %error, held_back, "features unavailable: scoring with the models' defaults");
                    }
                    for (spec, rows) in specs.iter().zip(&mut rows) {
                        for row in rows {
                            row.unavailable = spec.feature_refs.to_vec();
                        }
                    }
                }
                Err(error) => return Err(error),
            }
        }
        for ((batch, spec), rows) in batches.iter().zip(&specs).zip(&mut rows) {
            for row in rows.iter_mut() {
                for (column, name) in &spec.request_inputs {
                    if let (Some(value), Some(slot)) = (batch.inputs.input(name), row.values.get_mut(*column))
                    {
                        *slot = value;
                    }
                }
            }
        }
        let started = Instant::now();
        let mut responses = self.predict_rows(batches, &specs, &rows, true, deadline).await?;
        if read_as_empty(&specs, &rows, &responses) {
            if let Some(held_back) = READ_AS_EMPTY_LOG.ready() {
                tracing::warn!(
                    held_back,
                    "the model-service scored rows sent by position as rows with no inputs (a version from \
                     before them, as during a rollback): scoring them again by name"
                );
            }
            responses = self.predict_rows(batches, &specs, &rows, false, deadline).await?;
        }
        let elapsed = millis(started);
        if responses.len() != batches.len() {
            return Err(bad_response(&format!(
                "{} answers for {} requests",
                responses.len(),
                batches.len()
            )));
        }
        let mut scored = Vec::with_capacity(batches.len());
        for ((batch, response), rows) in batches.iter().zip(responses).zip(rows) {
            self.metrics.distribution(
                &API_PREDICT_INFERENCE_MS,
                elapsed,
                &[Tag::model(&response.model), Tag::model_version(&response.version)],
            );
            if response.predictions.len() != batch.ids.len() {
                return Err(bad_response(&format!(
                    "{} predictions for {} rows",
                    response.predictions.len(),
                    batch.ids.len()
                )));
            }
            scored.push(
                response
                    .predictions
                    .into_iter()
                    .zip(rows)
                    .map(|(prediction, row)| Scored {
                        outputs: prediction.outputs,
                        model: response.model.clone(),
                        version: response.version.clone(),
                        variant: batch.model.variant.clone(),
                        missing: row.missing,
                        stale: row.stale,
                        unavailable: row.unavailable,
                        fallback: false,
                    })
                    .collect(),
            );
        }
        Ok(scored)
    }

    /// One model-service call for the rows of every batch, each batch's by position when
    /// `by_position` and its spec allow, else by name.
    async fn predict_rows(
        &self,
        batches: &[Batch<'_>],
        specs: &[Arc<ModelSpec>],
        rows: &[Vec<Row>],
        by_position: bool,
        deadline: Deadline,
    ) -> Result<Vec<PredictResponse>, Error> {
        let mut requests: Vec<PredictRequest> = batches
            .iter()
            .zip(specs)
            .zip(rows)
            .map(|((batch, spec), rows)| PredictRequest {
                model: spec.model.clone(),
                version: spec.version.clone(),
                variant: batch.model.variant.clone(),
                rows: rows
                    .iter()
                    .map(|row| row.inputs(spec, by_position && spec.positional))
                    .collect(),
            })
            .collect();
        Ok(match requests.len() {
            1 => {
                let request = requests.pop().ok_or_else(|| bad_response("no request built"))?;
                vec![self.downstream.predict(request, deadline).await?]
            }
            _ => {
                self.downstream
                    .predict_many(PredictManyRequest { requests }, deadline)
                    .await?
                    .responses
            }
        })
    }
}

/// Whether a model-service read rows sent by position as rows with no inputs: see
/// [`Row::read_as_empty`]. Metadata says which services take such rows, but a catalog entry outlives a
/// rollback by up to its TTL, and the pods behind one channel may run both versions for a while.
fn read_as_empty(specs: &[Arc<ModelSpec>], rows: &[Vec<Row>], responses: &[PredictResponse]) -> bool {
    specs
        .iter()
        .zip(rows)
        .zip(responses)
        .filter(|((spec, _), _)| spec.positional)
        .any(|((_, rows), response)| {
            rows.iter()
                .zip(&response.predictions)
                .any(|(row, prediction)| row.read_as_empty(prediction.defaulted_inputs.len()))
        })
}

/// The neutral fallback's answers for a batch.
fn fallback(batch: &Batch<'_>) -> Vec<Scored> {
    batch
        .ids
        .iter()
        .map(|_| Scored {
            outputs: HashMap::new(),
            model: batch.model.name.clone(),
            version: FALLBACK_VERSION.to_owned(),
            variant: batch.model.variant.clone(),
            missing: Vec::new(),
            stale: Vec::new(),
            unavailable: Vec::new(),
            fallback: true,
        })
        .collect()
}

/// Each model name once, in the batches' order.
fn distinct_models(specs: &[Arc<ModelSpec>]) -> impl Iterator<Item = &str> {
    specs
        .iter()
        .enumerate()
        .filter(|(i, spec)| !specs[..*i].iter().any(|s| s.model == spec.model))
        .map(|(_, spec)| spec.model.as_str())
}

fn bad_response(reason: &str) -> Error {
    Error::BadResponse {
        service: MODEL_SERVICE,
        reason: reason.to_owned(),
    }
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
