//! The [`Predictor`]: everything between a validated request and its predictions. It owns the
//! downstream clients, the policy for when they fail, the models to use and the per-model metrics.
//!
//! - [`score`]: features for a batch of entities, one model run for the batch, the fallbacks;
//! - [`features`]: the feature-service's columns as model input rows;
//! - [`scored`]: one entity's prediction and its degraded-feature report.

mod features;
mod score;
mod scored;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::try_join_all;
use proto::inference::v1::{PredictCustomerRiskResponse, PredictDemandSurgeResponse, PredictionMetadata};
use server_kit::Deadline;
use telemetry::catalog::{
    API_PREDICT_DEGRADED, MODEL_CRAI_CONFIDENCE, MODEL_CRAI_RISK_MULTIPLIER, MODEL_CRAI_RISK_SCORE,
    MODEL_DEMAND_SURGE_FACTOR, MODEL_PREDICTIONS_COUNT, MODEL_SHADOW_SKIPPED,
};
use telemetry::{Metrics, Tag};
use tokio::sync::Semaphore;

pub use score::{FALLBACK_VERSION, FeatureFallback, ModelFallback, Policy};
pub use scored::Scored;

use crate::context::RequestContext;
use crate::downstream::{Downstream, ModelRef};
use crate::error::Error;
use crate::predictions::{self, PredictionStore};
use crate::traffic::{ModelRoute, Traffic};
use score::Batch;

pub const RISK_SCORE: &str = "risk_score";
pub const RISK_MULTIPLIER: &str = "risk_multiplier";
pub const SURGE_FACTOR: &str = "surge_factor";
pub const CUSTOMER_KEY: &str = "customer_id";
pub const ZONE_KEY: &str = "zone_id";
/// Multiplier and factor of the neutral fallback: the base price, unchanged.
pub const NEUTRAL: f64 = 1.0;
/// Risk score a fallback answer reports (not a prediction: `metadata.fallback` says so).
pub const FALLBACK_RISK_SCORE: f64 = 0.0;
/// The variant a request reports when its entities landed in different arms (a batch).
pub const MIXED_VARIANT: &str = "mixed";
/// Shadow scorings in flight at most; past it a shadow is skipped and counted, never queued.
pub const MAX_SHADOWS_IN_FLIGHT: usize = 64;

/// Shadow scorings are logged at most once a second when they fail: a broken shadow must not flood
/// the logs (it never touches an answer).
static SHADOW_LOG: telemetry::logs::Throttle = telemetry::logs::Throttle::new(Duration::from_secs(1));

/// Customer-risk and demand-surge predictions, from the feature-service and the model-service, routed
/// by the traffic policy. Cloned only to hand a shadow scoring to its own task.
#[derive(Clone)]
pub struct Predictor {
    pub downstream: Downstream,
    /// Feature-fetch share of the budget and what to answer when a dependency fails.
    pub policy: Policy,
    /// Which version and experiment arm answers each entity, and the shadows.
    pub traffic: Arc<Traffic>,
    pub risk_model: String,
    pub surge_model: String,
    pub metrics: Metrics,
    /// Bounds the shadow scorings in flight ([`MAX_SHADOWS_IN_FLIGHT`]).
    pub shadows: Arc<Semaphore>,
    /// The budget of one shadow scoring: its own, not the request's (which it never holds up).
    pub shadow_budget: Duration,
    /// Where each prediction's record waits for its label.
    pub predictions: Arc<PredictionStore>,
}

/// Which prediction a batch asks for.
#[derive(Debug, Clone, Copy)]
enum Task {
    Risk,
    /// At the given time (the surge model's clock inputs).
    Surge(SystemTime),
}

