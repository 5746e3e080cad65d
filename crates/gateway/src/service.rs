//! The `inference.v1.InferenceService` handlers: validate, predict, quote, shape the response. The
//! request id, log span and deadline come from the request context layer, predictions from the
//! [`Predictor`], and a failure is logged once, by [`RequestContext::answer`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::inference::v1::inference_service_server::InferenceService;
use proto::inference::v1::{
    BatchPredictCustomerRiskRequest, BatchPredictCustomerRiskResponse, BatchPredictDemandSurgeRequest,
    BatchPredictDemandSurgeResponse, PredictCustomerRiskRequest, PredictCustomerRiskResponse,
    PredictDemandSurgeRequest, PredictDemandSurgeResponse, PredictionMetadata, QuotePriceRequest,
    QuotePriceResponse, RecordLabelRequest, RecordLabelResponse, RecordOutcomeRequest, RecordOutcomeResponse,
};
use telemetry::Metrics;
use tonic::{Request, Response, Status};

use crate::context::RequestContext;
use crate::error::Error;
use crate::events::{Headline, LabelRecorded, LogPolicy, OutcomeRecorded, PredictCompleted, PriceQuoted};
use crate::predictions::{self, Label, Labelled};
use crate::predictor::{CUSTOMER_KEY, Predictor, ZONE_KEY};
use crate::quality::Quality;
use crate::quotes::{Outcome, QuoteRecord, QuoteStore, Recorded, now_ms, quote_variant};
use crate::validate;

pub struct Gateway {
    pub predictor: Predictor,
    pub quotes: QuoteStore,
    /// Online quality of each model version and arm, from the labels recorded here.
    pub quality: Arc<Quality>,
    /// Which answered requests' lines are written.
    pub log_policy: LogPolicy,
    pub metrics: Metrics,
}

/// The trait's methods: each takes the request context, runs its business logic below, and answers.
macro_rules! rpcs {
    ($($method:ident($request:ty) -> $response:ty => $logic:ident;)*) => {
        #[tonic::async_trait]
        impl InferenceService for Gateway {
            $(
                async fn $method(&self, request: Request<$request>) -> Result<Response<$response>, Status> {
                    let (cx, message) = RequestContext::take(request)?;
                    let result = self.$logic(message, &cx).await;
                    cx.answer(result)
                }
            )*
        }
    };
}

rpcs! {
    predict_customer_risk(PredictCustomerRiskRequest) -> PredictCustomerRiskResponse => risk;
    predict_demand_surge(PredictDemandSurgeRequest) -> PredictDemandSurgeResponse => surge;
    quote_price(QuotePriceRequest) -> QuotePriceResponse => quote;
    record_outcome(RecordOutcomeRequest) -> RecordOutcomeResponse => outcome;
    batch_predict_customer_risk(BatchPredictCustomerRiskRequest) -> BatchPredictCustomerRiskResponse => batch_risk;
    batch_predict_demand_surge(BatchPredictDemandSurgeRequest) -> BatchPredictDemandSurgeResponse => batch_surge;
    record_label(RecordLabelRequest) -> RecordLabelResponse => label;
}

impl Gateway {
    async fn risk(
        &self,
        req: PredictCustomerRiskRequest,
        cx: &RequestContext,
    ) -> Result<PredictCustomerRiskResponse, Error> {
        validate::entity_id(CUSTOMER_KEY, &req.customer_id)?;
        cx.about(CUSTOMER_KEY, &req.customer_id);
        validate::context(&req.context)?;
        let response = one(self.predictor.risk(&[req.customer_id], cx).await?)?;
        let headline = Headline::RiskScore(response.risk_score);
        completed(response.metadata.as_ref(), headline, cx, &self.log_policy);
        Ok(response)
    }

