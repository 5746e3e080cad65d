//! Logs indexes (`/api/v1/logs/config/indexes`) and their order (`/api/v1/logs/config/index-order`):
//! errors in the logs API's own `{"error": {...}}` shape, a new index appended to the order, updates
//! held to LogsIndexUpdateRequest (no `name`, `filter` required), and an order that must list every
//! index once.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{
    Org, Reply, logs_error, ok,
    v1::{default, object},
};

pub(super) fn create(org: &mut Org, body: Value) -> Reply {
    let mut index = object(body);
    let Some(name) = index.get("name").and_then(Value::as_str).map(str::to_owned) else {
        return logs_error(StatusCode::BAD_REQUEST, "name is required");
    };
    if !index.get("filter").is_some_and(Value::is_object) {
        return logs_error(StatusCode::BAD_REQUEST, "filter is required");
    }
    if org.indexes.iter().any(|i| i["name"] == name) {
        return logs_error(StatusCode::BAD_REQUEST, "an index with this name already exists");
    }
    default(&mut index, "is_rate_limited", json!(false));
    default(&mut index, "num_retention_days", json!(15));
    default(&mut index, "exclusion_filters", json!([]));
    let index = Value::Object(index);
    org.indexes.push(index.clone());
    org.index_order.push(name);
    ok(index)
}

pub(super) fn update(org: &mut Org, name: &str, body: Value) -> Reply {
    let Some(i) = org.indexes.iter().position(|x| x["name"] == name) else {
        return logs_error(StatusCode::NOT_FOUND, "Index not found");
    };
    let update = object(body);
    // LogsIndexUpdateRequest: `filter` required, no `name`, nothing read-only.
    for key in ["name", "is_rate_limited"] {
        if update.contains_key(key) {
            return logs_error(
                StatusCode::BAD_REQUEST,
                &format!("unknown or read-only field: {key}"),
            );
        }
    }
    if !update.get("filter").is_some_and(Value::is_object) {
        return logs_error(StatusCode::BAD_REQUEST, "filter is required");
    }
    let index = org.indexes[i].as_object_mut().expect("indexes are objects");
    let disable = update.get("disable_daily_limit") == Some(&json!(true));
    for (key, value) in update {
        if key != "disable_daily_limit" {
            index.insert(key, value);
        }
    }
    if disable {
        index.remove("daily_limit");
    }
    ok(Value::Object(index.clone()))
}

pub(super) fn put_order(org: &mut Org, body: Value) -> Reply {
    let Some(names) = body.get("index_names").and_then(Value::as_array) else {
        return logs_error(StatusCode::BAD_REQUEST, "index_names is required");
    };
    let names: Vec<String> = names
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let (mut given, mut existing) = (names.clone(), org.index_order.clone());
    given.sort();
    existing.sort();
    if given != existing {
        return logs_error(
            StatusCode::BAD_REQUEST,
            "index_names must list every index of the organisation once",
        );
    }
    org.index_order = names;
    ok(json!({ "index_names": org.index_order }))
}
