//! Every file parses into its Datadog API type; identities are unique per kind; placeholders are only
//! where `apply` fills them in.

use std::collections::BTreeMap;

use crate::{
    context::{Ctx, Parsed},
    model,
    resources::{Kind, Resource},
    template,
};

pub(super) fn check<'a>(ctx: &mut Ctx<'a>) -> Parsed<'a> {
    let mut parsed = Parsed::default();
    let set = ctx.set;
    let mut names: BTreeMap<(Kind, &str), &Resource> = BTreeMap::new();
    for resource in &set.resources {
        if resource.name.trim().is_empty() {
            ctx.problem(
                resource,
                format!(
                    "has no `{}`: it names the resource and is how `apply` finds it again",
                    resource.kind.name_field()
                ),
            );
        } else if let Some(first) = names.insert((resource.kind, resource.name.as_str()), resource) {
            let message = format!(
                "has the same {} as {}: `apply` finds resources by it, so it must be unique",
                resource.kind.name_field(),
                first.path.display()
            );
            ctx.problem(resource, message);
        }
        placeholders(ctx, resource);
        let result = match resource.kind {
            Kind::Dashboard => model::parse(&resource.body).map(|d| parsed.dashboards.push((resource, d))),
            Kind::Monitor => model::parse(&resource.body).map(|m| parsed.monitors.push((resource, m))),
            Kind::Slo => model::parse(&resource.body).map(|s| parsed.slos.push((resource, s))),
            Kind::LogsIndex => model::parse(&resource.body).map(|i| parsed.indexes.push((resource, i))),
        };
        if let Err(error) = result {
            ctx.problem(
                resource,
                format!("is not a valid {} body of Datadog's API: {error}", resource.kind),
            );
        }
    }
    parsed
}

/// `${runbooks_url}` belongs in monitor messages and `${slo.<stem>}` in SLO alert queries; nothing else
/// is filled in, so anything else would reach Datadog verbatim.
fn placeholders(ctx: &mut Ctx<'_>, resource: &Resource) {
    let mut found = Vec::new();
    collect_placeholders(&resource.body, "", &mut found);
    for (path, name) in found {
        let allowed = match (resource.kind, path.as_str()) {
            (Kind::Monitor, "message" | "options.escalation_message") => name == template::RUNBOOKS_URL,
            (Kind::Monitor, "query") => name
                .strip_prefix(template::SLO_PREFIX)
                .is_some_and(|stem| ctx.set.by_stem(Kind::Slo, stem).is_some()),
            _ => false,
        };
        if !allowed {
            ctx.problem(
                resource,
                format!("`${{{name}}}` at `{path}` is not a placeholder `apply` fills in there (only `${{runbooks_url}}` in monitor messages and `${{slo.<stem>}}` of an existing slos/<stem>.json in SLO alert queries)"),
            );
        }
    }
}

fn collect_placeholders(value: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match value {
        Value::String(text) => out.extend(
            template::placeholders(text)
                .into_iter()
                .map(|name| (path.to_owned(), name.to_owned())),
        ),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_placeholders(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                collect_placeholders(item, &child, out);
            }
        }
        _ => {}
    }
}
