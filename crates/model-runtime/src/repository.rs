//! The model repository: `<root>/<model>/<version>/{model.onnx, manifest.json}`.
//!
//! Loading policy, chosen so a bad deploy cannot take serving down yet cannot go unnoticed:
//! - A folder counts as a version when it holds `manifest.json` or `model.onnx`, and as a model when it
//!   holds at least one version. Anything else in the root (the training script, its README,
//!   `expected_scores.json`, caches) is ignored, and so is every hidden folder (a deploy stages a
//!   version in one, then renames it into place).
//! - A version that fails to load is logged at WARN, kept in [`ModelRepository::skipped`], and left
//!   out; the model serves its other versions. If it was the newest one, the default falls back to the
//!   newest version that loaded.
//! - A model with no loadable version, or a root with no model at all, fails the whole load: a server
//!   that silently lacks a model it was deployed with is worse than one that does not start.
//!
//! A repository is a value: a server that follows its folder while it runs (the model-service's
//! reloader) [`ModelRepository::scan`]s it again, compares each [`VersionFolder`]'s [`Fingerprint`]
//! with the one its version was loaded from ([`ModelRepository::loaded`]), loads what is new or changed
//! with [`VersionFolder::load`] (the same checks as at start, probe rows included), and builds the next
//! repository from the versions it keeps plus the new ones ([`ModelRepository::from_versions`],
//! [`ModelRepository::with_version`]). A version whose folder is gone can be kept as *retiring*: still
//! found by name, but no longer a default while its model has a version whose folder is there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

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
#[derive(Debug, Clone)]
pub struct Model {
    name: String,
    /// Oldest first (see [`compare_versions`]); never empty.
    versions: Vec<LoadedVersion>,
    /// The newest version that is not retiring, or the newest of all when every one is.
    default: Arc<ModelVersion>,
}

/// A version the repository holds: what was loaded, from which folder, and whether that folder is gone.
#[derive(Debug, Clone)]
pub struct LoadedVersion {
    pub version: Arc<ModelVersion>,
    /// The folder as it was just before the version was read from it.
    pub folder: VersionFolder,
    /// The folder is gone: the version is still found by name but is not its model's default (unless
    /// every version of the model is retiring).
    pub retiring: bool,
}

/// A version folder that was left out because it did not load.
#[derive(Debug)]
pub struct SkippedVersion {
    pub model: String,
    pub version: String,
    pub error: LoadError,
    /// The folder as it was when it failed: worth trying again only once this changes.
    pub fingerprint: Fingerprint,
}

/// One `<root>/<model>/<version>` folder, as a scan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFolder {
    pub model: String,
    pub version: String,
    /// The folder's path under the root (possibly through symlinks).
    pub dir: PathBuf,
    pub fingerprint: Fingerprint,
}

/// What changes when a version folder's content does: the folder's canonical path (a deploy that swaps
/// a symlink, `ln -s new tmp && mv -T tmp 2`, or a Kubernetes volume's `..data` link, changes it
/// although nothing under the old path changed) and the modification time and length of `model.onnx`
/// and `manifest.json`. A file rewritten within the file system's timestamp resolution to the same
/// length goes unnoticed; every deploy that writes new files or moves folders into place is seen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// `None` when the folder could not be resolved (removed while it was being scanned).
    canonical: Option<PathBuf>,
    manifest: Option<FileStamp>,
    model: Option<FileStamp>,
}

/// A file's modification time and length; a missing or unreadable file has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl Fingerprint {
    /// Reads the fingerprint of the version folder `dir` (a few `stat` calls; blocking).
    pub fn of(dir: &Path) -> Self {
        let canonical = dir.canonicalize().ok();
        let base = canonical.as_deref().unwrap_or(dir);
        let stamp = |file: &str| {
            let metadata = std::fs::metadata(base.join(file)).ok()?;
            Some(FileStamp {
                modified: metadata.modified().ok(),
                len: metadata.len(),
            })
        };
        Self {
            manifest: stamp(MANIFEST_FILE),
            model: stamp(MODEL_FILE),
            canonical,
        }
    }

    /// The folder the symlinks lead to, when it could be resolved.
    pub fn canonical(&self) -> Option<&Path> {
        self.canonical.as_deref()
    }
}

impl VersionFolder {
    /// The folder `dir` of `model` version `version`, fingerprinted now.
    pub fn at(model: &str, version: &str, dir: PathBuf) -> Self {
        Self {
            model: model.to_owned(),
            version: version.to_owned(),
            fingerprint: Fingerprint::of(&dir),
            dir,
        }
    }

    /// Loads and checks the version exactly as [`ModelRepository::load`] does, probe rows included;
    /// blocking. It reads the folder the fingerprint resolved, so a symlink swapped meanwhile cannot
    /// pair one folder's content with the other's fingerprint.
    pub fn load(&self) -> Result<ModelVersion, LoadError> {
        let dir = self.fingerprint.canonical().unwrap_or(&self.dir);
        load_version(&self.model, &self.version, dir)
    }
}

impl ModelRepository {
    /// Loads every model under `root`; blocking (file I/O and graph optimization), so call it from a
    /// blocking context. See the module docs for what fails the load.
    pub fn load(root: impl AsRef<Path>) -> Result<Self, LoadError> {
        let root = root.as_ref();
        let mut by_model: BTreeMap<String, Vec<VersionFolder>> = BTreeMap::new();
        for folder in Self::scan(root)? {
            by_model.entry(folder.model.clone()).or_default().push(folder);
        }
        if by_model.is_empty() {
            return Err(LoadError::EmptyRepository {
                path: root.to_owned(),
            });
        }
        let mut loaded = Vec::new();
        let mut skipped = Vec::new();
        for (name, folders) in by_model {
            loaded.extend(load_model(&name, &root.join(&name), folders, &mut skipped)?);
        }
        let mut repository = Self::from_versions(root, loaded);
        repository.skipped = skipped;
        Ok(repository)
    }

