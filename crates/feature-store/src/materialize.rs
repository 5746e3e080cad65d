//! Materialization: writes CSV rows into Redis in Feast's layout, as `feast materialize` would, so a
//! Redis filled here and one filled by Feast are indistinguishable to readers (Feast's included).
//!
//! Rows are typed by the registry; the newest row per entity and view is written (`HSET key _ts:view ts
//! field value ...`, one command per entity), in pipelined batches. Like Feast's `skip_dedup` mode, what is
//! stored is overwritten without first reading its event time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanBuilder, SpanKind};
use opentelemetry::{Context, KeyValue};
use telemetry::events::BatchJobFinished;
use telemetry::trace::spans;
use telemetry::{JobStatus, Metrics};

use crate::csv_rows::{self, CsvFile, Record};
use crate::store::RedisConfig;
use crate::store::redis::RedisBackend;
use crate::{Error, Registry};

/// The batch job's name in `batch_job.*` metrics (`job:materialize`) and its span.
pub const JOB: &str = "materialize";

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
    /// Where `batch_job.*` and the Redis metrics go; by default the process's sink
    /// ([`telemetry::metrics`]: build the options after `telemetry::init`).
    pub metrics: Metrics,
}

impl Default for MaterializeOptions {
    fn default() -> Self {
        Self {
            project: None,
            batch_size: 500,
            rebase_timestamps: false,
            timeout: Duration::from_secs(10),
            metrics: telemetry::metrics().clone(),
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

/// Reads `files`, connects to Redis and writes their rows. Nothing is written when a file is malformed;
/// no connection within the configured connect timeout is an [`Error::Connect`] naming the last
/// connection error (refused, AUTH, TLS).
///
/// The run is one batch job: a `materialize` span (each pipeline a `redis.query` child of it), and on
/// success or failure [`BatchJobFinished`] (`batch_job.runs{status}`, `batch_job.status`,
/// `batch_job.duration_s`, `batch_job.rows{feature_view}` with the rows written before any failure,
/// and the log line) sent to `options.metrics`.
pub async fn materialize(
    redis: &RedisConfig,
    registry: &Registry,
    files: &[CsvFile],
    options: &MaterializeOptions,
) -> Result<MaterializeReport, Error> {
    let started = Instant::now();
    let cx = job_span();
    let mut report = MaterializeReport {
        rows: 0,
        views: BTreeMap::new(),
        batches: 0,
        elapsed: Duration::ZERO,
    };
    let result = write_files(redis, registry, files, options, &mut report)
        .with_context(cx.clone())
        .await;
    report.elapsed = started.elapsed();

    let rows: Vec<(&str, u64)> = report
        .views
        .iter()
        .map(|(view, rows)| (view.as_str(), u64::try_from(*rows).unwrap_or(u64::MAX)))
        .collect();
    let error = result.as_ref().err().map(ToString::to_string);
    if let (Err(e), Some(message)) = (&result, &error) {
        spans::record_error(&cx, e.error_type(), message.clone());
    }
    BatchJobFinished {
        job: JOB,
        status: if result.is_ok() {
            JobStatus::Success
        } else {
            JobStatus::Failed
        },
        duration: report.elapsed,
        rows: &rows,
        error: error.as_deref(),
    }
    .emit_to(&options.metrics);
    spans::end(&cx);
    result.map(|()| report)
}

/// The job's root span (a child of the current context, if the caller has one).
fn job_span() -> Context {
    let builder = SpanBuilder::from_name(JOB)
        .with_kind(SpanKind::Internal)
        .with_attributes([
            KeyValue::new("operation.name", "batch_job"),
            KeyValue::new("resource.name", JOB),
            KeyValue::new("job", JOB),
        ]);
    spans::start(builder, &Context::current())
}

/// The job itself; `report` counts what has been written, also when a later batch fails.
async fn write_files(
    redis: &RedisConfig,
    registry: &Registry,
    files: &[CsvFile],
    options: &MaterializeOptions,
    report: &mut MaterializeReport,
) -> Result<(), Error> {
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
    // A batch job has nothing to serve meanwhile: Redis not answering in time fails it.
    let backend = RedisBackend::connect(&redis, options.metrics.clone())?;
    backend.connected_within(redis.connect_timeout).await?;
    for (&v, records) in views.iter().zip(&records) {
        let view = &registry.views()[v];
        for batch in records.chunks(options.batch_size.max(1)) {
            let commands = batch
                .iter()
                .map(|r| csv_rows::encode_record(r, view, &project))
                .collect();
            backend.write(commands, options.timeout).await?;
            report.batches += 1;
            report.rows += batch.len();
            *report.views.entry(view.name.clone()).or_default() += batch.len();
        }
        tracing::info!(feature_view = %view.name, rows = records.len(), project = %project, "materialized");
    }
    Ok(())
}
