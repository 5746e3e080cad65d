//! The checker: holds every file under `deploy/datadog/` to Datadog's API, the metric catalog, the
//! runbooks and the design record. Each problem names the file, the resource and what is wrong.
//!
//! - [`schema`]: each file parses into its API type (unknown keys and computed fields refused);
//!   identities are unique; placeholders are the known ones.
//! - [`metrics`]: every metric a query names is known, with the tags it filters and groups on, and
//!   the aggregation its type allows; percentile queries are collected for `apply`.
//! - [`dashboards`], [`monitors`], [`slos`], [`logs`]: the rules of each kind (layouts and template
//!   variables; severity, routes, runbooks, anomaly windows, multi-alert; SLI queries; retention).
//! - [`crate::design_record`] and [`crate::cost`] run after these, on the same parsed resources.

mod dashboards;
mod logs;
mod metrics;
mod monitors;
pub(crate) mod schema;
mod slos;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

pub use crate::context::{Parsed, Severity};
use crate::{
    context::{Ctx, Findings},
    cost::{self, CostReport},
    design_record, docs,
    resources::{Problem, ResourceSet},
};

/// What the checker found.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<Problem>,
    /// Distributions a `pXX:` query uses: `apply` turns their percentiles on.
    pub percentile_metrics: BTreeSet<String>,
    /// Planned metrics (not emitted yet) in use, with the files that query them.
    pub planned_in_use: BTreeMap<String, BTreeSet<PathBuf>>,
    /// Custom-metric series and monthly cost the catalog implies.
    pub cost: Option<CostReport>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Loads and checks the repository at `root`.
pub fn check_repository(root: &Path) -> (ResourceSet, Report) {
    let (set, load_problems) = ResourceSet::load(root);
    let report = check(root, &set, load_problems);
    (set, report)
}

/// Checks `set` (read from `root`, where the runbooks and docs are).
pub fn check(root: &Path, set: &ResourceSet, load_problems: Vec<Problem>) -> Report {
    let mut problems = load_problems;
    let doc = std::fs::read_to_string(root.join(docs::PATH)).unwrap_or_else(|error| {
        problems.push(Problem::new(docs::PATH, "", format!("cannot read: {error}")));
        String::new()
    });
    let mut ctx = Ctx {
        root,
        set,
        doc,
        findings: Findings {
            problems,
            ..Findings::default()
        },
    };
    let parsed = schema::check(&mut ctx);
    for (resource, dashboard) in &parsed.dashboards {
        dashboards::check(&mut ctx, &parsed, resource, dashboard);
    }
    for (resource, monitor) in &parsed.monitors {
        monitors::check(&mut ctx, resource, monitor);
    }
    monitors::check_runbook_folder(&mut ctx);
    for (resource, slo) in &parsed.slos {
        slos::check(&mut ctx, resource, slo);
    }
    logs::check(&mut ctx, &parsed);
    integrations_table(&mut ctx);
    design_record::check(&mut ctx, &parsed);
    let cost = cost::check(&mut ctx, &parsed);
    let Findings {
        problems,
        percentile_metrics,
        planned_in_use,
    } = ctx.findings;
    Report {
        problems,
        percentile_metrics,
        planned_in_use,
        cost,
    }
}

/// `docs/observability.md` lists the agent-integration names the checker accepts, exactly.
fn integrations_table(ctx: &mut Ctx<'_>) {
    let expected = crate::integrations::markdown_table();
    let what = "agent-integration metrics";
    if ctx
        .doc_section("integrations", what)
        .is_some_and(|table| table != expected)
    {
        ctx.findings.problems.push(Problem::new(
            docs::PATH,
            what,
            format!("the table must list crates/datadog-resources/src/integrations.rs exactly:\n{expected}"),
        ));
    }
}
