//! The resources under `deploy/datadog/`, one JSON file each, as Datadog's API takes them:
//!
//! | folder | resource | API | identity |
//! | --- | --- | --- | --- |
//! | `dashboards/` | dashboard | `POST/PUT /api/v1/dashboard` | its `title` |
//! | `monitors/` | monitor | `POST/PUT /api/v1/monitor` | its `name` |
//! | `slos/` | service level objective | `POST/PUT /api/v1/slo` | its `name` |
//! | `logs-indexes/` | logs index | `POST/PUT /api/v1/logs/config/indexes` | its `name` |
//!
//! plus `logs-index-order.json` (`PUT /api/v1/logs/config/index-order`), the order our indexes are tried
//! in. The identity is how `apply` finds a resource again in an organisation, so it must be unique per
//! kind (the checker makes sure).

use std::{
    fmt,
    path::{Path, PathBuf},
};

use serde_json::Value;

/// What a resource file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Dashboard,
    Monitor,
    Slo,
    LogsIndex,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::LogsIndex, Kind::Slo, Kind::Monitor, Kind::Dashboard];

    /// The folder under `deploy/datadog/`.
    pub const fn folder(self) -> &'static str {
        match self {
            Kind::Dashboard => "dashboards",
            Kind::Monitor => "monitors",
            Kind::Slo => "slos",
            Kind::LogsIndex => "logs-indexes",
        }
    }

    /// The field that names the resource (its identity).
    pub const fn name_field(self) -> &'static str {
        match self {
            Kind::Dashboard => "title",
            Kind::Monitor | Kind::Slo | Kind::LogsIndex => "name",
        }
    }

    pub const fn noun(self) -> &'static str {
        match self {
            Kind::Dashboard => "dashboard",
            Kind::Monitor => "monitor",
            Kind::Slo => "SLO",
            Kind::LogsIndex => "logs index",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

/// One resource file.
#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: Kind,
    /// Path relative to the repository root, for messages (`deploy/datadog/monitors/api-down.json`).
    pub path: PathBuf,
    /// File name without `.json`: how runbooks, SLO references and the design-record table name it.
    pub stem: String,
    /// The identity (title or name); empty when the file lacks it (the checker reports that).
    pub name: String,
    /// The body exactly as in the file.
    pub body: Value,
}

impl Resource {
    /// `"monitor \"API down\""`: how messages name it.
    pub fn label(&self) -> String {
        format!("{} {:?}", self.kind, self.name)
    }
}

/// A problem found in a file: which file, which resource in it (or part of it), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub resource: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<PathBuf>, resource: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            resource: resource.into(),
            message: message.into(),
        }
    }

    pub fn about(resource: &Resource, message: impl Into<String>) -> Self {
        Self::new(&resource.path, resource.label(), message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resource.is_empty() {
            true => write!(f, "{}: {}", self.path.display(), self.message),
            false => write!(f, "{}: {}: {}", self.path.display(), self.resource, self.message),
        }
    }
}

/// Every resource of the repository, and the order our logs indexes are tried in.
#[derive(Debug, Clone, Default)]
pub struct ResourceSet {
    pub resources: Vec<Resource>,
    /// `logs-index-order.json`'s `index_names`.
    pub index_order: Vec<String>,
}

/// `deploy/datadog` under the repository root.
pub const DIR: &str = "deploy/datadog";
/// The index order file under [`DIR`].
pub const INDEX_ORDER_FILE: &str = "logs-index-order.json";

impl ResourceSet {
    /// Reads every `*.json` of every kind's folder under `<root>/deploy/datadog`, sorted by path. Files
    /// that are not valid JSON, and folders that cannot be read, are problems; what could be read is
    /// returned either way.
    pub fn load(root: &Path) -> (Self, Vec<Problem>) {
        let mut set = Self::default();
        let mut problems = Vec::new();
        for kind in Kind::ALL {
            let folder = Path::new(DIR).join(kind.folder());
            let entries = match std::fs::read_dir(root.join(&folder)) {
                Ok(entries) => entries,
                Err(error) => {
                    problems.push(Problem::new(
                        &folder,
                        "",
                        format!("cannot read the folder: {error}"),
                    ));
                    continue;
                }
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort();
            for file in files {
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let path = folder.join(file.file_name().unwrap_or_default());
                match read_json(&file) {
                    Ok(body) => {
                        let name = body
                            .get(kind.name_field())
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        set.resources.push(Resource {
                            kind,
                            path,
                            stem,
                            name,
                            body,
                        });
                    }
                    Err(message) => problems.push(Problem::new(path, "", message)),
                }
            }
        }
        let order = Path::new(DIR).join(INDEX_ORDER_FILE);
        match read_json(&root.join(&order)) {
            Ok(body) => match serde_json::from_value::<crate::model::LogsIndexesOrder>(body) {
                Ok(parsed) => set.index_order = parsed.index_names,
                Err(error) => problems.push(Problem::new(&order, "logs index order", error.to_string())),
            },
            Err(message) => problems.push(Problem::new(&order, "logs index order", message)),
        }
        (set, problems)
    }

    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Resource> {
        self.resources.iter().filter(move |r| r.kind == kind)
    }

    /// The resource of `kind` whose file stem is `stem`.
    pub fn by_stem(&self, kind: Kind, stem: &str) -> Option<&Resource> {
        self.of_kind(kind).find(|r| r.stem == stem)
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("not valid JSON: {e}"))
}
