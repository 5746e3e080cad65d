//! The organisation's side of each kind, as Datadog's v1 API documents it: how to find the object a file
//! describes (by its title or name, compared exactly), create it, update it, and validate a monitor.

use serde_json::Value;

use super::{
    ApplyError,
    client::{Client, Method, Reply, encode},
};
use crate::resources::{Kind, Resource};

/// Page sizes: Datadog's documented defaults or maxima, so few calls cover an organisation.
const MONITOR_PAGE: usize = 100;
const SLO_PAGE: usize = 1000;
const DASHBOARD_PAGE: usize = 100;
/// A bound on paging, in case an answer keeps returning full pages.
const MAX_PAGES: usize = 1000;

/// An object found in the organisation.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// Its id in URLs (a logs index's is its name).
    pub id: String,
    /// Its full body as Datadog returns it.
    pub body: Value,
}

/// How errors name a resource: `deploy/datadog/monitors/api-down.json (monitor "API down")`.
pub(crate) fn context(resource: &Resource) -> String {
    format!("{} ({})", resource.path.display(), resource.label())
}

fn collection(kind: Kind) -> &'static str {
    match kind {
        Kind::Dashboard => "/api/v1/dashboard",
        Kind::Monitor => "/api/v1/monitor",
        Kind::Slo => "/api/v1/slo",
        Kind::LogsIndex => "/api/v1/logs/config/indexes",
    }
}

