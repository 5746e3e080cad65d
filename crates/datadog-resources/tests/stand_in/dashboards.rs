//! Dashboards (`/api/v1/dashboard`): `abc-def-ghi` ids, author and timestamps, a URL, and an `id` on
//! every widget.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{
    Org, Reply, errors, ok,
    v1::{default, object},
};

/// Creates a dashboard, or replaces the one at `replace` (keeping its id, author and creation time).
pub(super) fn write(org: &mut Org, body: Value, replace: Option<usize>) -> Reply {
    let mut dashboard = object(body);
    for key in ["title", "layout_type", "widgets"] {
        if !dashboard.contains_key(key) {
            return errors(StatusCode::BAD_REQUEST, &format!("{key} is required"));
        }
    }
    let now = org.now();
    let id = match replace {
        Some(i) => org.dashboards[i]["id"].as_str().unwrap_or_default().to_owned(),
        None => {
            let t = org.tick();
            let part = |seed: u64| -> String {
                (0..3)
                    .map(|k| {
                        char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[((seed >> (5 * k)) % 32) as usize])
                    })
                    .collect()
            };
            format!(
                "{}-{}-{}",
                part(t * 7919),
                part(t * 104_729 + 13),
                part(t * 1_299_709 + 7)
            )
        }
    };
    let slug: String = dashboard["title"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase()
        .replace(' ', "-");
    let created = replace
        .map(|i| org.dashboards[i]["created_at"].clone())
        .unwrap_or(json!(now));
    dashboard.insert("id".into(), json!(id));
    dashboard.insert("url".into(), json!(format!("/dashboard/{id}/{slug}")));
    dashboard.insert("author_handle".into(), json!("stand-in@example.com"));
    dashboard.insert("author_name".into(), json!("Stand In"));
    dashboard.insert("created_at".into(), created);
    dashboard.insert("modified_at".into(), json!(now));
    default(&mut dashboard, "is_read_only", json!(false));
    if let Some(Value::Array(widgets)) = dashboard.get_mut("widgets") {
        number_widgets(org, widgets);
    }
    let dashboard = Value::Object(dashboard);
    match replace {
        Some(i) => org.dashboards[i] = dashboard.clone(),
        None => org.dashboards.push(dashboard.clone()),
    }
    ok(dashboard)
}

/// Gives every widget, group members included, an `id` as Datadog does.
fn number_widgets(org: &mut Org, widgets: &mut [Value]) {
    for widget in widgets.iter_mut().filter_map(Value::as_object_mut) {
        let id = 4_000_000_000_000 + org.tick();
        widget.entry("id").or_insert(json!(id));
        if let Some(Value::Array(inner)) = widget.get_mut("definition").and_then(|d| d.get_mut("widgets")) {
            number_widgets(org, inner);
        }
    }
}
