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

/// Which lines of answered requests are written (`LOG_SAMPLE_RATE`, `LOG_SLOW_MS`): every degraded or slow
/// request's, and a random share of the routine rest. Failed requests are logged elsewhere, always
/// (`RequestContext::answer`); metrics count every request whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogPolicy {
    /// Share of routine lines written, 0 to 1.
    pub sample_rate: f64,
    /// A request at least this slow is always logged.
    pub slow_ms: f64,
}

impl LogPolicy {
    /// Every line written (tests, and a policy of 1).
    pub const KEEP_ALL: Self = Self {
        sample_rate: 1.0,
        slow_ms: 0.0,
    };

    /// Whether the line of a request that took `duration_ms` (and was `degraded` or not) is written.
    pub fn keeps(&self, degraded: bool, duration_ms: f64) -> bool {
        degraded
            || duration_ms >= self.slow_ms
            || self.sample_rate >= 1.0
            || (self.sample_rate > 0.0 && rand::random_bool(self.sample_rate))
    }
}

/// One prediction answered (the single-entity RPCs; batches are counted by the model metrics only).
pub struct PredictCompleted<'a> {
    pub model: Option<&'a str>,
    pub model_version: Option<&'a str>,
    pub headline: Headline,
    pub degraded: bool,
    pub duration_ms: f64,
    /// Whether the policy writes this request's line.
    pub logged: bool,
}

impl PredictCompleted<'_> {
    pub fn emit(&self) {
        if !self.logged {
            return;
        }
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
    /// Whether the policy writes this request's line (the count is sent whatever it says).
    pub logged: bool,
}

impl PriceQuoted<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        let quote = self.quote;
        metrics.incr(&BUSINESS_QUOTES_COUNT, &[Tag::variant(&quote.experiment_variant)]);
        if !self.logged {
            return;
        }
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
    /// Whether the policy writes this request's line (the counts are sent whatever it says).
    pub logged: bool,
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
        if !self.logged {
            return;
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
    /// Whether the policy writes this request's line.
    pub logged: bool,
}

impl LabelRecorded<'_> {
    pub fn emit(&self) {
        if !self.logged {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_and_slow_requests_are_always_logged_and_the_rest_sampled() {
        let policy = LogPolicy {
            sample_rate: 0.1,
            slow_ms: 50.0,
        };
        assert!((0..1_000).all(|_| policy.keeps(true, 1.0)), "degraded");
        assert!((0..1_000).all(|_| policy.keeps(false, 50.0)), "slow");
        let kept = (0..10_000).filter(|_| policy.keeps(false, 1.0)).count();
        // 10% of 10,000: the binomial's standard deviation is 30.
        assert!((850..=1150).contains(&kept), "{kept} of 10000 routine lines kept");
        let none = LogPolicy {
            sample_rate: 0.0,
            ..policy
        };
        assert!(!(0..1_000).any(|_| none.keeps(false, 1.0)));
        assert!((0..1_000).all(|_| LogPolicy::KEEP_ALL.keeps(false, 0.0)));
    }
}
