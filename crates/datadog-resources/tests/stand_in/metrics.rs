//! Metrics v2 tag configurations (`/api/v2/metrics/{metric_name}/tags`), after the
//! `MetricTagConfiguration*` models: `GET` answers 404 when a metric has no configuration, `POST` creates
//! one (`metric_type` and `tags` required, 201, 409 when one exists), `PATCH` changes the attributes it
//! is given and leaves the others. `include_percentiles` exists only for distributions.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Org, Reply, errors, ok};

pub(super) fn route(org: &mut Org, method: &str, metric: &str, body: &Value) -> Option<Reply> {
    Some(match method {
        "GET" => match org.tag_configs.iter().find(|(m, _)| m == metric) {
            Some((_, config)) => ok(json!({ "data": config })),
            None => errors(StatusCode::NOT_FOUND, "Not found"),
        },
        "POST" => create(org, metric, body),
        "PATCH" => update(org, metric, body),
        _ => return None,
    })
}

/// The request's `data`, checked: `type` `manage_tags` and `id` the metric of the path.
fn data<'a>(metric: &str, body: &'a Value) -> Result<&'a Value, Reply> {
    let data = body
        .get("data")
        .ok_or_else(|| errors(StatusCode::BAD_REQUEST, "data is required"))?;
    if data.get("type") != Some(&json!("manage_tags")) {
        return Err(errors(StatusCode::BAD_REQUEST, "data.type must be manage_tags"));
    }
    if data.get("id") != Some(&json!(metric)) {
        return Err(errors(
            StatusCode::BAD_REQUEST,
            "data.id must be the metric name of the path",
        ));
    }
    Ok(data)
}

fn check_percentiles(metric_type: &str, attributes: &Value) -> Result<(), Reply> {
    if attributes.get("include_percentiles") == Some(&json!(true)) && metric_type != "distribution" {
        return Err(errors(
            StatusCode::BAD_REQUEST,
            "include_percentiles applies only to distribution metrics",
        ));
    }
    Ok(())
}

pub(super) fn create(org: &mut Org, metric: &str, body: &Value) -> Reply {
    let data = match data(metric, body) {
        Ok(data) => data,
        Err(reply) => return reply,
    };
    let attributes = data.get("attributes").cloned().unwrap_or(Value::Null);
    let metric_type = attributes
        .get("metric_type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !["gauge", "count", "rate", "distribution"].contains(&metric_type.as_str()) {
        return errors(StatusCode::BAD_REQUEST, "attributes.metric_type is required");
    }
    let Some(tags) = attributes.get("tags").filter(|t| t.is_array()).cloned() else {
        return errors(StatusCode::BAD_REQUEST, "attributes.tags is required");
    };
    if let Err(reply) = check_percentiles(&metric_type, &attributes) {
        return reply;
    }
    if org.tag_configs.iter().any(|(m, _)| m == metric) {
        return errors(StatusCode::CONFLICT, "Conflict");
    }
    if org.unknown_metrics.iter().any(|m| m == metric) {
        return errors(StatusCode::NOT_FOUND, "Metric not found");
    }
    let now = org.now();
    let mut stored = json!({
        "tags": tags,
        "metric_type": metric_type,
        "exclude_tags_mode": attributes.get("exclude_tags_mode").cloned().unwrap_or(json!(false)),
        "created_at": now,
        "modified_at": now,
    });
    if metric_type == "distribution" {
        stored["include_percentiles"] = attributes
            .get("include_percentiles")
            .cloned()
            .unwrap_or(json!(false));
    }
    let config = json!({ "type": "manage_tags", "id": metric, "attributes": stored });
    org.tag_configs.push((metric.to_owned(), config.clone()));
    (StatusCode::CREATED, json!({ "data": config }))
}

fn update(org: &mut Org, metric: &str, body: &Value) -> Reply {
    let data = match data(metric, body) {
        Ok(data) => data,
        Err(reply) => return reply,
    };
    let now = org.now();
    let Some((_, config)) = org.tag_configs.iter_mut().find(|(m, _)| m == metric) else {
        return errors(StatusCode::NOT_FOUND, "Not found");
    };
    let attributes = data.get("attributes").cloned().unwrap_or(json!({}));
    let metric_type = config["attributes"]["metric_type"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Err(reply) = check_percentiles(&metric_type, &attributes) {
        return reply;
    }
    if attributes.get("exclude_tags_mode").is_some() && attributes.get("tags").is_none() {
        return errors(StatusCode::BAD_REQUEST, "exclude_tags_mode requires tags");
    }
    for key in ["tags", "include_percentiles", "exclude_tags_mode"] {
        if let Some(value) = attributes.get(key) {
            config["attributes"][key] = value.clone();
        }
    }
    config["attributes"]["modified_at"] = json!(now);
    ok(json!({ "data": config }))
}
