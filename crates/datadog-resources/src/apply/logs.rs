//! Logs indexes and the order logs are matched against them.
//!
//! An index is found by `name` in `GET /api/v1/logs/config/indexes`, created with `POST` (the file as
//! is) and updated with `PUT .../indexes/{name}` (the file without `name`, as LogsIndexUpdateRequest
//! has none). The order (`/api/v1/logs/config/index-order`) lists every index of the organisation;
//! ours go first, in `logs-index-order.json`'s order, and the organisation's other indexes keep their
//! relative order after them, so indexes other teams own are neither dropped nor reshuffled.

use std::path::Path;

use serde_json::{Value, json};

use super::{
    ApplyError,
    client::Method,
    objects,
    plan::{self, Action},
    session::Session,
};
use crate::resources::{self, Kind, ResourceSet};

const ORDER_PATH: &str = "/api/v1/logs/config/index-order";

/// Creates or updates every logs index, then the index order.
pub(crate) fn apply(session: &mut Session<'_>, set: &ResourceSet) -> Result<(), ApplyError> {
    let ours: Vec<_> = set.of_kind(Kind::LogsIndex).collect();
    if ours.is_empty() && set.index_order.is_empty() {
        return Ok(());
    }
    let existing = objects::list_indexes(&session.api)?;
    for resource in ours {
        let rendered = session.render(resource)?;
        let found = objects::find_index(resource, &existing)?;
        session.upsert(resource, &rendered, found.as_ref())?;
    }
    if !set.index_order.is_empty() {
        apply_order(session, &set.index_order)?;
    }
    Ok(())
}

fn apply_order(session: &mut Session<'_>, ours: &[String]) -> Result<(), ApplyError> {
    let context = "reading the logs index order";
    let reply = session.api.get(context, ORDER_PATH, &[])?;
    if !reply.is_success() {
        return Err(reply.error(context));
    }
    let current: Vec<String> = reply
        .body
        .get("index_names")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .ok_or_else(|| reply.unexpected(context, "no \"index_names\" list"))?;
    let wanted = desired_order(ours, &current);
    let file = Path::new(resources::DIR).join(resources::INDEX_ORDER_FILE);
    let action = if wanted == current {
        Action::Unchanged
    } else {
        Action::Update
    };
    let mut text = format!("{} logs index order {}\n", action.marker(), file.display());
    if action == Action::Update {
        let lines = |names: &[String]| names.iter().map(|n| format!("{n}\n")).collect::<String>();
        text.push_str(&plan::lines_diff(
            &lines(&current),
            &lines(&wanted),
            &file.display().to_string(),
        ));
    }
    session.say(&text)?;
    if action == Action::Unchanged {
        return Ok(());
    }
    session.summary.index_order_changed = true;
    if session.dry_run {
        return Ok(());
    }
    let context = format!("{} (logs index order)", file.display());
    session
        .api
        .send(
            &context,
            Method::Put,
            ORDER_PATH,
            &json!({ "index_names": wanted }),
        )?
        .into_ok(&context)?;
    Ok(())
}

/// Ours first in our order, then the organisation's other indexes in their current order.
pub(crate) fn desired_order(ours: &[String], current: &[String]) -> Vec<String> {
    let mut order = ours.to_vec();
    order.extend(current.iter().filter(|name| !ours.contains(name)).cloned());
    order
}

#[cfg(test)]
mod tests {
    use super::desired_order;

    #[test]
    fn ours_first_then_the_others_in_their_order() {
        let names = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            desired_order(&names(&["a", "b"]), &names(&["x", "b", "y", "a"])),
            names(&["a", "b", "x", "y"])
        );
    }
}
