//! Tower layers that trace gRPC calls, for tonic servers and channels.
//!
//! Server: [`GrpcServerLayer`] extracts the caller's context (W3C or Datadog headers), starts a server
//! span for `/pkg.Service/Method`, runs the handler with that context current (so client calls and
//! log lines made by the handler join the trace), and ends the span with the gRPC status, read from
//! the response headers (trailers-only responses, i.e. most errors) or from the trailers.
//! ```ignore
//! Server::builder()
//!     .layer(telemetry::grpc::GrpcServerLayer::new()
//!         .with_api_metrics(&["PredictCustomerRisk", "PredictDemandSurge", "QuotePrice", "RecordOutcome"]))
//!     .add_service(...)
//! ```
//! Client: [`GrpcClientLayer`] starts a client span under the current context and injects both
//! header formats.
//! ```ignore
//! let channel = tower::ServiceBuilder::new()
//!     .layer(telemetry::grpc::GrpcClientLayer::new("feature-service"))
//!     .service(Endpoint::from_shared(url)?.connect_lazy());
//! let client = FeatureServiceClient::new(channel);
//! ```

mod call;

use std::{
    sync::Arc,
    task::{Context as TaskContext, Poll},
};

use opentelemetry::{Context, context::FutureExt as _};
use tower::{Layer, Service};

use self::call::{ApiMetrics, RpcCall};
pub use self::call::{TracedBody, TracedFuture};
use crate::{
    Metrics,
    trace::{
        propagation::{extract_context, inject_context},
        spans::{self, RpcSide, split_grpc_path},
    },
};

/// Services not traced by default: probes and reflection would drown the request traces.
const UNTRACED_SERVICES: &[&str] = &[
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Server-side tracing (and optionally the public API's RED metrics) for a tonic server.
#[derive(Debug, Clone)]
pub struct GrpcServerLayer {
    config: Arc<ServerConfig>,
}

#[derive(Debug, Default)]
struct ServerConfig {
    /// The public API's methods, each with the models it runs (its `model` tag).
    api_methods: Vec<(&'static str, Option<Arc<str>>)>,
    metrics: Option<Metrics>,
    trace_all: bool,
}

impl Default for GrpcServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl GrpcServerLayer {
    pub fn new() -> Self {
        Self {
            config: Arc::new(ServerConfig::default()),
        }
    }

    /// Also records `api.predict.requests`, `api.predict.latency_ms` and `api.predict.errors` for
    /// these method names (the public API); other methods get spans only.
    pub fn with_api_metrics(self, methods: &[&'static str]) -> Self {
        self.map(|c| c.api_methods = methods.iter().map(|m| (*m, None)).collect())
    }

    /// Tags `api.predict.requests` for `method` (one of [`Self::with_api_metrics`]'s) with the models it
    /// runs, as the design record's `model:crai` example does: one `model` tag, the names joined by `/`
    /// when the RPC runs several (a DogStatsD aggregate carries one value per tag key).
    pub fn with_api_models(self, method: &str, models: &[&str]) -> Self {
        let model: Arc<str> = Arc::from(models.join("/"));
        self.map(|c| {
            for (name, tagged) in &mut c.api_methods {
                if *name == method {
                    *tagged = Some(model.clone());
                }
            }
        })
    }

    /// Sends those metrics to `metrics` instead of [`Metrics::global`] (tests).
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        self.map(|c| c.metrics = Some(metrics))
    }

    /// Traces health checks and reflection too (skipped by default).
    pub fn trace_all(self) -> Self {
        self.map(|c| c.trace_all = true)
    }

    fn map(self, f: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = ServerConfig {
            api_methods: self.config.api_methods.clone(),
            metrics: self.config.metrics.clone(),
            trace_all: self.config.trace_all,
        };
        f(&mut config);
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for GrpcServerLayer {
    type Service = GrpcServer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServer {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`GrpcServerLayer`] wraps around a tonic router.
#[derive(Debug, Clone)]
pub struct GrpcServer<S> {
    inner: S,
    config: Arc<ServerConfig>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcServer<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = TracedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let (service, method) = split_grpc_path(request.uri().path());
        if !self.config.trace_all && UNTRACED_SERVICES.contains(&service) {
            let future = self.inner.call(request).with_context(Context::current());
            return TracedFuture::new(future, None);
        }
        let parent = extract_context(request.headers());
        let cx = spans::server_span(&parent, service, method);
        let api = self
            .config
            .api_methods
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(rpc, model)| ApiMetrics {
                rpc,
                model: model.clone(),
                metrics: self
                    .config
                    .metrics
                    .clone()
                    .unwrap_or_else(|| Metrics::global().clone()),
            });
        let call = RpcCall::new(cx.clone(), RpcSide::Server, api);
        let future = {
            let _attached = cx.clone().attach();
            self.inner.call(request)
        };
        TracedFuture::new(future.with_context(cx), Some(call))
    }
}

/// Client-side tracing and context injection for a tonic `Channel`.
#[derive(Debug, Clone)]
pub struct GrpcClientLayer {
    peer_service: Arc<str>,
    server_address: Option<Arc<str>>,
}

impl GrpcClientLayer {
    /// `peer_service` names the callee in APM (`feature-service`, `model-service`).
    pub fn new(peer_service: impl Into<Arc<str>>) -> Self {
        Self {
            peer_service: peer_service.into(),
            server_address: None,
        }
    }

    /// The callee's host, recorded as `server.address`.
    pub fn with_server_address(mut self, address: impl Into<Arc<str>>) -> Self {
        self.server_address = Some(address.into());
        self
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClient<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClient {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`GrpcClientLayer`] wraps around a channel.
#[derive(Debug, Clone)]
pub struct GrpcClient<S> {
    inner: S,
    layer: GrpcClientLayer,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcClient<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = TracedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let (service, method) = split_grpc_path(request.uri().path());
        let address = self
            .layer
            .server_address
            .as_deref()
            .or_else(|| request.uri().host());
        let cx = spans::client_span(
            &Context::current(),
            service,
            method,
            &self.layer.peer_service,
            address,
        );
        inject_context(&cx, request.headers_mut());
        let call = RpcCall::new(cx.clone(), RpcSide::Client, None);
        let future = {
            let _attached = cx.clone().attach();
            self.inner.call(request)
        };
        TracedFuture::new(future.with_context(cx), Some(call))
    }
}
