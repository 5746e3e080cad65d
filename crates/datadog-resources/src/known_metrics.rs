//! Every metric name a query may use, with its type and the tag keys it carries: the telemetry
//! catalog (ours, plus the unified service tags and the `host` tag the agent adds), the planned
//! metrics (queried before they are emitted), and the agent-integration list ([`crate::integrations`]).

use telemetry::catalog::{self, MetricDef, MetricKind, TagKey};

use crate::integrations::{self, IntegrationKind};

/// Tags every DogStatsD metric of ours carries besides its catalog tags: unified service tagging and
/// the agent's host.
pub const IMPLICIT_TAGS: [&str; 4] = ["env", "service", "version", "host"];

/// What a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Count,
    Gauge,
    Distribution,
    /// An integration's rate (per second).
    Rate,
    ServiceCheck,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Count => "count",
            Kind::Gauge => "gauge",
            Kind::Distribution => "distribution",
            Kind::Rate => "rate",
            Kind::ServiceCheck => "service check",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Catalog,
    /// Not emitted yet; the string names the work that will emit it.
    Planned(&'static str),
    Integration(&'static str),
}

#[derive(Debug, Clone)]
pub struct Known {
    pub name: &'static str,
    pub kind: Kind,
    pub tags: Vec<&'static str>,
    pub origin: Origin,
}

impl Known {
    pub fn has_tag(&self, key: &str) -> bool {
        self.tags.contains(&key)
    }
}

fn from_def(def: &'static MetricDef, origin: Origin) -> Known {
    Known {
        name: def.name,
        kind: match def.kind {
            MetricKind::Count => Kind::Count,
            MetricKind::Gauge => Kind::Gauge,
            MetricKind::Distribution => Kind::Distribution,
        },
        tags: def.tags.iter().map(|k| k.as_str()).chain(IMPLICIT_TAGS).collect(),
        origin,
    }
}

/// Looks `name` up in the catalog, the planned metrics and the integration list.
pub fn lookup(name: &str) -> Option<Known> {
    if let Some(def) = catalog::by_name(name) {
        return Some(from_def(def, Origin::Catalog));
    }
    if let Some(planned) = catalog::planned(name) {
        return Some(from_def(&planned.metric, Origin::Planned(planned.emitted_by)));
    }
    integrations::by_name(name).map(|m| Known {
        name: m.name,
        kind: match m.kind {
            IntegrationKind::Gauge => Kind::Gauge,
            IntegrationKind::Rate => Kind::Rate,
            IntegrationKind::ServiceCheck => Kind::ServiceCheck,
        },
        tags: m.tags.to_vec(),
        origin: Origin::Integration(m.integration),
    })
}

/// Tag values the code can send for tag keys with a closed set of values (the catalog's enums): a
/// query filtering on another value can never match (a typo), so the checker refuses it.
pub fn closed_values(key: &str) -> Option<&'static [&'static str]> {
    TagKey::ALL
        .into_iter()
        .find(|k| k.as_str() == key)
        .and_then(TagKey::closed_values)
}
