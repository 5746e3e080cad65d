//! Hot reload: the model-service follows its model repository folder while it serves, with no restart
//! and no failed request.
//!
//! Every `RELOAD_INTERVAL_SECS` the [`Reloader`] scans the repository ([`ModelRepository::scan`]) and
//! compares each version folder's fingerprint (its canonical path, and the modification time and length
//! of `model.onnx` and `manifest.json`) with the one of the version it serves from that folder:
//! - A new folder, or one whose fingerprint changed, is loaded and validated on the blocking pool as at
//!   start, probe rows included. Only once that succeeds is it published: a new version becomes
//!   servable, a changed one replaces the one served. A new model folder is loaded the same way.
//! - A folder that fails stays out, and the versions already served keep serving (a changed folder that
//!   fails leaves its version served as it was loaded before). The failure is reported once (a WARN
//!   line, `model.versions.rejected`, the `model_version_rejected` event) and its fingerprint
//!   remembered: the folder is tried again only once it changes, so a broken deploy is not re-reported
//!   every poll. Versions skipped at start count as reported.
//! - A request naming no version gets its model's newest version (by
//!   [`model_runtime::compare_versions`]) that is not retiring; when a reload changes that, the
//!   `model_version_promoted` event says so.
//! - A version whose folder is gone is *retiring*: still served to requests that name it, never the
//!   default while its model has a version whose folder is there. It is retired (dropped from the
//!   snapshot, its `model.versions.loaded` gauge and drift windows with it, the `model_version_retired`
//!   event sent) once no request has named or resolved to it for `RETIRE_AFTER_SECS`. The default, 120
//!   s, is longer than the gateway's 30 s model-metadata cache, so a gateway that still routes to the
//!   version is not cut off. Being marked retiring counts as a use, so the grace period always runs in
//!   full after the folder goes. A folder that comes back before then ends the retirement (and is loaded
//!   again if it changed). A model's last version is never retired: it is kept, with one WARN line.
//! - A scan that fails (the root unreadable) changes nothing, logged once until a scan works again: a
//!   volume briefly unmounted must not retire every version.
//!
//! A deploy should make a version folder appear whole: write it in a hidden folder (the scan ignores
//! those) or outside the repository and rename it into place, or swap a symlink (`ln -s new tmp &&
//! mv -T tmp 2`). A folder copied in place file by file may be seen half-written: it is rejected, then
//! loaded at the first poll after its files stop changing.
//!
//! Requests read the served state through [`Served`]: each takes one [`Snapshot`] and resolves its
//! version (an `Arc<ModelVersion>`) and that version's drift window from it, so a call in flight while a
//! reload swaps the snapshot finishes on the version it started on. Resolving notes the time of use in
//! the version's `AtomicU64` (whole seconds since start, written at most once a second per version, so
//! cores mostly share the cache line for reading): no lock on the request path.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use model_runtime::{Fingerprint, LoadedVersion, ModelRepository, VersionFolder};
use telemetry::Metrics;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::drift::DriftMonitor;
use crate::events::{ModelVersionLoaded, ModelVersionPromoted, ModelVersionRejected, ModelVersionRetired};

mod snapshot;

pub use snapshot::{Resolved, Served, Snapshot};

/// Polls the repository folder and publishes what changed (see the module docs).
pub struct Reloader {
    served: Served,
    drift: Arc<DriftMonitor>,
    metrics: Metrics,
    retire_after: Duration,
    /// (model, version) → the fingerprint its folder failed with: not tried again until it changes.
    rejected: HashMap<(String, String), Fingerprint>,
    /// Retiring versions kept as their model's last, already warned about.
    kept: HashSet<(String, String)>,
    /// The last scan's error, logged once until a scan works again.
    scan_error: Option<String>,
}

/// What one poll changed, by (model, version).
#[derive(Debug, Default)]
struct Changes {
    loaded: Vec<(String, String)>,
    retired: Vec<(String, String, u64)>,
    /// Whether a version started or stopped retiring.
    marked: bool,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.loaded.is_empty() && self.retired.is_empty() && !self.marked
    }
}

