//! Service level objectives: the body of `POST /api/v1/slo` (`ServiceLevelObjectiveRequest`), for
//! metric-based SLOs (good events / total events from count metrics).

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: SloType,
    pub description: Option<String>,
    pub query: Option<SloQuery>,
    pub thresholds: Vec<SloThreshold>,
    /// The primary time frame; must match one of `thresholds`.
    pub timeframe: Option<SloTimeframe>,
    pub target_threshold: Option<f64>,
    pub warning_threshold: Option<f64>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloType {
    Metric,
    Monitor,
    TimeSlice,
}

/// Good and total events: `sum:` count queries with `.as_count()` (arithmetic between them is allowed).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloQuery {
    pub numerator: String,
    pub denominator: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloThreshold {
    pub timeframe: SloTimeframe,
    /// Percent, below 100.
    pub target: f64,
    pub warning: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SloTimeframe {
    #[serde(rename = "7d")]
    SevenDays,
    #[serde(rename = "30d")]
    ThirtyDays,
    #[serde(rename = "90d")]
    NinetyDays,
}

impl SloTimeframe {
    pub const fn as_str(self) -> &'static str {
        match self {
            SloTimeframe::SevenDays => "7d",
            SloTimeframe::ThirtyDays => "30d",
            SloTimeframe::NinetyDays => "90d",
        }
    }
}
