//! Monitor rules: a severity (priority 1 pages, priority 3 notifies Slack) with the route that fits
//! it, escalation while unresolved, a runbook that exists and is linked, the triggering tags in the
//! message, multi-alert by `env`, thresholds Datadog accepts, anomaly monitors with their threshold
//! windows, and SLO alerts on SLOs of this repository.

use std::collections::BTreeSet;

use super::metrics;
use crate::{
    context::{Ctx, Severity},
    known_metrics::{self, Kind},
    model::monitor::{Monitor, MonitorType},
    query,
    resources::{Kind as ResourceKind, Resource},
    template,
};

/// Where runbooks live, relative to the repository root.
pub const RUNBOOKS: &str = "docs/runbooks";

pub(super) fn check(ctx: &mut Ctx<'_>, resource: &Resource, monitor: &Monitor) {
    let severity = Severity::of(monitor);
    match severity {
        None => ctx.problem(
            resource,
            "`priority` must be 1 (critical: pages PagerDuty) or 3 (warning: Slack)",
        ),
        Some(severity) => {
            if !monitor.tags.iter().any(|t| t == severity.tag()) {
                ctx.problem(
                    resource,
                    format!(
                        "priority {} needs the tag `{}`",
                        monitor.priority.unwrap_or(0),
                        severity.tag()
                    ),
                );
            }
            routes(ctx, resource, monitor, severity);
        }
    }
    if !monitor.tags.iter().any(|t| t.starts_with("team:")) {
        ctx.problem(resource, "needs a `team:` tag (who owns it)");
    }
    let alert_tag = format!("alert:{}", resource.stem);
    if !monitor.tags.contains(&alert_tag) {
        ctx.problem(
            resource,
            format!("needs the tag `{alert_tag}` (event timelines and searches find its alerts by it)"),
        );
    }
    runbook(ctx, resource, monitor);
    match monitor.kind {
        MonitorType::QueryAlert => query_alert(ctx, resource, monitor),
        MonitorType::ServiceCheck => service_check(ctx, resource, monitor),
        MonitorType::SloAlert => slo_alert(ctx, resource, monitor),
        other => ctx.problem(resource, format!("monitor type {other:?} is not one this checker can verify; use a query alert, service check or SLO alert")),
    }
}

/// The part of `message` Datadog sends for `block` (`is_alert`), or the whole message when it has no
/// such block (then every notification carries it).
fn section<'m>(message: &'m str, block: &str) -> Vec<&'m str> {
    let open = format!("{{{{#{block}}}}}");
    let close = format!("{{{{/{block}}}}}");
    let mut sections = Vec::new();
    let mut rest = message;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let end = after.find(&close).unwrap_or(after.len());
        sections.push(&after[..end]);
        rest = &after[end..];
    }
    if sections.is_empty() {
        vec![message]
    } else {
        sections
    }
}

/// Handles notified outside any `{{#...}}` block.
fn unconditional(message: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut rest = message;
    while let Some(start) = rest.find("{{") {
        if depth == 0 {
            out.push_str(&rest[..start]);
        }
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        let tag = &rest[start + 2..start + end];
        if tag.starts_with('#') || tag.starts_with('^') {
            depth += 1;
        } else if tag.starts_with('/') {
            depth = depth.saturating_sub(1);
        }
        rest = &rest[start + end + 2..];
    }
    if depth == 0 {
        out.push_str(rest);
    }
    out
}

fn routes(ctx: &mut Ctx<'_>, resource: &Resource, monitor: &Monitor, severity: Severity) {
    let message = &monitor.message;
    let escalation = monitor.options.escalation_message.as_deref().unwrap_or_default();
    match severity {
        Severity::Critical => {
            let pages = section(message, "is_alert")
                .iter()
                .any(|s| s.contains("@pagerduty-"))
                || unconditional(message).contains("@pagerduty-");
            if !pages {
                let handles: BTreeSet<&str> = message
                    .split_whitespace()
                    .filter(|w| w.starts_with('@'))
                    .collect();
                ctx.problem(
                    resource,
                    format!("a critical monitor must page PagerDuty (`@pagerduty-...`) when it alerts; it notifies only {}", handles.into_iter().collect::<Vec<_>>().join(" ")),
                );
            }
            if !message.contains("@slack-") {
                ctx.problem(
                    resource,
                    "a critical monitor also posts to Slack (warnings and non-prod alerts go there)",
                );
            }
            if monitor.options.renotify_interval.is_none() || escalation.trim().is_empty() {
                ctx.problem(resource, "a critical monitor renotifies while unresolved: set `renotify_interval` and an `escalation_message`");
            }
        }
        Severity::Warning => {
            if message.contains("@pagerduty-") || escalation.contains("@pagerduty-") {
                ctx.problem(resource, "a warning must not page: notify Slack (`@slack-...`) and leave PagerDuty to critical monitors");
            }
            if !message.contains("@slack-") {
                ctx.problem(
                    resource,
                    "a warning notifies Slack (`@slack-ml-alerts` or `@slack-ops-alerts`)",
                );
            }
            if monitor.options.renotify_interval.is_some() && escalation.trim().is_empty() {
                ctx.problem(resource, "`renotify_interval` without an `escalation_message` repeats the alert without saying it is escalating");
            }
        }
    }
}

