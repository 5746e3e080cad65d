//! Percentiles of distribution metrics, through the Metrics v2 tag configuration
//! (`/api/v2/metrics/{metric_name}/tags`). Datadog computes p50/p95/p99 of a distribution only where
//! `include_percentiles` is on for that metric.
//!
//! - No configuration (`GET` answers 404): `POST` one with `include_percentiles: true`, and
//!   `exclude_tags_mode: true` with no tags, that is "exclude nothing": every tag stays queryable, as it
//!   is without a configuration. (`tags` is required on create; with `exclude_tags_mode` false the list
//!   would be an allow-list, and an empty one would hide every tag.)
//! - A configuration with percentiles off: `PATCH` only `include_percentiles`, so its tag list, and with
//!   it what can be queried, is left exactly as its owner set it.
//! - Percentiles already on: nothing.

use serde_json::{Value, json};

use super::{
    ApplyError,
    client::{Method, encode},
    plan::{self, Action},
    session::Session,
};

const CONFIG_TYPE: &str = "manage_tags";

/// Turns percentiles on for every metric in `metrics`.
pub(crate) fn apply(session: &mut Session<'_>, metrics: &[String]) -> Result<(), ApplyError> {
    let mut seen = Vec::new();
    for metric in metrics {
        if seen.contains(&metric) {
            continue;
        }
        seen.push(metric);
        apply_one(session, metric)?;
    }
    Ok(())
}

fn apply_one(session: &mut Session<'_>, metric: &str) -> Result<(), ApplyError> {
    let context = format!("percentiles of distribution {metric:?}");
    let path = format!("/api/v2/metrics/{}/tags", encode(metric));
    let reply = session.api.get(&context, &path, &[])?;
    let (action, note, method, body) = match reply.status {
        // No tag configuration yet; the metric itself may well exist and be submitting.
        404 => (
            Action::Create,
            "percentiles on, every tag queryable",
            Method::Post,
            json!({"data": {"type": CONFIG_TYPE, "id": metric, "attributes": {
                "metric_type": "distribution",
                "include_percentiles": true,
                "exclude_tags_mode": true,
                "tags": [],
            }}}),
        ),
        200..=299 => {
            let attributes = reply
                .body
                .pointer("/data/attributes")
                .ok_or_else(|| reply.unexpected(&context, "no data.attributes"))?;
            let metric_type = attributes.get("metric_type").and_then(Value::as_str);
            if metric_type.is_some_and(|t| t != "distribution") {
                return Err(ApplyError::Api {
                    context,
                    method: reply.method.as_str(),
                    path: reply.path.clone(),
                    status: reply.status,
                    errors: format!(
                        "the metric is a {}, and percentiles exist only for distributions",
                        metric_type.unwrap_or_default()
                    ),
                    hint: "; submit it as a distribution or drop the percentile queries".to_owned(),
                });
            }
            match attributes.get("include_percentiles").and_then(Value::as_bool) {
                Some(true) => (Action::Unchanged, "percentiles on", Method::Patch, Value::Null),
                _ => (
                    Action::Update,
                    "percentiles off -> on; queryable tags untouched",
                    Method::Patch,
                    json!({"data": {"type": CONFIG_TYPE, "id": metric, "attributes": {
                        "include_percentiles": true,
                    }}}),
                ),
            }
        }
        _ => return Err(reply.error(&context)),
    };
    let mut text = format!("{} metric tag configuration {metric} ({note})\n", action.marker());
    if session.dry_run && action != Action::Unchanged {
        text.push_str(&plan::diff(None, &body, &path));
    }
    session.say(&text)?;
    match action {
        Action::Unchanged => {
            session.summary.percentiles_unchanged += 1;
            Ok(())
        }
        Action::Create | Action::Update => {
            session.summary.percentiles_changed += 1;
            if session.dry_run {
                return Ok(());
            }
            let reply = session.api.send(&context, method, &path, &body)?;
            match (action, reply.status) {
                // Datadog creates a tag configuration only for a metric it has received: before the
                // services' first submission this is expected, not a failure of the run.
                (Action::Create, 400 | 404 | 422) => {
                    session.summary.percentiles_changed -= 1;
                    session.summary.percentiles_pending += 1;
                    session.say(&format!(
                        "    ! Datadog does not know {metric} yet ({}): percentiles are turned on by a run after the services have sent it\n",
                        reply.errors()
                    ))
                }
                _ => reply.into_ok(&context).map(drop),
            }
        }
    }
}
