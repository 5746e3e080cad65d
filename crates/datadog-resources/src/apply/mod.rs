//! `apply`: upserts the checked resources into a Datadog organisation through its public API.
//!
//! Each resource is found again by its identity (a dashboard's `title`, the others' `name`, compared
//! exactly), then created, updated, or left alone when the organisation already holds everything the
//! file sets ([`plan`] says how that is decided). Running twice changes nothing the second time, and
//! objects the files do not describe are never touched. In order:
//!
//! 1. `GET /api/v1/validate`: a wrong API key (or site) stops the run before anything else.
//! 2. The SLOs and monitors are looked up, and every monitor whose SLOs exist is checked with Datadog's
//!    monitor validation, so a monitor Datadog would refuse stops the run before anything is written.
//! 3. Logs indexes, then the index order ([`logs`]).
//! 4. SLOs; their ids fill `${slo.<stem>}` from here on.
//! 5. Monitors: the ones that needed a new SLO's id are validated now, then all are written.
//! 6. Dashboards.
//! 7. Percentiles of the distributions that queries use ([`percentiles`]).
//!
//! `--dry-run` does the reads and the monitor validations (which save nothing) and prints the plan: a
//! line per resource, with a diff for each creation or update. An SLO that does not exist yet shows as a
//! placeholder id, and the monitors that need it cannot be validated until it exists.

mod client;
mod error;
mod logs;
mod objects;
mod percentiles;
mod plan;
mod session;
mod summary;

use std::{collections::BTreeSet, io::Write};

use serde_json::Value;

use self::{client::Client, objects::Found, session::Session};
pub use self::{
    error::ApplyError,
    summary::{Counts, Summary},
};
use crate::resources::{Kind, Resource, ResourceSet};

/// How to reach the organisation and what to do.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// API base URL, e.g. `https://api.datadoghq.com` (from `DD_SITE`) or a stand-in's `http://127.0.0.1:PORT`.
    pub api_url: String,
    pub api_key: String,
    pub app_key: String,
    /// Only read and validate; print what would change; write nothing.
    pub dry_run: bool,
    /// Value of `${runbooks_url}` in monitor messages.
    pub runbooks_url: String,
}

/// What to apply: the checked resources and the distributions whose percentiles a query uses.
#[derive(Debug, Clone)]
pub struct Desired<'a> {
    pub set: &'a ResourceSet,
    /// Distribution metrics that a p50/p95/p99 query, monitor or SLO uses: percentiles are turned on
    /// for each (Datadog computes them only where enabled per metric).
    pub percentile_metrics: Vec<String>,
}

/// The API URL of a Datadog site (`DD_SITE`): `https://api.<site>`, as in Datadog's OpenAPI servers
/// (`datadoghq.com`, `us3.datadoghq.com`, `us5.datadoghq.com`, `datadoghq.eu`, `ap1.datadoghq.com`,
/// `ap2.datadoghq.com`, `uk1.datadoghq.com`, `ddog-gov.com`, `us2.ddog-gov.com`). A scheme, a trailing
/// slash or an `app.`/`api.` prefix pasted from a browser is tolerated; an empty site means US1.
pub fn api_url_for_site(site: &str) -> String {
    let site = site.trim().trim_end_matches('/');
    let host = site
        .strip_prefix("https://")
        .or_else(|| site.strip_prefix("http://"))
        .unwrap_or(site);
    let host = host
        .strip_prefix("app.")
        .or_else(|| host.strip_prefix("api."))
        .unwrap_or(host);
    match host {
        "" => "https://api.datadoghq.com".to_owned(),
        host => format!("https://api.{host}"),
    }
}

