//! A real tonic server on an ephemeral loopback port, served by `server_kit::Server`, whose one service
//! (a stand-in `models.v1.ModelService`) can hold calls open until the test lets them go.

#![allow(dead_code)] // Each test file uses a different part of this.

use std::net::SocketAddr;
use std::time::Duration;

use proto::models::v1::model_service_client::ModelServiceClient;
use proto::models::v1::model_service_server::{ModelService, ModelServiceServer};
use proto::models::v1::{
    GetModelMetadataRequest, GetModelMetadataResponse, PredictManyRequest, PredictManyResponse,
    PredictRequest, PredictResponse,
};
use server_kit::{Error, Health, Server, ServerArgs};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub const SERVICE_NAME: &str = "models.v1.ModelService";
/// Predict with this model waits until [`TestServer::release`]; any other model answers at once.
pub const HELD: &str = "held";

/// Calls to [`HELD`]: how many started, and whether they may finish.
#[derive(Clone)]
struct Gate {
    started: watch::Sender<usize>,
    open: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl ModelService for Gate {
    async fn predict(&self, request: Request<PredictRequest>) -> Result<Response<PredictResponse>, Status> {
        let model = request.into_inner().model;
        if model == HELD {
            self.started.send_modify(|n| *n += 1);
            let mut open = self.open.clone();
            open.wait_for(|open| *open)
                .await
                .map_err(|_| Status::aborted("test over"))?;
        }
        Ok(Response::new(PredictResponse {
            model,
            ..PredictResponse::default()
        }))
    }

    async fn get_model_metadata(
        &self,
        _request: Request<GetModelMetadataRequest>,
    ) -> Result<Response<GetModelMetadataResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn predict_many(
        &self,
        _request: Request<PredictManyRequest>,
    ) -> Result<Response<PredictManyResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub server: Server,
    started: watch::Receiver<usize>,
    open: watch::Sender<bool>,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<(), Error>>,
}

impl TestServer {
    /// Serves on 127.0.0.1:0 with `args`, reporting SERVING.
    pub async fn start(args: &ServerArgs, metrics: Metrics) -> Self {
        let server = Server::new(args, metrics).expect("server settings");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("local address");
        let (health, health_server) = Health::new(SERVICE_NAME).await;
        health.serving().await;
        let (started_tx, started) = watch::channel(0);
        let (open, open_rx) = watch::channel(false);
        let gate = Gate {
            started: started_tx,
            open: open_rx,
        };
        let router = server
            .builder()
            .add_service(health_server)
            .add_service(ModelServiceServer::new(gate).max_decoding_message_size(server.max_request_bytes()));
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = {
            let server = server.clone();
            tokio::spawn(async move {
                let stop = async {
                    let _ = stop.await;
                };
                server.serve(router, listener, stop, &health).await
            })
        };
        Self {
            addr,
            server,
            started,
            open,
            shutdown: Some(shutdown),
            task,
        }
    }

    /// A new plaintext connection.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    /// Starts a call to [`HELD`] on `channel` and returns once the server is running it.
    pub async fn hold(&self, channel: &Channel) -> JoinHandle<Result<Response<PredictResponse>, Status>> {
        let before = *self.started.borrow();
        let mut client = ModelServiceClient::new(channel.clone());
        let call = tokio::spawn(async move { client.predict(predict(HELD)).await });
        let mut started = self.started.clone();
        tokio::time::timeout(Duration::from_secs(5), started.wait_for(|n| *n > before))
            .await
            .expect("the held call reaches the handler")
            .expect("the server is running");
        call
    }

    /// Lets every held call finish.
    pub fn release(&self) {
        self.open.send_replace(true);
    }

    /// Triggers shutdown (as SIGTERM would).
    pub fn shut_down(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub fn predict(model: &str) -> PredictRequest {
    PredictRequest {
        model: model.to_owned(),
        ..PredictRequest::default()
    }
}

/// A quick Predict that the server answers at once.
pub async fn quick_call(channel: &Channel) -> Result<Response<PredictResponse>, Status> {
    ModelServiceClient::new(channel.clone())
        .predict(predict("quick"))
        .await
}

pub async fn health_check(channel: &Channel) -> Result<ServingStatus, Status> {
    let response = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: SERVICE_NAME.to_owned(),
        })
        .await?;
    Ok(response.into_inner().status())
}

/// Waits until health reports `want` (streamed by `Watch`, so no polling).
pub async fn wait_for_health(channel: &Channel, want: ServingStatus) {
    let mut updates = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: SERVICE_NAME.to_owned(),
        })
        .await
        .expect("health watch")
        .into_inner();
    let reached = async {
        while let Some(update) = updates.message().await.expect("health update") {
            if update.status() == want {
                return;
            }
        }
        panic!("the health stream ended before {want:?}");
    };
    tokio::time::timeout(Duration::from_secs(5), reached)
        .await
        .unwrap_or_else(|_| panic!("health never reported {want:?}"));
}
