//! The gateway's business events: small structs whose `emit` writes the log line and the metrics
//! together (see `telemetry::events`), so a dashboard's count and the lines an on-call engineer reads
//! never drift apart.

use telemetry::catalog::{
    BUSINESS_COMPLAINTS_COUNT, BUSINESS_CUSTOMER_SATISFACTION_SCORE, BUSINESS_OUTCOMES_COUNT,
    BUSINESS_QUOTES_COUNT, BUSINESS_REVENUE_DYNAMIC_PRICING,
};
use telemetry::{Metrics, Tag};

use crate::predictions::{Label, PredictionRecord};
use crate::quotes::{Outcome, QuoteRecord};

/// The headline output of a single prediction, which names its log line.
#[derive(Debug, Clone, Copy)]
pub enum Headline {
    /// `risk predicted`, with `risk_score`.
    RiskScore(f64),
    /// `surge predicted`, with `surge_factor`.
    SurgeFactor(f64),
}

/// One prediction answered (the single-entity RPCs; batches are counted by the model metrics only).
pub struct PredictCompleted<'a> {
    pub model: Option<&'a str>,
    pub model_version: Option<&'a str>,
    pub headline: Headline,
    pub degraded: bool,
    pub duration_ms: f64,
}

impl PredictCompleted<'_> {
    pub fn emit(&self) {
        let Self {
            model,
            model_version,
            degraded,
            duration_ms,
            ..
        } = *self;
        match self.headline {
            Headline::RiskScore(risk_score) => {
                tracing::info!(
                    model,
                    model_version,
                    risk_score,
                    degraded,
                    duration_ms,
                    "risk predicted"
                );
            }
            Headline::SurgeFactor(surge_factor) => {
                tracing::info!(
                    model,
                    model_version,
                    surge_factor,
                    degraded,
                    duration_ms,
                    "surge predicted"
                );
            }
        }
    }
}

/// A price was quoted and its quote stored: `business.quotes.count{variant}` and `price quoted`.
pub struct PriceQuoted<'a> {
    pub quote: &'a QuoteRecord,
    pub degraded: bool,
    pub duration_ms: f64,
}

impl PriceQuoted<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        let quote = self.quote;
        metrics.incr(&BUSINESS_QUOTES_COUNT, &[Tag::variant(&quote.experiment_variant)]);
        tracing::info!(quote_id = %quote.quote_id, price = quote.price,
            risk_model_version = %quote.risk_model_version, surge_model_version = %quote.surge_model_version,
            degraded = self.degraded, duration_ms = self.duration_ms, "price quoted");
    }
}

/// An outcome was recorded for a quote. A first outcome counts `business.outcomes.count{variant,booked}`,
/// the revenue of a booking (`business.revenue.dynamic_pricing{variant,currency}`), a satisfaction score
/// given (`business.customer_satisfaction.score{variant}`) and a complaint about the price
/// (`business.complaints.count{variant}`); a duplicate (a
/// retried call) counts nothing, so a booking is never counted twice. Conversion is Datadog's division
/// of bookings by `business.quotes.count`, both counts summed over every replica. Both log
/// `outcome recorded`.
pub struct OutcomeRecorded<'a> {
    pub quote: &'a QuoteRecord,
    pub outcome: Outcome,
    pub duplicate: bool,
    pub duration_ms: f64,
}

impl OutcomeRecorded<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        let (quote, outcome) = (self.quote, &self.outcome);
        if !self.duplicate {
            let variant = Tag::variant(&quote.experiment_variant);
            metrics.incr(&BUSINESS_OUTCOMES_COUNT, &[variant, Tag::booked(outcome.booked)]);
            if outcome.booked {
                let currency = Tag::currency(&quote.currency);
                metrics.distribution(
                    &BUSINESS_REVENUE_DYNAMIC_PRICING,
                    outcome.revenue,
                    &[variant, currency],
                );
            }
            if let Some(score) = outcome.satisfaction {
                metrics.distribution(&BUSINESS_CUSTOMER_SATISFACTION_SCORE, score, &[variant]);
            }
            if outcome.price_complaint {
                metrics.incr(&BUSINESS_COMPLAINTS_COUNT, &[variant]);
            }
        }
        tracing::info!(quote_id = %quote.quote_id, booked = outcome.booked, revenue = outcome.revenue,
            satisfaction = outcome.satisfaction, price_complaint = outcome.price_complaint,
            duplicate = self.duplicate, duration_ms = self.duration_ms, "outcome recorded");
    }
}

/// A label joined its prediction: `label recorded` (its metrics are the quality tracker's).
pub struct LabelRecorded<'a> {
    pub record: &'a PredictionRecord,
    pub label: Label,
    pub duplicate: bool,
    pub duration_ms: f64,
}

impl LabelRecorded<'_> {
    pub fn emit(&self) {
        let record = self.record;
        let truth = self.label.truth();
        tracing::info!(
            model = %record.model,
            model_version = %record.version,
            variant = %record.variant,
            predicted = record.output,
            truth,
            label_delay_s = crate::quotes::now_ms().saturating_sub(record.created_at_ms) / 1000,
            duplicate = self.duplicate,
            duration_ms = self.duration_ms,
            "label recorded"
        );
    }
}
