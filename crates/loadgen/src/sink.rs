//! An OTLP trace intake that accepts every export and drops it: it stands in for the Datadog agent's
//! OTLP receiver in a benchmark, so the services' span path (batching, encoding, the gRPC export) runs
//! for real and the figures include it.
//!
//! Like the DogStatsD stand-in (a UDP socket that counts datagrams), it does as little as it can on the
//! cores it shares with what is measured: it counts the spans in each request by walking the protobuf
//! fields down to them, without decoding the request into messages. Decoded whole, every span's ids,
//! names and attributes became allocations, and the stand-in alone cost about 6 µs of CPU a quote at 64
//! callers, charged to telemetry in the benchmark's figures although the agent runs in a process of its
//! own.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::encoding::{WireType, decode_key, decode_varint};
use tokio::net::TcpListener;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
// As the services accept: small answers are not held back waiting for the caller's ACK (Nagle).
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// The service the sink answers, and its one method.
const SERVICE: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
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
    const NAME: &'static str = SERVICE;
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
        Box::pin(async move { Ok(tonic::server::Grpc::new(RawRequest).unary(export, request).await) })
    }
}

/// `TraceService/Export`: counts the request's spans, answers that all were taken.
struct Export(Sink);

impl tonic::server::UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = Ready<Result<Response<Self::Response>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        ready(count_spans(request.into_inner()).map(|spans| {
            self.0.spans.fetch_add(spans, Ordering::Relaxed);
            Response::new(ExportTraceServiceResponse::default())
        }))
    }
}

/// The spans in an encoded `ExportTraceServiceRequest`: its `resource_spans` (field 1), their
/// `scope_spans` (field 2), and their `spans` (field 2), counted without decoding them.
fn count_spans(request: Bytes) -> Result<u64, Status> {
    let mut spans = 0;
    for resource_spans in fields(request, 1) {
        for scope_spans in fields(resource_spans?, 2) {
            for span in fields(scope_spans?, 2) {
                span?;
                spans += 1;
            }
        }
    }
    Ok(spans)
}

/// The bodies of the length-delimited fields numbered `tag` in the message `body`, skipping the rest.
fn fields(mut body: Bytes, tag: u32) -> impl Iterator<Item = Result<Bytes, Status>> {
    std::iter::from_fn(move || {
        while body.has_remaining() {
            match next_field(&mut body) {
                Ok((field, Some(value))) if field == tag => return Some(Ok(value)),
                Ok(_) => {}
                Err(error) => {
                    body.clear();
                    return Some(Err(Status::invalid_argument(format!(
                        "malformed OTLP request: {error}"
                    ))));
                }
            }
        }
        None
    })
}

/// The next field of `body`: its number, and its bytes if it is length-delimited.
fn next_field(body: &mut Bytes) -> Result<(u32, Option<Bytes>), String> {
    let (field, wire_type) = decode_key(body).map_err(|error| error.to_string())?;
    let len = match wire_type {
        WireType::Varint => {
            decode_varint(body).map_err(|error| error.to_string())?;
            return Ok((field, None));
        }
        WireType::SixtyFourBit => 8,
        WireType::ThirtyTwoBit => 4,
        WireType::LengthDelimited => {
            let len = decode_varint(body).map_err(|error| error.to_string())?;
            usize::try_from(len).map_err(|_| format!("field {field} of {len} bytes"))?
        }
        WireType::StartGroup | WireType::EndGroup => return Err(format!("field {field} is a group")),
    };
    if len > body.remaining() {
        return Err(format!(
            "field {field} of {len} bytes, in {} bytes left",
            body.remaining()
        ));
    }
    let value = body.split_to(len);
    Ok((field, (wire_type == WireType::LengthDelimited).then_some(value)))
}

/// Takes a request's bytes as they came; writes the answer with prost.
#[derive(Debug, Clone, Copy)]
struct RawRequest;

impl Codec for RawRequest {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for RawRequest {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        prost::Message::encode(&item, dst).map_err(|error| Status::internal(error.to_string()))
    }
}

impl Decoder for RawRequest {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
