//! What the catalog costs in Datadog: custom-metric series from each tag's documented bound of values
//! (`docs/observability.md`, tag table), times the pods and service versions that send them, per
//! environment; and log volume from the bytes and lines a request writes (measured by
//! `crates/system-tests/tests/log_volume.rs`, bounded in `deploy/datadog/cost-model.json`). Prices and
//! deployment assumptions live in that file with their sources; the result is the cost section of
//! `docs/observability.md`, which the checker keeps equal to this computation.
//!
//! Datadog bills a count or gauge as one custom metric per distinct tag-value combination, a
//! distribution as five (count, sum, min, max, avg) and five more when percentiles are enabled.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Deserialize;
use telemetry::catalog::{CATALOG, MetricDef, MetricKind, PLANNED};

use crate::{
    context::{Ctx, Parsed},
    docs,
    resources::{DIR, Problem},
};

pub const MODEL_FILE: &str = "cost-model.json";
/// The logs index whose exclusion filter samples routine request lines.
const ALL_LOGS_INDEX: &str = "pricing-all";

/// `deploy/datadog/cost-model.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostModel {
    pub description: String,
    /// Public API calls a day at the design record's traffic (100K predictions a day).
    pub requests_per_day: f64,
    /// Environments sending metrics, with the pods of each binary in them: every pod is a value of
    /// `host` for the metrics its binary sends (`sent_by` in the catalog).
    pub environments: Vec<Environment>,
    /// Versions of a service reporting at once (`version` tag; rolling updates overlap briefly).
    pub service_versions: u32,
    /// Hosts the organisation monitors: each brings an allotment of custom metrics.
    pub monitored_hosts: u32,
    /// Upper bounds of what one request writes to the logs (the log volume test holds the services to them).
    pub log_bytes_per_request: f64,
    pub log_lines_per_request: f64,
    /// The design record's monitoring budget, a month: the checker fails when the cost passes it.
    pub budget_per_month: f64,
    pub prices: Prices,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub name: String,
    /// Pods (or, for the batch job, concurrent runs) per binary.
    pub pods: BTreeMap<String, u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub infrastructure_per_host_per_month: f64,
    pub apm_per_host_per_month: f64,
    pub custom_metrics_included_per_host: f64,
    pub custom_metrics_per_100_per_month: f64,
    pub log_ingest_per_gb: f64,
    pub log_index_per_million_15_days: f64,
    /// Where each price comes from.
    pub sources: Vec<String>,
}

/// Series and cost of one metric.
#[derive(Debug, Clone)]
pub struct MetricCost {
    pub name: &'static str,
    pub combinations: u64,
    /// Custom metrics in each environment, in the cost model's order.
    pub custom_metrics: Vec<u64>,
    pub planned: bool,
}

#[derive(Debug, Clone)]
pub struct CostReport {
    pub metrics: Vec<MetricCost>,
    /// (environment, custom metrics)
    pub per_environment: Vec<(String, u64)>,
    pub total: u64,
    pub included: u64,
    pub monthly_metrics: f64,
    /// Hosts and APM, a month.
    pub monthly_hosts: f64,
    /// (traffic multiple, GB ingested a month, events indexed a month, monthly logs cost)
    pub logs: Vec<(u32, f64, f64, f64)>,
    /// Everything a month, at each traffic multiple.
    pub totals: Vec<(u32, f64)>,
    pub markdown: String,
}

