//! The [`Predictor`]: everything between a validated request and its predictions. It owns the
//! downstream clients, the policy for when they fail, the models to use and the per-model metrics.
//!
//! - [`score`]: features for batches of entities in one fetch, their rows in one model-service call,
//!   the fallbacks;
//! - [`cache`]: the CRAI cache of customer-risk answers;
//! - [`features`]: the feature-service's columns as model input rows;
//! - [`scored`]: one entity's prediction and its degraded-feature report.

mod cache;
mod features;
mod score;
mod scored;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::inference::v1::{PredictCustomerRiskResponse, PredictDemandSurgeResponse, PredictionMetadata};
use server_kit::Deadline;
use telemetry::catalog::{
    API_PREDICT_DEGRADED, MODEL_CRAI_CONFIDENCE, MODEL_CRAI_RISK_MULTIPLIER, MODEL_CRAI_RISK_SCORE,
    MODEL_DEMAND_SURGE_FACTOR, MODEL_PREDICTIONS_COUNT, MODEL_SHADOW_SKIPPED,
};
use telemetry::{Metrics, Tag};
use tokio::sync::Semaphore;

pub use cache::RiskCache;
pub use score::{FALLBACK_VERSION, FeatureFallback, ModelFallback, Policy};
pub use scored::Scored;

use crate::context::RequestContext;
use crate::downstream::{Downstream, ModelRef, ModelSpec};
use crate::error::Error;
use crate::predictions::{self, PredictionStore};
use crate::traffic::{ModelRoute, Traffic};
use score::{Batch, RequestInputs};

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
    /// Customer-risk answers kept briefly (the CRAI cache).
    pub risk_cache: Arc<RiskCache>,
}

/// Which prediction a batch asks for.
#[derive(Debug, Clone, Copy)]
enum Task {
    Risk,
    /// At the given time (the surge model's clock inputs).
    Surge(SystemTime),
}

impl Task {
    fn join_key(self) -> &'static str {
        match self {
            Self::Risk => CUSTOMER_KEY,
            Self::Surge(_) => ZONE_KEY,
        }
    }

    fn inputs(self) -> RequestInputs {
        match self {
            Self::Risk => RequestInputs::None,
            Self::Surge(time) => RequestInputs::Clock(Clock::of(time)),
        }
    }
}

impl Predictor {
    /// Risk score and multiplier for each customer in `ids`.
    pub async fn risk(
        &self,
        ids: &[String],
        cx: &RequestContext,
    ) -> Result<Vec<PredictCustomerRiskResponse>, Error> {
        let scored = self.predict(&[(Task::Risk, ids)], cx).await?;
        let scored = scored.into_iter().next().unwrap_or_default();
        cx.variant(batch_variant(&scored));
        self.risk_answers(ids, scored, cx)
    }

    /// Surge factor for each zone in `ids` at `time`.
    pub async fn surge(
        &self,
        ids: &[String],
        time: SystemTime,
        cx: &RequestContext,
    ) -> Result<Vec<PredictDemandSurgeResponse>, Error> {
        let scored = self.predict(&[(Task::Surge(time), ids)], cx).await?;
        let scored = scored.into_iter().next().unwrap_or_default();
        cx.variant(batch_variant(&scored));
        self.surge_answers(ids, scored, cx)
    }

    /// A quote's two predictions, the customer's risk and the zone's surge at `time`, in one feature
    /// fetch and one model-service call.
    pub async fn quote(
        &self,
        customer: &str,
        zone: &str,
        time: SystemTime,
        cx: &RequestContext,
    ) -> Result<(PredictCustomerRiskResponse, PredictDemandSurgeResponse), Error> {
        let (customers, zones) = ([customer.to_owned()], [zone.to_owned()]);
        let tasks = [(Task::Risk, &customers[..]), (Task::Surge(time), &zones[..])];
        let mut scored = self.predict(&tasks, cx).await?.into_iter();
        let (risk, surge) = (
            scored.next().unwrap_or_default(),
            scored.next().unwrap_or_default(),
        );
        let risk = self.risk_answers(&customers, risk, cx)?.pop();
        let surge = self.surge_answers(&zones, surge, cx)?.pop();
        risk.zip(surge).ok_or_else(|| Error::BadResponse {
            service: "gateway",
            reason: "a quote's prediction went missing".into(),
        })
    }

