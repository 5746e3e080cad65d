//! SLO rules: metric SLOs over count metrics (`sum:` and `.as_count()`, as Datadog requires), a primary
//! time frame that is one of the thresholds, targets below 100 with warnings above them.

use super::metrics;
use crate::{
    context::Ctx,
    model::slo::{Slo, SloType},
    query,
    resources::Resource,
};

pub(super) fn check(ctx: &mut Ctx<'_>, resource: &Resource, slo: &Slo) {
    if slo.kind != SloType::Metric {
        ctx.problem(
            resource,
            "only metric SLOs (good events / total events) are checked here",
        );
    }
    match &slo.query {
        None => ctx.problem(
            resource,
            "a metric SLO needs `query.numerator` and `query.denominator`",
        ),
        Some(sli) => {
            for (part, text) in [("numerator", &sli.numerator), ("denominator", &sli.denominator)] {
                metrics::check_query(ctx, resource, part, text, &metrics::Variables::new());
                for metric_ref in query::metric_refs(text) {
                    if metric_ref.aggregator != "sum" || !metric_ref.as_count {
                        ctx.problem(
                            resource,
                            format!("{part}: `{}` must be read as `sum:...{{...}}.as_count()` (Datadog sums event counts for SLOs)", metric_ref.metric),
                        );
                    }
                }
            }
        }
    }
    if slo.thresholds.is_empty() {
        ctx.problem(resource, "needs at least one threshold");
    }
    for threshold in &slo.thresholds {
        let frame = threshold.timeframe.as_str();
        if !(0.0..100.0).contains(&threshold.target) {
            ctx.problem(
                resource,
                format!("the {frame} target {} must be below 100", threshold.target),
            );
        }
        if threshold
            .warning
            .is_some_and(|w| w <= threshold.target || w >= 100.0)
        {
            ctx.problem(
                resource,
                format!("the {frame} warning must lie between the target and 100"),
            );
        }
    }
    match slo.timeframe {
        None => ctx.problem(
            resource,
            "set `timeframe` (the primary time frame burn-rate alerts use)",
        ),
        Some(frame) => match slo.thresholds.iter().find(|t| t.timeframe == frame) {
            None => ctx.problem(
                resource,
                format!("the primary time frame {} has no threshold", frame.as_str()),
            ),
            Some(threshold) => {
                if slo.target_threshold != Some(threshold.target)
                    || slo.warning_threshold != threshold.warning
                {
                    ctx.problem(resource, "`target_threshold` and `warning_threshold` must match the primary time frame's threshold");
                }
            }
        },
    }
    if !slo.tags.iter().any(|t| t.starts_with("team:")) {
        ctx.problem(
            resource,
            "needs a `team:` tag (the dashboards' SLO list selects by it)",
        );
    }
}
