//! The `inference.v1.InferenceService` handlers: validate, score, shape the response. Cross-cutting work
//! (deadlines, health, reflection) sits in the server stack in `lib.rs`, not here.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto::inference::v1::inference_service_server::InferenceService;
use proto::inference::v1::{
    BatchPredictCustomerRiskRequest, BatchPredictCustomerRiskResponse, BatchPredictDemandSurgeRequest,
    BatchPredictDemandSurgeResponse, PredictCustomerRiskRequest, PredictCustomerRiskResponse,
    PredictDemandSurgeRequest, PredictDemandSurgeResponse, PredictionMetadata, QuotePriceRequest,
    QuotePriceResponse, RecordOutcomeRequest, RecordOutcomeResponse,
};
use telemetry::catalog::{
    API_PREDICT_DEGRADED, BUSINESS_OUTCOMES_COUNT, BUSINESS_QUOTES_COUNT, BUSINESS_REVENUE_DYNAMIC_PRICING,
    MODEL_CRAI_CONFIDENCE, MODEL_CRAI_RISK_MULTIPLIER, MODEL_CRAI_RISK_SCORE, MODEL_DEMAND_SURGE_FACTOR,
    MODEL_PREDICTIONS_COUNT,
};
use telemetry::events::ConversionWindow;
use telemetry::{Metrics, Tag};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::downstream::{Deadline, Downstream, ModelRef};
use crate::error::Error;
use crate::predict::{Policy, Scored, score};
use crate::quotes::{Outcome, QuoteRecord, QuoteStore, Recorded, now_ms};
use crate::validate;

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

pub struct Gateway {
    pub downstream: Downstream,
    /// Feature-fetch share of the budget and what to answer when a dependency fails.
    pub policy: Policy,
    pub quotes: QuoteStore,
    pub risk_model: ModelRef,
    pub surge_model: ModelRef,
    pub budget: Duration,
    pub metrics: Metrics,
    /// Bookings / outcomes per variant over a rolling window, for `business.booking.conversion_rate`.
    pub conversion: ConversionWindow,
}

/// Per-request facts every handler needs.
struct Call {
    rpc: &'static str,
    request_id: String,
    deadline: Deadline,
    started: Instant,
    /// The request's log span: every line logged while handling it, its failure included, carries `rpc`,
    /// `request_id` and, once validated, the `customer_id` / `zone_id` it is about.
    span: tracing::Span,
}

impl Call {
    fn about(&self, key: &'static str, id: &str) {
        self.span.record(key, id);
    }

    /// Time since the call began, for the `duration_ms` of its log lines (the latency facet).
    fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1e3
    }
}

impl Gateway {
    fn begin<T>(&self, rpc: &'static str, request: &Request<T>) -> Call {
        let request_id = request
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        // The budget bounds what we spend even for a caller that sets no deadline; a caller's shorter
        // grpc-timeout wins, less a margin so that our DEADLINE_EXCEEDED (naming the dependency that was
        // slow) reaches it before its own timer fires.
        let caller = server_kit::grpc_deadline(request.metadata()).map(server_kit::answer_by);
        let span = tracing::info_span!(
            "request",
            rpc,
            request_id = %request_id,
            customer_id = tracing::field::Empty,
            zone_id = tracing::field::Empty,
        );
        Call {
            rpc,
            request_id,
            deadline: Deadline::answering_within(self.budget).or_sooner(caller),
            started: Instant::now(),
            span,
        }
    }

