//! The `models.v1.ModelService` handlers: check the request, find the model version, score.
//!
//! Each call resolves its version from one snapshot of the served state ([`crate::reload::Served`]),
//! so a reload that swaps the snapshot meanwhile never changes the version a call scores with.
//!
//! Each Predict run gets a `model.inference` span under the server span the gRPC layer started (tagged
//! with model, version and experiment variant, plus the row count), a `model.inference.batch_rows`
//! sample, and adds the values it fed the model to the version's drift window ([`crate::drift`]).
//!
//! Large batches wait for a blocking-pool slot, then run there; both together are bounded by the
//! inference timeout or the caller's deadline, whichever comes first, and answered DEADLINE_EXCEEDED past
//! it. Queued batches would otherwise pile up behind slow ones long after their callers gave up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use model_runtime::{Inputs, ModelVersion, Prediction};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::{Context, KeyValue};
use proto::models::v1::{
    self as pb, GetModelMetadataRequest, GetModelMetadataResponse, ModelInput, PredictManyRequest,
    PredictManyResponse, PredictRequest, PredictResponse,
};
use server_kit::Deadline;
use telemetry::catalog::MODEL_INFERENCE_BATCH_ROWS;
use telemetry::trace::spans;
use telemetry::{Metrics, Tag};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status};

use crate::drift::DriftWindow;
use crate::error::Error;
use crate::reload::{Resolved, Served};

/// Batches up to this many rows are scored inline on the async worker; larger ones on tokio's blocking
/// pool.
///
/// `cargo bench -p model-runtime --bench predict` (release, the bundled MLPs, 2-core VM shared with
/// other builds; time per call, then per row):
///
/// | rows | customer_risk (9 inputs) | demand_surge (10 inputs) |
/// |-----:|--------------------------|--------------------------|
/// |    1 | 6.5 µs                   | 5.8 µs                   |
/// |   16 | 24 µs (1.5 µs/row)       | 21 µs (1.3 µs/row)       |
/// |   64 | 73 µs (1.1 µs/row)       | 71 µs (1.1 µs/row)       |
/// |  256 | 263 µs (1.0 µs/row)      | 242 µs (0.94 µs/row)     |
/// | 1000 | 1.19 ms (1.2 µs/row)     | 0.94 ms (0.94 µs/row)    |
///
/// A call costs ~5 µs plus ~1 µs per row. An async worker should not be held much past ~100 µs, or
/// every other request queued on it waits; a hop to the blocking pool costs a few µs of thread hand-off
/// and wake-up, which only pays once the work dwarfs it. So batches up to 64 rows (≤ ~75 µs, and every
/// per-quote call from the gateway) run inline, and larger ones move off the worker.
pub const INLINE_MAX_ROWS: usize = 64;

/// Default `INFERENCE_TIMEOUT_MS`: a 1000-row batch runs in ~1.2 ms, so 50 ms only passes when batches
/// are queueing for the blocking pool, well inside the gateway's 100 ms request budget.
pub const DEFAULT_INFERENCE_TIMEOUT: Duration = Duration::from_millis(50);

/// The most inputs one row may carry, by name (`features`) or by position (`values`). The bundled models
/// take 9 and 10 inputs and the feature registry holds 16 features, so a row this wide is a caller's bug;
/// refusing it up front bounds the work on a map that only the request size limit would otherwise bound
/// (~16 bytes an entry: ~250k in 4 MiB).
pub const MAX_ROW_FEATURES: usize = 256;

/// The most requests one PredictMany call may carry: a quote needs two, an experiment's batch one per
/// arm (at most 8) and model.
pub const MAX_MANY_REQUESTS: usize = 16;

/// The experiment arm of a request that names none.
pub const DEFAULT_VARIANT: &str = "control";

/// The service state: the versions served, the limits applied to each call, and where telemetry goes.
pub struct Models {
    served: Served,
    max_batch_rows: usize,
    /// Large batches on the blocking pool at once; tract runs one batch on one thread, so more than one
    /// per core only adds contention.
    blocking: Arc<Semaphore>,
    /// Bounds a large batch's wait for a blocking slot plus its run.
    inference_timeout: Duration,
    metrics: Metrics,
}

