//! The model repository: `<root>/<model>/<version>/{model.onnx, manifest.json}`.
//!
//! Loading policy, chosen so a bad deploy cannot take serving down yet cannot go unnoticed:
//! - A folder counts as a version when it holds `manifest.json` or `model.onnx`, and as a model when it
//!   holds at least one version. Anything else in the root (the training script, its README,
//!   `expected_scores.json`, caches) is ignored.
//! - A version that fails to load is logged at WARN, kept in [`ModelRepository::skipped`], and left
//!   out; the model serves its other versions. If it was the newest one, the default falls back to the
//!   newest version that loaded.
//! - A model with no loadable version, or a root with no model at all, fails the whole load: a server
//!   that silently lacks a model it was deployed with is worse than one that does not start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{LoadError, LookupError};
use crate::load::{MANIFEST_FILE, MODEL_FILE, load_version};
use crate::model::ModelVersion;
use crate::version::compare_versions;

/// Every model of a repository folder, loaded and optimized.
#[derive(Debug)]
pub struct ModelRepository {
    root: PathBuf,
    models: BTreeMap<String, Model>,
    skipped: Vec<SkippedVersion>,
}

/// The loadable versions of one model.
#[derive(Debug)]
pub struct Model {
    name: String,
    /// Oldest first (see [`compare_versions`]); never empty.
    versions: Vec<Arc<ModelVersion>>,
    default: Arc<ModelVersion>,
}

/// A version folder that was left out because it did not load.
#[derive(Debug)]
pub struct SkippedVersion {
    pub model: String,
    pub version: String,
    pub error: LoadError,
}

impl ModelRepository {
    /// Loads every model under `root`; blocking (file I/O and graph optimization), so call it from a
    /// blocking context. See the module docs for what fails the load.
    pub fn load(root: impl AsRef<Path>) -> Result<Self, LoadError> {
        let root = root.as_ref();
        let mut models = BTreeMap::new();
        let mut skipped = Vec::new();
        for (name, dir) in subfolders(root)? {
            let version_dirs: Vec<(String, PathBuf)> = subfolders(&dir)?
                .into_iter()
                .filter(|(_, path)| is_version_folder(path))
                .collect();
            if version_dirs.is_empty() {
                tracing::debug!(path = %dir.display(), "ignoring a folder without model versions");
                continue;
            }
            let model = Model::load(&name, &dir, version_dirs, &mut skipped)?;
            models.insert(name, model);
        }
        if models.is_empty() {
            return Err(LoadError::EmptyRepository {
                path: root.to_owned(),
            });
        }
        Ok(Self {
            root: root.to_owned(),
            models,
            skipped,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Models in name order.
    pub fn models(&self) -> impl Iterator<Item = &Model> {
        self.models.values()
    }

    /// Versions that did not load and are not served.
    pub fn skipped(&self) -> &[SkippedVersion] {
        &self.skipped
    }

    pub fn model(&self, name: &str) -> Result<&Model, LookupError> {
        self.models.get(name).ok_or_else(|| LookupError::UnknownModel {
            model: name.to_owned(),
            known: self.models.keys().cloned().collect(),
        })
    }

    /// `version` of `model`, or its default (newest) version when `version` is `None`.
    pub fn get(&self, model: &str, version: Option<&str>) -> Result<&Arc<ModelVersion>, LookupError> {
        let model = self.model(model)?;
        match version {
            None => Ok(model.default_version()),
            Some(version) => model.version(version).ok_or_else(|| LookupError::UnknownVersion {
                model: model.name.clone(),
                version: version.to_owned(),
                available: model.version_names().map(str::to_owned).collect(),
            }),
        }
    }
}

impl Model {
    fn load(
        name: &str,
        dir: &Path,
        mut version_dirs: Vec<(String, PathBuf)>,
        skipped: &mut Vec<SkippedVersion>,
    ) -> Result<Self, LoadError> {
        version_dirs.sort_by(|(a, _), (b, _)| compare_versions(a, b));
        let mut versions = Vec::with_capacity(version_dirs.len());
        let mut failures = Vec::new();
        for (version, version_dir) in version_dirs {
            let started = Instant::now();
            match load_version(name, &version, &version_dir) {
                Ok(loaded) => {
                    tracing::info!(
                        model = name,
                        version = %version,
                        inputs = loaded.inputs().len(),
                        load_ms = started.elapsed().as_secs_f64() * 1e3,
                        "model version loaded"
                    );
                    versions.push(Arc::new(loaded));
                }
                Err(error) => {
                    tracing::warn!(model = name, version = %version, %error, "model version skipped");
                    failures.push(SkippedVersion {
                        model: name.to_owned(),
                        version,
                        error,
                    });
                }
            }
        }
        let Some(default) = versions.last().cloned() else {
            // Every version failed; the newest one's error is the one most likely to matter.
            let source = match failures.pop() {
                Some(newest) => newest.error,
                None => LoadError::EmptyRepository { path: dir.to_owned() },
            };
            return Err(LoadError::NoLoadableVersion {
                path: dir.to_owned(),
                model: name.to_owned(),
                source: Box::new(source),
            });
        };
        skipped.extend(failures);
        Ok(Self {
            name: name.to_owned(),
            versions,
            default,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The newest loadable version.
    pub fn default_version(&self) -> &Arc<ModelVersion> {
        &self.default
    }

    pub fn version(&self, version: &str) -> Option<&Arc<ModelVersion>> {
        self.versions.iter().find(|v| v.version() == version)
    }

    /// Loadable versions, oldest first.
    pub fn versions(&self) -> &[Arc<ModelVersion>] {
        &self.versions
    }

    /// Names of the loadable versions, oldest first.
    pub fn version_names(&self) -> impl Iterator<Item = &str> {
        self.versions.iter().map(|v| v.version())
    }
}

fn is_version_folder(path: &Path) -> bool {
    path.join(MANIFEST_FILE).exists() || path.join(MODEL_FILE).exists()
}

/// The folders directly inside `dir`, by name; hidden folders and names that are not UTF-8 are skipped.
fn subfolders(dir: &Path) -> Result<Vec<(String, PathBuf)>, LoadError> {
    let io_error = |source| LoadError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let path = entry.path();
        // Follows symlinks: a deployment may link `current` versions into place.
        if !path.is_dir() {
            continue;
        }
        match entry.file_name().into_string() {
            Ok(name) if name.starts_with('.') => {}
            Ok(name) => folders.push((name, path)),
            Err(name) => {
                tracing::warn!(path = %dir.display(), ?name, "ignoring a folder whose name is not UTF-8")
            }
        }
    }
    folders.sort_by(|(a, _), (b, _)| a.cmp(b));
    Ok(folders)
}

#[cfg(test)]
mod tests;
