//! Monitors (`/api/v1/monitor`): validation as the validate endpoints and writes do it, integer ids,
//! the computed fields and option defaults Datadog adds, and updates whose `options` replace the stored
//! ones.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{
    Org, Reply, errors, ok,
    v1::{creator, default, object},
};

/// `MonitorType` in the v1 spec.
const MONITOR_TYPES: &[&str] = &[
    "composite",
    "event alert",
    "log alert",
    "metric alert",
    "process alert",
    "query alert",
    "rum alert",
    "service check",
    "synthetics alert",
    "trace-analytics alert",
    "slo alert",
    "event-v2 alert",
    "audit alert",
    "ci-pipelines alert",
    "ci-tests alert",
    "error-tracking alert",
    "database-monitoring alert",
    "network-performance alert",
    "cost alert",
    "data-quality alert",
    "network-path alert",
    "data-jobs alert",
    "llm-observability alert",
];

/// What Datadog's monitor validation checks that matters here: a known type, a query, and for SLO
/// alerts an SLO that exists.
pub(super) fn validate(org: &Org, body: &Value) -> Result<(), Reply> {
    let kind = body.get("type").and_then(Value::as_str).unwrap_or_default();
    if !MONITOR_TYPES.contains(&kind) {
        return Err(errors(
            StatusCode::BAD_REQUEST,
            &format!("Invalid monitor type: {kind:?}"),
        ));
    }
    let query = body.get("query").and_then(Value::as_str).unwrap_or_default();
    if query.trim().is_empty() {
        return Err(errors(
            StatusCode::BAD_REQUEST,
            "The value provided for parameter 'query' is invalid",
        ));
    }
    if kind == "slo alert" {
        let id = query.split('"').nth(1).unwrap_or_default();
        if !org.slos.iter().any(|s| s["id"] == id) {
            return Err(errors(StatusCode::BAD_REQUEST, &format!("SLO {id:?} not found")));
        }
    }
    Ok(())
}

pub(super) fn index(org: &Org, id: &str) -> Option<usize> {
    let id: u64 = id.parse().ok()?;
    org.monitors.iter().position(|m| m["id"].as_u64() == Some(id))
}

/// Options as Datadog stores them: its defaults filled in, thresholds as floats.
fn monitor_options(given: Option<&Value>) -> Value {
    let mut options = object(given.cloned().unwrap_or(Value::Null));
    default(&mut options, "notify_audit", json!(false));
    default(&mut options, "include_tags", json!(true));
    default(&mut options, "new_host_delay", json!(300));
    default(&mut options, "notify_no_data", json!(false));
    default(&mut options, "silenced", json!({}));
    if let Some(Value::Object(thresholds)) = options.get_mut("thresholds") {
        for value in thresholds.values_mut() {
            if let Some(n) = value.as_f64() {
                *value = json!(n);
            }
        }
    }
    Value::Object(options)
}

pub(super) fn create(org: &mut Org, body: Value) -> Reply {
    if let Err(reply) = validate(org, &body) {
        return reply;
    }
    let mut monitor = object(body);
    let now = org.now();
    let id = 10_000_000 + org.tick();
    let multi = monitor
        .get("query")
        .and_then(Value::as_str)
        .is_some_and(|q| q.contains(" by "));
    let options = monitor_options(monitor.get("options"));
    monitor.insert("id".into(), json!(id));
    monitor.insert("options".into(), options);
    for (key, value) in [
        ("created", json!(now)),
        ("modified", json!(now)),
        ("creator", creator()),
        ("overall_state", json!("No Data")),
        ("multi", json!(multi)),
        ("deleted", Value::Null),
        ("restricted_roles", Value::Null),
        ("priority", Value::Null),
        ("tags", json!([])),
        ("message", json!("")),
    ] {
        default(&mut monitor, key, value);
    }
    let monitor = Value::Object(monitor);
    org.monitors.push(monitor.clone());
    ok(monitor)
}

pub(super) fn update(org: &mut Org, id: &str, body: Value) -> Reply {
    let Some(i) = index(org, id) else {
        return errors(StatusCode::NOT_FOUND, "Monitor not found");
    };
    let mut merged = org.monitors[i].clone();
    let update = object(body);
    for (key, value) in &update {
        if ![
            "id",
            "created",
            "modified",
            "creator",
            "overall_state",
            "multi",
            "deleted",
        ]
        .contains(&key.as_str())
        {
            merged[key] = value.clone();
        }
    }
    if let Err(reply) = validate(org, &merged) {
        return reply;
    }
    // Options sent replace the stored ones, with Datadog's defaults filled in again.
    if update.contains_key("options") {
        merged["options"] = monitor_options(update.get("options"));
    }
    merged["modified"] = json!(org.now());
    org.monitors[i] = merged.clone();
    ok(merged)
}