impl Models {
    /// Serves what `served` holds: a reloaded [`Served`], or an `Arc<ModelRepository>` served as loaded
    /// with no drift windows. Metrics go to the process's sink ([`telemetry::metrics`]).
    pub fn new(served: impl Into<Served>, max_batch_rows: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            served: served.into(),
            max_batch_rows,
            blocking: Arc::new(Semaphore::new(cores)),
            inference_timeout: DEFAULT_INFERENCE_TIMEOUT,
            metrics: telemetry::metrics().clone(),
        }
    }

    /// Sends the service's metrics to `metrics` instead (tests).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Bounds each large batch's wait for a blocking-pool slot and its run (batches of up to
    /// [`INLINE_MAX_ROWS`] rows run inline, in well under a millisecond, and are not bounded).
    pub fn with_inference_timeout(mut self, timeout: Duration) -> Self {
        self.inference_timeout = timeout;
        self
    }

    /// `deadline`: the caller's, for large batches (`None` otherwise, or when the caller set none).
    async fn predict(
        &self,
        request: PredictRequest,
        deadline: Option<Deadline>,
    ) -> Result<PredictResponse, Error> {
        let PredictRequest {
            model,
            version,
            rows,
            variant,
        } = request;
        if model.is_empty() {
            return Err(Error::EmptyModel);
        }
        if rows.is_empty() {
            return Err(Error::NoRows);
        }
        if rows.len() > self.max_batch_rows {
            return Err(Error::TooManyRows {
                rows: rows.len(),
                max: self.max_batch_rows,
            });
        }
        // One `len()` per row, before the model is looked up or any row's map is walked. A row in both
        // forms is refused later anyway; here its two counts are one.
        let inputs_of = |row: &pb::FeatureRow| row.features.len() + row.values.len();
        if let Some((index, row)) = rows
            .iter()
            .enumerate()
            .find(|(_, row)| inputs_of(row) > MAX_ROW_FEATURES)
        {
            let form = match (row.features.is_empty(), row.values.is_empty()) {
                (false, true) => "features",
                (true, false) => "values",
                _ => "inputs (features and values together)",
            };
            return Err(Error::TooManyFeatures {
                row: index,
                count: inputs_of(row),
                form,
                max: MAX_ROW_FEATURES,
            });
        }
        let rows = inputs(rows, !version.is_empty())?;
        // One snapshot, dropped at once: the call keeps only the version and window it resolved.
        let Resolved {
            version: model,
            drift: window,
        } = self.served.load().resolve(&model, non_empty(&version))?;
        tracing::Span::current().record("model_version", model.version());
        // Large batches first wait for a blocking-pool slot, so the inference span times the run alone.
        let blocking = if rows.len() > INLINE_MAX_ROWS {
            let budget = self.budget(deadline);
            let permit = Arc::clone(&self.blocking).acquire_owned();
            match tokio::time::timeout_at(budget.until.tokio_instant(), permit).await {
                Ok(permit) => Some((permit.map_err(|_| Error::ShuttingDown)?, budget)),
                Err(_) => return Err(budget.exceeded(&model, rows.len())),
            }
        } else {
            None
        };
        self.metrics.distribution(
            &MODEL_INFERENCE_BATCH_ROWS,
            rows.len() as f64,
            &[Tag::model(model.model())],
        );
        // A child of the server span: the gRPC layer made it current for this handler.
        let cx = spans::inference_span(
            &Context::current(),
            model.model(),
            model.version(),
            variant_name(&variant),
        );
        cx.span().set_attribute(KeyValue::new(
            "rows",
            i64::try_from(rows.len()).unwrap_or(i64::MAX),
        ));
        let started = Instant::now();
        let result = match blocking {
            None => score(&cx, &model, &rows, window.as_deref()),
            Some((permit, budget)) => run_blocking(&cx, &model, rows, window, permit, &budget).await,
        };
        if let Err(error) = &result {
            spans::record_error(&cx, error.error_type(), error.to_string());
        }
        spans::end(&cx);
        let predictions = result?;
        tracing::debug!(
            inference_ms = started.elapsed().as_secs_f64() * 1e3,
            "rows scored"
        );
        Ok(PredictResponse {
            model: model.model().to_owned(),
            version: model.version().to_owned(),
            predictions: predictions.into_iter().map(to_proto).collect(),
        })
    }

    /// Each request as [`Models::predict`] runs it, in order; the first failure fails the call.
    async fn predict_many(
        &self,
        request: PredictManyRequest,
        rows: usize,
        deadline: Option<Deadline>,
    ) -> Result<PredictManyResponse, Error> {
        let requests = request.requests;
        if requests.is_empty() {
            return Err(Error::NoRequests);
        }
        if requests.len() > MAX_MANY_REQUESTS {
            return Err(Error::TooManyRequests {
                requests: requests.len(),
                max: MAX_MANY_REQUESTS,
            });
        }
        // The cap on rows is the call's, as if its requests were one batch.
        if rows > self.max_batch_rows {
            return Err(Error::TooManyRows {
                rows,
                max: self.max_batch_rows,
            });
        }
        let mut responses = Vec::with_capacity(requests.len());
        for (index, request) in requests.into_iter().enumerate() {
            let response = self
                .predict(request, deadline)
                .await
                .map_err(|source| Error::InRequest {
                    index,
                    source: Box::new(source),
                })?;
            responses.push(response);
        }
        Ok(PredictManyResponse { responses })
    }

    /// The time a large batch has for its slot and run: the inference timeout, or less when the
    /// caller's deadline (already less the answering margin) comes first.
    fn budget(&self, deadline: Option<Deadline>) -> Budget {
        let own = Deadline::after(self.inference_timeout);
        match deadline {
            Some(caller) if caller < own => Budget {
                until: caller,
                limit: caller.remaining(),
                bound: "the caller's deadline",
            },
            _ => Budget {
                until: own,
                limit: self.inference_timeout,
                bound: "INFERENCE_TIMEOUT_MS",
            },
        }
    }

    fn metadata(&self, request: &GetModelMetadataRequest) -> Result<GetModelMetadataResponse, Error> {
        if request.model.is_empty() {
            return Err(Error::EmptyModel);
        }
        let snapshot = self.served.load();
        let model = snapshot.repository().model(&request.model)?;
        let version = snapshot
            .resolve(&request.model, non_empty(&request.version))?
            .version;
        Ok(GetModelMetadataResponse {
            model: version.model().to_owned(),
            version: version.version().to_owned(),
            inputs: version
                .inputs()
                .iter()
                .map(|input| ModelInput {
                    name: input.name.clone(),
                    default_value: input.default,
                })
                .collect(),
            outputs: version.output_names().map(str::to_owned).collect(),
            available_versions: model.version_names().map(str::to_owned).collect(),
            max_batch_rows: u32::try_from(self.max_batch_rows).unwrap_or(u32::MAX),
            metrics: version
                .manifest()
                .metrics
                .iter()
                .flatten()
                .filter_map(|(name, value)| Some((name.clone(), value.as_f64()?)))
                .collect(),
            takes_positional_rows: true,
        })
    }
}

