//! Deciding whether a resource needs writing, and showing what would change.
//!
//! Datadog answers with more than it was sent: ids, timestamps, the creator, widget ids, monitor states,
//! and server-side defaults for options the file leaves out. So a resource is unchanged when the file's
//! body is a *subset* of the organisation's: every key the file sets is there with an equal value
//! (numbers numerically, `1 == 1.0`), arrays element by element with the same length. A few objects are
//! compared exactly instead, because leaving a key out of them in the file means "remove it": monitor
//! `options.thresholds` and `options.threshold_windows` (deleting a warning threshold must reach
//! Datadog), and a logs index's `filter`.

use serde_json::{Map, Value};
use similar::TextDiff;

use crate::resources::Kind;

/// What a resource needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Create,
    Update,
    Unchanged,
}

impl Action {
    /// The start of the plan line: `+ create`, `~ update`, `= unchanged`.
    pub(crate) const fn marker(self) -> &'static str {
        match self {
            Action::Create => "+ create",
            Action::Update => "~ update",
            Action::Unchanged => "= unchanged",
        }
    }
}

/// The action for `desired` given the organisation's object, if it has one.
pub(crate) fn decide(kind: Kind, desired: &Value, remote: Option<&Value>) -> Action {
    match remote {
        None => Action::Create,
        Some(remote) if holds(kind, desired, remote) => Action::Unchanged,
        Some(_) => Action::Update,
    }
}

/// Whether `remote` holds everything `desired` sets (see the module docs).
pub(crate) fn holds(kind: Kind, desired: &Value, remote: &Value) -> bool {
    subset(kind, desired, remote, &mut Vec::new())
}

/// Key paths (object keys from the top, array positions skipped) compared exactly.
fn exact(kind: Kind, path: &[&str]) -> bool {
    match kind {
        Kind::Monitor => matches!(path, ["options", "thresholds" | "threshold_windows"]),
        Kind::LogsIndex => matches!(path, ["filter"]),
        Kind::Dashboard | Kind::Slo => false,
    }
}

fn subset<'a>(kind: Kind, desired: &'a Value, remote: &Value, path: &mut Vec<&'a str>) -> bool {
    if exact(kind, path) {
        return same(desired, remote);
    }
    match (desired, remote) {
        (Value::Object(wanted), Value::Object(have)) => wanted.iter().all(|(key, value)| {
            path.push(key);
            // An explicit `null` in the file asks for "not set", which Datadog may express by omitting it.
            let ok = match have.get(key) {
                Some(remote) => subset(kind, value, remote, path),
                None => value.is_null(),
            };
            path.pop();
            ok
        }),
        (Value::Array(wanted), Value::Array(have)) => {
            wanted.len() == have.len() && wanted.iter().zip(have).all(|(w, h)| subset(kind, w, h, path))
        }
        _ => same(desired, remote),
    }
}

/// Deep equality where numbers compare by value and a key set to `null` equals a missing key.
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Object(x), Value::Object(y)) => {
            let keys_match = |from: &Map<String, Value>, other: &Map<String, Value>| {
                from.iter().all(|(k, v)| match other.get(k) {
                    Some(o) => same(v, o),
                    None => v.is_null(),
                })
            };
            keys_match(x, y) && keys_match(y, x)
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        _ => a == b,
    }
}

/// `remote` cut down to the keys `desired` sets (and whole where compared exactly), so a diff against
/// `desired` shows only what the file controls. Values equal to the file's take the file's spelling
/// (`5` rather than Datadog's `5.0`), so they do not show up as changes.
pub(crate) fn project(kind: Kind, desired: &Value, remote: &Value) -> Value {
    project_at(kind, desired, remote, &mut Vec::new())
}

fn project_at<'a>(kind: Kind, desired: &'a Value, remote: &Value, path: &mut Vec<&'a str>) -> Value {
    if same(desired, remote) {
        return desired.clone();
    }
    let whole = exact(kind, path);
    match (desired, remote) {
        (Value::Object(wanted), Value::Object(have)) => {
            let mut projected: Map<String, Value> = wanted
                .iter()
                .filter_map(|(key, value)| {
                    let remote = have.get(key)?;
                    path.push(key);
                    let projected = project_at(kind, value, remote, path);
                    path.pop();
                    Some((key.clone(), projected))
                })
                .collect();
            if whole {
                for (key, value) in have.iter().filter(|(key, _)| !wanted.contains_key(*key)) {
                    projected.insert(key.clone(), value.clone());
                }
            }
            Value::Object(projected)
        }
        _ if whole => remote.clone(),
        (Value::Array(wanted), Value::Array(have)) => Value::Array(
            have.iter()
                .enumerate()
                .map(|(i, remote)| match wanted.get(i) {
                    Some(value) => project_at(kind, value, remote, path),
                    None => remote.clone(),
                })
                .collect(),
        ),
        _ => remote.clone(),
    }
}

/// A unified diff from `before` (the organisation, or nothing) to `after` (the file), each as pretty
/// JSON, indented to sit under its plan line.
pub(crate) fn diff(before: Option<&Value>, after: &Value, after_name: &str) -> String {
    let old = before.map(pretty).unwrap_or_default();
    let new = pretty(after);
    lines_diff(&old, &new, after_name)
}

/// A unified diff of two texts, indented to sit under a plan line.
pub(crate) fn lines_diff(old: &str, new: &str, after_name: &str) -> String {
    let text = TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header("Datadog", after_name)
        .to_string();
    text.lines().map(|line| format!("    {line}\n")).collect()
}

pub(crate) fn pretty(value: &Value) -> String {
    // Serialising a `Value` cannot fail (its keys are strings); the empty fallback only keeps this total.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn subset_ignores_computed_fields_and_compares_numbers_by_value() {
        let desired = json!({"name": "m", "options": {"thresholds": {"critical": 5}, "notify_no_data": true},
            "tags": ["a"]});
        let remote = json!({"id": 1, "name": "m", "created": "x",
            "options": {"thresholds": {"critical": 5.0}, "notify_no_data": true, "include_tags": true},
            "tags": ["a"]});
        assert_eq!(decide(Kind::Monitor, &desired, Some(&remote)), Action::Unchanged);
        assert_eq!(decide(Kind::Monitor, &desired, None), Action::Create);
    }

    #[test]
    fn arrays_must_match_in_length_and_thresholds_exactly() {
        let remote = json!({"options": {"thresholds": {"critical": 5, "warning": 3}}, "tags": ["a", "b"]});
        let fewer_tags = json!({"tags": ["a"]});
        assert!(!holds(Kind::Monitor, &fewer_tags, &remote));
        let no_warning = json!({"options": {"thresholds": {"critical": 5}}});
        assert!(!holds(Kind::Monitor, &no_warning, &remote));
        // The same object elsewhere is a subset comparison.
        assert!(holds(Kind::Dashboard, &no_warning, &remote));
    }

    #[test]
    fn projection_keeps_only_the_file_keys_and_shows_the_change() {
        let desired = json!({"name": "m", "options": {"thresholds": {"critical": 5}}});
        let remote = json!({"id": 1, "name": "m", "options": {"thresholds": {"critical": 5.0, "warning": 3},
            "include_tags": true}});
        let projected = project(Kind::Monitor, &desired, &remote);
        assert_eq!(
            projected,
            json!({"name": "m", "options": {"thresholds": {"critical": 5, "warning": 3}}})
        );
        let text = diff(Some(&projected), &desired, "monitors/m.json");
        assert!(text.contains("-      \"warning\": 3"), "{text}");
    }
}