fn runbook(ctx: &mut Ctx<'_>, resource: &Resource, monitor: &Monitor) {
    let link = format!("${{{}}}/{}.md", template::RUNBOOKS_URL, resource.stem);
    if !monitor.message.contains(&link) {
        ctx.problem(resource, format!("the message must link its runbook as `{link}`"));
    }
    let file = ctx.root.join(RUNBOOKS).join(format!("{}.md", resource.stem));
    if !file.is_file() {
        ctx.problem(
            resource,
            format!("has no runbook: {RUNBOOKS}/{}.md is missing", resource.stem),
        );
    }
}

/// Every runbook belongs to a monitor (a renamed monitor leaves no orphan behind).
pub(super) fn check_runbook_folder(ctx: &mut Ctx<'_>) {
    let Ok(entries) = std::fs::read_dir(ctx.root.join(RUNBOOKS)) else {
        return;
    };
    let stems: BTreeSet<&str> = ctx
        .set
        .of_kind(ResourceKind::Monitor)
        .map(|r| r.stem.as_str())
        .collect();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".md") else {
            continue;
        };
        if stem != "README" && !stems.contains(stem) {
            ctx.findings.problems.push(crate::resources::Problem::new(
                format!("{RUNBOOKS}/{name}"),
                "",
                "no monitor in deploy/datadog/monitors has this runbook's name",
            ));
        }
    }
}

/// The triggering tags: every group key appears in the message as `{{key.name}}`.
fn names_groups(ctx: &mut Ctx<'_>, resource: &Resource, monitor: &Monitor, groups: &BTreeSet<String>) {
    if !groups.contains("env") {
        ctx.problem(resource, "must be a multi-alert by `env` (group the query `by {env,...}`), so the environment at fault is named");
    }
    for key in groups {
        let variable = format!("{{{{{key}.name}}}}");
        if !monitor.message.contains(&variable) && !monitor.name.contains(&variable) {
            ctx.problem(
                resource,
                format!("the message does not name the triggering `{key}`: add `{variable}`"),
            );
        }
    }
}

fn query_alert(ctx: &mut Ctx<'_>, resource: &Resource, monitor: &Monitor) {
    metrics::check_query(ctx, resource, "query", &monitor.query, &metrics::Variables::new());
    let refs = query::metric_refs(&monitor.query);
    let mut groups = BTreeSet::new();
    for metric_ref in &refs {
        if metric_ref.group_by.is_empty() {
            ctx.problem(
                resource,
                format!(
                    "`{}` is not grouped: group every metric of a multi-alert the same way",
                    metric_ref.metric
                ),
            );
        }
        groups.extend(metric_ref.group_by.iter().cloned());
    }
    names_groups(ctx, resource, monitor, &groups);
    let Some(shape) = query::monitor_query(&monitor.query) else {
        ctx.problem(
            resource,
            "the query is not `<aggregation>(<window>):<metrics> <comparator> <threshold>`",
        );
        return;
    };
    let thresholds = monitor.options.thresholds.as_ref();
    let critical = thresholds.and_then(|t| t.critical);
    if critical != Some(shape.threshold) {
        ctx.problem(
            resource,
            format!("`options.thresholds.critical` must equal the query's threshold {} (Datadog refuses the monitor otherwise)", shape.threshold),
        );
    }
    if let (Some(warning), Some(critical)) = (thresholds.and_then(|t| t.warning), critical) {
        let less_severe = match shape.comparator.as_str() {
            ">" | ">=" => warning < critical,
            "<" | "<=" => warning > critical,
            _ => true,
        };
        if !less_severe {
            ctx.problem(
                resource,
                format!(
                    "the warning threshold {warning} must come before the critical {critical} (`{}`)",
                    shape.comparator
                ),
            );
        }
    }
    let windows = monitor.options.threshold_windows.as_ref();
    match query::anomaly_arguments(&monitor.query) {
        Some(arguments) => {
            let alert_window = arguments
                .iter()
                .find(|(k, _)| k == "alert_window")
                .map(|(_, v)| v.as_str());
            let trigger = windows.and_then(|w| w.trigger_window.as_deref());
            let recovery = windows.and_then(|w| w.recovery_window.as_deref());
            match (alert_window, trigger, recovery) {
                (None, ..) => ctx.problem(resource, "an anomaly query needs `alert_window='last_...'`"),
                (Some(_), None, _) | (Some(_), _, None) => ctx.problem(
                    resource,
                    "an anomaly monitor needs `options.threshold_windows` with `trigger_window` and `recovery_window`",
                ),
                (Some(alert), Some(trigger), Some(_)) if alert != trigger => ctx.problem(
                    resource,
                    format!("`threshold_windows.trigger_window` ({trigger}) must equal the query's `alert_window` ({alert})"),
                ),
                _ => {}
            }
        }
        None if windows.is_some() => {
            ctx.problem(resource, "`threshold_windows` only apply to anomaly monitors")
        }
        None => {}
    }
}

