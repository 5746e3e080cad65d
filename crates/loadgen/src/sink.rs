//! An OTLP trace intake that accepts every export and drops it: it stands in for the Datadog agent's
//! OTLP receiver in a benchmark, so the services' span path (batching, encoding, the gRPC export) runs
//! for real and the figures include it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
// As the services accept: small answers are not held back waiting for the caller's ACK (Nagle).
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Counts the spans it drops.
#[derive(Debug, Clone, Default)]
pub struct Sink {
    spans: Arc<AtomicU64>,
}

impl Sink {
    pub fn spans(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serves `sink` on `listener` until the future is dropped or the listener fails.
pub async fn serve(sink: Sink, listener: TcpListener) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(sink))
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await
}
