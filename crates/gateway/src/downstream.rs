//! Calls to the feature-service and the model-service, each bounded by what remains of the request's
//! budget, and the model catalog (what each model takes as input), cached from the model-service.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use proto::features::v1::feature_service_client::FeatureServiceClient;
use proto::features::v1::{GetOnlineFeaturesRequest, GetOnlineFeaturesResponse};
use proto::models::v1::model_service_client::ModelServiceClient;
use proto::models::v1::{GetModelMetadataRequest, PredictRequest, PredictResponse};
use telemetry::Metrics;
use telemetry::catalog::{CACHE_MODEL_METADATA_HIT, CACHE_MODEL_METADATA_MISS};
use telemetry::grpc::{GrpcClient, GrpcClientLayer};
use tonic::transport::{Channel, Endpoint};
use tower::Layer;

use crate::error::Error;

pub const FEATURE_SERVICE: &str = "feature-service";
pub const MODEL_SERVICE: &str = "model-service";

/// When a request must be answered by. Every downstream call gets what remains, both as the gRPC
/// `grpc-timeout` it sends (so the callee stops working for a caller that has gone) and as a local timer.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Runs `call` with the remaining budget, mapping an exhausted budget and downstream errors.
    pub async fn call<T, F>(
        &self,
        service: &'static str,
        call: impl FnOnce(Duration) -> F,
    ) -> Result<T, Error>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let remaining = self.remaining();
        if remaining.is_zero() {
            return Err(Error::DeadlineExceeded(service));
        }
        match tokio::time::timeout(remaining, call(remaining)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(Error::downstream(service, status)),
            Err(_) => Err(Error::DeadlineExceeded(service)),
        }
    }
}

/// A lazily connected channel: the gateway starts (and reports its own health) whatever the state of its
/// dependencies, and reconnects by itself when they come back.
pub fn channel(url: &str, connect_timeout: Duration) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// What the gateway needs to know of a model version to build its input rows.
#[derive(Debug)]
pub struct ModelSpec {
    pub model: String,
    pub version: String,
    /// Inputs fetched from the feature-service ("view:feature"), in the model's order.
    pub feature_refs: Vec<String>,
    /// Inputs the gateway derives from the request itself (e.g. "hour_of_day").
    pub request_inputs: Vec<String>,
}

/// A model as configured on the gateway: its name, pinned version (empty: the default version) and the
/// experiment arm its predictions are reported under.
#[derive(Debug, Clone)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
    pub variant: String,
    /// `name@version`, the model catalog's key, built once rather than on every request.
    catalog_key: String,
}

impl ModelRef {
    pub fn new(name: &str, version: &str, variant: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            variant: variant.to_owned(),
            catalog_key: format!("{name}@{version}"),
        }
    }
}

/// A model spec and when it was fetched.
type CachedSpec = (Instant, Arc<ModelSpec>);

/// A channel whose calls are traced as client spans and carry the trace context (W3C and Datadog).
type Traced = GrpcClient<Channel>;

#[derive(Clone)]
pub struct Downstream {
    features: FeatureServiceClient<Traced>,
    models: ModelServiceClient<Traced>,
    catalog: Arc<RwLock<HashMap<String, CachedSpec>>>,
    catalog_ttl: Duration,
    metrics: Metrics,
}

impl Downstream {
    pub fn new(features: Channel, models: Channel, catalog_ttl: Duration, metrics: Metrics) -> Self {
        Self {
            features: FeatureServiceClient::new(GrpcClientLayer::new(FEATURE_SERVICE).layer(features)),
            models: ModelServiceClient::new(GrpcClientLayer::new(MODEL_SERVICE).layer(models)),
            catalog: Arc::default(),
            catalog_ttl,
            metrics,
        }
    }

    pub async fn online_features(
        &self,
        message: GetOnlineFeaturesRequest,
        deadline: &Deadline,
    ) -> Result<GetOnlineFeaturesResponse, Error> {
        let mut client = self.features.clone();
        deadline
            .call(FEATURE_SERVICE, |t| async move {
                client.get_online_features(request(message, t)).await
            })
            .await
    }

    pub async fn predict(
        &self,
        message: PredictRequest,
        deadline: &Deadline,
    ) -> Result<PredictResponse, Error> {
        let mut client = self.models.clone();
        deadline
            .call(MODEL_SERVICE, |t| async move {
                client.predict(request(message, t)).await
            })
            .await
    }

    /// The model's inputs, from the cache while fresh, else asked of the model-service. A stale entry is
    /// still served if the model-service cannot be reached, so a metadata refresh never fails a request
    /// that could otherwise be answered.
    pub async fn model_spec(&self, model: &ModelRef, deadline: &Deadline) -> Result<Arc<ModelSpec>, Error> {
        let cached = self.read_catalog(&model.catalog_key);
        if let Some((fetched, spec)) = &cached
            && fetched.elapsed() < self.catalog_ttl
        {
            self.metrics.incr(&CACHE_MODEL_METADATA_HIT, &[]);
            return Ok(spec.clone());
        }
        self.metrics.incr(&CACHE_MODEL_METADATA_MISS, &[]);
        let mut client = self.models.clone();
        let message = GetModelMetadataRequest {
            model: model.name.clone(),
            version: model.version.clone(),
        };
        let fetched = deadline
            .call(MODEL_SERVICE, |t| async move {
                client.get_model_metadata(request(message, t)).await
            })
            .await;
        match (fetched, cached) {
            (Ok(metadata), _) => {
                let (feature_refs, request_inputs) = metadata
                    .inputs
                    .into_iter()
                    .map(|input| input.name)
                    .partition(|name| name.contains(':'));
                let spec = Arc::new(ModelSpec {
                    model: metadata.model,
                    version: metadata.version,
                    feature_refs,
                    request_inputs,
                });
                if let Ok(mut catalog) = self.catalog.write() {
                    catalog.insert(model.catalog_key.clone(), (Instant::now(), spec.clone()));
                }
                Ok(spec)
            }
            (Err(error), Some((_, spec))) => {
                tracing::warn!(model = %model.name, %error, "model metadata refresh failed; using cached");
                Ok(spec)
            }
            (Err(error), None) => Err(error),
        }
    }

    fn read_catalog(&self, key: &str) -> Option<CachedSpec> {
        self.catalog
            .read()
            .ok()
            .and_then(|catalog| catalog.get(key).cloned())
    }
}
