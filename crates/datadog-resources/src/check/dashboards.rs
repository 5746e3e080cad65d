//! Dashboard rules: the `env`, `service` and `version` template variables; layouts as Datadog requires
//! them (free layouts place every widget, `auto` reflow places none, event timelines only on free
//! layouts); titled widgets, unique titles (the design-record table names widgets by title); formulas
//! over the queries their request defines; event searches on events and monitors that exist.

use std::collections::BTreeSet;

use super::metrics;
use crate::{
    context::{Ctx, Parsed},
    known_metrics::{self, Kind},
    model::dashboard::{Dashboard, LayoutType, ReflowType, Widget, WidgetDefinition, all_widgets},
    resources::Resource,
};

/// The template variables every dashboard offers (unified service tagging).
pub const REQUIRED_VARIABLES: [&str; 3] = ["env", "service", "version"];

pub(super) fn check(ctx: &mut Ctx<'_>, parsed: &Parsed<'_>, resource: &Resource, dashboard: &Dashboard) {
    let mut variables = metrics::Variables::new();
    for variable in &dashboard.template_variables {
        match &variable.prefix {
            Some(prefix) => {
                variables.insert(variable.name.clone(), prefix.clone());
            }
            None => ctx.problem(
                resource,
                format!(
                    "template variable `{}` has no `prefix` (the tag key it filters on)",
                    variable.name
                ),
            ),
        }
    }
    for required in REQUIRED_VARIABLES {
        if variables.get(required).map(String::as_str) != Some(required) {
            ctx.problem(resource, format!("needs the template variable `{required}` with prefix `{required}` (unified service tagging)"));
        }
    }
    layout(ctx, resource, dashboard);
    let mut titles = BTreeSet::new();
    for (widget, group) in all_widgets(&dashboard.widgets) {
        let definition = &widget.definition;
        let kind = definition.type_name();
        let place = match (definition.title(), group) {
            (Some(title), _) => format!("widget {title:?}"),
            (None, Some(group)) => format!("a {kind} widget in group {group:?}"),
            (None, None) => format!("a {kind} widget"),
        };
        match definition.title() {
            Some(title) if !titles.insert(title.to_owned()) => {
                ctx.problem(resource, format!("{place}: two widgets share this title"))
            }
            None if !matches!(definition, WidgetDefinition::Note(_)) => {
                ctx.problem(resource, format!("{place}: has no title"))
            }
            _ => {}
        }
        for query in definition.metric_queries() {
            metrics::check_query(
                ctx,
                resource,
                &format!("{place}, query `{}`", query.name),
                &query.query,
                &variables,
            );
        }
        for (queries, formulas) in definition.formulas() {
            let names: BTreeSet<&str> = queries.iter().map(|q| q.name.as_str()).collect();
            if names.len() != queries.len() {
                ctx.problem(
                    resource,
                    format!("{place}: two queries of one request share a name"),
                );
            }
            if formulas.is_empty() {
                ctx.problem(
                    resource,
                    format!("{place}: a request without formulas shows nothing"),
                );
            }
            for formula in formulas {
                for identifier in identifiers(&formula.formula) {
                    if !names.contains(identifier) {
                        ctx.problem(
                            resource,
                            format!("{place}: formula `{}` uses `{identifier}`, which no query of the request is named", formula.formula),
                        );
                    }
                }
            }
        }
        for search in definition.event_queries() {
            event_search(ctx, parsed, resource, &place, search);
        }
        if let WidgetDefinition::CheckStatus(check) = definition {
            let known = known_metrics::lookup(&check.check);
            if known.as_ref().map(|k| k.kind) != Some(Kind::ServiceCheck) {
                ctx.problem(
                    resource,
                    format!("{place}: `{}` is not a documented service check", check.check),
                );
            }
            for key in &check.group_by {
                if known.as_ref().is_some_and(|k| !k.has_tag(key)) {
                    ctx.problem(resource, format!("{place}: `{}` has no tag `{key}`", check.check));
                }
            }
        }
        if matches!(definition, WidgetDefinition::EventTimeline(_))
            && dashboard.layout_type != LayoutType::Free
        {
            ctx.problem(
                resource,
                format!("{place}: event timelines exist only on `free` layout dashboards"),
            );
        }
    }
}

