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

pub use self::{monitors::Severity, schema::Parsed};
use crate::{
    cost::{self, CostReport},
    design_record,
    resources::{Problem, Resource, ResourceSet},
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

/// Shared state while checking.
pub(crate) struct Ctx<'a> {
    pub root: &'a Path,
    pub set: &'a ResourceSet,
    pub report: Report,
}

impl Ctx<'_> {
    pub fn problem(&mut self, resource: &Resource, message: impl Into<String>) {
        self.report.problems.push(Problem::about(resource, message));
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
    let mut ctx = Ctx {
        root,
        set,
        report: Report {
            problems: load_problems,
            ..Report::default()
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
    let cost = cost::check(&mut ctx);
    ctx.report.cost = cost;
    ctx.report
}

const INTEGRATIONS_START: &str = "<!-- integrations:start -->\n";
const INTEGRATIONS_END: &str = "<!-- integrations:end -->";

/// `docs/observability.md` lists the agent-integration names the checker accepts, exactly.
fn integrations_table(ctx: &mut Ctx<'_>) {
    let doc = std::fs::read_to_string(ctx.root.join(cost::DOC)).unwrap_or_default();
    let expected = crate::integrations::markdown_table();
    let current = doc.find(INTEGRATIONS_START).and_then(|start| {
        let start = start + INTEGRATIONS_START.len();
        doc[start..]
            .find(INTEGRATIONS_END)
            .map(|end| &doc[start..start + end])
    });
    if current != Some(expected.as_str()) {
        ctx.report.problems.push(Problem::new(
            cost::DOC,
            "agent-integration metrics",
            format!("the table between `{}` and `{INTEGRATIONS_END}` must list crates/datadog-resources/src/integrations.rs exactly:\n{expected}", INTEGRATIONS_START.trim()),
        ));
    }
}