    async fn risk(&self, ids: &[String], call: &Call) -> Result<Vec<PredictCustomerRiskResponse>, Error> {
        let (model, key) = (&self.risk_model, CUSTOMER_KEY);
        let scored = score(
            &self.metrics,
            &self.downstream,
            &self.policy,
            model,
            key,
            ids,
            |_| None,
            &call.deadline,
        )
        .await?;
        self.count_predictions(&scored, call);
        ids.iter()
            .zip(scored)
            .map(|(id, s)| {
                let (risk_score, risk_multiplier) = if s.fallback {
                    (FALLBACK_RISK_SCORE, NEUTRAL)
                } else {
                    let outputs = (s.output(RISK_SCORE)?, s.output(RISK_MULTIPLIER)?);
                    let tags = prediction_tags(&s);
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
                    metadata: Some(metadata(&s, call)),
                })
            })
            .collect()
    }

    async fn surge(
        &self,
        ids: &[String],
        time: SystemTime,
        call: &Call,
    ) -> Result<Vec<PredictDemandSurgeResponse>, Error> {
        let clock = Clock::of(time);
        let (model, key, input) = (&self.surge_model, ZONE_KEY, |name: &str| clock.input(name));
        let scored = score(
            &self.metrics,
            &self.downstream,
            &self.policy,
            model,
            key,
            ids,
            input,
            &call.deadline,
        )
        .await?;
        self.count_predictions(&scored, call);
        ids.iter()
            .zip(scored)
            .map(|(id, s)| {
                let surge_factor = if s.fallback {
                    NEUTRAL
                } else {
                    let surge_factor = s.output(SURGE_FACTOR)?;
                    self.metrics
                        .distribution(&MODEL_DEMAND_SURGE_FACTOR, surge_factor, &prediction_tags(&s));
                    surge_factor
                };
                Ok(PredictDemandSurgeResponse {
                    zone_id: id.clone(),
                    surge_factor,
                    metadata: Some(metadata(&s, call)),
                })
            })
            .collect()
    }

    /// `model.predictions.count`: one per entity the model scored (a batch shares one model and version;
    /// fallback answers are not the model's); `api.predict.degraded`: one per degraded entity and reason.
    fn count_predictions(&self, scored: &[Scored], call: &Call) {
        if let Some(first) = scored.first().filter(|s| !s.fallback) {
            self.metrics.count(
                &MODEL_PREDICTIONS_COUNT,
                scored.len() as u64,
                &prediction_tags(first),
            );
        }
        for reason in scored.iter().flat_map(Scored::degraded_reasons) {
            self.metrics.incr(
                &API_PREDICT_DEGRADED,
                &[Tag::rpc(call.rpc), Tag::degraded(reason)],
            );
        }
    }
}

fn prediction_tags(scored: &Scored) -> [Tag<'_>; 3] {
    [
        Tag::model(&scored.model),
        Tag::model_version(&scored.version),
        Tag::variant(&scored.variant),
    ]
}