    /// Every version folder under `root`, by model name then version order (see [`compare_versions`]),
    /// each fingerprinted; nothing is loaded. Blocking (one `read_dir` per model and a few `stat` calls
    /// per version). Fails only when `root` or a model folder cannot be listed.
    pub fn scan(root: impl AsRef<Path>) -> Result<Vec<VersionFolder>, LoadError> {
        let mut found = Vec::new();
        for (model, dir) in subfolders(root.as_ref())? {
            let mut versions: Vec<(String, PathBuf)> = subfolders(&dir)?
                .into_iter()
                .filter(|(_, path)| is_version_folder(path))
                .collect();
            if versions.is_empty() {
                tracing::trace!(path = %dir.display(), "ignoring a folder without model versions");
                continue;
            }
            versions.sort_by(|(a, _), (b, _)| compare_versions(a, b));
            found.extend(
                versions
                    .into_iter()
                    .map(|(version, path)| VersionFolder::at(&model, &version, path)),
            );
        }
        Ok(found)
    }

    /// A repository of versions already loaded: those a server kept plus the ones it just loaded. A
    /// later entry for the same model and version replaces an earlier one. Nothing is read from disk;
    /// [`ModelRepository::skipped`] is empty.
    pub fn from_versions(root: impl AsRef<Path>, versions: impl IntoIterator<Item = LoadedVersion>) -> Self {
        let mut by_model: BTreeMap<String, BTreeMap<String, LoadedVersion>> = BTreeMap::new();
        for loaded in versions {
            by_model
                .entry(loaded.version.model().to_owned())
                .or_default()
                .insert(loaded.version.version().to_owned(), loaded);
        }
        let models = by_model
            .into_iter()
            .filter_map(|(name, versions)| {
                let model = Model::new(name.clone(), versions.into_values().collect())?;
                Some((name, model))
            })
            .collect();
        Self {
            root: root.as_ref().to_owned(),
            models,
            skipped: Vec::new(),
        }
    }

    /// This repository with `loaded` added, or in place of the version of the same model and name.
    pub fn with_version(&self, loaded: LoadedVersion) -> Self {
        Self::from_versions(&self.root, self.loaded().cloned().chain([loaded]))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Models in name order.
    pub fn models(&self) -> impl Iterator<Item = &Model> {
        self.models.values()
    }

    /// Every version held, by model name then oldest first, with the folder each was loaded from.
    pub fn loaded(&self) -> impl Iterator<Item = &LoadedVersion> {
        self.models.values().flat_map(|model| model.versions.iter())
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

    /// `version` of `model`, or its default version when `version` is `None`.
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

/// Loads the version `folders` of model `name` (in `dir`), oldest first; fails when none loads.
fn load_model(
    name: &str,
    dir: &Path,
    folders: Vec<VersionFolder>,
    skipped: &mut Vec<SkippedVersion>,
) -> Result<Vec<LoadedVersion>, LoadError> {
    let mut versions = Vec::with_capacity(folders.len());
    let mut failures = Vec::new();
    for folder in folders {
        let started = Instant::now();
        match folder.load() {
            Ok(loaded) => {
                tracing::info!(
                    model = name,
                    version = %folder.version,
                    inputs = loaded.inputs().len(),
                    load_ms = started.elapsed().as_secs_f64() * 1e3,
                    "model version loaded"
                );
                versions.push(LoadedVersion {
                    version: Arc::new(loaded),
                    folder,
                    retiring: false,
                });
            }
            Err(error) => {
                tracing::warn!(model = name, version = %folder.version, %error, "model version skipped");
                failures.push(SkippedVersion {
                    model: name.to_owned(),
                    version: folder.version,
                    error,
                    fingerprint: folder.fingerprint,
                });
            }
        }
    }
    if versions.is_empty() {
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
    }
    skipped.extend(failures);
    Ok(versions)
}

impl Model {
    /// `None` when `versions` is empty.
    fn new(name: String, mut versions: Vec<LoadedVersion>) -> Option<Self> {
        versions.sort_by(|a, b| compare_versions(a.version.version(), b.version.version()));
        let default = versions
            .iter()
            .rfind(|v| !v.retiring)
            .or_else(|| versions.last())
            .map(|v| Arc::clone(&v.version))?;
        Some(Self {
            name,
            versions,
            default,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The newest version that is not retiring (the newest of all when every one is).
    pub fn default_version(&self) -> &Arc<ModelVersion> {
        &self.default
    }

    pub fn version(&self, version: &str) -> Option<&Arc<ModelVersion>> {
        self.loaded_version(version).map(|loaded| &loaded.version)
    }

    /// `version` with the folder it was loaded from and whether it is retiring.
    pub fn loaded_version(&self, version: &str) -> Option<&LoadedVersion> {
        self.versions.iter().find(|v| v.version.version() == version)
    }

    /// Loadable versions, oldest first; retiring ones included.
    pub fn versions(&self) -> impl ExactSizeIterator<Item = &Arc<ModelVersion>> {
        self.versions.iter().map(|loaded| &loaded.version)
    }

    /// Names of the loadable versions, oldest first; retiring ones included.
    pub fn version_names(&self) -> impl Iterator<Item = &str> {
        self.versions().map(|v| v.version())
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