impl Reloader {
    /// Follows the folder of the repository `served` serves. The versions it skipped at start count as
    /// rejected already.
    pub fn new(served: Served, drift: Arc<DriftMonitor>, metrics: Metrics, retire_after: Duration) -> Self {
        let rejected = served
            .load()
            .repository()
            .skipped()
            .iter()
            .map(|skipped| {
                let key = (skipped.model.clone(), skipped.version.clone());
                (key, skipped.fingerprint.clone())
            })
            .collect();
        Self {
            served,
            drift,
            metrics,
            retire_after,
            rejected,
            kept: HashSet::new(),
            scan_error: None,
        }
    }

    /// One round: scan, load what is new or changed, mark what is gone as retiring, retire what has been
    /// idle for the grace period, publish one new snapshot if anything changed, then emit the events.
    pub async fn poll(&mut self) {
        let current = self.served.load_full();
        let root = current.repository().root().to_owned();
        let scanned = match tokio::task::spawn_blocking(move || ModelRepository::scan(root)).await {
            Ok(Ok(scanned)) => scanned,
            Ok(Err(error)) => return self.scan_failed(error.to_string()),
            Err(error) => return self.scan_failed(error.to_string()),
        };
        if self.scan_error.take().is_some() {
            tracing::info!(repository = %current.repository().root().display(), "model repository readable again");
        }
        let present: HashSet<(String, String)> = scanned
            .iter()
            .map(|folder| (folder.model.clone(), folder.version.clone()))
            .collect();
        self.rejected.retain(|key, _| present.contains(key));

        let mut changes = Changes::default();
        let mut versions: Vec<LoadedVersion> = current.repository().loaded().cloned().collect();
        for folder in scanned {
            if let Some(loaded) = self.load_if_changed(&current, folder).await {
                let key = (loaded.folder.model.clone(), loaded.folder.version.clone());
                versions.retain(|held| !is(held, &key.0, &key.1));
                versions.push(loaded);
                changes.loaded.push(key);
            }
        }
        for held in &mut versions {
            let (model, version) = (held.version.model(), held.version.version());
            let retiring = !present.contains(&(model.to_owned(), version.to_owned()));
            if retiring && !held.retiring {
                tracing::info!(
                    model,
                    model_version = version,
                    "model version folder removed: retiring"
                );
                // The grace period starts now, however long the version was idle before.
                current.note_use(model, version);
            }
            if !retiring && held.retiring {
                tracing::info!(
                    model,
                    model_version = version,
                    "model version folder back: no longer retiring"
                );
                self.kept.remove(&(model.to_owned(), version.to_owned()));
            }
            changes.marked |= retiring != held.retiring;
            held.retiring = retiring;
        }
        changes.retired = self.retire(&mut versions, &current);
        if changes.is_empty() {
            return;
        }
        self.publish(&current, versions, &changes);
    }

    /// Loads `folder` when it is new or changed and was not already rejected as it is; `None` when
    /// there is nothing new to serve from it.
    async fn load_if_changed(&mut self, current: &Snapshot, folder: VersionFolder) -> Option<LoadedVersion> {
        let held = current
            .repository()
            .model(&folder.model)
            .ok()
            .and_then(|model| model.loaded_version(&folder.version));
        if held.is_some_and(|held| held.folder.fingerprint == folder.fingerprint) {
            return None;
        }
        let key = (folder.model.clone(), folder.version.clone());
        if self.rejected.get(&key) == Some(&folder.fingerprint) {
            return None;
        }
        let job = folder.clone();
        let error: Box<dyn std::error::Error + Send + Sync> =
            match tokio::task::spawn_blocking(move || job.load()).await {
                Ok(Ok(version)) => {
                    self.rejected.remove(&key);
                    return Some(LoadedVersion {
                        version: Arc::new(version),
                        folder,
                        retiring: false,
                    });
                }
                Ok(Err(error)) => Box::new(error),
                // A panic while loading (a graph tract chokes on) rejects the folder like an error.
                Err(error) => Box::new(error),
            };
        ModelVersionRejected {
            model: &folder.model,
            version: &folder.version,
            dir: &folder.dir,
            error: error.as_ref(),
        }
        .emit(&self.metrics);
        self.rejected.insert(key, folder.fingerprint);
        None
    }