impl Predictor {
    /// Risk score and multiplier for each customer in `ids`.
    pub async fn risk(
        &self,
        ids: &[String],
        cx: &RequestContext,
    ) -> Result<Vec<PredictCustomerRiskResponse>, Error> {
        let scored = self.predict(Task::Risk, ids, cx).await?;
        ids.iter()
            .zip(scored)
            .map(|(id, s)| {
                let (risk_score, risk_multiplier) = if s.fallback {
                    (FALLBACK_RISK_SCORE, NEUTRAL)
                } else {
                    self.risk_outputs(&s)?
                };
                let prediction_id = self.keep(&s, risk_score);
                Ok(PredictCustomerRiskResponse {
                    customer_id: id.clone(),
                    risk_score,
                    risk_multiplier,
                    metadata: Some(metadata(&s, prediction_id, cx)),
                })
            })
            .collect()
    }

    /// Surge factor for each zone in `ids` at `time`.
    pub async fn surge(
        &self,
        ids: &[String],
        time: SystemTime,
        cx: &RequestContext,
    ) -> Result<Vec<PredictDemandSurgeResponse>, Error> {
        let scored = self.predict(Task::Surge(time), ids, cx).await?;
        ids.iter()
            .zip(scored)
            .map(|(id, s)| {
                let surge_factor = if s.fallback {
                    NEUTRAL
                } else {
                    self.surge_output(&s)?
                };
                let prediction_id = self.keep(&s, surge_factor);
                Ok(PredictDemandSurgeResponse {
                    zone_id: id.clone(),
                    surge_factor,
                    metadata: Some(metadata(&s, prediction_id, cx)),
                })
            })
            .collect()
    }

    /// Scores `ids` with the arms the traffic policy gives them (one batch per arm, concurrently), hands
    /// a copy to the model's shadow, and counts the predictions.
    async fn predict(&self, task: Task, ids: &[String], cx: &RequestContext) -> Result<Vec<Scored>, Error> {
        let model = match task {
            Task::Risk => &self.risk_model,
            Task::Surge(_) => &self.surge_model,
        };
        // One snapshot for the whole request: a policy swapped meanwhile applies to the next one.
        let policy = self.traffic.load();
        let route = policy.route(model).ok_or_else(|| Error::BadResponse {
            service: "gateway",
            reason: format!("the traffic policy has no route for model {model}"),
        })?;
        let scored = match route.arms() {
            [arm] => self.score_task(task, &arm.model, ids, cx.deadline).await?,
            _ => self.score_split(task, route, ids, cx.deadline).await?,
        };
        if let Some(shadow) = route.shadow() {
            self.spawn_shadow(task, shadow, ids);
        }
        cx.variant(batch_variant(&scored));
        self.count_predictions(&scored, cx);
        Ok(scored)
    }

    /// An experiment's batch: each entity's arm, one model call per arm that has any, in `ids`' order.
    async fn score_split(
        &self,
        task: Task,
        route: &ModelRoute,
        ids: &[String],
        deadline: Deadline,
    ) -> Result<Vec<Scored>, Error> {
        let arms: Vec<&ModelRef> = ids.iter().map(|id| &route.arm(id).model).collect();
        let mut groups: Vec<(&ModelRef, Vec<usize>)> = Vec::new();
        for (position, arm) in arms.iter().enumerate() {
            match groups.iter_mut().find(|(model, _)| std::ptr::eq(*model, *arm)) {
                Some((_, positions)) => positions.push(position),
                None => groups.push((arm, vec![position])),
            }
        }
        let batches = groups.iter().map(|(model, positions)| {
            let group: Vec<String> = positions.iter().map(|&i| ids[i].clone()).collect();
            async move { self.score_task(task, model, &group, deadline).await }
        });
        let mut answers: Vec<Option<Scored>> = vec![None; ids.len()];
        for ((_, positions), scored) in groups.iter().zip(try_join_all(batches).await?) {
            for (&position, s) in positions.iter().zip(scored) {
                answers[position] = Some(s);
            }
        }
        answers
            .into_iter()
            .map(|s| {
                s.ok_or_else(|| Error::BadResponse {
                    service: "gateway",
                    reason: "an entity was left unscored by its arm's batch".into(),
                })
            })
            .collect()
    }