/// Applies `desired` to the organisation (or, with `dry_run`, prints what that would do), printing the
/// plan to `out`; returns what was done.
pub fn run(
    options: &ApplyOptions,
    desired: &Desired<'_>,
    out: &mut dyn Write,
) -> Result<Summary, ApplyError> {
    let set = desired.set;
    if let Some(resource) = set.resources.iter().find(|r| r.name.is_empty()) {
        return Err(ApplyError::Unnamed {
            file: resource.path.clone(),
            noun: resource.kind.noun(),
            field: resource.kind.name_field(),
        });
    }
    let api = Client::new(&options.api_url, &options.api_key, &options.app_key);
    check_key(&api)?;
    let slo_stems: BTreeSet<String> = set.of_kind(Kind::Slo).map(|r| r.stem.clone()).collect();
    let mut session = Session::new(api, options.dry_run, out, &options.runbooks_url, slo_stems);
    if options.dry_run {
        session.say("Dry run: reading and validating only, nothing is written.\n")?;
    }

    let slos = find_all(&session, set, Kind::Slo)?;
    for (resource, found) in &slos {
        if let Some(found) = found {
            session.learn_slo_id(&resource.stem, found.id.clone());
        }
    }
    let monitors = find_all(&session, set, Kind::Monitor)?;
    let mut validated = vec![false; monitors.len()];
    validate_monitors(&mut session, &monitors, &mut validated, false)?;

    logs::apply(&mut session, set)?;

    for (resource, found) in &slos {
        let rendered = session.render(resource)?;
        if let Some(id) = session.upsert(resource, &rendered, found.as_ref())? {
            session.learn_slo_id(&resource.stem, id);
        }
    }

    validate_monitors(&mut session, &monitors, &mut validated, true)?;
    for (resource, found) in &monitors {
        let rendered = session.render(resource)?;
        session.upsert(resource, &rendered, found.as_ref())?;
    }

    let dashboards: Vec<&Resource> = set.of_kind(Kind::Dashboard).collect();
    if !dashboards.is_empty() {
        let summaries = objects::list_dashboards(&session.api)?;
        for resource in dashboards {
            let found = objects::find_dashboard(&session.api, resource, &summaries)?;
            let rendered = session.render(resource)?;
            session.upsert(resource, &rendered, found.as_ref())?;
        }
    }

    percentiles::apply(&mut session, &desired.percentile_metrics)?;

    let summary = session.summary.clone();
    session.say(&format!("{summary}\n"))?;
    Ok(summary)
}

/// `GET /api/v1/validate` answers `{"valid": true}`, or 403 when the API key is not one of this site's.
fn check_key(api: &Client) -> Result<(), ApplyError> {
    let context = "checking the API key";
    let reply = api.get(context, "/api/v1/validate", &[])?;
    let valid = reply.body.get("valid").and_then(Value::as_bool) != Some(false);
    match reply.status {
        200..=299 if valid => Ok(()),
        200..=299 | 401 | 403 => Err(ApplyError::ApiKey {
            api_url: api.api_url().to_owned(),
            method: reply.method.as_str(),
            path: reply.path.clone(),
            status: reply.status,
            errors: reply.errors(),
        }),
        _ => Err(reply.error(context)),
    }
}

/// The organisation's object for every resource of `kind` (monitors and SLOs).
fn find_all<'s>(
    session: &Session<'_>,
    set: &'s ResourceSet,
    kind: Kind,
) -> Result<Vec<(&'s Resource, Option<Found>)>, ApplyError> {
    set.of_kind(kind)
        .map(|resource| Ok((resource, objects::find(&session.api, resource)?)))
        .collect()
}

/// Validates each monitor not validated yet whose SLO ids are all known. On the `last` pass (after the
/// SLOs are written), what is left unvalidated is said: only a dry run leaves any.
fn validate_monitors(
    session: &mut Session<'_>,
    monitors: &[(&Resource, Option<Found>)],
    validated: &mut [bool],
    last: bool,
) -> Result<(), ApplyError> {
    let mut accepted = 0;
    let mut waiting = Vec::new();
    for ((resource, found), done) in monitors.iter().zip(validated.iter_mut()) {
        if *done {
            continue;
        }
        let rendered = session.render(resource)?;
        if !rendered.pending.is_empty() {
            waiting.push(format!(
                "    note: {} {:?} ({}) is not validated: it needs the id of an SLO that does not exist yet\n",
                resource.kind,
                resource.name,
                resource.path.display()
            ));
            continue;
        }
        objects::validate_monitor(
            &session.api,
            resource,
            &rendered.body,
            found.as_ref().map(|f| f.id.as_str()),
        )?;
        *done = true;
        accepted += 1;
    }
    if accepted > 0 {
        let plural = if accepted == 1 { "" } else { "s" };
        session.say(&format!(
            "Datadog's monitor validation accepted {accepted} monitor{plural}.\n"
        ))?;
    }
    if last {
        for note in waiting {
            session.say(&note)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::api_url_for_site;

    #[test]
    fn api_url_per_site() {
        for (site, url) in [
            ("datadoghq.com", "https://api.datadoghq.com"),
            ("datadoghq.eu", "https://api.datadoghq.eu"),
            ("us3.datadoghq.com", "https://api.us3.datadoghq.com"),
            ("us5.datadoghq.com", "https://api.us5.datadoghq.com"),
            ("ap1.datadoghq.com", "https://api.ap1.datadoghq.com"),
            ("ap2.datadoghq.com", "https://api.ap2.datadoghq.com"),
            ("ddog-gov.com", "https://api.ddog-gov.com"),
            ("https://app.datadoghq.eu/", "https://api.datadoghq.eu"),
            ("", "https://api.datadoghq.com"),
        ] {
            assert_eq!(api_url_for_site(site), url, "{site}");
        }
    }
}
