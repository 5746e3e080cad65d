//! The table in `docs/observability.md` that maps each item of the record to its file, and the check
//! that every item has a row and every row's file implements its item.

use std::path::Path;

use super::{ITEMS, Item, Requirement, Route};
use crate::{
    context::{Ctx, Parsed, Severity},
    docs,
    model::dashboard::all_widgets,
    query,
    resources::{Problem, Resource},
};

/// One row of the docs table: section, item, the file it points to, and the widget title (panels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub section: String,
    pub item: String,
    pub file: String,
    pub widget: Option<String>,
}

/// The rows of the mapping table.
pub fn rows(table: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in table.lines().map(str::trim).filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 4 || cells[0] == "design record" || cells[0].starts_with("---") {
            continue;
        }
        let file = cells[2]
            .find("deploy/datadog/")
            .map(|at| &cells[2][at..])
            .and_then(|rest| rest.find(".json").map(|end| rest[..end + 5].to_owned()))
            .unwrap_or_default();
        let widget = cells[3].split('"').nth(1).map(str::to_owned);
        rows.push(Row {
            section: cells[0].to_owned(),
            item: cells[1].to_owned(),
            file,
            widget,
        });
    }
    rows
}

pub(crate) fn check(ctx: &mut Ctx<'_>, parsed: &Parsed<'_>) {
    let Some(table) = ctx.doc_section("design-record", "design record table") else {
        return;
    };
    let rows = rows(&table);
    for item in ITEMS {
        if !rows
            .iter()
            .any(|r| r.section == item.section && r.item == item.item)
        {
            ctx.findings.problems.push(Problem::new(
                docs::PATH,
                "design record table",
                format!(
                    "{}: \"{}\" has no row mapping it to a file",
                    item.section, item.item
                ),
            ));
        }
    }
    for row in &rows {
        let Some(item) = ITEMS
            .iter()
            .find(|i| i.section == row.section && i.item == row.item)
        else {
            ctx.findings.problems.push(Problem::new(
                docs::PATH,
                "design record table",
                format!(
                    "{}: \"{}\" is not an item of the design record",
                    row.section, row.item
                ),
            ));
            continue;
        };
        let Some(resource) = ctx.set.resources.iter().find(|r| r.path == Path::new(&row.file)) else {
            ctx.findings.problems.push(Problem::new(
                docs::PATH,
                "design record table",
                format!(
                    "\"{}\" maps to {:?}, which is not a resource file",
                    row.item, row.file
                ),
            ));
            continue;
        };
        if let Some(message) = implements(parsed, resource, item, row) {
            ctx.problem(
                resource,
                format!(
                    "implements the design record's \"{}\" ({}): {message}",
                    item.item, item.section
                ),
            );
        }
    }
}

/// Why `resource` does not implement `item`, if it does not.
fn implements(parsed: &Parsed<'_>, resource: &Resource, item: &Item, row: &Row) -> Option<String> {
    match item.requirement {
        Requirement::Panel(visual) => {
            let dashboard = parsed
                .dashboards
                .iter()
                .find(|(r, _)| r.path == resource.path)
                .map(|(_, d)| d)?;
            let Some(title) = &row.widget else {
                return Some(format!(
                    "the table names no widget for it (write the widget title in quotes in {})",
                    docs::PATH
                ));
            };
            let widget = all_widgets(&dashboard.widgets)
                .into_iter()
                .find(|(w, _)| w.definition.title() == Some(title.as_str()));
            match widget {
                None => Some(format!("it has no widget titled {title:?}")),
                Some((w, _)) if !visual.accepts(&w.definition) => Some(format!(
                    "widget {title:?} is a {}, the record draws it as {visual:?}",
                    w.definition.type_name()
                )),
                Some(_) => None,
            }
        }
        Requirement::Alert {
            severity,
            route,
            window,
            threshold,
            anomaly_of,
            check,
        } => {
            let monitor = parsed
                .monitors
                .iter()
                .find(|(r, _)| r.path == resource.path)
                .map(|(_, m)| m)?;
            if Severity::of(monitor) != Some(severity) {
                return Some(format!("the record's severity is {severity:?}"));
            }
            let routed = match route {
                Route::PagerDuty => monitor.message.contains("@pagerduty-"),
                Route::Slack(handle) => monitor.message.contains(handle),
            };
            if !routed {
                return Some(format!("the record notifies {route:?}"));
            }
            let shape = query::monitor_query(&monitor.query);
            if let Some(window) = window
                && shape.as_ref().map(|s| s.window.as_str()) != Some(window)
            {
                return Some(format!("the record's window is {window}"));
            }
            if let Some((comparator, value)) = threshold {
                let matches = shape
                    .as_ref()
                    .is_some_and(|s| s.comparator == comparator && s.threshold == value);
                if !matches {
                    return Some(format!("the record's condition is `{comparator} {value}`"));
                }
            }
            if let Some(metric) = anomaly_of {
                let watches = monitor.query.contains("anomalies(")
                    && query::metric_refs(&monitor.query)
                        .iter()
                        .any(|r| r.metric == metric);
                if !watches {
                    return Some(format!("the record asks for anomaly detection on `{metric}`"));
                }
            }
            if let Some(check) = check
                && query::service_check(&monitor.query).map(|c| c.check).as_deref() != Some(check)
            {
                return Some(format!("the record watches the `{check}` check"));
            }
            None
        }
        Requirement::Retention(days) => {
            let index = parsed
                .indexes
                .iter()
                .find(|(r, _)| r.path == resource.path)
                .map(|(_, i)| i)?;
            (index.num_retention_days != Some(days))
                .then(|| format!("the record keeps these logs {days} days"))
        }
    }
}
