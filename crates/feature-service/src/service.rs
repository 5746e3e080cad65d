//! The `GetOnlineFeatures` handler: deadline in, store call, status out. Validation and reads live in
//! `feature_store`.

use feature_store::OnlineStore;
use proto::features::v1::feature_service_server::FeatureService;
use proto::features::v1::{GetOnlineFeaturesRequest, GetOnlineFeaturesResponse};
use tonic::{Code, Request, Response, Status};

use crate::Error;

/// `features.v1.FeatureService` over an [`OnlineStore`].
#[derive(Clone)]
pub struct FeatureServiceImpl {
    store: OnlineStore,
}

impl FeatureServiceImpl {
    pub fn new(store: OnlineStore) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl FeatureService for FeatureServiceImpl {
    async fn get_online_features(
        &self,
        request: Request<GetOnlineFeaturesRequest>,
    ) -> Result<Response<GetOnlineFeaturesResponse>, Status> {
        // A little before the caller's deadline, so that our answer (degraded if Redis is slow) arrives first.
        let deadline = server_kit::grpc_deadline(request.metadata()).map(server_kit::answer_by);
        let request = request.into_inner();
        let rows = request.entities.values().map(|c| c.val.len()).max().unwrap_or(0);
        match self.store.get_online_features(&request, deadline).await {
            Ok(response) => {
                tracing::debug!(features = request.features.len(), rows, "online features served");
                Ok(Response::new(response))
            }
            Err(error) => {
                let error_type = error.error_type();
                // Redis round trips that failed: the store has logged them (rate-limited) already.
                let logged = matches!(
                    error,
                    feature_store::Error::Unavailable(_)
                        | feature_store::Error::Timeout(_)
                        | feature_store::Error::Redis(_)
                );
                let status = Status::from(Error::from(error));
                let grpc_code = telemetry::grpc_code_name(status.code());
                match status.code() {
                    Code::InvalidArgument | Code::NotFound => {
                        tracing::info!(grpc.code = grpc_code, error_type, error = %status.message(), "request rejected");
                    }
                    _ if logged => tracing::debug!(
                        grpc.code = grpc_code,
                        error_type,
                        error = %status.message(),
                        "online features failed"
                    ),
                    _ => tracing::warn!(
                        grpc.code = grpc_code,
                        error_type,
                        error = %status.message(),
                        features = request.features.len(),
                        rows,
                        "online features failed"
                    ),
                }
                Err(status)
            }
        }
    }
}
