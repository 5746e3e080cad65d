//! Domain events shared by several binaries: small structs whose `emit` writes the log line and the
//! metrics together, so the two never drift apart and a test can assert that the event happened.
//! Services define their own events the same way, next to their code, using [`crate::catalog`].

use std::time::Duration;

use crate::{
    Metrics,
    catalog::{BATCH_JOB_DURATION_S, BATCH_JOB_ROWS, BATCH_JOB_RUNS, BATCH_JOB_STATUS},
    tags::{JobStatus, Tag},
};

/// A batch job (e.g. feature materialization) finished.
#[derive(Debug, Clone)]
pub struct BatchJobFinished<'a> {
    pub job: &'static str,
    pub status: JobStatus,
    pub duration: Duration,
    /// Rows written per feature view.
    pub rows: &'a [(&'a str, u64)],
    /// Why it failed, for the log line.
    pub error: Option<&'a str>,
}

impl BatchJobFinished<'_> {
    /// Emits to the global sink.
    pub fn emit(&self) {
        self.emit_to(Metrics::global());
    }

    /// `batch_job.runs`, `batch_job.status` (1 ok / 0 failed), `batch_job.duration_s`, `batch_job.rows`
    /// and one log line.
    pub fn emit_to(&self, metrics: &Metrics) {
        let job = Tag::job(self.job);
        metrics.incr(&BATCH_JOB_RUNS, &[job, Tag::job_status(self.status)]);
        let ok = self.status == JobStatus::Success;
        metrics.gauge(&BATCH_JOB_STATUS, if ok { 1.0 } else { 0.0 }, &[job]);
        metrics.distribution(&BATCH_JOB_DURATION_S, self.duration.as_secs_f64(), &[job]);
        let mut total = 0;
        for (view, rows) in self.rows {
            metrics.count(&BATCH_JOB_ROWS, *rows, &[job, Tag::feature_view(view)]);
            total += rows;
        }
        let duration_s = self.duration.as_secs_f64();
        match (ok, self.error) {
            (true, _) => tracing::info!(job = self.job, duration_s, rows = total, "batch job succeeded"),
            (false, error) => {
                tracing::error!(
                    job = self.job,
                    duration_s,
                    rows = total,
                    error = error.unwrap_or(""),
                    "batch job failed"
                )
            }
        }
    }
}