    async fn surge(
        &self,
        req: PredictDemandSurgeRequest,
        cx: &RequestContext,
    ) -> Result<PredictDemandSurgeResponse, Error> {
        validate::entity_id(ZONE_KEY, &req.zone_id)?;
        cx.about(ZONE_KEY, &req.zone_id);
        validate::context(&req.context)?;
        let time = validate::prediction_time("time", req.time.as_ref())?;
        let response = one(self.predictor.surge(&[req.zone_id], time, cx).await?)?;
        let headline = Headline::SurgeFactor(response.surge_factor);
        completed(response.metadata.as_ref(), headline, cx, &self.log_policy);
        Ok(response)
    }

    async fn quote(&self, req: QuotePriceRequest, cx: &RequestContext) -> Result<QuotePriceResponse, Error> {
        validate::entity_id(CUSTOMER_KEY, &req.customer_id)?;
        cx.about(CUSTOMER_KEY, &req.customer_id);
        validate::entity_id(ZONE_KEY, &req.zone_id)?;
        cx.about(ZONE_KEY, &req.zone_id);
        let base_price = validate::base_price(req.base_price)?;
        let currency = validate::currency(&req.currency)?;
        validate::context(&req.context)?;
        let (risk, surge) = self
            .predictor
            .quote(&req.customer_id, &req.zone_id, SystemTime::now(), cx)
            .await?;
        let price = base_price * risk.risk_multiplier * surge.surge_factor;
        let (risk_meta, surge_meta) = (risk.metadata.as_ref(), surge.metadata.as_ref());
        let (risk_variant, surge_variant) = (variant_of(risk_meta), variant_of(surge_meta));
        let variant = quote_variant(risk_variant, surge_variant).into_owned();
        cx.variant(&variant);
        let quote = QuoteRecord {
            quote_id: uuid::Uuid::new_v4().to_string(),
            customer_id: req.customer_id,
            zone_id: req.zone_id,
            base_price,
            price,
            currency: currency.clone(),
            risk_score: risk.risk_score,
            risk_multiplier: risk.risk_multiplier,
            surge_factor: surge.surge_factor,
            risk_model_version: risk_meta.map(|m| m.model_version.clone()).unwrap_or_default(),
            surge_model_version: surge_meta.map(|m| m.model_version.clone()).unwrap_or_default(),
            experiment_variant: variant.clone(),
            risk_variant: risk_variant.to_owned(),
            surge_variant: surge_variant.to_owned(),
            created_at_ms: now_ms(),
        };
        self.quotes.put(&quote, cx.deadline).await?;
        let degraded = [risk_meta, surge_meta]
            .iter()
            .any(|m| m.is_some_and(|m| m.degraded));
        let duration_ms = cx.elapsed_ms();
        PriceQuoted {
            quote: &quote,
            degraded,
            duration_ms,
            logged: self.log_policy.keeps(degraded, duration_ms),
        }
        .emit(&self.metrics);
        Ok(QuotePriceResponse {
            quote_id: quote.quote_id,
            price,
            base_price,
            currency,
            risk: Some(risk),
            surge: Some(surge),
            expires_at: Some((SystemTime::now() + self.quotes.ttl()).into()),
        })
    }

    async fn outcome(
        &self,
        req: RecordOutcomeRequest,
        cx: &RequestContext,
    ) -> Result<RecordOutcomeResponse, Error> {
        validate::quote_id(&req.quote_id)?;
        validate::outcome(req.booked, req.revenue)?;
        validate::satisfaction(req.satisfaction)?;
        let outcome = Outcome {
            booked: req.booked,
            revenue: req.revenue,
            satisfaction: req.satisfaction,
            price_complaint: req.price_complaint,
        };
        let recorded = self
            .quotes
            .record_outcome(&req.quote_id, outcome, cx.deadline)
            .await?;
        let (Recorded::New(quote) | Recorded::Duplicate(quote)) = &recorded;
        let duplicate = matches!(recorded, Recorded::Duplicate(_));
        let duration_ms = cx.elapsed_ms();
        OutcomeRecorded {
            quote,
            outcome,
            duplicate,
            duration_ms,
            logged: self.log_policy.keeps(false, duration_ms),
        }
        .emit(&self.metrics);
        Ok(RecordOutcomeResponse {
            quote_id: req.quote_id,
            duplicate,
        })
    }

