//! The resource files the tests apply, written into a temporary repository as `deploy/datadog/...`: a
//! dashboard, two monitors (one an SLO burn-rate alert using `${slo.availability}`, both linking
//! `${runbooks_url}`), an SLO, two logs indexes and their order.

use std::{fs, path::Path};

use datadog_resources::resources::ResourceSet;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const RUNBOOKS: &str = "https://git.example.com/pricing/blob/main/docs/runbooks";
pub const LATENCY: &str = "pricing.request.duration";
pub const BURN_RATE_FILE: &str = "deploy/datadog/monitors/availability-burn-rate.json";
pub const ERRORS_FILE: &str = "deploy/datadog/monitors/error-rate.json";

pub fn fixtures() -> Vec<(&'static str, Value)> {
    vec![
        (
            "dashboards/overview.json",
            json!({
                "title": "Pricing overview",
                "description": "Requests, latency and availability of the pricing service.",
                "layout_type": "ordered",
                "widgets": [
                    {"definition": {"type": "timeseries", "title": "Requests",
                        "requests": [{"q": "sum:pricing.requests{*}.as_count()", "display_type": "bars"}]}},
                    {"definition": {"type": "group", "title": "Latency", "layout_type": "ordered", "widgets": [
                        {"definition": {"type": "query_value", "title": "p99",
                            "requests": [{"q": format!("p99:{LATENCY}{{*}}")}]}}]}},
                    {"definition": {"type": "slo", "view_type": "detail", "title": "Availability",
                        "slo_id": "${slo.availability}", "time_windows": ["7d", "30d"]}},
                ],
            }),
        ),
        (
            "monitors/error-rate.json",
            json!({
                "name": "[pricing] Error rate high",
                "type": "query alert",
                "query": "sum(last_5m):sum:pricing.errors{env:prod}.as_count() > 50",
                "message": "Errors are high. Runbook: ${runbooks_url}/error-rate.md @pagerduty-pricing",
                "tags": ["service:pricing", "team:ml-platform"],
                "priority": 2,
                "options": {"thresholds": {"critical": 50, "warning": 20}, "notify_no_data": false},
            }),
        ),
        (
            "monitors/availability-burn-rate.json",
            json!({
                "name": "[pricing] Availability SLO burning fast",
                "type": "slo alert",
                "query": "burn_rate(\"${slo.availability}\").over(\"30d\").long_window(\"1h\").short_window(\"5m\") > 14.4",
                "message": "The error budget burns fast. Runbook: ${runbooks_url}/availability.md @pagerduty-pricing",
                "tags": ["service:pricing"],
                "options": {"thresholds": {"critical": 14.4}},
            }),
        ),
        (
            "slos/availability.json",
            json!({
                "name": "Pricing availability",
                "type": "metric",
                "description": "Share of pricing requests answered without a server error.",
                "query": {"numerator": "sum:pricing.requests{!status:error}.as_count()",
                    "denominator": "sum:pricing.requests{*}.as_count()"},
                "thresholds": [{"timeframe": "30d", "target": 99.9, "warning": 99.95}],
                "tags": ["service:pricing"],
            }),
        ),
        (
            "logs-indexes/pricing.json",
            json!({"name": "pricing", "filter": {"query": "service:pricing"}, "num_retention_days": 15,
                "daily_limit": 50000000}),
        ),
        (
            "logs-indexes/pricing-debug.json",
            json!({"name": "pricing-debug", "filter": {"query": "service:pricing status:debug"},
                "num_retention_days": 3,
                "exclusion_filters": [{"name": "health checks", "is_enabled": true,
                    "filter": {"query": "@http.url_details.path:\"/health\"", "sample_rate": 1.0}}]}),
        ),
        (
            "logs-index-order.json",
            json!({"index_names": ["pricing-debug", "pricing"]}),
        ),
    ]
}

/// A repository root holding the fixtures under `deploy/datadog/`.
pub fn repo() -> TempDir {
    let root = tempfile::tempdir().expect("temporary repository");
    for folder in ["dashboards", "monitors", "slos", "logs-indexes"] {
        fs::create_dir_all(root.path().join("deploy/datadog").join(folder)).expect("folder");
    }
    for (file, body) in fixtures() {
        write(root.path(), &format!("deploy/datadog/{file}"), &body);
    }
    root
}

pub fn write(root: &Path, file: &str, body: &Value) {
    let text = serde_json::to_string_pretty(body).expect("fixture JSON");
    fs::write(root.join(file), text).expect("write fixture");
}

pub fn edit(root: &Path, file: &str, change: impl FnOnce(&mut Value)) {
    let path = root.join(file);
    let mut body: Value = serde_json::from_str(&fs::read_to_string(&path).expect("read")).expect("JSON");
    change(&mut body);
    write(root, file, &body);
}

pub fn load(root: &Path) -> ResourceSet {
    let (set, problems) = ResourceSet::load(root);
    assert!(problems.is_empty(), "{problems:?}");
    set
}
