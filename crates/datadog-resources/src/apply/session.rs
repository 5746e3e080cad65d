//! One run's state: the client, where the plan is printed, the SLO ids learnt so far (for `${slo.<stem>}`),
//! and the counts. Rendering, the plan lines and the create-or-update decision live here so every kind
//! does them the same way.

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
    io::Write,
};

use serde_json::Value;

use super::{
    ApplyError, Summary,
    client::Client,
    objects::{self, Found},
    plan::{self, Action},
};
use crate::{
    resources::{Kind, Resource},
    template,
};

/// A resource's body with its placeholders filled in.
pub(crate) struct Rendered {
    pub body: Value,
    /// Stems of the SLOs it refers to that do not exist yet (dry run only): their ids are placeholders.
    pub pending: Vec<String>,
}

pub(crate) struct Session<'a> {
    pub api: Client,
    pub dry_run: bool,
    pub summary: Summary,
    out: &'a mut dyn Write,
    runbooks_url: String,
    /// Stems of the SLO files, so `${slo.<stem>}` of a file that does not exist is an error.
    slo_stems: BTreeSet<String>,
    /// SLO ids by stem: found in the organisation, or created earlier in this run.
    slo_ids: BTreeMap<String, String>,
}

impl<'a> Session<'a> {
    pub(crate) fn new(
        api: Client,
        dry_run: bool,
        out: &'a mut dyn Write,
        runbooks_url: &str,
        slo_stems: BTreeSet<String>,
    ) -> Self {
        Self {
            api,
            dry_run,
            summary: Summary {
                dry_run,
                ..Summary::default()
            },
            out,
            // Files write `${runbooks_url}/x.md`; a trailing slash in the option would double it.
            runbooks_url: runbooks_url.trim_end_matches('/').to_owned(),
            slo_stems,
            slo_ids: BTreeMap::new(),
        }
    }

    pub(crate) fn learn_slo_id(&mut self, stem: &str, id: String) {
        self.slo_ids.insert(stem.to_owned(), id);
    }

    pub(crate) fn say(&mut self, text: &str) -> Result<(), ApplyError> {
        self.out.write_all(text.as_bytes())?;
        Ok(())
    }

    /// The resource's body with `${runbooks_url}` and `${slo.<stem>}` filled in. An SLO that does not
    /// exist yet (only possible in a dry run, or before the SLO step) gets a visible placeholder id.
    pub(crate) fn render(&self, resource: &Resource) -> Result<Rendered, ApplyError> {
        let pending = RefCell::new(Vec::new());
        let missing = RefCell::new(None);
        let lookup = |name: &str| {
            let value = if name == template::RUNBOOKS_URL {
                Some(self.runbooks_url.clone()).filter(|url| !url.is_empty())
            } else if let Some(stem) = name.strip_prefix(template::SLO_PREFIX) {
                match self.slo_ids.get(stem) {
                    Some(id) => Some(id.clone()),
                    None if self.slo_stems.contains(stem) => {
                        pending.borrow_mut().push(stem.to_owned());
                        Some(pending_id(stem))
                    }
                    None => None,
                }
            } else {
                None
            };
            if value.is_none() {
                *missing.borrow_mut() = Some(name.to_owned());
            }
            value
        };
        let body = template::render_value(&resource.body, &lookup).map_err(|message| {
            let message = match missing.borrow().as_deref() {
                Some(template::RUNBOOKS_URL) => {
                    "uses ${runbooks_url} but no runbooks URL was given (--runbooks-url)".to_owned()
                }
                Some(name) if name.starts_with(template::SLO_PREFIX) => format!(
                    "uses ${{{name}}} but there is no {}/{}.json",
                    Kind::Slo.folder(),
                    &name[template::SLO_PREFIX.len()..]
                ),
                Some(name) => format!(
                    "uses ${{{name}}}, which is not a placeholder apply knows (${{runbooks_url}}, \
                     ${{slo.<stem>}})"
                ),
                None => message,
            };
            ApplyError::Render {
                file: resource.path.clone(),
                label: resource.label(),
                message,
            }
        })?;
        let mut pending = pending.into_inner();
        pending.sort();
        pending.dedup();
        Ok(Rendered { body, pending })
    }

    /// Prints the plan line for `resource`, with notes and a diff where useful, and counts it.
    pub(crate) fn report(
        &mut self,
        resource: &Resource,
        action: Action,
        rendered: &Rendered,
        found: Option<&Found>,
    ) -> Result<(), ApplyError> {
        let mut text = format!(
            "{} {} {} {:?}\n",
            action.marker(),
            resource.kind,
            resource.path.display(),
            resource.name
        );
        for stem in &rendered.pending {
            text.push_str(&format!(
                "    note: ${{slo.{stem}}} is shown as {} because that SLO does not exist yet; a real run \
                 creates it first and uses its id\n",
                pending_id(stem)
            ));
        }
        let name = resource.path.display().to_string();
        match (action, found) {
            (Action::Update, Some(found)) => {
                let before = plan::project(resource.kind, &rendered.body, &found.body);
                text.push_str(&plan::diff(Some(&before), &rendered.body, &name));
            }
            (Action::Create, _) if self.dry_run => text.push_str(&plan::diff(None, &rendered.body, &name)),
            _ => {}
        }
        self.summary.counts_mut(resource.kind).add(action);
        self.say(&text)
    }

    /// Creates or updates `resource` as needed (only reports in a dry run); returns its id when it has
    /// one (not for a dry run's creations).
    pub(crate) fn upsert(
        &mut self,
        resource: &Resource,
        rendered: &Rendered,
        found: Option<&Found>,
    ) -> Result<Option<String>, ApplyError> {
        let action = plan::decide(resource.kind, &rendered.body, found.map(|f| &f.body));
        self.report(resource, action, rendered, found)?;
        let existing = found.map(|f| f.id.clone());
        if self.dry_run {
            return Ok(existing);
        }
        match (action, found) {
            (Action::Create, _) | (_, None) => objects::create(&self.api, resource, &rendered.body).map(Some),
            (Action::Update, Some(found)) => {
                objects::update(&self.api, resource, &found.id, &rendered.body)?;
                Ok(existing)
            }
            (Action::Unchanged, Some(_)) => Ok(existing),
        }
    }
}

/// The stand-in id shown for an SLO that does not exist yet.
fn pending_id(stem: &str) -> String {
    format!("<id of {}/{stem}.json once created>", Kind::Slo.folder())
}
