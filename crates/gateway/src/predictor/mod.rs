//! The [`Predictor`]: everything between a validated request and its predictions. It owns the
//! downstream clients, the policy for when they fail, the models to use and the per-model metrics.
//!
//! - [`score`]: features for a batch of entities, one model run for the batch, the fallbacks;
//! - [`features`]: the feature-service's columns as model input rows;
//! - [`scored`]: one entity's prediction and its degraded-feature report.

mod features;
mod score;
mod scored;

use std::time::{SystemTime, UNIX_EPOCH};

use proto::inference::v1::{PredictCustomerRiskResponse, PredictDemandSurgeResponse, PredictionMetadata};
use telemetry::catalog::{
    API_PREDICT_DEGRADED, MODEL_CRAI_CONFIDENCE, MODEL_CRAI_RISK_MULTIPLIER, MODEL_CRAI_RISK_SCORE,
    MODEL_DEMAND_SURGE_FACTOR, MODEL_PREDICTIONS_COUNT,
};
use telemetry::{Metrics, Tag};

pub use score::{FALLBACK_VERSION, FeatureFallback, ModelFallback, Policy};
pub use scored::Scored;

use crate::context::RequestContext;
use crate::downstream::{Downstream, ModelRef};
use crate::error::Error;
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
/// The experiment arm reported until A/B splits are configured.
pub const CONTROL_VARIANT: &str = "control";

/// Customer-risk and demand-surge predictions, from the feature-service and the model-service.
pub struct Predictor {
    pub downstream: Downstream,
    /// Feature-fetch share of the budget and what to answer when a dependency fails.
    pub policy: Policy,
    pub risk_model: ModelRef,
    pub surge_model: ModelRef,
    pub metrics: Metrics,
}

impl Predictor {
    /// Risk score and multiplier for each customer in `ids`.
    pub async fn risk(
        &self,
        ids: &[String],
        cx: &RequestContext,
    ) -> Result<Vec<PredictCustomerRiskResponse>, Error> {
        let batch = Batch {
            model: &self.risk_model,
            join_key: CUSTOMER_KEY,
            ids,
            request_input: |_: &str| None,
        };
        let scored = self.score(&batch, cx.deadline).await?;
        self.count_predictions(&scored, cx);
        ids.iter()
            .zip(scored)
            .map(|(id, s)| {
                let (risk_score, risk_multiplier) = if s.fallback {
                    (FALLBACK_RISK_SCORE, NEUTRAL)
                } else {
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
                    outputs
                };
                Ok(PredictCustomerRiskResponse {
                    customer_id: id.clone(),
                    risk_score,
                    risk_multiplier,
                    metadata: Some(metadata(&s, cx)),
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
        let clock = Clock::of(time);
        let batch = Batch {
            model: &self.surge_model,
            join_key: ZONE_KEY,
            ids,
            request_input: |name: &str| clock.input(name),
        };
        let scored = self.score(&batch, cx.deadline).await?;
        self.count_predictions(&scored, cx);
        ids.iter()
            .zip(scored)
            .map(|(id, s)| {
                let surge_factor = if s.fallback {
                    NEUTRAL
                } else {
                    let surge_factor = s.output(SURGE_FACTOR)?;
                    self.metrics
                        .distribution(&MODEL_DEMAND_SURGE_FACTOR, surge_factor, &s.tags());
                    surge_factor
                };
                Ok(PredictDemandSurgeResponse {
                    zone_id: id.clone(),
                    surge_factor,
                    metadata: Some(metadata(&s, cx)),
                })
            })
            .collect()
    }

    /// `model.predictions.count`: one per entity the model scored (a batch shares one model and version;
    /// fallback answers are not the model's); `api.predict.degraded`: one per degraded entity and reason.
    fn count_predictions(&self, scored: &[Scored], cx: &RequestContext) {
        if let Some(first) = scored.first().filter(|s| !s.fallback) {
            self.metrics
                .count(&MODEL_PREDICTIONS_COUNT, scored.len() as u64, &first.tags());
        }
        for reason in scored.iter().flat_map(Scored::degraded_reasons) {
            self.metrics
                .incr(&API_PREDICT_DEGRADED, &[Tag::rpc(cx.rpc), Tag::degraded(reason)]);
        }
    }
}

fn metadata(scored: &Scored, cx: &RequestContext) -> PredictionMetadata {
    PredictionMetadata {
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
