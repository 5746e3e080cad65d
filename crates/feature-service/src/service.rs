//! The `GetOnlineFeatures` handler: deadline in, store call, status out (a failure logged the one way,
//! `server_kit::RequestFailed`). Validation and reads live in `feature_store`.

use std::time::Instant;

use feature_store::OnlineStore;
use proto::features::v1::feature_service_server::FeatureService;
use proto::features::v1::{GetOnlineFeaturesRequest, GetOnlineFeaturesResponse};
use tonic::{Request, Response, Status};

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
        let started = Instant::now();
        // A little before the caller's deadline, so that our answer (degraded if Redis is slow) arrives first.
        let deadline = server_kit::Deadline::for_request(request.metadata(), None);
        let request = request.into_inner();
        let rows = request.entities.values().map(|c| c.val.len()).max().unwrap_or(0);
        let features = request.features.len();
        match self.store.get_online_features(request, deadline).await {
            Ok(response) => {
                tracing::debug!(features, rows, "online features served");
                Ok(Response::new(response))
            }
            Err(error) => Err(server_kit::reject(Error::from(error), started)),
        }
    }
}