fn layout(ctx: &mut Ctx<'_>, resource: &Resource, dashboard: &Dashboard) {
    let placed = |w: &Widget| w.layout.is_some();
    match (dashboard.layout_type, dashboard.reflow_type) {
        (LayoutType::Free, Some(_)) => ctx.problem(resource, "`reflow_type` is only for `ordered` layouts"),
        (LayoutType::Free, None) => {
            if !dashboard.widgets.iter().all(placed) {
                ctx.problem(
                    resource,
                    "a `free` layout needs a `layout` (x, y, width, height) on every widget",
                );
            }
            if dashboard
                .widgets
                .iter()
                .any(|w| matches!(w.definition, WidgetDefinition::Group(_)))
            {
                ctx.problem(resource, "group widgets belong to `ordered` layouts");
            }
            overlaps(ctx, resource, &dashboard.widgets);
        }
        (LayoutType::Ordered, Some(ReflowType::Fixed)) => {
            if !all_widgets(&dashboard.widgets).iter().all(|(w, _)| placed(w)) {
                ctx.problem(resource, "`fixed` reflow needs a `layout` on every widget");
            }
        }
        (LayoutType::Ordered, _) => {
            if all_widgets(&dashboard.widgets).iter().any(|(w, _)| placed(w)) {
                ctx.problem(
                    resource,
                    "`auto` reflow places widgets itself: remove their `layout`",
                );
            }
        }
    }
}

fn overlaps(ctx: &mut Ctx<'_>, resource: &Resource, widgets: &[Widget]) {
    let boxes: Vec<_> = widgets
        .iter()
        .filter_map(|w| {
            w.layout
                .map(|l| (l, w.definition.title().unwrap_or(w.definition.type_name())))
        })
        .collect();
    for (i, (a, a_title)) in boxes.iter().enumerate() {
        for (b, b_title) in &boxes[i + 1..] {
            let apart = a.x + a.width <= b.x
                || b.x + b.width <= a.x
                || a.y + a.height <= b.y
                || b.y + b.height <= a.y;
            if !apart {
                ctx.problem(resource, format!("widgets {a_title:?} and {b_title:?} overlap"));
            }
        }
    }
}

/// Names a formula refers to: identifiers not followed by `(` (functions).
fn identifiers(formula: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = formula.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() || bytes[i] == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let is_call = formula[i..].trim_start().starts_with('(');
            if !is_call {
                out.push(&formula[start..i]);
            }
        } else if bytes[i].is_ascii_digit() || bytes[i] == b'.' {
            // A number, possibly with an exponent (`1e9`): skip it whole.
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// `event:<name>` must be an event the platform sends; `@monitor.tags:"alert:<stem>"` a monitor's tag.
fn event_search(ctx: &mut Ctx<'_>, parsed: &Parsed<'_>, resource: &Resource, place: &str, search: &str) {
    for term in search.split_whitespace() {
        if let Some(name) = term.strip_prefix("event:")
            && !telemetry::catalog::EVENTS.iter().any(|e| e.name == name)
        {
            ctx.problem(
                resource,
                format!("{place}: no event `{name}` is sent (telemetry::catalog::EVENTS)"),
            );
        }
        if let Some(tag) = term.strip_prefix("@monitor.tags:") {
            let tag = tag.trim_matches('"');
            if !parsed
                .monitors
                .iter()
                .any(|(_, m)| m.tags.iter().any(|t| t == tag))
            {
                ctx.problem(
                    resource,
                    format!("{place}: no monitor in deploy/datadog/monitors carries the tag `{tag}`"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formula_identifiers_skip_functions_and_numbers() {
        assert_eq!(
            super::identifiers("100 * hit / (hit + miss)"),
            ["hit", "hit", "miss"]
        );
        assert_eq!(
            super::identifiers("abs(cpu) / 1e9 + cpu_limit"),
            ["cpu", "cpu_limit"]
        );
    }
}