#[tonic::async_trait]
impl pb::model_service_server::ModelService for Models {
    #[tracing::instrument(
        name = "predict",
        skip_all,
        fields(
            model = %request.get_ref().model,
            model_version = tracing::field::Empty,
            variant = variant_name(&request.get_ref().variant),
            rows = request.get_ref().rows.len(),
        )
    )]
    async fn predict(&self, request: Request<PredictRequest>) -> Result<Response<PredictResponse>, Status> {
        let started = Instant::now();
        // Only large batches are bounded; small ones skip the header lookup.
        let deadline = if request.get_ref().rows.len() > INLINE_MAX_ROWS {
            Deadline::for_request(request.metadata(), None)
        } else {
            None
        };
        match self.predict(request.into_inner(), deadline).await {
            Ok(response) => Ok(Response::new(response)),
            Err(error) => Err(server_kit::reject(error, started)),
        }
    }

    #[tracing::instrument(
        name = "predict_many",
        skip_all,
        fields(requests = request.get_ref().requests.len())
    )]
    async fn predict_many(
        &self,
        request: Request<PredictManyRequest>,
    ) -> Result<Response<PredictManyResponse>, Status> {
        let started = Instant::now();
        let rows: usize = request.get_ref().requests.iter().map(|r| r.rows.len()).sum();
        // As for Predict: only calls with large batches are bounded.
        let deadline = if rows > INLINE_MAX_ROWS {
            Deadline::for_request(request.metadata(), None)
        } else {
            None
        };
        match self.predict_many(request.into_inner(), rows, deadline).await {
            Ok(response) => Ok(Response::new(response)),
            Err(error) => Err(server_kit::reject(error, started)),
        }
    }

    #[tracing::instrument(
        name = "get_model_metadata",
        skip_all,
        fields(model = %request.get_ref().model, model_version = %request.get_ref().version)
    )]
    async fn get_model_metadata(
        &self,
        request: Request<GetModelMetadataRequest>,
    ) -> Result<Response<GetModelMetadataResponse>, Status> {
        let started = Instant::now();
        self.metadata(request.get_ref())
            .map(Response::new)
            .map_err(|error| server_kit::reject(error, started))
    }
}

