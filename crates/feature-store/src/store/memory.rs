//! The embedded store: the bundled snapshot (or given CSV files) held in memory in Feast's encoded layout
//! (key bytes → field bytes → value bytes), so it is read through the same decode path as Redis.
//!
//! Timestamps are rebased at load: every event time is shifted by the same amount so that the snapshot's
//! newest row is "now". Relative ages are kept, so rows the snapshot made stale on purpose are reported
//! OUTSIDE_MAX_AGE, and the fresh ones PRESENT, whenever the service starts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::redis::Hash;
use crate::csv_rows::{self, CsvFile};
use crate::{Error, Registry};

pub(crate) struct MemoryBackend {
    hashes: HashMap<Bytes, Arc<Hash>>,
    empty: Arc<Hash>,
}

impl MemoryBackend {
    /// Loads `files` (newest row per entity and view), rebasing timestamps to `now`.
    pub fn load(
        registry: &Registry,
        project: &str,
        files: &[CsvFile],
        now: SystemTime,
    ) -> Result<Self, Error> {
        // Rows of one view may come from several files: merge them before keeping the newest per entity.
        let mut by_view: HashMap<usize, Vec<csv_rows::Record>> = HashMap::new();
        for file in files {
            let records = csv_rows::read_records(registry, file)?;
            let view = registry.view_index(&file.view).ok_or_else(|| Error::Csv {
                file: file.name.clone(),
                line: 0,
                reason: format!("unknown feature view {:?}", file.view),
            })?;
            by_view.entry(view).or_default().extend(records);
        }
        let mut views: Vec<usize> = by_view.keys().copied().collect();
        views.sort_unstable();
        let mut records: Vec<Vec<csv_rows::Record>> = views
            .iter()
            .map(|v| csv_rows::latest_per_entity(by_view.remove(v).unwrap_or_default()))
            .collect();
        csv_rows::rebase_timestamps(&mut records, now);

        let mut hashes: HashMap<Bytes, Hash> = HashMap::new();
        let mut rows = 0usize;
        for (view, records) in views.iter().zip(&records) {
            let view = &registry.views()[*view];
            for record in records {
                let (key, fields) = csv_rows::encode_record(record, view, project);
                hashes.entry(key).or_default().extend(fields);
                rows += 1;
            }
        }
        tracing::info!(
            rows,
            keys = hashes.len(),
            files = files.len(),
            "embedded feature store loaded"
        );
        Ok(Self {
            hashes: hashes.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
            empty: Arc::new(Hash::new()),
        })
    }

    /// The hash stored under `key` (empty when there is none, as Redis answers HGETALL).
    pub fn get(&self, key: &Bytes) -> Arc<Hash> {
        self.hashes.get(key).unwrap_or(&self.empty).clone()
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }
}