    /// Removes from `versions` every retiring version idle for the grace period, oldest first, except a
    /// model's last one; returns them with their idle seconds.
    fn retire(
        &mut self,
        versions: &mut Vec<LoadedVersion>,
        current: &Snapshot,
    ) -> Vec<(String, String, u64)> {
        let grace = self.retire_after.as_secs();
        let idle: Vec<(String, String, u64)> = versions
            .iter()
            .filter(|held| held.retiring)
            .map(|held| {
                let (model, version) = (held.version.model(), held.version.version());
                (
                    model.to_owned(),
                    version.to_owned(),
                    current.idle_secs(model, version),
                )
            })
            .filter(|(_, _, idle)| *idle >= grace)
            .collect();
        let mut retired = Vec::new();
        for (model, version, idle_secs) in idle {
            let left = versions
                .iter()
                .filter(|held| held.version.model() == model)
                .count();
            if left <= 1 {
                if self.kept.insert((model.clone(), version.clone())) {
                    tracing::warn!(
                        model = %model,
                        model_version = %version,
                        idle_secs,
                        "model version folder removed, but the version is kept: it is its model's last"
                    );
                }
                continue;
            }
            versions.retain(|held| !is(held, &model, &version));
            self.kept.remove(&(model.clone(), version.clone()));
            retired.push((model, version, idle_secs));
        }
        retired
    }

    /// Swaps in the snapshot of `versions`, moves the drift windows along, and emits what changed.
    fn publish(&self, current: &Snapshot, versions: Vec<LoadedVersion>, changes: &Changes) {
        let next = ModelRepository::from_versions(current.repository().root(), versions);
        for (model, version) in &changes.loaded {
            // A version loaded again starts a new window: its manifest's baselines may have changed.
            self.drift.forget(model, version, &self.metrics);
            if let Ok(loaded) = next.get(model, Some(version)) {
                self.drift.watch(loaded);
            }
        }
        for (model, version, _) in &changes.retired {
            self.drift.forget(model, version, &self.metrics);
        }
        let snapshot = current.successor(next, &self.drift);
        let defaults = |repository: &ModelRepository| -> HashMap<String, String> {
            let models = repository.models();
            models
                .map(|model| {
                    (
                        model.name().to_owned(),
                        model.default_version().version().to_owned(),
                    )
                })
                .collect()
        };
        let (before, after) = (defaults(current.repository()), defaults(snapshot.repository()));
        self.served.store(snapshot);
        // Only the reloader stores: this is the snapshot just published.
        let published = self.served.load_full();
        let next = published.repository();

        for (model, version) in &changes.loaded {
            if let Ok(loaded) = next.get(model, Some(version)) {
                ModelVersionLoaded {
                    model,
                    version,
                    default: after.get(model) == Some(version),
                    dir: loaded.dir(),
                }
                .emit(&self.metrics);
            }
        }
        for (model, version, idle_secs) in &changes.retired {
            ModelVersionRetired {
                model,
                version,
                idle_secs: *idle_secs,
            }
            .emit(&self.metrics);
        }
        for (model, version) in &after {
            match before.get(model) {
                Some(previous) if previous != version => ModelVersionPromoted {
                    model,
                    version,
                    previous,
                }
                .emit(&self.metrics),
                _ => {}
            }
        }
    }

    fn scan_failed(&mut self, error: String) {
        if self.scan_error.as_ref() != Some(&error) {
            tracing::warn!(%error, "cannot scan the model repository; serving what is loaded");
            self.scan_error = Some(error);
        }
    }
}

fn is(held: &LoadedVersion, model: &str, version: &str) -> bool {
    held.version.model() == model && held.version.version() == version
}

/// Runs [`Reloader::poll`] every `interval` until the returned guard is dropped.
pub fn spawn(mut reloader: Reloader, interval: Duration) -> ReloaderGuard {
    let task = tokio::spawn(async move {
        // The first poll is one interval after start: the repository was just loaded.
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            reloader.poll().await;
        }
    });
    ReloaderGuard(task)
}

/// Stops the reloader when dropped (a load under way on the blocking pool finishes, unpublished).
#[derive(Debug)]
pub struct ReloaderGuard(JoinHandle<()>);

impl Drop for ReloaderGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
