//! Service level objectives (`/api/v1/slo`): 32-hex ids, answers wrapped in `{"data": [...]}`, and the
//! fields Datadog derives from the thresholds.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::{
    Org, Reply, errors, ok,
    v1::{creator, default, object},
};

pub(super) fn create(org: &mut Org, body: Value) -> Reply {
    let mut slo = object(body);
    for key in ["name", "thresholds", "type"] {
        if !slo.contains_key(key) {
            return errors(StatusCode::BAD_REQUEST, &format!("{key} is required"));
        }
    }
    let tick = org.tick();
    let id = format!(
        "{:016x}{:016x}",
        0x5e1f_a11c_e000_0000_u64 + tick,
        tick.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    );
    slo.insert("id".into(), json!(id));
    slo.insert("created_at".into(), json!(1_767_225_600 + tick));
    slo.insert("creator".into(), creator());
    let slo = slo_computed(slo, tick);
    org.slos.push(slo.clone());
    ok(json!({ "data": [slo], "errors": [] }))
}

pub(super) fn update(org: &mut Org, id: &str, body: Value) -> Reply {
    let Some(i) = org.slos.iter().position(|s| s["id"] == id) else {
        return errors(StatusCode::NOT_FOUND, "slo not found");
    };
    let mut slo = object(body);
    for key in ["name", "thresholds", "type"] {
        if !slo.contains_key(key) {
            return errors(StatusCode::BAD_REQUEST, &format!("{key} is required"));
        }
    }
    for key in ["id", "created_at", "creator"] {
        slo.insert(key.into(), org.slos[i][key].clone());
    }
    let tick = org.tick();
    let slo = slo_computed(slo, tick);
    org.slos[i] = slo.clone();
    ok(json!({ "data": [slo], "errors": [] }))
}

/// The fields Datadog derives for an SLO: display strings of the targets, the primary threshold's
/// timeframe and targets, and the modification time.
fn slo_computed(mut slo: Map<String, Value>, tick: u64) -> Value {
    if let Some(Value::Array(thresholds)) = slo.get_mut("thresholds") {
        for threshold in thresholds.iter_mut().filter_map(Value::as_object_mut) {
            for (value, display) in [("target", "target_display"), ("warning", "warning_display")] {
                if let Some(n) = threshold.get(value).and_then(Value::as_f64) {
                    let text = if n.fract() == 0.0 {
                        format!("{n:.1}")
                    } else {
                        n.to_string()
                    };
                    threshold.entry(display.to_owned()).or_insert(json!(text));
                }
            }
        }
    }
    let primary = slo
        .get("thresholds")
        .and_then(|t| t.get(0))
        .cloned()
        .unwrap_or(Value::Null);
    for (key, from) in [
        ("timeframe", "timeframe"),
        ("target_threshold", "target"),
        ("warning_threshold", "warning"),
    ] {
        if let Some(value) = primary.get(from) {
            default(&mut slo, key, value.clone());
        }
    }
    default(&mut slo, "monitor_tags", json!([]));
    slo.insert("modified_at".into(), json!(1_767_225_600 + tick));
    Value::Object(slo)
}
