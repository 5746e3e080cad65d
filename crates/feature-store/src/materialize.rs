//! Materialization: writes CSV rows into Redis in Feast's layout, as `feast materialize` would, so a
//! Redis filled here and one filled by Feast are indistinguishable to readers (Feast's included).
//!
//! Rows are typed by the registry; the newest row per entity and view is written (`HSET key _ts:view ts
//! field value ...`, one command per entity), in pipelined batches. Like Feast's `skip_dedup` mode, what is
//! stored is overwritten without first reading its event time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use crate::csv_rows::{self, CsvFile, Record};
use crate::store::RedisConfig;
use crate::store::redis::RedisBackend;
use crate::{Error, Registry};

/// How to materialize.
#[derive(Debug, Clone)]
pub struct MaterializeOptions {
    /// The Feast project in the keys; defaults to the registry's.
    pub project: Option<String>,
    /// `HSET` commands per pipeline.
    pub batch_size: usize,
    /// Shift all timestamps so the newest row is "now" (as the embedded store does); relative ages kept.
    pub rebase_timestamps: bool,
    /// Timeout of each pipeline.
    pub timeout: Duration,
}

impl Default for MaterializeOptions {
    fn default() -> Self {
        Self {
            project: None,
            batch_size: 500,
            rebase_timestamps: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// What a materialization wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterializeReport {
    /// Rows written (one per entity and view).
    pub rows: usize,
    /// Rows written per view.
    pub views: BTreeMap<String, usize>,
    /// Pipelines sent.
    pub batches: usize,
    pub elapsed: Duration,
}

/// Reads `files`, connects to Redis and writes their rows. Nothing is written when a file is malformed.
pub async fn materialize(
    redis: &RedisConfig,
    registry: &Registry,
    files: &[CsvFile],
    options: &MaterializeOptions,
) -> Result<MaterializeReport, Error> {
    let started = Instant::now();
    let project = options
        .project
        .clone()
        .unwrap_or_else(|| registry.project().to_owned());

    let mut by_view: BTreeMap<usize, Vec<Record>> = BTreeMap::new();
    for file in files {
        let view = registry.view_index(&file.view).ok_or_else(|| Error::Csv {
            file: file.name.clone(),
            line: 0,
            reason: format!("unknown feature view {:?}", file.view),
        })?;
        by_view
            .entry(view)
            .or_default()
            .extend(csv_rows::read_records(registry, file)?);
    }
    let views: Vec<usize> = by_view.keys().copied().collect();
    let mut records: Vec<Vec<Record>> = by_view.into_values().map(csv_rows::latest_per_entity).collect();
    if options.rebase_timestamps {
        csv_rows::rebase_timestamps(&mut records, SystemTime::now());
    }

    // Writes get their own timeout: a batch of HSETs is no read and may take longer than one.
    let redis = RedisConfig {
        timeout: options.timeout,
        ..redis.clone()
    };
    let backend = RedisBackend::connect(&redis).await?;
    let mut report = MaterializeReport {
        rows: 0,
        views: BTreeMap::new(),
        batches: 0,
        elapsed: Duration::ZERO,
    };
    for (&v, records) in views.iter().zip(&records) {
        let view = &registry.views()[v];
        for batch in records.chunks(options.batch_size.max(1)) {
            let commands = batch
                .iter()
                .map(|r| csv_rows::encode_record(r, view, &project))
                .collect();
            backend.write(commands, options.timeout).await?;
            report.batches += 1;
        }
        report.rows += records.len();
        *report.views.entry(view.name.clone()).or_default() += records.len();
        tracing::info!(view = %view.name, rows = records.len(), "materialized");
    }
    report.elapsed = started.elapsed();
    tracing::info!(
        rows = report.rows,
        batches = report.batches,
        elapsed_ms = report.elapsed.as_millis() as u64,
        project = %project,
        "materialization done"
    );
    Ok(report)
}