    fn risk_answers(
        &self,
        ids: &[String],
        scored: Vec<Scored>,
        cx: &RequestContext,
    ) -> Result<Vec<PredictCustomerRiskResponse>, Error> {
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
                    metadata: Some(metadata(s, prediction_id, cx)),
                })
            })
            .collect()
    }

    fn surge_answers(
        &self,
        ids: &[String],
        scored: Vec<Scored>,
        cx: &RequestContext,
    ) -> Result<Vec<PredictDemandSurgeResponse>, Error> {
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
                    metadata: Some(metadata(s, prediction_id, cx)),
                })
            })
            .collect()
    }

    /// Scores each task's ids with the arms the traffic policy gives them — every task and arm in one
    /// feature fetch and one model-service call — hands a copy to each model's shadow, and counts the
    /// predictions. One answer per task, in its ids' order.
    async fn predict(
        &self,
        tasks: &[(Task, &[String])],
        cx: &RequestContext,
    ) -> Result<Vec<Vec<Scored>>, Error> {
        // One snapshot for the whole request: a policy swapped meanwhile applies to the next one.
        let policy = self.traffic.load();
        let mut routes = Vec::with_capacity(tasks.len());
        for (task, _) in tasks {
            let model = self.model_of(*task);
            routes.push(policy.route(model).ok_or_else(|| Error::BadResponse {
                service: "gateway",
                reason: format!("the traffic policy has no route for model {model}"),
            })?);
        }
        // Answers the CRAI cache already holds (risk only), by task and position.
        let mut answers: Vec<Vec<Option<Scored>>> =
            tasks.iter().map(|(_, ids)| vec![None; ids.len()]).collect();
        // The versions the lookups resolved, which the scoring below uses as they are: one catalog
        // lookup per arm and request.
        let mut resolved: Vec<(&ModelRef, Arc<ModelSpec>)> = Vec::new();
        for ((index, (task, ids)), route) in tasks.iter().enumerate().zip(&routes) {
            if matches!(task, Task::Risk) && self.risk_cache.is_enabled() {
                self.cached_risk(route, ids, &mut answers[index], &mut resolved, cx)
                    .await;
            }
        }
        // The entities left to score, by task and arm: all of a task's at once when one arm takes
        // everything and the cache answered none, else the positions each arm got.
        let mut parts: Vec<(usize, &ModelRef, Option<Vec<usize>>)> = Vec::new();
        for (index, ((_, ids), route)) in tasks.iter().zip(&routes).enumerate() {
            let known = &answers[index];
            match route.arms() {
                [arm] if known.iter().all(Option::is_none) => parts.push((index, &arm.model, None)),
                _ => {
                    for (position, id) in ids.iter().enumerate() {
                        if known[position].is_some() {
                            continue;
                        }
                        let arm = &route.arm(id).model;
                        match parts
                            .iter_mut()
                            .find(|(task, model, _)| *task == index && std::ptr::eq(*model, arm))
                        {
                            Some((_, _, Some(positions))) => positions.push(position),
                            _ => parts.push((index, arm, Some(vec![position]))),
                        }
                    }
                }
            }
        }
        let groups: Vec<Option<Vec<String>>> = parts
            .iter()
            .map(|(task, _, positions)| {
                let ids = tasks[*task].1;
                positions
                    .as_ref()
                    .map(|positions| positions.iter().map(|&p| ids[p].clone()).collect())
            })
            .collect();
        let batches: Vec<Batch<'_>> = parts
            .iter()
            .zip(&groups)
            .map(|((task, model, _), group)| {
                let (kind, ids) = tasks[*task];
                Batch {
                    model,
                    spec: resolved
                        .iter()
                        .find(|(arm, _)| std::ptr::eq(*arm, *model))
                        .map(|(_, spec)| Arc::clone(spec)),
                    join_key: kind.join_key(),
                    ids: group.as_deref().unwrap_or(ids),
                    inputs: kind.inputs(),
                }
            })
            .collect();
        let scored = if batches.is_empty() {
            Vec::new()
        } else {
            self.score(&batches, cx.deadline).await?
        };
        for ((task, _, positions), scored) in parts.iter().zip(scored) {
            let (kind, ids) = tasks[*task];
            let positions: Vec<usize> = match positions {
                None => (0..ids.len()).collect(),
                Some(positions) => positions.clone(),
            };
            for (position, s) in positions.into_iter().zip(scored) {
                if matches!(kind, Task::Risk) {
                    self.risk_cache.put(&ids[position], &s);
                }
                answers[*task][position] = Some(s);
            }
        }
        let mut out = Vec::with_capacity(tasks.len());
        for (((task, ids), route), answers) in tasks.iter().zip(&routes).zip(answers) {
            let scored = answers
                .into_iter()
                .collect::<Option<Vec<Scored>>>()
                .ok_or_else(|| Error::BadResponse {
                    service: "gateway",
                    reason: "an entity was left unscored by its arm's batch".into(),
                })?;
            if let Some(shadow) = route.shadow() {
                self.spawn_shadow(*task, shadow, ids);
            }
            self.count_predictions(&scored, cx);
            out.push(scored);
        }
        Ok(out)
    }

    /// Fills `answers` with what the CRAI cache holds for `ids` under the arm and version each would be
    /// scored by now, adding each arm's resolved version to `versions`.
    async fn cached_risk<'r>(
        &self,
        route: &'r ModelRoute,
        ids: &[String],
        answers: &mut [Option<Scored>],
        versions: &mut Vec<(&'r ModelRef, Arc<ModelSpec>)>,
        cx: &RequestContext,
    ) {
        // The version each arm resolves to (its pin, or the model-service's default), from the catalog.
        for (id, answer) in ids.iter().zip(answers) {
            let arm = &route.arm(id).model;
            let spec = match versions.iter().find(|(model, _)| std::ptr::eq(*model, arm)) {
                Some((_, spec)) => Arc::clone(spec),
                None => match self.downstream.model_spec(arm, cx.deadline).await {
                    Ok(spec) => {
                        versions.push((arm, Arc::clone(&spec)));
                        spec
                    }
                    // The version cannot be resolved (the model-service is away): no lookup, and the
                    // scoring path answers as its fallback policy says.
                    Err(_) => continue,
                },
            };
            *answer = self.risk_cache.get(&spec.model, &spec.version, &arm.variant, id);
        }
    }

    fn model_of(&self, task: Task) -> &str {
        match task {
            Task::Risk => &self.risk_model,
            Task::Surge(_) => &self.surge_model,
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
            let batch = Batch {
                model: &shadow,
                spec: None,
                join_key: task.join_key(),
                ids: &ids,
                inputs: task.inputs(),
            };
            let scored = predictor.score_on_models(&[batch], deadline).await;
            let recorded = scored.and_then(|scored| {
                for s in scored.iter().flatten() {
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

/// An answer's metadata, taking what it reports from the prediction it answers with.
fn metadata(scored: Scored, prediction_id: String, cx: &RequestContext) -> PredictionMetadata {
    PredictionMetadata {
        prediction_id,
        degraded: scored.degraded(),
        model_name: scored.model,
        model_version: scored.version,
        experiment_variant: scored.variant,
        request_id: cx.request_id.clone(),
        missing_features: scored.missing,
        stale_features: scored.stale,
        unavailable_features: scored.unavailable,
        fallback: scored.fallback,
    }
}

/// The request-time inputs of the surge model, in UTC.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
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

    pub(super) fn input(&self, name: &str) -> Option<f64> {
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
