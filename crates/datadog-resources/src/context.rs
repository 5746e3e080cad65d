//! What the checks share: the state of one run ([`Ctx`]: the repository, its resources, the docs and
//! the [`Findings`] so far), the resources that parsed ([`Parsed`]) and how loud a monitor is
//! ([`Severity`]). [`crate::check`] builds them; its rules, [`crate::design_record`] and
//! [`crate::cost`] read and report through them, so those two need nothing from `check`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use crate::{
    docs,
    model::{Dashboard, LogsIndex, Monitor, Slo},
    resources::{Problem, Resource, ResourceSet},
};

/// Shared state while checking.
pub(crate) struct Ctx<'a> {
    pub root: &'a Path,
    pub set: &'a ResourceSet,
    /// `docs/observability.md` (empty when it cannot be read: that is reported once).
    pub doc: String,
    pub findings: Findings,
}

impl Ctx<'_> {
    /// A section of `docs/observability.md`, or `None` after reporting what is missing.
    pub fn doc_section(&mut self, name: &str, what: &str) -> Option<String> {
        match docs::section(&self.doc, name) {
            Ok(text) => Some(text.to_owned()),
            Err(message) => {
                self.findings
                    .problems
                    .push(Problem::new(docs::PATH, what, message));
                None
            }
        }
    }

    pub fn problem(&mut self, resource: &Resource, message: impl Into<String>) {
        self.findings.problems.push(Problem::about(resource, message));
    }
}

/// What the checks have found so far: the [`Report`](crate::check::Report) but for the cost, which is
/// computed last, from them.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub problems: Vec<Problem>,
    /// Distributions a `pXX:` query uses: `apply` turns their percentiles on.
    pub percentile_metrics: BTreeSet<String>,
    /// Planned metrics (not emitted yet) in use, with the files that query them.
    pub planned_in_use: BTreeMap<String, BTreeSet<PathBuf>>,
}

/// The resources that parsed, with their typed bodies.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    pub dashboards: Vec<(&'a Resource, Dashboard)>,
    pub monitors: Vec<(&'a Resource, Monitor)>,
    pub slos: Vec<(&'a Resource, Slo)>,
    pub indexes: Vec<(&'a Resource, LogsIndex)>,
}

/// How loud a monitor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Priority 1: pages PagerDuty.
    Critical,
    /// Priority 3: Slack only.
    Warning,
}

impl Severity {
    pub fn of(monitor: &Monitor) -> Option<Severity> {
        match monitor.priority {
            Some(1) => Some(Severity::Critical),
            Some(3) => Some(Severity::Warning),
            _ => None,
        }
    }

    pub const fn tag(self) -> &'static str {
        match self {
            Severity::Critical => "severity:critical",
            Severity::Warning => "severity:warning",
        }
    }
}
