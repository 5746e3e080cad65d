//! Logs index rules: retention Datadog offers, the index order naming exactly our indexes, exclusion
//! sample rates between 0 and 1.

use std::collections::BTreeSet;

use crate::{
    context::{Ctx, Parsed},
    resources::{DIR, INDEX_ORDER_FILE, Problem},
};

/// Retention periods Datadog offers for standard indexes (which of them an organisation may use depends
/// on its contract).
pub const RETENTION_DAYS: [i64; 9] = [3, 7, 15, 30, 45, 60, 90, 180, 360];

pub(super) fn check(ctx: &mut Ctx<'_>, parsed: &Parsed<'_>) {
    for (resource, index) in &parsed.indexes {
        match index.num_retention_days {
            None => ctx.problem(resource, "set `num_retention_days`"),
            Some(days) if !RETENTION_DAYS.contains(&days) => ctx.problem(
                resource,
                format!("retention of {days} days is not one Datadog offers ({RETENTION_DAYS:?})"),
            ),
            Some(_) => {}
        }
        if index.filter.query.as_deref().is_none_or(|q| q.trim().is_empty()) {
            ctx.problem(
                resource,
                "an index without a filter query takes every log of the organisation",
            );
        }
        for exclusion in &index.exclusion_filters {
            if let Some(filter) = &exclusion.filter
                && !(0.0..=1.0).contains(&filter.sample_rate)
            {
                ctx.problem(
                    resource,
                    format!(
                        "exclusion {:?}: `sample_rate` is a fraction between 0 and 1",
                        exclusion.name
                    ),
                );
            }
        }
    }
    let ours: BTreeSet<&str> = parsed.indexes.iter().map(|(_, i)| i.name.as_str()).collect();
    let order: BTreeSet<&str> = ctx.set.index_order.iter().map(String::as_str).collect();
    let path = format!("{DIR}/{INDEX_ORDER_FILE}");
    if order.len() != ctx.set.index_order.len() {
        ctx.findings
            .problems
            .push(Problem::new(&path, "logs index order", "names an index twice"));
    }
    if ours != order {
        ctx.findings.problems.push(Problem::new(
            &path,
            "logs index order",
            format!(
                "must name exactly the indexes in {DIR}/logs-indexes ({}), first match first",
                ours.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
}
