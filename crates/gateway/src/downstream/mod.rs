//! The gateway's calls to the feature-service and the model-service.
//!
//! Each RPC is a tower stack: [`ResilienceLayer`] (the dependency's breaker and retry budget, and the
//! request's deadline on every attempt) over `GrpcClientLayer` (client span, trace context) over
//! [`ReadAheadLayer`] (the request's message sent with the end of its stream) over a lazily connected
//! channel. Every attempt of a call sends the same [`Shared`] message. Concurrent requests' feature
//! fetches and model calls are merged into one call where they can be ([`merge`]). The model catalog
//! ([`catalog`]) caches what each model takes as input.

mod answers;
pub mod catalog;
mod fetch;
pub mod merge;
mod read_ahead;
pub mod resilience;
mod shared;

use std::sync::Arc;
use std::time::Duration;

use proto::models::v1::{
    GetModelMetadataRequest, GetModelMetadataResponse, PredictManyRequest, PredictManyResponse,
    PredictRequest, PredictResponse,
};
use server_kit::Deadline;
use telemetry::Metrics;
use telemetry::catalog::{CACHE_MODEL_METADATA_HIT, CACHE_MODEL_METADATA_MISS};
use telemetry::grpc::GrpcClientLayer;
use tonic::Status;
use tonic::client::Grpc;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_prost::ProstCodec;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt};

pub use answers::{FeatureColumn, OnlineFeatures};
pub use catalog::{ModelRef, ModelSpec};
pub use fetch::FeatureFetch;
use merge::Merger;
pub use merge::Merging;
use read_ahead::ReadAheadLayer;
pub use resilience::{Call, Resilience, ResilienceLayer};
pub use shared::Shared;

use crate::error::Error;
use catalog::{Catalog, Lookup};

pub const FEATURE_SERVICE: &str = "feature-service";
pub const MODEL_SERVICE: &str = "model-service";

/// A lazily connected channel: the gateway starts (and reports its own health) whatever the state of its
/// dependencies, and reconnects by itself when they come back. Its connections batch small messages into
/// one write ([`server_kit::io`]).
///
/// With `tls` configured the URL must be `https://` (and without it `http://`): a mismatch is refused
/// rather than silently sent in plaintext.
pub fn channel(
    url: &str,
    connect_timeout: Duration,
    tls: &server_kit::ClientTlsArgs,
) -> Result<Channel, ChannelError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|source| ChannelError::Url {
            url: url.to_owned(),
            source,
        })?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(tls
        .configure(endpoint)?
        .connect_with_connector_lazy(server_kit::io::connector()))
}

/// Why a dependency's channel cannot be set up: a start-up error.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("invalid downstream URL {url}: {source}")]
    Url {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error(transparent)]
    Tls(#[from] server_kit::Error),
}

/// One unary RPC to a dependency, as the prediction path calls it.
type Rpc<M, R> = BoxCloneSyncService<Call<Shared<M>>, R, Error>;

/// Builds the tower stack of one RPC: unary `method` of `service` (`package.Service`) on a client
/// cloned per call, behind `resilience`. As tonic's generated clients call, but with the message
/// [`Shared`] by the attempts rather than copied for each, and without the `GrpcMethod` request
/// extension they add for middleware: no layer here reads it (the client span names the call from the
/// path), and it cost each call an extension map of its own.
macro_rules! rpc {
    ($resilience:expr, $client:expr, $service:literal, $method:literal) => {{
        // Shared by the stack's clones (one per call), so only the call itself clones the channel.
        let client = Arc::new($client.clone());
        BoxCloneSyncService::new(ServiceBuilder::new().layer($resilience.clone()).service_fn(
            move |request: tonic::Request<Shared<_>>| {
                let mut client = Grpc::clone(&client);
                async move {
                    client.ready().await.map_err(|error| {
                        let error: tonic::codegen::StdError = error.into();
                        Status::unknown(format!("Service was not ready: {error}"))
                    })?;
                    let path = PathAndQuery::from_static(concat!("/", $service, "/", $method));
                    client.unary(request, path, ProstCodec::default()).await
                }
            },
        ))
    }};
}

/// The gateway's view of its two dependencies.
#[derive(Clone)]
pub struct Downstream {
    online_features: Rpc<FeatureFetch, OnlineFeatures>,
    predict: Rpc<PredictRequest, PredictResponse>,
    predict_many: Rpc<PredictManyRequest, PredictManyResponse>,
    model_metadata: Rpc<GetModelMetadataRequest, GetModelMetadataResponse>,
    catalog: Arc<Catalog>,
    metrics: Metrics,
    /// The merging of each RPC's calls, when on.
    merged: Option<Merged>,
    /// The feature-service's channel itself, for its health check at start ([`Downstream::features_health`]).
    features: Channel,
}

/// The RPCs whose concurrent calls are merged.
#[derive(Clone)]
struct Merged {
    online_features: Arc<Merger<FeatureFetch>>,
    predict: Arc<Merger<PredictRequest>>,
    predict_many: Arc<Merger<PredictManyRequest>>,
}

