//! The served state: one [`Snapshot`] of the versions served, swapped whole through [`Served`] by the
//! reloader while requests read it without a lock. Each version carries its drift window and the time
//! a request last named or resolved to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::{ArcSwap, Guard};
use model_runtime::{LookupError, ModelRepository, ModelVersion};

use crate::drift::{DriftMonitor, DriftWindow};

/// The served state, shared by the handlers (which read it) and the reloader (which replaces it).
#[derive(Debug, Clone)]
pub struct Served(Arc<ArcSwap<Snapshot>>);

impl Served {
    pub fn new(snapshot: Snapshot) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(snapshot)))
    }

    /// The current snapshot. Hold it only while resolving a version, never across an `.await`: what a
    /// call keeps is the `Arc<ModelVersion>` it resolved.
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.0.load()
    }

    pub(super) fn load_full(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    pub(super) fn store(&self, snapshot: Snapshot) {
        self.0.store(Arc::new(snapshot));
    }
}

/// A repository served as loaded, with no drift windows (tests, tools).
impl From<Arc<ModelRepository>> for Served {
    fn from(repository: Arc<ModelRepository>) -> Self {
        Self::new(Snapshot::new(repository, &DriftMonitor::default()))
    }
}

/// The versions served at one moment, each with its drift window and time of last use.
#[derive(Debug)]
pub struct Snapshot {
    repository: Arc<ModelRepository>,
    /// model → version → its use. Shared with the next snapshot while the version is the same loaded
    /// value, so uses noted through an older snapshot still count.
    uses: HashMap<String, HashMap<String, Arc<VersionUse>>>,
    clock: Clock,
}

/// What a request resolved: the version to score with and the drift window to add its rows to.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub version: Arc<ModelVersion>,
    pub drift: Option<Arc<DriftWindow>>,
}

#[derive(Debug)]
pub(super) struct VersionUse {
    /// The loaded value this entry belongs to; a new load of the folder gets a new entry.
    version: Arc<ModelVersion>,
    drift: Option<Arc<DriftWindow>>,
    /// [`Clock`] seconds when a request last named or resolved to the version.
    last_used: AtomicU64,
}

/// Whole seconds since the service loaded its repository.
#[derive(Debug, Clone, Copy)]
struct Clock {
    epoch: Instant,
}

impl Clock {
    fn now(self) -> u64 {
        self.epoch.elapsed().as_secs()
    }
}

impl Snapshot {
    /// The versions of `repository`, each with the window `drift` keeps for it.
    pub fn new(repository: Arc<ModelRepository>, drift: &DriftMonitor) -> Self {
        let clock = Clock {
            epoch: Instant::now(),
        };
        Self::build(repository, drift, clock, |_| None)
    }

    pub fn repository(&self) -> &ModelRepository {
        &self.repository
    }

    /// `version` of `model` (its default when `None`) and its drift window; notes the use.
    pub fn resolve(&self, model: &str, version: Option<&str>) -> Result<Resolved, LookupError> {
        let version = Arc::clone(self.repository.get(model, version)?);
        let drift = self
            .version_use(version.model(), version.version())
            .and_then(|used| {
                self.touch(used);
                used.drift.clone()
            });
        Ok(Resolved { version, drift })
    }

    /// Seconds since a request last named or resolved to `model` version `version`.
    pub(super) fn idle_secs(&self, model: &str, version: &str) -> u64 {
        self.version_use(model, version).map_or(0, |used| {
            self.clock
                .now()
                .saturating_sub(used.last_used.load(Ordering::Relaxed))
        })
    }

    pub(super) fn version_use(&self, model: &str, version: &str) -> Option<&Arc<VersionUse>> {
        self.uses.get(model)?.get(version)
    }

    /// Notes a use of `model` version `version` now, as a request would.
    pub(super) fn note_use(&self, model: &str, version: &str) {
        if let Some(used) = self.version_use(model, version) {
            self.touch(used);
        }
    }

    fn touch(&self, used: &VersionUse) {
        let now = self.clock.now();
        // A read in the common case; a write once a second at most, so cores do not contend for it.
        if used.last_used.load(Ordering::Relaxed) < now {
            used.last_used.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// The snapshot serving `repository` next: a version that is the same loaded value as here keeps
    /// its use and window; any other gets the window `drift` now keeps for it, used as of now.
    pub(super) fn successor(&self, repository: ModelRepository, drift: &DriftMonitor) -> Self {
        Self::build(Arc::new(repository), drift, self.clock, |version| {
            let used = self.version_use(version.model(), version.version())?;
            Arc::ptr_eq(&used.version, version).then(|| Arc::clone(used))
        })
    }

    fn build(
        repository: Arc<ModelRepository>,
        drift: &DriftMonitor,
        clock: Clock,
        kept: impl Fn(&Arc<ModelVersion>) -> Option<Arc<VersionUse>>,
    ) -> Self {
        let mut uses: HashMap<String, HashMap<String, Arc<VersionUse>>> = HashMap::new();
        for loaded in repository.loaded() {
            let version = &loaded.version;
            let used = kept(version).unwrap_or_else(|| {
                Arc::new(VersionUse {
                    version: Arc::clone(version),
                    drift: drift.window(version),
                    last_used: AtomicU64::new(clock.now()),
                })
            });
            uses.entry(version.model().to_owned())
                .or_default()
                .insert(version.version().to_owned(), used);
        }
        Self {
            repository,
            uses,
            clock,
        }
    }
}
