//! Logs indexes: the body of `POST /api/v1/logs/config/indexes` (`LogsIndex` without its read-only
//! `is_rate_limited`), and the index order (`LogsIndexesOrder`).

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsIndex {
    pub name: String,
    pub filter: LogsFilter,
    /// Days logs stay searchable (the values an organisation may use depend on its contract).
    pub num_retention_days: Option<i64>,
    /// Events a day before the index stops taking more (a budget guard).
    pub daily_limit: Option<i64>,
    /// Percent of the daily limit at which Datadog sends a warning event (50 to 99.99).
    pub daily_limit_warning_threshold_percentage: Option<f64>,
    #[serde(default)]
    pub exclusion_filters: Vec<LogsExclusion>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsFilter {
    /// A log search; logs that match go to this index (the first matching index in the order wins).
    pub query: Option<String>,
}

/// Logs that match `filter.query` are left out of the index at `sample_rate` (0 to 1); still ingested,
/// so live tail and log-based metrics see them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsExclusion {
    pub name: String,
    pub is_enabled: Option<bool>,
    pub filter: Option<LogsExclusionFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsExclusionFilter {
    pub query: Option<String>,
    pub sample_rate: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsIndexesOrder {
    pub index_names: Vec<String>,
}