/// Computes the cost, reports missing bounds and a stale docs section as problems.
pub(crate) fn check(ctx: &mut Ctx<'_>, parsed: &Parsed<'_>) -> Option<CostReport> {
    let model_path = format!("{DIR}/{MODEL_FILE}");
    let model: CostModel = match std::fs::read_to_string(ctx.root.join(&model_path))
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(model) => model,
        Err(error) => {
            ctx.findings
                .problems
                .push(Problem::new(&model_path, "cost model", error));
            return None;
        }
    };
    let bounds = tag_bounds(&ctx.doc_section("tag-bounds", "tag bounds")?);
    let exclusion = parsed
        .indexes
        .iter()
        .filter(|(_, index)| index.name == ALL_LOGS_INDEX)
        .flat_map(|(_, index)| &index.exclusion_filters)
        .filter(|e| e.is_enabled != Some(false))
        .filter_map(|e| e.filter.as_ref().map(|f| f.sample_rate))
        .fold(0.0, f64::max);
    let mut metrics = Vec::new();
    let catalog = CATALOG
        .iter()
        .map(|m| (*m, false))
        .chain(PLANNED.iter().map(|p| (&p.metric, true)));
    for (metric, planned) in catalog {
        match combinations(metric, &bounds) {
            Ok(combinations) => {
                let per_combination = match metric.kind {
                    MetricKind::Count | MetricKind::Gauge => 1,
                    MetricKind::Distribution if ctx.findings.percentile_metrics.contains(metric.name) => 10,
                    MetricKind::Distribution => 5,
                };
                let custom_metrics = model
                    .environments
                    .iter()
                    .map(|env| {
                        let hosts: u64 = metric
                            .sent_by
                            .iter()
                            .map(|sender| u64::from(env.pods.get(*sender).copied().unwrap_or(0)))
                            .sum();
                        combinations * per_combination * hosts * u64::from(model.service_versions)
                    })
                    .collect();
                metrics.push(MetricCost {
                    name: metric.name,
                    combinations,
                    custom_metrics,
                    planned,
                });
            }
            Err(key) => ctx.findings.problems.push(Problem::new(
                docs::PATH,
                format!("metric {}", metric.name),
                format!("tag `{key}` has no documented bound of values in the tag table: add one so its cost is known"),
            )),
        }
    }
    let report = compute(&model, metrics, exclusion);
    for (multiple, total) in &report.totals {
        if *total > model.budget_per_month {
            ctx.findings.problems.push(Problem::new(
                &model_path,
                "cost model",
                format!("at {multiple}x the design record's traffic Datadog would cost ${total:.0} a month, past the ${:.0} budget: bound the new tags tighter, drop percentiles or log less", model.budget_per_month),
            ));
        }
    }
    let current = ctx.doc_section("cost", "cost section");
    if current.is_some_and(|current| current != report.markdown) {
        ctx.findings.problems.push(Problem::new(
            docs::PATH,
            "cost section",
            format!(
                "is out of step with the catalog and {model_path}; replace what lies between its markers with:\n{}",
                report.markdown
            ),
        ));
    }
    Some(report)
}

/// Tag key to bound, from the rows of the tag table (`| \`rpc\` | ... | 6 | ... |`).
pub fn tag_bounds(table: &str) -> BTreeMap<String, u64> {
    let mut bounds = BTreeMap::new();
    for line in table.lines().filter(|l| l.trim_start().starts_with('|')) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        let Some(bound) = cells
            .get(2)
            .and_then(|c| c.split_whitespace().next())
            .and_then(|n| n.replace(',', "").parse().ok())
        else {
            continue;
        };
        for key in cells[0].split('`').skip(1).step_by(2) {
            bounds.insert(key.to_owned(), bound);
        }
    }
    bounds
}

/// The product of the metric's tag bounds, or the first tag without one.
fn combinations(metric: &MetricDef, bounds: &BTreeMap<String, u64>) -> Result<u64, &'static str> {
    metric.tags.iter().try_fold(1u64, |product, key| {
        bounds
            .get(key.as_str())
            .map(|bound| product * bound)
            .ok_or(key.as_str())
    })
}

