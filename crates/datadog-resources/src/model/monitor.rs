//! Monitors: the body of `POST /api/v1/monitor` (Datadog's `Monitor` schema without its read-only
//! fields: no `id`, `created`, `creator`, `overall_state`...).

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: MonitorType,
    pub query: String,
    pub message: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// 1 (highest) to 5; here 1 means critical (pages) and 3 warning (Slack).
    pub priority: Option<i64>,
    pub options: MonitorOptions,
}

/// Datadog's monitor types (`MonitorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum MonitorType {
    #[serde(rename = "composite")]
    Composite,
    #[serde(rename = "event alert")]
    EventAlert,
    #[serde(rename = "log alert")]
    LogAlert,
    #[serde(rename = "metric alert")]
    MetricAlert,
    #[serde(rename = "process alert")]
    ProcessAlert,
    #[serde(rename = "query alert")]
    QueryAlert,
    #[serde(rename = "rum alert")]
    RumAlert,
    #[serde(rename = "service check")]
    ServiceCheck,
    #[serde(rename = "synthetics alert")]
    SyntheticsAlert,
    #[serde(rename = "trace-analytics alert")]
    TraceAnalyticsAlert,
    #[serde(rename = "slo alert")]
    SloAlert,
    #[serde(rename = "event-v2 alert")]
    EventV2Alert,
    #[serde(rename = "audit alert")]
    AuditAlert,
    #[serde(rename = "ci-pipelines alert")]
    CiPipelinesAlert,
    #[serde(rename = "ci-tests alert")]
    CiTestsAlert,
    #[serde(rename = "error-tracking alert")]
    ErrorTrackingAlert,
    #[serde(rename = "database-monitoring alert")]
    DatabaseMonitoringAlert,
    #[serde(rename = "network-performance alert")]
    NetworkPerformanceAlert,
    #[serde(rename = "cost alert")]
    CostAlert,
    #[serde(rename = "data-quality alert")]
    DataQualityAlert,
    #[serde(rename = "network-path alert")]
    NetworkPathAlert,
    #[serde(rename = "data-jobs alert")]
    DataJobsAlert,
    #[serde(rename = "llm-observability alert")]
    LlmObservabilityAlert,
}

/// The options this repository's monitors use (`MonitorOptions`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorOptions {
    pub thresholds: Option<Thresholds>,
    /// Anomaly monitors only: how long the anomaly must last to trigger and to recover.
    pub threshold_windows: Option<ThresholdWindows>,
    pub notify_no_data: Option<bool>,
    /// Minutes without data before a no-data alert.
    pub no_data_timeframe: Option<i64>,
    pub on_missing_data: Option<OnMissingData>,
    pub require_full_window: Option<bool>,
    pub include_tags: Option<bool>,
    pub notify_audit: Option<bool>,
    /// Minutes between re-notifications while unresolved.
    pub renotify_interval: Option<i64>,
    #[serde(default)]
    pub renotify_statuses: Vec<RenotifyStatus>,
    pub renotify_occurrences: Option<i64>,
    /// Sent with each re-notification (its @-handles are notified).
    pub escalation_message: Option<String>,
    /// Seconds to wait for data to settle before evaluating (metric monitors).
    pub evaluation_delay: Option<i64>,
    /// Seconds before a new group (a new env or pod) is evaluated.
    pub new_group_delay: Option<i64>,
    pub notification_preset_name: Option<NotificationPreset>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub critical: Option<f64>,
    pub critical_recovery: Option<f64>,
    pub warning: Option<f64>,
    pub warning_recovery: Option<f64>,
    /// Service checks: OK statuses in a row to resolve.
    pub ok: Option<f64>,
    pub unknown: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdWindows {
    pub trigger_window: Option<String>,
    pub recovery_window: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMissingData {
    Default,
    ShowNoData,
    ShowAndNotifyNoData,
    Resolve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RenotifyStatus {
    #[serde(rename = "alert")]
    Alert,
    #[serde(rename = "warn")]
    Warn,
    #[serde(rename = "no data")]
    NoData,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationPreset {
    ShowAll,
    HideQuery,
    HideHandles,
    HideAll,
    HideQueryAndHandles,
    ShowOnlySnapshot,
    HideHandlesAndFooter,
}
