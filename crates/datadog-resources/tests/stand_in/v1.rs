//! Routing of the v1 endpoints (key validation, logs indexes and order, SLOs, monitors, dashboards) and
//! helpers the resource modules share.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::{Org, Reply, dashboards, errors, logs, logs_error, monitors, ok, slos};

type Query<'a> = dyn Fn(&str) -> Option<&'a str> + 'a;

pub(super) fn route(
    org: &mut Org,
    method: &str,
    rest: &[&str],
    query: &Query<'_>,
    body: Value,
) -> Option<Reply> {
    let number = |key: &str, default: usize| query(key).and_then(|v| v.parse().ok()).unwrap_or(default);
    Some(match (method, rest) {
        ("GET", ["validate"]) => ok(json!({ "valid": true })),
        ("GET", ["logs", "config", "indexes"]) => ok(json!({ "indexes": org.indexes })),
        ("POST", ["logs", "config", "indexes"]) => logs::create(org, body),
        ("GET", ["logs", "config", "indexes", name]) => match org.indexes.iter().find(|i| i["name"] == *name)
        {
            Some(index) => ok(index.clone()),
            None => logs_error(StatusCode::NOT_FOUND, "Index not found"),
        },
        ("PUT", ["logs", "config", "indexes", name]) => logs::update(org, name, body),
        ("GET", ["logs", "config", "index-order"]) => ok(json!({ "index_names": org.index_order })),
        ("PUT", ["logs", "config", "index-order"]) => logs::put_order(org, body),
        ("GET", ["slo"]) => {
            let wanted = query("query").unwrap_or_default().to_lowercase();
            let matching: Vec<&Value> = org
                .slos
                .iter()
                .filter(|s| {
                    s["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_lowercase()
                        .contains(&wanted)
                })
                .collect();
            let page: Vec<&Value> = matching
                .iter()
                .skip(number("offset", 0))
                .take(number("limit", 1000))
                .copied()
                .collect();
            ok(json!({ "data": page, "errors": [], "metadata": { "page": {
                "total_count": org.slos.len(), "total_filtered_count": matching.len() } } }))
        }
        ("POST", ["slo"]) => slos::create(org, body),
        ("GET", ["slo", id]) => match org.slos.iter().find(|s| s["id"] == *id) {
            Some(slo) => ok(json!({ "data": slo, "errors": [] })),
            None => errors(StatusCode::NOT_FOUND, "slo not found"),
        },
        ("PUT", ["slo", id]) => slos::update(org, id, body),
        ("GET", ["monitor"]) => {
            let wanted = query("name").unwrap_or_default().to_lowercase();
            let matching = org.monitors.iter().filter(|m| {
                m["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase()
                    .contains(&wanted)
            });
            // Without `page` every match is returned; with it, `page_size` (default 100) per page.
            let listed: Vec<&Value> = match query("page") {
                None => matching.collect(),
                Some(_) => {
                    let size = number("page_size", 100);
                    matching.skip(number("page", 0) * size).take(size).collect()
                }
            };
            ok(json!(listed))
        }
        ("POST", ["monitor"]) => monitors::create(org, body),
        ("POST", ["monitor", "validate"]) => match monitors::validate(org, &body) {
            Ok(()) => ok(json!({})),
            Err(reply) => reply,
        },
        ("POST", ["monitor", id, "validate"]) => match monitors::index(org, id) {
            Some(_) => match monitors::validate(org, &body) {
                Ok(()) => ok(json!({})),
                Err(reply) => reply,
            },
            None => errors(StatusCode::NOT_FOUND, "Monitor not found"),
        },
        ("GET", ["monitor", id]) => match monitors::index(org, id) {
            Some(i) => ok(org.monitors[i].clone()),
            None => errors(StatusCode::NOT_FOUND, "Monitor not found"),
        },
        ("PUT", ["monitor", id]) => monitors::update(org, id, body),
        ("GET", ["dashboard"]) => {
            let summaries: Vec<Value> = org
                .dashboards
                .iter()
                .skip(number("start", 0))
                .take(number("count", 100))
                .map(|d| {
                    let keys = [
                        "id",
                        "title",
                        "description",
                        "layout_type",
                        "url",
                        "author_handle",
                        "created_at",
                        "modified_at",
                        "is_read_only",
                    ];
                    Value::Object(
                        keys.iter()
                            .filter_map(|k| Some((k.to_string(), d.get(*k)?.clone())))
                            .collect(),
                    )
                })
                .collect();
            ok(json!({ "dashboards": summaries }))
        }
        ("POST", ["dashboard"]) => dashboards::write(org, body, None),
        ("GET", ["dashboard", id]) => match org.dashboards.iter().find(|d| d["id"] == *id) {
            Some(dashboard) => ok(dashboard.clone()),
            None => errors(StatusCode::NOT_FOUND, "Dashboard not found"),
        },
        ("PUT", ["dashboard", id]) => match org.dashboards.iter().position(|d| d["id"] == *id) {
            Some(i) => dashboards::write(org, body, Some(i)),
            None => errors(StatusCode::NOT_FOUND, "Dashboard not found"),
        },
        _ => return None,
    })
}

pub(super) fn object(body: Value) -> Map<String, Value> {
    match body {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

pub(super) fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key.to_owned()).or_insert(value);
}

pub(super) fn creator() -> Value {
    json!({ "email": "stand-in@example.com", "handle": "stand-in@example.com", "name": "Stand In" })
}
