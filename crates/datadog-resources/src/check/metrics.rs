//! Metric queries against the catalog: every metric known, every tag it filters or groups on carried
//! by that metric (and, for closed sets, a value the code can send), and an aggregation its type
//! allows. Distributions queried with a percentile are collected for `apply`.

use std::collections::BTreeMap;

use crate::{
    context::Ctx,
    known_metrics::{self, Kind, Origin},
    query::{self, Filter},
    resources::Resource,
};

/// Dashboard template variables: name to the tag key it filters on.
pub(super) type Variables = BTreeMap<String, String>;

const AGGREGATORS: [&str; 6] = ["avg", "sum", "min", "max", "count", "histogram"];

/// Checks every metric reference in `text`; `place` says where it is (`widget "Error rate (%)"`).
pub(super) fn check_query(
    ctx: &mut Ctx<'_>,
    resource: &Resource,
    place: &str,
    text: &str,
    variables: &Variables,
) {
    let refs = query::metric_refs(text);
    if refs.is_empty() {
        ctx.problem(resource, format!("{place}: no metric query found in `{text}`"));
    }
    for metric_ref in refs {
        let name = metric_ref.metric.as_str();
        let Some(known) = known_metrics::lookup(name) else {
            ctx.problem(
                resource,
                format!("{place}: unknown metric `{name}`: it is not in the telemetry catalog (crates/telemetry/src/catalog.rs), its planned metrics, or the agent-integration list (crates/datadog-resources/src/integrations.rs)"),
            );
            continue;
        };
        if let Origin::Planned(_) = known.origin {
            ctx.findings
                .planned_in_use
                .entry(name.to_owned())
                .or_default()
                .insert(resource.path.clone());
        }
        let aggregator = metric_ref.aggregator.as_str();
        if !AGGREGATORS.contains(&aggregator) && !metric_ref.is_percentile() {
            ctx.problem(resource, format!("{place}: `{aggregator}:` is not an aggregator Datadog knows (avg, sum, min, max, count, histogram, p50 ... p99)"));
        }
        let distribution_only = metric_ref.is_percentile() || aggregator == "histogram";
        if known.kind == Kind::ServiceCheck {
            ctx.problem(resource, format!("{place}: `{name}` is a service check, not a metric: query it in a service check monitor or a check_status widget"));
        } else if distribution_only && known.kind != Kind::Distribution {
            ctx.problem(
                resource,
                format!(
                    "{place}: `{aggregator}:{name}` needs a distribution, and `{name}` is a {}",
                    known.kind.as_str()
                ),
            );
        } else if metric_ref.is_percentile() {
            ctx.findings.percentile_metrics.insert(name.to_owned());
        }
        for filter in &metric_ref.filters {
            match filter {
                Filter::All => {}
                Filter::Variable(variable) => match variables.get(variable) {
                    None => ctx.problem(
                        resource,
                        format!("{place}: `${variable}` is not a template variable of this dashboard"),
                    ),
                    Some(key) => check_tag(ctx, resource, place, &known, key, &[]),
                },
                Filter::Tag { key, values } => check_tag(ctx, resource, place, &known, key, values),
                Filter::Bare(word) => ctx.problem(
                    resource,
                    format!("{place}: `{word}` in the scope of `{name}` has no tag key (write `key:value`)"),
                ),
            }
        }
        for key in &metric_ref.group_by {
            if !known.has_tag(key) {
                ctx.problem(
                    resource,
                    format!(
                        "{place}: `{name}` is grouped by `{key}`, a tag it does not carry (it carries: {})",
                        known.tags.join(", ")
                    ),
                );
            }
        }
    }
}

fn check_tag(
    ctx: &mut Ctx<'_>,
    resource: &Resource,
    place: &str,
    known: &known_metrics::Known,
    key: &str,
    values: &[String],
) {
    let name = known.name;
    if !known.has_tag(key) {
        ctx.problem(
            resource,
            format!(
                "{place}: `{name}` has no tag `{key}` (it carries: {})",
                known.tags.join(", ")
            ),
        );
        return;
    }
    if let Some(closed) = known_metrics::closed_values(key) {
        for value in values {
            if !closed.contains(&value.as_str()) {
                ctx.problem(
                    resource,
                    format!(
                        "{place}: `{key}:{value}` never occurs on `{name}`: `{key}` is one of {}",
                        closed.join(", ")
                    ),
                );
            }
        }
    }
}