fn metadata(scored: &Scored, call: &Call) -> PredictionMetadata {
    PredictionMetadata {
        model_name: scored.model.clone(),
        model_version: scored.version.clone(),
        experiment_variant: scored.variant.clone(),
        request_id: call.request_id.clone(),
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

fn one<T>(mut results: Vec<T>) -> Result<T, Error> {
    results.pop().ok_or_else(|| Error::BadResponse {
        service: "gateway",
        reason: "empty result".into(),
    })
}

/// Failures caused by a dependency being down are logged at most once a second: during an outage every
/// request fails the same way (metrics and spans still count each one, and the line says how many it
/// stands for). A request's own faults are logged each time.
static OUTAGE_LOG: telemetry::logs::Throttle = telemetry::logs::Throttle::new(Duration::from_secs(1));

fn finish<T>(call: &Call, result: Result<T, Error>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(|error| {
        let _span = call.span.enter();
        let outage = error.is_dependency_failure() || matches!(error, Error::QuoteStore(_));
        let duration_ms = call.elapsed_ms();
        if !outage {
            tracing::warn!(error_type = error.kind(), error.message = %error, duration_ms, "request failed");
        } else if let Some(held_back) = OUTAGE_LOG.ready() {
            tracing::warn!(error_type = error.kind(), error.message = %error, duration_ms, held_back, "request failed");
        }
        Status::from(error)
    })
}

#[tonic::async_trait]
impl InferenceService for Gateway {
    async fn predict_customer_risk(
        &self,
        request: Request<PredictCustomerRiskRequest>,
    ) -> Result<Response<PredictCustomerRiskResponse>, Status> {
        let call = self.begin("PredictCustomerRisk", &request);
        let req = request.into_inner();
        let result = async {
            validate::entity_id(CUSTOMER_KEY, &req.customer_id)?;
            call.about(CUSTOMER_KEY, &req.customer_id);
            validate::context(&req.context)?;
            let response = one(self.risk(std::slice::from_ref(&req.customer_id), &call).await?)?;
            let meta = response.metadata.as_ref();
            tracing::info!(
                model = meta.map(|m| m.model_name.as_str()),
                model_version = meta.map(|m| m.model_version.as_str()),
                risk_score = response.risk_score,
                degraded = meta.is_some_and(|m| m.degraded),
                duration_ms = call.elapsed_ms(),
                "risk predicted"
            );
            Ok(response)
        }
        .instrument(call.span.clone())
        .await;
        finish(&call, result)
    }

    async fn predict_demand_surge(
        &self,
        request: Request<PredictDemandSurgeRequest>,
    ) -> Result<Response<PredictDemandSurgeResponse>, Status> {
        let call = self.begin("PredictDemandSurge", &request);
        let req = request.into_inner();
        let result = async {
            validate::entity_id(ZONE_KEY, &req.zone_id)?;
            call.about(ZONE_KEY, &req.zone_id);
            validate::context(&req.context)?;
            let time = validate::prediction_time("time", req.time.as_ref())?;
            let response = one(self
                .surge(std::slice::from_ref(&req.zone_id), time, &call)
                .await?)?;
            let meta = response.metadata.as_ref();
            tracing::info!(
                model = meta.map(|m| m.model_name.as_str()),
                model_version = meta.map(|m| m.model_version.as_str()),
                surge_factor = response.surge_factor,
                degraded = meta.is_some_and(|m| m.degraded),
                duration_ms = call.elapsed_ms(),
                "surge predicted"
            );
            Ok(response)
        }
        .instrument(call.span.clone())
        .await;
        finish(&call, result)
    }

    async fn quote_price(
        &self,
        request: Request<QuotePriceRequest>,
    ) -> Result<Response<QuotePriceResponse>, Status> {
        let call = self.begin("QuotePrice", &request);
        let req = request.into_inner();
        let result = async {
            validate::entity_id(CUSTOMER_KEY, &req.customer_id)?;
            call.about(CUSTOMER_KEY, &req.customer_id);
            validate::entity_id(ZONE_KEY, &req.zone_id)?;
            call.about(ZONE_KEY, &req.zone_id);
            let base_price = validate::base_price(req.base_price)?;
            let currency = validate::currency(&req.currency)?;
            validate::context(&req.context)?;
            let (risk, surge) = tokio::try_join!(
                self.risk(std::slice::from_ref(&req.customer_id), &call),
                self.surge(std::slice::from_ref(&req.zone_id), SystemTime::now(), &call),
            )?;
            let (risk, surge) = (one(risk)?, one(surge)?);
            let price = base_price * risk.risk_multiplier * surge.surge_factor;
            let quote = QuoteRecord {
                quote_id: uuid::Uuid::new_v4().to_string(),
                customer_id: req.customer_id.clone(),
                zone_id: req.zone_id.clone(),
                base_price,
                price,
                currency: currency.clone(),
                risk_score: risk.risk_score,
                risk_multiplier: risk.risk_multiplier,
                surge_factor: surge.surge_factor,
                risk_model_version: risk
                    .metadata
                    .as_ref()
                    .map(|m| m.model_version.clone())
                    .unwrap_or_default(),
                surge_model_version: surge
                    .metadata
                    .as_ref()
                    .map(|m| m.model_version.clone())
                    .unwrap_or_default(),
                experiment_variant: risk
                    .metadata
                    .as_ref()
                    .map(|m| m.experiment_variant.clone())
                    .unwrap_or_default(),
                created_at_ms: now_ms(),
            };
            self.quotes.put(&quote, &call.deadline).await?;
            self.metrics
                .incr(&BUSINESS_QUOTES_COUNT, &[Tag::variant(&quote.experiment_variant)]);
            let degraded = [&risk.metadata, &surge.metadata]
                .into_iter()
                .any(|m| m.as_ref().is_some_and(|m| m.degraded));
            tracing::info!(quote_id = %quote.quote_id, price, risk_model_version = %quote.risk_model_version,
                surge_model_version = %quote.surge_model_version, degraded,
                duration_ms = call.elapsed_ms(), "price quoted");
            let expires = SystemTime::now() + self.quotes.ttl();
            Ok(QuotePriceResponse {
                quote_id: quote.quote_id,
                price,
                base_price,
                currency,
                risk: Some(risk),
                surge: Some(surge),
                expires_at: Some(expires.into()),
            })
        }
        .instrument(call.span.clone())
        .await;
        finish(&call, result)
    }

    async fn record_outcome(
        &self,
        request: Request<RecordOutcomeRequest>,
    ) -> Result<Response<RecordOutcomeResponse>, Status> {
        let call = self.begin("RecordOutcome", &request);
        let req = request.into_inner();
        let result = async {
            validate::quote_id(&req.quote_id)?;
            validate::outcome(req.booked, req.revenue)?;
            let outcome = Outcome {
                booked: req.booked,
                revenue: req.revenue,
            };
            let recorded = self
                .quotes
                .record_outcome(&req.quote_id, outcome, &call.deadline)
                .await?;
            let duplicate = matches!(recorded, Recorded::Duplicate(_));
            if let Recorded::New(quote) = &recorded {
                // Counted once per quote: a retried call (duplicate) must not count the booking twice.
                let variant = Tag::variant(&quote.experiment_variant);
                self.metrics
                    .incr(&BUSINESS_OUTCOMES_COUNT, &[variant, Tag::booked(req.booked)]);
                if req.booked {
                    let currency = Tag::currency(&quote.currency);
                    self.metrics.distribution(
                        &BUSINESS_REVENUE_DYNAMIC_PRICING,
                        req.revenue,
                        &[variant, currency],
                    );
                }
                self.conversion
                    .record(&self.metrics, &quote.experiment_variant, req.booked);
            }
            tracing::info!(quote_id = %req.quote_id, booked = req.booked,
                revenue = req.revenue, duplicate, duration_ms = call.elapsed_ms(), "outcome recorded");
            Ok(RecordOutcomeResponse {
                quote_id: req.quote_id,
                duplicate,
            })
        }
        .instrument(call.span.clone())
        .await;
        finish(&call, result)
    }

    async fn batch_predict_customer_risk(
        &self,
        request: Request<BatchPredictCustomerRiskRequest>,
    ) -> Result<Response<BatchPredictCustomerRiskResponse>, Status> {
        let call = self.begin("BatchPredictCustomerRisk", &request);
        let req = request.into_inner();
        let result = async {
            let ids = validate::batch("customer_ids", &req.customer_ids)?;
            validate::context(&req.context)?;
            Ok(BatchPredictCustomerRiskResponse {
                results: self.risk(ids, &call).await?,
            })
        }
        .instrument(call.span.clone())
        .await;
        finish(&call, result)
    }

    async fn batch_predict_demand_surge(
        &self,
        request: Request<BatchPredictDemandSurgeRequest>,
    ) -> Result<Response<BatchPredictDemandSurgeResponse>, Status> {
        let call = self.begin("BatchPredictDemandSurge", &request);
        let req = request.into_inner();
        let result = async {
            let ids = validate::batch("zone_ids", &req.zone_ids)?;
            validate::context(&req.context)?;
            let time = validate::prediction_time("time", req.time.as_ref())?;
            Ok(BatchPredictDemandSurgeResponse {
                results: self.surge(ids, time, &call).await?,
            })
        }
        .instrument(call.span.clone())
        .await;
        finish(&call, result)
    }
}

#[cfg(test)]
mod tests {
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