fn service_check(ctx: &mut Ctx<'_>, resource: &Resource, monitor: &Monitor) {
    let Some(check) = query::service_check(&monitor.query) else {
        ctx.problem(
            resource,
            "a service check query reads `\"<check>\".over(...).by(...).last(N).count_by_status()`",
        );
        return;
    };
    let known = known_metrics::lookup(&check.check);
    let Some(known) = known.filter(|k| k.kind == Kind::ServiceCheck) else {
        ctx.problem(
            resource,
            format!(
                "`{}` is not a documented service check (crates/datadog-resources/src/integrations.rs)",
                check.check
            ),
        );
        return;
    };
    for key in &check.group_by {
        if !known.has_tag(key) {
            ctx.problem(
                resource,
                format!(
                    "`{}` has no tag `{key}` (it carries: {})",
                    check.check,
                    known.tags.join(", ")
                ),
            );
        }
    }
    let groups: BTreeSet<String> = check.group_by.iter().cloned().collect();
    names_groups(ctx, resource, monitor, &groups);
    let thresholds = monitor.options.thresholds.as_ref();
    let largest = thresholds
        .map(|t| {
            [t.ok, t.warning, t.critical]
                .into_iter()
                .flatten()
                .fold(0.0, f64::max)
        })
        .unwrap_or(0.0);
    match check.last {
        Some(last) if f64::from(last) >= largest && thresholds.and_then(|t| t.critical).is_some() => {}
        _ => ctx.problem(
            resource,
            "needs `options.thresholds.critical` and `.last(N)` at least the largest threshold",
        ),
    }
}

fn slo_alert(ctx: &mut Ctx<'_>, resource: &Resource, monitor: &Monitor) {
    let Some(alert) = query::slo_alert(&monitor.query) else {
        ctx.problem(resource, "an SLO alert reads `burn_rate(\"${slo.<stem>}\").over(\"30d\").long_window(..).short_window(..) > N`");
        return;
    };
    let stem = alert
        .slo
        .strip_prefix("${")
        .and_then(|s| s.strip_suffix('}'))
        .and_then(|s| s.strip_prefix(template::SLO_PREFIX));
    match stem {
        Some(stem) if ctx.set.by_stem(ResourceKind::Slo, stem).is_some() => {}
        _ => ctx.problem(
            resource,
            format!(
                "`{}` must be `${{slo.<stem>}}` of a file in deploy/datadog/slos",
                alert.slo
            ),
        ),
    }
    if let (Some(long), Some(short)) = (&alert.long_window, &alert.short_window)
        && minutes(short) >= minutes(long)
    {
        ctx.problem(
            resource,
            format!("the short window {short} must be shorter than the long window {long}"),
        );
    }
    let threshold = query::monitor_threshold(&monitor.query);
    if monitor.options.thresholds.as_ref().and_then(|t| t.critical) != threshold {
        ctx.problem(
            resource,
            "`options.thresholds.critical` must equal the query's threshold",
        );
    }
}

fn minutes(window: &str) -> Option<u64> {
    let (number, unit) = window.split_at(window.len().saturating_sub(1));
    let number: u64 = number.parse().ok()?;
    match unit {
        "m" => Some(number),
        "h" => Some(number * 60),
        "d" => Some(number * 1440),
        _ => None,
    }
}