/// When a large batch must be done by, and which limit set that.
struct Budget {
    until: Deadline,
    limit: Duration,
    bound: &'static str,
}

impl Budget {
    fn exceeded(&self, model: &ModelVersion, rows: usize) -> Error {
        Error::InferenceTimeout {
            model: model.model().to_owned(),
            version: model.version().to_owned(),
            rows,
            limit_ms: u64::try_from(self.limit.as_millis()).unwrap_or(u64::MAX),
            bound: self.bound,
        }
    }
}

/// Scores a large batch on the blocking pool, holding `permit` for as long as it runs. Past the budget
/// the caller is answered, but the run cannot be interrupted: it finishes in the background and keeps
/// its slot until then, since the core really is busy.
async fn run_blocking(
    cx: &Context,
    model: &Arc<ModelVersion>,
    rows: Vec<Inputs>,
    window: Option<Arc<DriftWindow>>,
    permit: OwnedSemaphorePermit,
    budget: &Budget,
) -> Result<Vec<Prediction>, Error> {
    let count = rows.len();
    // The blocking thread has no current context: the span's travels with the closure.
    let (run_cx, scorer) = (cx.clone(), Arc::clone(model));
    let run = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        score(&run_cx, &scorer, &rows, window.as_deref())
    });
    match tokio::time::timeout_at(budget.until.tokio_instant(), run).await {
        Ok(joined) => joined.unwrap_or_else(|error| Err(Error::from(error))),
        Err(_) => Err(budget.exceeded(model, count)),
    }
}

/// Scores `rows` with the inference span current (log lines of the run carry it, on whichever thread)
/// and adds what the rows fed the model to the version's drift window.
fn score(
    cx: &Context,
    model: &ModelVersion,
    rows: &[Inputs],
    window: Option<&DriftWindow>,
) -> Result<Vec<Prediction>, Error> {
    let _attached = cx.clone().attach();
    let Some(window) = window else {
        return Ok(model.predict(rows)?);
    };
    let (predictions, tally) = model.predict_tallied(rows)?;
    window.record(&tally);
    Ok(predictions)
}

/// The request's experiment arm; empty means [`DEFAULT_VARIANT`].
pub fn variant_name(variant: &str) -> &str {
    if variant.is_empty() {
        DEFAULT_VARIANT
    } else {
        variant
    }
}

/// Each row's inputs as it gives them, by name (`features`) or by position (`values`). Positions are one
/// version's, so `pinned` (the request names its version) must hold for a row by position.
fn inputs(rows: Vec<pb::FeatureRow>, pinned: bool) -> Result<Vec<Inputs>, Error> {
    rows.into_iter()
        .enumerate()
        .map(
            |(row, pb::FeatureRow { features, values })| match (features.is_empty(), values.is_empty()) {
                (_, true) => Ok(Inputs::Named(features)),
                (true, false) if pinned => Ok(Inputs::Positional(values)),
                (true, false) => Err(Error::ValuesWithoutVersion { row }),
                (false, false) => Err(Error::BothForms { row }),
            },
        )
        .collect()
}

/// The protocol's "empty means the default version".
fn non_empty(version: &str) -> Option<&str> {
    (!version.is_empty()).then_some(version)
}

fn to_proto(prediction: Prediction) -> pb::Prediction {
    let Prediction {
        outputs,
        defaulted_inputs,
    } = prediction;
    pb::Prediction {
        outputs,
        defaulted_inputs,
    }
}

#[cfg(test)]
mod tests;