    async fn score_task(
        &self,
        task: Task,
        model: &ModelRef,
        ids: &[String],
        deadline: Deadline,
    ) -> Result<Vec<Scored>, Error> {
        match task {
            Task::Risk => {
                let batch = Batch {
                    model,
                    join_key: CUSTOMER_KEY,
                    ids,
                    request_input: |_: &str| None,
                };
                self.score(&batch, deadline).await
            }
            Task::Surge(time) => {
                let clock = Clock::of(time);
                let batch = Batch {
                    model,
                    join_key: ZONE_KEY,
                    ids,
                    request_input: |name: &str| clock.input(name),
                };
                self.score(&batch, deadline).await
            }
        }
    }

    /// Scores a copy of `ids` with `shadow` on a task of its own, within its own budget: the answer has
    /// already been decided without it. Its outputs go to the per-model metrics under the `shadow`
    /// variant; past [`MAX_SHADOWS_IN_FLIGHT`] it is skipped and counted.
    fn spawn_shadow(&self, task: Task, shadow: &ModelRef, ids: &[String]) {
        let Ok(permit) = Arc::clone(&self.shadows).try_acquire_owned() else {
            self.metrics
                .incr(&MODEL_SHADOW_SKIPPED, &[Tag::model(&shadow.name)]);
            return;
        };
        let (predictor, shadow, ids) = (self.clone(), shadow.clone(), ids.to_vec());
        tokio::spawn(async move {
            let _permit = permit;
            let deadline = Deadline::after(predictor.shadow_budget);
            let scored = match task {
                Task::Risk => {
                    let batch = Batch {
                        model: &shadow,
                        join_key: CUSTOMER_KEY,
                        ids: &ids,
                        request_input: |_: &str| None,
                    };
                    predictor.score_on_model(&batch, deadline).await
                }
                Task::Surge(time) => {
                    let clock = Clock::of(time);
                    let batch = Batch {
                        model: &shadow,
                        join_key: ZONE_KEY,
                        ids: &ids,
                        request_input: |name: &str| clock.input(name),
                    };
                    predictor.score_on_model(&batch, deadline).await
                }
            };
            let recorded = scored.and_then(|scored| {
                for s in &scored {
                    predictor.metrics.incr(&MODEL_PREDICTIONS_COUNT, &s.tags());
                    match task {
                        Task::Risk => predictor.risk_outputs(s).map(drop)?,
                        Task::Surge(_) => predictor.surge_output(s).map(drop)?,
                    }
                }
                Ok(())
            });
            if let Err(error) = recorded
                && let Some(held_back) = SHADOW_LOG.ready()
            {
                tracing::warn!(model = %shadow.name, model_version = %shadow.version, %error, held_back, "shadow scoring failed (no answer was affected)");
            }
        });
    }

    /// A new id for the model's prediction `s`, its record kept for a later label (`output`: what the
    /// label is compared with); none for a fallback answer, which is not the model's.
    fn keep(&self, s: &Scored, output: f64) -> String {
        if s.fallback {
            return String::new();
        }
        let id = uuid::Uuid::now_v7().to_string();
        let record = predictions::record(&s.model, &s.version, &s.variant, output);
        self.predictions.keep(id.clone(), record);
        id
    }

    /// A risk prediction's score and multiplier, recorded in the per-model distributions.
    fn risk_outputs(&self, s: &Scored) -> Result<(f64, f64), Error> {
        let outputs = (s.output(RISK_SCORE)?, s.output(RISK_MULTIPLIER)?);
        let tags = s.tags();
        self.metrics
            .distribution(&MODEL_CRAI_RISK_SCORE, outputs.0, &tags);
        self.metrics
            .distribution(&MODEL_CRAI_RISK_MULTIPLIER, outputs.1, &tags);
        // The probability of the class predicted: how sure the classifier is.
        let confidence = outputs.0.max(1.0 - outputs.0);
        self.metrics
            .distribution(&MODEL_CRAI_CONFIDENCE, confidence, &tags);
        Ok(outputs)
    }

