//! A writable copy of a model repository, to add, break, swap or remove version folders while a
//! model-service serves it.

use std::path::{Path, PathBuf};

/// A copy of the repository at `source` in a temporary folder, removed on drop.
pub struct ModelRepositoryCopy {
    dir: tempfile::TempDir,
}

impl ModelRepositoryCopy {
    /// Copies every `<model>/<version>/` folder of `source` (files only: a version folder is flat).
    pub fn of(source: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for a model repository");
        for model in folders(source) {
            for version in folders(&model) {
                let name = |p: &Path| p.file_name().expect("a folder name").to_owned();
                copy_flat(&version, &dir.path().join(name(&model)).join(name(&version)));
            }
        }
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `<model>/<version>`, existing or not.
    pub fn version_dir(&self, model: &str, version: &str) -> PathBuf {
        self.path().join(model).join(version)
    }

    /// A copy of version `from` of `model` as version `to`, its manifest's `version` rewritten to match,
    /// written beside the repository and moved into place in one rename, as a deploy would: a poll never
    /// sees half a folder. Returns the new folder.
    pub fn add_copy(&self, model: &str, from: &str, to: &str) -> PathBuf {
        let staged = self.staged_copy(model, from, to);
        let target = self.version_dir(model, to);
        std::fs::rename(&staged, &target).expect("move the new version into place");
        target
    }

    /// [`ModelRepositoryCopy::add_copy`]'s folder, left outside the repository (in a hidden folder of
    /// its root, which the repository ignores) for a test to break or link to first.
    pub fn staged_copy(&self, model: &str, from: &str, to: &str) -> PathBuf {
        let staging = self.path().join(".staging");
        let staged = staging.join(format!("{model}-{to}-{}", std::process::id()));
        let staged = unique(staged);
        copy_flat(&self.version_dir(model, from), &staged);
        let manifest = staged.join("manifest.json");
        let text = std::fs::read_to_string(&manifest).expect("read manifest");
        let mut json: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
        json["version"] = serde_json::Value::String(to.to_owned());
        std::fs::write(&manifest, serde_json::to_string_pretty(&json).expect("JSON"))
            .expect("write manifest");
        staged
    }
}

fn unique(path: PathBuf) -> PathBuf {
    let mut candidate = path.clone();
    let mut n = 0;
    while candidate.exists() {
        n += 1;
        candidate = PathBuf::from(format!("{}-{n}", path.display()));
    }
    candidate
}

fn folders(dir: &Path) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read a repository folder")
        .map(|entry| entry.expect("folder entry").path())
        .filter(|path| path.is_dir())
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    folders.sort();
    folders
}

fn copy_flat(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a version folder");
    for entry in std::fs::read_dir(from).expect("read a version folder") {
        let path = entry.expect("version folder entry").path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().expect("file name"))).expect("copy a model file");
        }
    }
}