impl Downstream {
    pub fn new(
        features: Channel,
        models: Channel,
        catalog_ttl: Duration,
        resilience: Resilience,
        merging: Option<Merging>,
        metrics: Metrics,
    ) -> Self {
        let features_channel = features.clone();
        let features = Grpc::new(GrpcClientLayer::new(FEATURE_SERVICE).layer(ReadAheadLayer.layer(features)));
        let models = Grpc::new(GrpcClientLayer::new(MODEL_SERVICE).layer(ReadAheadLayer.layer(models)));
        // One breaker and one retry budget per dependency, shared by its RPCs.
        let feature_guard = ResilienceLayer::new(FEATURE_SERVICE, resilience, metrics.clone());
        let model_guard = ResilienceLayer::new(MODEL_SERVICE, resilience, metrics.clone());
        let online_features = rpc!(
            feature_guard,
            features,
            "features.v1.FeatureService",
            "GetOnlineFeatures"
        );
        let predict = rpc!(model_guard, models, "models.v1.ModelService", "Predict");
        let predict_many = rpc!(model_guard, models, "models.v1.ModelService", "PredictMany");
        let merged = merging.map(|merging| Merged {
            online_features: Arc::new(Merger::new(
                online_features.clone(),
                FEATURE_SERVICE,
                merging,
                metrics.clone(),
            )),
            predict: Arc::new(Merger::new(
                predict.clone(),
                MODEL_SERVICE,
                merging,
                metrics.clone(),
            )),
            predict_many: Arc::new(Merger::new(
                predict_many.clone(),
                MODEL_SERVICE,
                merging,
                metrics.clone(),
            )),
        });
        Self {
            online_features,
            predict,
            predict_many,
            model_metadata: rpc!(model_guard, models, "models.v1.ModelService", "GetModelMetadata"),
            catalog: Arc::new(Catalog::new(catalog_ttl)),
            metrics,
            merged,
            features: features_channel,
        }
    }

    /// The feature-service's `grpc.health.v1` status, asked on the channel predictions use: the
    /// connection this opens is the one the first requests find. No span and no resilience: it is not a
    /// request's call.
    pub async fn features_health(&self, deadline: Deadline) -> Result<ServingStatus, Error> {
        let mut health = HealthClient::new(self.features.clone());
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: proto::features::v1::feature_service_server::SERVICE_NAME.to_owned(),
        });
        request.set_timeout(deadline.remaining());
        match tokio::time::timeout(deadline.remaining(), health.check(request)).await {
            Ok(Ok(answer)) => {
                Ok(ServingStatus::try_from(answer.into_inner().status).unwrap_or(ServingStatus::Unknown))
            }
            Ok(Err(status)) => Err(Error::downstream(FEATURE_SERVICE, status, &deadline)),
            Err(_) => Err(Error::DeadlineExceeded(FEATURE_SERVICE)),
        }
    }

    pub async fn online_features(
        &self,
        message: FeatureFetch,
        deadline: Deadline,
    ) -> Result<OnlineFeatures, Error> {
        if let Some(merged) = &self.merged {
            return merged.online_features.call(message, deadline).await;
        }
        self.online_features
            .clone()
            .oneshot(Call::new(message, deadline))
            .await
    }

    pub async fn predict(
        &self,
        message: PredictRequest,
        deadline: Deadline,
    ) -> Result<PredictResponse, Error> {
        if let Some(merged) = &self.merged {
            return merged.predict.call(message, deadline).await;
        }
        self.predict.clone().oneshot(Call::new(message, deadline)).await
    }

    /// Several models' rows in one call (a quote's risk and surge, an experiment's arms).
    pub async fn predict_many(
        &self,
        message: PredictManyRequest,
        deadline: Deadline,
    ) -> Result<PredictManyResponse, Error> {
        if let Some(merged) = &self.merged {
            return merged.predict_many.call(message, deadline).await;
        }
        self.predict_many
            .clone()
            .oneshot(Call::new(message, deadline))
            .await
    }

    /// The model's inputs, from the catalog while fresh, else asked of the model-service by one request
    /// at a time per model ([`Catalog::get_or_fetch`]). A stale entry is served while another request
    /// refreshes it, and still served if the model-service cannot be reached, so a metadata refresh never
    /// fails a request that could otherwise be answered.
    pub async fn model_spec(&self, model: &ModelRef, deadline: Deadline) -> Result<Arc<ModelSpec>, Error> {
        // Built and sent only if this request is the one to fetch.
        let fetch = async {
            let message = GetModelMetadataRequest {
                model: model.name.clone(),
                version: model.version.clone(),
            };
            let call = Call::new(message, deadline);
            self.model_metadata
                .clone()
                .oneshot(call)
                .await
                .map(ModelSpec::from)
        };
        let lookup = self.catalog.get_or_fetch(model, deadline, fetch).await;
        // A stale entry served while another request refreshes it is a hit: nothing was asked for it.
        let counter = match lookup {
            Ok(Lookup::Cached(_)) => &CACHE_MODEL_METADATA_HIT,
            _ => &CACHE_MODEL_METADATA_MISS,
        };
        self.metrics.incr(counter, &[]);
        match lookup? {
            Lookup::Cached(spec) | Lookup::Fetched(spec) => Ok(spec),
            Lookup::Stale { spec, error } => {
                tracing::warn!(model = %model.name, %error, "model metadata refresh failed; using cached");
                Ok(spec)
            }
        }
    }
}