/// The id in an object's body: dashboards and SLOs have string ids, monitors integers, logs indexes none
/// but their name.
fn id_of(kind: Kind, body: &Value) -> Option<String> {
    let field = match kind {
        Kind::LogsIndex => "name",
        Kind::Dashboard | Kind::Monitor | Kind::Slo => "id",
    };
    match body.get(field)? {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// The array at `field` of a listing (or the body itself when `field` is empty).
fn items(reply: &Reply, body: Value, field: &str, context: &str) -> Result<Vec<Value>, ApplyError> {
    let list = match field {
        "" => Some(body),
        field => body.get(field).cloned(),
    };
    match list {
        Some(Value::Array(items)) => Ok(items),
        // SLO searches answer `"data": null` when nothing matches.
        Some(Value::Null) | None if !field.is_empty() => Ok(Vec::new()),
        _ => Err(reply.unexpected(context, &format!("expected a list{}", at(field)))),
    }
}

fn at(field: &str) -> String {
    match field {
        "" => String::new(),
        field => format!(" in {field:?}"),
    }
}

/// The one object among `candidates` named exactly like `resource`; more than one is an error.
fn pick(resource: &Resource, candidates: Vec<Value>) -> Result<Option<Found>, ApplyError> {
    let field = resource.kind.name_field();
    let mut matches: Vec<Found> = candidates
        .into_iter()
        .filter(|c| c.get(field).and_then(Value::as_str) == Some(resource.name.as_str()))
        .filter_map(|body| {
            Some(Found {
                id: id_of(resource.kind, &body)?,
                body,
            })
        })
        .collect();
    match matches.len() {
        0 | 1 => Ok(matches.pop()),
        count => Err(ApplyError::Duplicate {
            file: resource.path.clone(),
            label: resource.label(),
            noun: resource.kind.noun(),
            field,
            count,
            ids: matches
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Lists a paged collection: `page(n)` gives the query for page `n`; stops at the first short page.
fn paged(
    api: &Client,
    context: &str,
    path: &str,
    field: &str,
    size: usize,
    page: &dyn Fn(usize) -> Vec<(&'static str, String)>,
) -> Result<Vec<Value>, ApplyError> {
    let mut all = Vec::new();
    for n in 0..MAX_PAGES {
        let query = page(n);
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = api.get(context, path, &query)?;
        let body = match reply.is_success() {
            true => reply.body.clone(),
            false => return Err(reply.error(context)),
        };
        let batch = items(&reply, body, field, context)?;
        let last = batch.len() < size;
        all.extend(batch);
        if last {
            break;
        }
    }
    Ok(all)
}

/// Finds the monitor or SLO a file describes, by exact name.
pub(crate) fn find(api: &Client, resource: &Resource) -> Result<Option<Found>, ApplyError> {
    let context = context(resource);
    let name = resource.name.clone();
    let candidates = match resource.kind {
        // `name` is a substring filter, so the exact comparison happens in `pick`.
        Kind::Monitor => paged(api, &context, "/api/v1/monitor", "", MONITOR_PAGE, &|n| {
            vec![
                ("name", name.clone()),
                ("page", n.to_string()),
                ("page_size", MONITOR_PAGE.to_string()),
            ]
        })?,
        Kind::Slo => paged(api, &context, "/api/v1/slo", "data", SLO_PAGE, &|n| {
            vec![
                ("query", name.clone()),
                ("limit", SLO_PAGE.to_string()),
                ("offset", (n * SLO_PAGE).to_string()),
            ]
        })?,
        Kind::Dashboard | Kind::LogsIndex => Vec::new(),
    };
    pick(resource, candidates)
}

/// Every dashboard's summary (`id`, `title`, ...); the list has no title filter.
pub(crate) fn list_dashboards(api: &Client) -> Result<Vec<Value>, ApplyError> {
    paged(
        api,
        "listing dashboards",
        "/api/v1/dashboard",
        "dashboards",
        DASHBOARD_PAGE,
        &|n| {
            vec![
                ("count", DASHBOARD_PAGE.to_string()),
                ("start", (n * DASHBOARD_PAGE).to_string()),
            ]
        },
    )
}

/// The dashboard a file describes, by exact title among `summaries`, with its full body.
pub(crate) fn find_dashboard(
    api: &Client,
    resource: &Resource,
    summaries: &[Value],
) -> Result<Option<Found>, ApplyError> {
    let Some(summary) = pick(resource, summaries.to_vec())? else {
        return Ok(None);
    };
    let context = context(resource);
    let path = format!("/api/v1/dashboard/{}", encode(&summary.id));
    let body = api.get(&context, &path, &[])?.into_ok(&context)?;
    Ok(Some(Found { id: summary.id, body }))
}

/// Every logs index of the organisation.
pub(crate) fn list_indexes(api: &Client) -> Result<Vec<Value>, ApplyError> {
    let context = "listing logs indexes";
    let reply = api.get(context, collection(Kind::LogsIndex), &[])?;
    let body = match reply.is_success() {
        true => reply.body.clone(),
        false => return Err(reply.error(context)),
    };
    items(&reply, body, "indexes", context)
}

/// The logs index named like `resource` among `indexes`.
pub(crate) fn find_index(resource: &Resource, indexes: &[Value]) -> Result<Option<Found>, ApplyError> {
    pick(resource, indexes.to_vec())
}

/// Creates the object; returns its id.
pub(crate) fn create(api: &Client, resource: &Resource, body: &Value) -> Result<String, ApplyError> {
    let context = context(resource);
    let reply = api.send(&context, Method::Post, collection(resource.kind), body)?;
    created_id(resource.kind, reply, &context)
}

/// Replaces the object `id` with `body`.
pub(crate) fn update(api: &Client, resource: &Resource, id: &str, body: &Value) -> Result<(), ApplyError> {
    let context = context(resource);
    let path = format!("{}/{}", collection(resource.kind), encode(id));
    let body = match (resource.kind, body) {
        // LogsIndexUpdateRequest has no `name`: the path names the index.
        (Kind::LogsIndex, Value::Object(map)) => {
            let mut map = map.clone();
            map.remove("name");
            Value::Object(map)
        }
        _ => body.clone(),
    };
    api.send(&context, Method::Put, &path, &body)?.into_ok(&context)?;
    Ok(())
}

fn created_id(kind: Kind, reply: Reply, context: &str) -> Result<String, ApplyError> {
    if !reply.is_success() {
        return Err(reply.error(context));
    }
    // SLO writes answer an SLOListResponse (`{"data": [slo]}`); the others answer the object.
    let object = match kind {
        Kind::Slo => reply.body.get("data").and_then(|d| d.get(0)),
        Kind::Dashboard | Kind::Monitor | Kind::LogsIndex => Some(&reply.body),
    };
    object
        .and_then(|o| id_of(kind, o))
        .ok_or_else(|| reply.unexpected(context, "the created object has no id"))
}

/// Asks Datadog whether a monitor is valid, without saving it: `POST /api/v1/monitor/validate`, or
/// `/api/v1/monitor/{id}/validate` for one that exists (200 valid, 400 with `errors` invalid).
pub(crate) fn validate_monitor(
    api: &Client,
    resource: &Resource,
    body: &Value,
    id: Option<&str>,
) -> Result<(), ApplyError> {
    let context = context(resource);
    let path = match id {
        Some(id) => format!("/api/v1/monitor/{}/validate", encode(id)),
        None => "/api/v1/monitor/validate".to_owned(),
    };
    let reply = api.send(&context, Method::Post, &path, body)?;
    match reply.status {
        200..=299 => Ok(()),
        400 => Err(ApplyError::InvalidMonitor {
            file: resource.path.clone(),
            label: resource.label(),
            method: reply.method.as_str(),
            path: reply.path.clone(),
            status: reply.status,
            errors: reply.errors(),
        }),
        _ => Err(reply.error(&context)),
    }
}