    /// A surge prediction's factor, recorded in the per-model distribution.
    fn surge_output(&self, s: &Scored) -> Result<f64, Error> {
        let surge_factor = s.output(SURGE_FACTOR)?;
        self.metrics
            .distribution(&MODEL_DEMAND_SURGE_FACTOR, surge_factor, &s.tags());
        Ok(surge_factor)
    }

    /// `model.predictions.count`: one per entity a model scored, by its version and arm (fallback answers
    /// are not the model's); `api.predict.degraded`: one per degraded entity and reason.
    fn count_predictions(&self, scored: &[Scored], cx: &RequestContext) {
        match scored {
            // The common case, a batch of one arm: one record for all.
            [first, ..]
                if !first.fallback
                    && scored
                        .iter()
                        .all(|s| !s.fallback && s.version == first.version && s.variant == first.variant) =>
            {
                self.metrics
                    .count(&MODEL_PREDICTIONS_COUNT, scored.len() as u64, &first.tags());
            }
            _ => {
                for s in scored.iter().filter(|s| !s.fallback) {
                    self.metrics.incr(&MODEL_PREDICTIONS_COUNT, &s.tags());
                }
            }
        }
        for reason in scored.iter().flat_map(Scored::degraded_reasons) {
            self.metrics
                .incr(&API_PREDICT_DEGRADED, &[Tag::rpc(cx.rpc), Tag::degraded(reason)]);
        }
    }
}

/// The variant a request reports: its entities' arm, or [`MIXED_VARIANT`] when they landed in several.
fn batch_variant(scored: &[Scored]) -> &str {
    match scored {
        [] => crate::traffic::CONTROL_VARIANT,
        [first, rest @ ..] if rest.iter().all(|s| s.variant == first.variant) => &first.variant,
        _ => MIXED_VARIANT,
    }
}

fn metadata(scored: &Scored, prediction_id: String, cx: &RequestContext) -> PredictionMetadata {
    PredictionMetadata {
        prediction_id,
        model_name: scored.model.clone(),
        model_version: scored.version.clone(),
        experiment_variant: scored.variant.clone(),
        request_id: cx.request_id.clone(),
        degraded: scored.degraded(),
        missing_features: scored.missing.clone(),
        stale_features: scored.stale.clone(),
        unavailable_features: scored.unavailable.clone(),
        fallback: scored.fallback,
    }
}

/// The request-time inputs of the surge model, in UTC.
struct Clock {
    hour: f64,
    weekday: f64,
}

impl Clock {
    fn of(time: SystemTime) -> Self {
        let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        // 1970-01-01 was a Thursday: weekday 3 counting Monday as 0.
        #[allow(clippy::cast_precision_loss)] // both below 24
        Self {
            hour: ((secs % 86_400) / 3_600) as f64,
            weekday: ((secs / 86_400 + 3) % 7) as f64,
        }
    }

    fn input(&self, name: &str) -> Option<f64> {
        match name {
            "hour_of_day" => Some(self.hour),
            "day_of_week" => Some(self.weekday),
            "is_weekend" => Some(if self.weekday >= 5.0 { 1.0 } else { 0.0 }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn clock_inputs() {
        // 2026-11-28 is a Saturday; 13:30 UTC.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_872_600);
        let clock = Clock::of(t);
        assert_eq!(clock.input("hour_of_day"), Some(13.0));
        assert_eq!(clock.input("day_of_week"), Some(5.0));
        assert_eq!(clock.input("is_weekend"), Some(1.0));
        assert_eq!(clock.input("other"), None);
    }
}