fn compute(model: &CostModel, metrics: Vec<MetricCost>, exclusion: f64) -> CostReport {
    let per_environment: Vec<(String, u64)> = model
        .environments
        .iter()
        .enumerate()
        .map(|(i, env)| {
            (
                env.name.clone(),
                metrics.iter().map(|m| m.custom_metrics[i]).sum(),
            )
        })
        .collect();
    let total: u64 = per_environment.iter().map(|(_, n)| n).sum();
    let prices = &model.prices;
    let included = (f64::from(model.monitored_hosts) * prices.custom_metrics_included_per_host) as u64;
    let billable = total.saturating_sub(included);
    let monthly_metrics = billable as f64 / 100.0 * prices.custom_metrics_per_100_per_month;
    let logs: Vec<(u32, f64, f64, f64)> = [1u32, 100]
        .into_iter()
        .map(|multiple| {
            let requests = model.requests_per_day * 30.0 * f64::from(multiple);
            let gigabytes = requests * model.log_bytes_per_request / 1e9;
            let indexed = requests * model.log_lines_per_request * (1.0 - exclusion);
            let cost =
                gigabytes * prices.log_ingest_per_gb + indexed / 1e6 * prices.log_index_per_million_15_days;
            (multiple, gigabytes, indexed, cost)
        })
        .collect();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Computed by `datadog-resources check` from the catalog, the tag bounds above and `deploy/datadog/{MODEL_FILE}`; the checker fails when this section is out of step.\n"
    );
    let environments: Vec<String> = model
        .environments
        .iter()
        .map(|env| {
            let pods: Vec<String> = env
                .pods
                .iter()
                .map(|(binary, n)| format!("{n} {binary}"))
                .collect();
            format!("{} ({})", env.name, pods.join(", "))
        })
        .collect();
    let _ = writeln!(
        md,
        "Assumptions: pods per environment {} (each pod a `host` value for the metrics its binary sends); {} service version(s) reporting at once; {} monitored hosts; {:.0} requests a day (the design record's traffic); at most {} log bytes and {} log lines a request (`crates/system-tests/tests/log_volume.rs` measures them); {:.0}% of routine request lines left out of the `{ALL_LOGS_INDEX}` index by its exclusion filter. Tag bounds are upper bounds: most combinations never occur.\n",
        environments.join(", "),
        model.service_versions,
        model.monitored_hosts,
        model.requests_per_day,
        model.log_bytes_per_request,
        model.log_lines_per_request,
        exclusion * 100.0
    );
    let names: Vec<&str> = model.environments.iter().map(|e| e.name.as_str()).collect();
    let _ = writeln!(
        md,
        "| metric | tag-value combinations | custom metrics: {} |\n| --- | --- | --- |",
        names.join(" / ")
    );
    for metric in &metrics {
        let planned = if metric.planned { " (planned)" } else { "" };
        let counts: Vec<String> = metric.custom_metrics.iter().map(u64::to_string).collect();
        let _ = writeln!(
            md,
            "| `{}`{planned} | {} | {} |",
            metric.name,
            metric.combinations,
            counts.join(" / ")
        );
    }
    let per_env: Vec<String> = per_environment
        .iter()
        .map(|(env, n)| format!("{n} in {env}"))
        .collect();
    let _ = writeln!(
        md,
        "\nCustom metrics: {}, {total} in all; {included} included with {} hosts; {billable} billable: **${monthly_metrics:.0} a month**. Traffic does not change the count: 100 times the traffic costs the same unless it adds pods.\n",
        per_env.join(", "),
        model.monitored_hosts
    );
    let _ = writeln!(
        md,
        "| traffic | logs ingested a month | log events indexed a month | logs a month |\n| --- | --- | --- | --- |"
    );
    for (multiple, gigabytes, indexed, cost) in &logs {
        let _ = writeln!(
            md,
            "| {multiple}x | {gigabytes:.2} GB | {:.2} million | ${cost:.2} |",
            indexed / 1e6
        );
    }
    let monthly_hosts = f64::from(model.monitored_hosts)
        * (prices.infrastructure_per_host_per_month + prices.apm_per_host_per_month);
    let totals: Vec<(u32, f64)> = logs
        .iter()
        .map(|(multiple, _, _, cost)| (*multiple, monthly_hosts + monthly_metrics + cost))
        .collect();
    let total_text: Vec<String> = totals
        .iter()
        .map(|(multiple, total)| format!("{multiple}x traffic **${total:.0}**"))
        .collect();
    let _ = writeln!(
        md,
        "\nA month, with {} hosts' infrastructure and APM (${:.0}, the design record's per-host prices): {}, against the design record's budget of ${:.0}.\n\nPrices: hosts ${} and APM ${} a month each, custom metrics ${}/100 a month past {} per host, logs ${}/GB ingested and ${} per million events indexed for 15 days (the 30- and 90-day indexes hold only error and critical lines, negligible at the SLO's error rate). Sources: {}.",
        model.monitored_hosts,
        monthly_hosts,
        total_text.join(", "),
        model.budget_per_month,
        prices.infrastructure_per_host_per_month,
        prices.apm_per_host_per_month,
        prices.custom_metrics_per_100_per_month,
        prices.custom_metrics_included_per_host,
        prices.log_ingest_per_gb,
        prices.log_index_per_million_15_days,
        prices.sources.join("; ")
    );
    CostReport {
        metrics,
        per_environment,
        total,
        included,
        monthly_metrics,
        monthly_hosts,
        logs,
        totals,
        markdown: md,
    }
}
