//! The design record's dashboards, panels, alerts and log retention (the observability design record: the
//! requirements this repository implements, mapped in `docs/observability.md`), and the check that `docs/observability.md` maps each
//! of them to the file that implements it, and that the file does: a panel is a widget of that title
//! and kind, an alert a monitor with the record's severity, window, threshold and route, a retention
//! an index keeping logs that long.

mod table;

pub(crate) use self::table::check;
pub use self::table::{Row, rows};
use crate::{
    context::Severity,
    model::dashboard::{DisplayType, WidgetDefinition},
};

/// How the record draws a panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visual {
    TimeSeries,
    StackedArea,
    Heatmap,
    Gauge,
    Counter,
    Table,
    BarChart,
    EventTimeline,
}

impl Visual {
    fn accepts(self, definition: &WidgetDefinition) -> bool {
        match (self, definition) {
            (Visual::TimeSeries, WidgetDefinition::Timeseries(_)) => true,
            (Visual::StackedArea, WidgetDefinition::Timeseries(t)) => t
                .requests
                .iter()
                .all(|r| matches!(r.display_type, Some(DisplayType::Area))),
            (Visual::Heatmap, WidgetDefinition::Heatmap(_)) => true,
            (Visual::Gauge | Visual::Counter, WidgetDefinition::QueryValue(_)) => true,
            (Visual::Table, WidgetDefinition::QueryTable(_)) => true,
            (Visual::BarChart, WidgetDefinition::Toplist(_)) => true,
            (Visual::EventTimeline, WidgetDefinition::EventTimeline(_)) => true,
            _ => false,
        }
    }
}

/// Where a record alert notifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    PagerDuty,
    Slack(&'static str),
}

/// What the record asks for.
#[derive(Debug, Clone, Copy)]
pub enum Requirement {
    Panel(Visual),
    Alert {
        severity: Severity,
        route: Route,
        /// `last_2m`...
        window: Option<&'static str>,
        /// (comparator, threshold)
        threshold: Option<(&'static str, f64)>,
        /// The metric an anomaly monitor watches.
        anomaly_of: Option<&'static str>,
        /// The service check a check monitor watches.
        check: Option<&'static str>,
    },
    Retention(i64),
}

/// One line of the record.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    pub section: &'static str,
    pub item: &'static str,
    pub requirement: Requirement,
}

const fn panel(section: &'static str, item: &'static str, visual: Visual) -> Item {
    Item {
        section,
        item,
        requirement: Requirement::Panel(visual),
    }
}

const fn alert(
    section: &'static str,
    item: &'static str,
    severity: Severity,
    route: Route,
    window: Option<&'static str>,
    threshold: Option<(&'static str, f64)>,
) -> Item {
    Item {
        section,
        item,
        requirement: Requirement::Alert {
            severity,
            route,
            window,
            threshold,
            anomaly_of: None,
            check: None,
        },
    }
}

const RT: &str = "Real-time Operations Dashboard";
const MP: &str = "Model Performance Dashboard";
const INFRA: &str = "Infrastructure Dashboard";
const BIZ: &str = "Business Impact Dashboard";
const CRIT: &str = "Critical Alerts";
const WARN: &str = "Warning Alerts";
const ANOMALY: &str = "Anomaly Alerts";
const LOGS: &str = "Log Retention";
const PD: Route = Route::PagerDuty;
const ML: Route = Route::Slack("@slack-ml-alerts");
const OPS: Route = Route::Slack("@slack-ops-alerts");

/// Every panel, alert and retention of the design record.
pub static ITEMS: &[Item] = &[
    panel(RT, "Request rate (requests/sec)", Visual::TimeSeries),
    panel(RT, "Latency (p50, p95, p99)", Visual::TimeSeries),
    panel(RT, "Error rate (%)", Visual::TimeSeries),
    panel(RT, "Cache hit rate (CRAI cache, Feast cache)", Visual::Gauge),
    panel(RT, "Active model versions", Visual::Table),
    panel(RT, "Top 5 slowest endpoints", Visual::BarChart),
    panel(MP, "Risk score distribution (histogram)", Visual::Heatmap),
    panel(MP, "Surge factor distribution (histogram)", Visual::Heatmap),
    panel(MP, "Feature drift alerts (PSI > 0.25)", Visual::EventTimeline),
    panel(MP, "Prediction confidence distribution", Visual::TimeSeries),
    panel(MP, "Model version deployments", Visual::EventTimeline),
    panel(MP, "Predictions per model", Visual::StackedArea),
    panel(INFRA, "Redis memory usage (%)", Visual::TimeSeries),
    panel(INFRA, "Redis operations/sec", Visual::TimeSeries),
    panel(INFRA, "Kubernetes pod CPU/memory", Visual::Table),
    panel(INFRA, "API container restarts", Visual::EventTimeline),
    panel(INFRA, "Databricks cluster utilization", Visual::TimeSeries),
    panel(BIZ, "Daily revenue from dynamic pricing", Visual::TimeSeries),
    panel(BIZ, "Booking conversion rate", Visual::TimeSeries),
    panel(BIZ, "A/B test results (control vs. variant)", Visual::Table),
    panel(BIZ, "Customer complaints about pricing", Visual::Counter),
    alert(
        CRIT,
        "API High Error Rate",
        Severity::Critical,
        PD,
        Some("last_2m"),
        Some((">", 5.0)),
    ),
    alert(
        CRIT,
        "API Down",
        Severity::Critical,
        PD,
        Some("last_1m"),
        Some(("<", 1.0)),
    ),
    alert(
        CRIT,
        "High Latency",
        Severity::Critical,
        PD,
        Some("last_5m"),
        Some((">", 200.0)),
    ),
    Item {
        section: CRIT,
        item: "Redis Cluster Down",
        requirement: Requirement::Alert {
            severity: Severity::Critical,
            route: PD,
            window: None,
            threshold: None,
            anomaly_of: None,
            check: Some("redis.can_connect"),
        },
    },
    alert(
        WARN,
        "Feature Drift Detected",
        Severity::Warning,
        ML,
        None,
        Some((">", 0.25)),
    ),
    alert(
        WARN,
        "Cache Hit Rate Low",
        Severity::Warning,
        ML,
        Some("last_30m"),
        Some(("<", 90.0)),
    ),
    alert(WARN, "Batch Job Failed", Severity::Warning, ML, None, None),
    alert(
        WARN,
        "Model Performance Degradation",
        Severity::Warning,
        ML,
        None,
        Some(("<", -0.05)),
    ),
    Item {
        section: ANOMALY,
        item: "Unusual Prediction Distribution",
        requirement: Requirement::Alert {
            severity: Severity::Warning,
            route: ML,
            window: None,
            threshold: None,
            anomaly_of: Some("model.crai.risk_score"),
            check: None,
        },
    },
    Item {
        section: ANOMALY,
        item: "Latency Spike",
        requirement: Requirement::Alert {
            severity: Severity::Warning,
            route: OPS,
            window: None,
            threshold: None,
            anomaly_of: Some("api.predict.latency_ms"),
            check: None,
        },
    },
    Item {
        section: LOGS,
        item: "All logs: 15 days",
        requirement: Requirement::Retention(15),
    },
    Item {
        section: LOGS,
        item: "Error logs: 30 days",
        requirement: Requirement::Retention(30),
    },
    Item {
        section: LOGS,
        item: "Critical alerts: 90 days",
        requirement: Requirement::Retention(90),
    },
];
