//! What a run did (or, in a dry run, would do), for the final line and for callers that act on it.

use std::fmt;

use super::plan::Action;
use crate::resources::Kind;

/// Resources of one kind by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

impl Counts {
    pub(crate) fn add(&mut self, action: Action) {
        match action {
            Action::Create => self.created += 1,
            Action::Update => self.updated += 1,
            Action::Unchanged => self.unchanged += 1,
        }
    }

    /// Writes done (or, in a dry run, needed).
    pub fn changed(&self) -> usize {
        self.created + self.updated
    }
}

/// The outcome of a run. In a dry run the counts say what a real run would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub dry_run: bool,
    pub logs_indexes: Counts,
    pub slos: Counts,
    pub monitors: Counts,
    pub dashboards: Counts,
    /// The logs index order was (or would be) replaced.
    pub index_order_changed: bool,
    /// Metric tag configurations created or patched to turn percentiles on.
    pub percentiles_changed: usize,
    /// Metrics whose percentiles were already on.
    pub percentiles_unchanged: usize,
    /// Metrics Datadog does not know yet (never submitted): their percentiles are turned on by a run
    /// after the services have sent them.
    pub percentiles_pending: usize,
}

impl Summary {
    /// The counts of one kind.
    pub fn counts(&self, kind: Kind) -> Counts {
        match kind {
            Kind::LogsIndex => self.logs_indexes,
            Kind::Slo => self.slos,
            Kind::Monitor => self.monitors,
            Kind::Dashboard => self.dashboards,
        }
    }

    pub(crate) fn counts_mut(&mut self, kind: Kind) -> &mut Counts {
        match kind {
            Kind::LogsIndex => &mut self.logs_indexes,
            Kind::Slo => &mut self.slos,
            Kind::Monitor => &mut self.monitors,
            Kind::Dashboard => &mut self.dashboards,
        }
    }

    /// Every write done (or needed): resources, the index order and percentile configurations.
    pub fn changes(&self) -> usize {
        Kind::ALL.iter().map(|&k| self.counts(k).changed()).sum::<usize>()
            + usize::from(self.index_order_changed)
            + self.percentiles_changed
    }
}

impl fmt::Display for Summary {
    /// `Applied: 1 created, 1 updated, 4 unchanged (logs index +0 ~0 =2, ...); index order unchanged;
    /// percentiles: 1 turned on, 2 already on.`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total =
            |pick: fn(&Counts) -> usize| Kind::ALL.iter().map(|&k| pick(&self.counts(k))).sum::<usize>();
        let (lead, created, updated, order, on) = match self.dry_run {
            true => (
                "Dry run, nothing written",
                "to create",
                "to update",
                "to change",
                "to turn on",
            ),
            false => ("Applied", "created", "updated", "changed", "turned on"),
        };
        write!(
            f,
            "{lead}: {} {created}, {} {updated}, {} unchanged (",
            total(|c| c.created),
            total(|c| c.updated),
            total(|c| c.unchanged)
        )?;
        for (i, kind) in Kind::ALL.iter().enumerate() {
            let c = self.counts(*kind);
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{kind} +{} ~{} ={}", c.created, c.updated, c.unchanged)?;
        }
        let order = if self.index_order_changed {
            order
        } else {
            "unchanged"
        };
        write!(
            f,
            "); index order {order}; percentiles: {} {on}, {} already on, {} waiting for their metric.",
            self.percentiles_changed, self.percentiles_unchanged, self.percentiles_pending
        )
    }
}