    async fn label(
        &self,
        req: RecordLabelRequest,
        cx: &RequestContext,
    ) -> Result<RecordLabelResponse, Error> {
        validate::prediction_id(&req.prediction_id)?;
        let label = validate::label(req.label.as_ref())?;
        let model = match label {
            Label::Customer { .. } => &self.predictor.risk_model,
            Label::Surge { .. } => &self.predictor.surge_model,
        };
        let store = &self.predictor.predictions;
        let mut labelled = store.label(&req.prediction_id, label, model, cx.deadline).await;
        // A record is written just after its answer: a label sent straight back may beat it there.
        while matches!(labelled, Err(Error::PredictionNotFound(_)))
            && minted_within(&req.prediction_id, RECORD_WRITE_GRACE)
            && cx.deadline.remaining() > RECORD_WRITE_POLL
        {
            tokio::time::sleep(RECORD_WRITE_POLL).await;
            labelled = store.label(&req.prediction_id, label, model, cx.deadline).await;
        }
        let labelled = labelled?;
        let (Labelled::New(record) | Labelled::Duplicate(record)) = &labelled;
        let duplicate = matches!(labelled, Labelled::Duplicate(_));
        if !duplicate {
            self.quality.observe(record, &label);
        }
        cx.variant(&record.variant);
        let duration_ms = cx.elapsed_ms();
        LabelRecorded {
            record,
            label,
            duplicate,
            duration_ms,
            logged: self.log_policy.keeps(false, duration_ms),
        }
        .emit();
        Ok(RecordLabelResponse {
            prediction_id: req.prediction_id,
            duplicate,
        })
    }

    async fn batch_risk(
        &self,
        req: BatchPredictCustomerRiskRequest,
        cx: &RequestContext,
    ) -> Result<BatchPredictCustomerRiskResponse, Error> {
        let ids = validate::batch("customer_ids", &req.customer_ids)?;
        validate::context(&req.context)?;
        Ok(BatchPredictCustomerRiskResponse {
            results: self.predictor.risk(ids, cx).await?,
        })
    }

    async fn batch_surge(
        &self,
        req: BatchPredictDemandSurgeRequest,
        cx: &RequestContext,
    ) -> Result<BatchPredictDemandSurgeResponse, Error> {
        let ids = validate::batch("zone_ids", &req.zone_ids)?;
        validate::context(&req.context)?;
        let time = validate::prediction_time("time", req.time.as_ref())?;
        Ok(BatchPredictDemandSurgeResponse {
            results: self.predictor.surge(ids, time, cx).await?,
        })
    }
}

/// How long after its answer a prediction's record may still be on its way to the store.
const RECORD_WRITE_GRACE: Duration = Duration::from_secs(1);
const RECORD_WRITE_POLL: Duration = Duration::from_millis(20);

/// Whether the UUIDv7 `id` was minted less than `age` ago.
fn minted_within(id: &str, age: Duration) -> bool {
    let Some((_, minted)) = predictions::minted(id) else {
        return false;
    };
    SystemTime::now()
        .duration_since(UNIX_EPOCH + minted)
        .is_ok_and(|elapsed| elapsed < age)
}

/// The `risk predicted` / `surge predicted` line of a single prediction.
fn completed(meta: Option<&PredictionMetadata>, headline: Headline, cx: &RequestContext, policy: &LogPolicy) {
    let degraded = meta.is_some_and(|m| m.degraded);
    let duration_ms = cx.elapsed_ms();
    PredictCompleted {
        model: meta.map(|m| m.model_name.as_str()),
        model_version: meta.map(|m| m.model_version.as_str()),
        headline,
        degraded,
        duration_ms,
        logged: policy.keeps(degraded, duration_ms),
    }
    .emit();
}

fn variant_of(meta: Option<&PredictionMetadata>) -> &str {
    meta.map_or("", |m| m.experiment_variant.as_str())
}

fn one<T>(mut results: Vec<T>) -> Result<T, Error> {
    results.pop().ok_or_else(|| Error::BadResponse {
        service: "gateway",
        reason: "empty result".into(),
    })
}
