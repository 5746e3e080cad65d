//! Datadog as code for the pricing inference platform.
//!
//! The dashboards, monitors, SLOs and logs indexes live under `deploy/datadog/` as the JSON bodies of
//! Datadog's public API, one file per resource ([`resources`]). This crate holds them to account and
//! ships them:
//!
//! - [`check`]: every file parses into Datadog's API types ([`model`], strict: a key the API does not
//!   document, or a computed field such as an id, is an error), every metric a query uses is in the
//!   telemetry catalog or the documented agent-integration list ([`known_metrics`]) with the tags it
//!   carries, every monitor has a runbook and a route that fits its severity, and the design record's
//!   panels and alerts each map to a file ([`design_record`]). It also states the custom-metric series
//!   and what they cost ([`cost`]).
//! - [`apply`]: upserts everything into an organisation through Datadog's API, idempotently.
//!
//! The binary `datadog-resources` runs both (`check`, `apply --dry-run`, `apply`).
#![forbid(unsafe_code)]

pub mod apply;
pub mod check;
mod context;
pub mod cost;
pub mod design_record;
pub mod docs;
pub mod integrations;
pub mod known_metrics;
pub mod model;
pub mod query;
pub mod resources;
pub mod template;
