//! A bare `InferenceService` with no work behind it: every RPC answers at once (after a set delay, and
//! a stall on demand) with an empty answer. `loadgen bare` serves it as the reference a load run is
//! read against, in the same session: what one gRPC hop costs with this load generator on this machine.
//! The load generator's own tests use it as a server of known latency. Chained ([`Bare::chained`]), its
//! QuotePrice first calls another bare service in a [`Shape`]: a request path with no work in it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use proto::inference::v1::inference_service_client::InferenceServiceClient;
use proto::inference::v1::inference_service_server::{InferenceService, InferenceServiceServer};
use proto::inference::v1::{
    BatchPredictCustomerRiskRequest, BatchPredictCustomerRiskResponse, BatchPredictDemandSurgeRequest,
    BatchPredictDemandSurgeResponse, PredictCustomerRiskRequest, PredictCustomerRiskResponse,
    PredictDemandSurgeRequest, PredictDemandSurgeResponse, QuotePriceRequest, QuotePriceResponse,
    RecordLabelRequest, RecordLabelResponse, RecordOutcomeRequest, RecordOutcomeResponse,
};
use tokio::net::TcpListener;
// As the services accept: small answers are not held back waiting for the caller's ACK (Nagle).
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// The bare service; clones share their stall.
#[derive(Debug, Clone, Default)]
pub struct Bare {
    /// How long every call takes (none: answered at once).
    delay: Duration,
    /// Calls wait until then (a stall) before their delay.
    stalled_until: Arc<Mutex<Option<Instant>>>,
    /// A chain: the bare service QuotePrice calls first, and in which shape.
    downstream: Option<(InferenceServiceClient<Channel>, Shape)>,
    /// Calls answered, by every clone.
    answered: Arc<std::sync::atomic::AtomicU64>,
}

/// The calls a chained QuotePrice makes downstream before it answers: the shapes of a request path with
/// no work in it, the floor a real path of the same shape is read against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// Two calls one after the other (a feature fetch, then a model call).
    Two,
    /// Two such pairs at once (features then model, for two models concurrently): four calls.
    Four,
}

impl Bare {
    /// A service whose every call takes `delay`.
    pub fn with_delay(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    /// A service whose QuotePrice first calls `downstream`'s, in `shape`, then answers.
    pub fn chained(downstream: Channel, shape: Shape) -> Self {
        Self {
            downstream: Some((InferenceServiceClient::new(downstream), shape)),
            ..Self::default()
        }
    }

    /// Calls this service (and its clones) answered.
    pub fn answered(&self) -> u64 {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Holds every call, those waiting and those to come, until `stall` from now.
    pub fn stall(&self, stall: Duration) {
        *self.stalled_until.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + stall);
    }

    /// Serves on `listener` until the future is dropped or the listener fails.
    pub async fn serve(self, listener: TcpListener) -> Result<(), tonic::transport::Error> {
        tonic::transport::Server::builder()
            .add_service(InferenceServiceServer::new(self))
            .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
            .await
    }

    /// The stall, then the delay; then `answer`.
    async fn answer<T>(&self, answer: T) -> Result<Response<T>, Status> {
        let stalled_until = *self.stalled_until.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(until) = stalled_until {
            tokio::time::sleep_until(until).await;
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Response::new(answer))
    }
}

#[tonic::async_trait]
impl InferenceService for Bare {
    async fn quote_price(
        &self,
        _: Request<QuotePriceRequest>,
    ) -> Result<Response<QuotePriceResponse>, Status> {
        if let Some((client, shape)) = &self.downstream {
            let pair = || {
                let mut client = client.clone();
                async move {
                    client.quote_price(QuotePriceRequest::default()).await?;
                    client.quote_price(QuotePriceRequest::default()).await
                }
            };
            match shape {
                Shape::Two => {
                    pair().await?;
                }
                Shape::Four => {
                    tokio::try_join!(pair(), pair())?;
                }
            }
        }
        self.answer(QuotePriceResponse::default()).await
    }

    async fn predict_customer_risk(
        &self,
        _: Request<PredictCustomerRiskRequest>,
    ) -> Result<Response<PredictCustomerRiskResponse>, Status> {
        self.answer(PredictCustomerRiskResponse::default()).await
    }

    async fn predict_demand_surge(
        &self,
        _: Request<PredictDemandSurgeRequest>,
    ) -> Result<Response<PredictDemandSurgeResponse>, Status> {
        self.answer(PredictDemandSurgeResponse::default()).await
    }

    async fn record_outcome(
        &self,
        _: Request<RecordOutcomeRequest>,
    ) -> Result<Response<RecordOutcomeResponse>, Status> {
        self.answer(RecordOutcomeResponse::default()).await
    }

    async fn record_label(
        &self,
        _: Request<RecordLabelRequest>,
    ) -> Result<Response<RecordLabelResponse>, Status> {
        self.answer(RecordLabelResponse::default()).await
    }

    async fn batch_predict_customer_risk(
        &self,
        _: Request<BatchPredictCustomerRiskRequest>,
    ) -> Result<Response<BatchPredictCustomerRiskResponse>, Status> {
        self.answer(BatchPredictCustomerRiskResponse::default()).await
    }

    async fn batch_predict_demand_surge(
        &self,
        _: Request<BatchPredictDemandSurgeRequest>,
    ) -> Result<Response<BatchPredictDemandSurgeResponse>, Status> {
        self.answer(BatchPredictDemandSurgeResponse::default()).await
    }
}
