//! An OTLP trace intake that accepts every export and drops it: it stands in for the Datadog agent's
//! OTLP receiver in a benchmark, so the services' span path (batching, encoding, the gRPC export) runs
//! for real and the figures include it.
//!
//! Like the DogStatsD stand-in (a UDP socket that counts datagrams), it does as little as it can on the
//! cores it shares with what is measured: it decodes each request into messages that keep nothing but
//! the count of spans (`SpanCount`); prost skips every other field without allocating. Decoded whole,
//! every span's ids, names and attributes became allocations, and the stand-in alone cost about 6 µs of
//! CPU a quote at 64 callers, charged to telemetry in the benchmark's figures although the agent runs in
//! a process of its own.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::SERVICE_NAME;
use tokio::net::TcpListener;
// As the services accept: small answers are not held back waiting for the caller's ACK (Nagle).
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// The one method the sink answers, of the service `SERVICE_NAME`.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

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

/// Serves `sink` on `listener` until the future is dropped or the listener fails.
pub async fn serve(sink: Sink, listener: TcpListener) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(sink)
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await
}

impl tonic::server::NamedService for Sink {
    const NAME: &'static str = SERVICE_NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;

impl<B> tower::Service<http::Request<B>> for Sink
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            let status = Status::unimplemented(format!("{} is not served here", request.uri().path()));
            return Box::pin(ready(Ok(status.into_http())));
        }
        let export = Export(self.clone());
        Box::pin(async move {
            let codec = ProstCodec::<ExportTraceServiceResponse, SpanCount>::default();
            Ok(tonic::server::Grpc::new(codec).unary(export, request).await)
        })
    }
}

/// `TraceService/Export`: counts the request's spans, answers that all were taken.
struct Export(Sink);

impl tonic::server::UnaryService<SpanCount> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = Ready<Result<Response<Self::Response>, Status>>;

    fn call(&mut self, request: Request<SpanCount>) -> Self::Future {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        self.0.spans.fetch_add(spans as u64, Ordering::Relaxed);
        ready(Ok(Response::new(ExportTraceServiceResponse::default())))
    }
}

/// An `ExportTraceServiceRequest` read for its spans alone: the same field numbers as OTLP's messages
/// down to each span, which is read as a message with no fields (prost skips what a message does not
/// declare, and a `Vec` of a zero-sized type never allocates).
#[derive(Clone, PartialEq, prost::Message)]
struct SpanCount {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpanCount>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceSpanCount {
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpanCount>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeSpanCount {
    #[prost(message, repeated, tag = "2")]
    spans: Vec<Skipped>,
}

/// A span, unread.
#[derive(Clone, Copy, PartialEq, prost::Message)]
struct Skipped {}
