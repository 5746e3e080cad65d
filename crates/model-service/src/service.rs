//! The `models.v1.ModelService` handlers: check the request, find the model version, score.

use std::sync::Arc;

use model_runtime::{ModelRepository, ModelVersion, Prediction, Row};
use proto::models::v1::{
    self as pb, GetModelMetadataRequest, GetModelMetadataResponse, ModelInput, PredictRequest,
    PredictResponse,
};
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use crate::error::Error;

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

/// The service state: the loaded repository and the limits applied to each call.
pub struct Models {
    repository: Arc<ModelRepository>,
    max_batch_rows: usize,
    /// Large batches on the blocking pool at once; tract runs one batch on one thread, so more than one
    /// per core only adds contention.
    blocking: Arc<Semaphore>,
}

impl Models {
    pub fn new(repository: Arc<ModelRepository>, max_batch_rows: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            repository,
            max_batch_rows,
            blocking: Arc::new(Semaphore::new(cores)),
        }
    }

    async fn predict(&self, request: PredictRequest) -> Result<PredictResponse, Error> {
        if request.model.is_empty() {
            return Err(Error::EmptyModel);
        }
        if request.rows.is_empty() {
            return Err(Error::NoRows);
        }
        if request.rows.len() > self.max_batch_rows {
            return Err(Error::TooManyRows {
                rows: request.rows.len(),
                max: self.max_batch_rows,
            });
        }
        let model = Arc::clone(self.repository.get(&request.model, non_empty(&request.version))?);
        tracing::Span::current().record("version", model.version());
        let rows: Vec<Row> = request.rows.into_iter().map(|row| row.features).collect();
        let predictions = if rows.len() <= INLINE_MAX_ROWS {
            model.predict(&rows)?
        } else {
            let permit = Arc::clone(&self.blocking)
                .acquire_owned()
                .await
                .map_err(|_| Error::ShuttingDown)?;
            let scorer = Arc::clone(&model);
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                scorer.predict(&rows)
            })
            .await??
        };
        Ok(PredictResponse {
            model: model.model().to_owned(),
            version: model.version().to_owned(),
            predictions: predictions.into_iter().map(to_proto).collect(),
        })
    }

    fn metadata(&self, request: &GetModelMetadataRequest) -> Result<GetModelMetadataResponse, Error> {
        if request.model.is_empty() {
            return Err(Error::EmptyModel);
        }
        let model = self.repository.model(&request.model)?;
        let version: &ModelVersion = self.repository.get(&request.model, non_empty(&request.version))?;
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
        })
    }
}

#[tonic::async_trait]
impl pb::model_service_server::ModelService for Models {
    #[tracing::instrument(
        name = "predict",
        skip_all,
        fields(model = %request.get_ref().model, version = tracing::field::Empty, rows = request.get_ref().rows.len())
    )]
    async fn predict(&self, request: Request<PredictRequest>) -> Result<Response<PredictResponse>, Status> {
        match self.predict(request.into_inner()).await {
            Ok(response) => Ok(Response::new(response)),
            Err(error) => Err(reject(error)),
        }
    }

    #[tracing::instrument(
        name = "get_model_metadata",
        skip_all,
        fields(model = %request.get_ref().model, version = %request.get_ref().version)
    )]
    async fn get_model_metadata(
        &self,
        request: Request<GetModelMetadataRequest>,
    ) -> Result<Response<GetModelMetadataResponse>, Status> {
        self.metadata(request.get_ref())
            .map(Response::new)
            .map_err(reject)
    }
}

/// Logs a failed call by whose fault it is, then turns it into its status.
fn reject(error: Error) -> Status {
    if error.is_client_error() {
        tracing::debug!(%error, "request rejected");
    } else {
        tracing::error!(%error, "request failed");
    }
    Status::from(error)
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
