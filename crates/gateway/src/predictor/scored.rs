//! One entity's prediction, and how degraded it is.

use std::collections::HashMap;

use telemetry::{DegradedReason, Tag};

use crate::downstream::MODEL_SERVICE;
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
    /// The model-service could not score: the answer is the neutral fallback
    /// ([`super::ModelFallback::Neutral`]).
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

    /// The tags of the per-model metrics.
    pub fn tags(&self) -> [Tag<'_>; 3] {
        [
            Tag::model(&self.model),
            Tag::model_version(&self.version),
            Tag::variant(&self.variant),
        ]
    }
}
