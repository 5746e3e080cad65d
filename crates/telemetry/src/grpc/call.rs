//! One traced call ([`RpcCall`]) and the future and body wrappers that end its span with the gRPC
//! status: from the response headers for trailers-only responses (most errors), otherwise from the
//! trailers; as `cancelled` if the call is dropped before either.

use std::{
    pin::Pin,
    task::{Context as TaskContext, Poll, ready},
    time::Instant,
};

use http_body::{Body, Frame, SizeHint};
use opentelemetry::{Context, context::WithContext};
use pin_project_lite::pin_project;

use crate::{
    Metrics,
    catalog::{
        API_PREDICT_ERRORS, API_PREDICT_LATENCY_MS, API_PREDICT_REQUESTS, API_PREDICT_WITHIN_SLA,
        LATENCY_SLA_MS,
    },
    tags::{Tag, error_type_of, grpc_code_name},
    trace::spans::{self, RpcSide},
};

/// The trailer (or trailers-only header) that carries a response's gRPC status code.
const GRPC_STATUS: &str = "grpc-status";

/// Public API metrics for one call.
#[derive(Debug)]
pub(crate) struct ApiMetrics {
    pub(crate) rpc: &'static str,
    /// The `model` tag of `api.predict.requests`: the model the RPC runs, or its models joined by `/`.
    pub(crate) model: Option<std::sync::Arc<str>>,
    pub(crate) metrics: Metrics,
}

/// One traced call; ends its span exactly once (as `cancelled` if dropped before a status was seen).
#[derive(Debug)]
pub(crate) struct RpcCall {
    cx: Context,
    side: RpcSide,
    start: Instant,
    api: Option<ApiMetrics>,
    done: bool,
}

impl RpcCall {
    pub(crate) fn new(cx: Context, side: RpcSide, api: Option<ApiMetrics>) -> Self {
        Self {
            cx,
            side,
            start: Instant::now(),
            api,
            done: false,
        }
    }

    fn finish(mut self, code: tonic::Code, message: &str) {
        self.complete(code, message, grpc_code_name(code));
    }

    /// Ends with the status in `headers` (response headers or trailers); `None` if there is none.
    ///
    /// Reads `grpc-status` itself: tonic's `Status::from_header_map` copies every other header into
    /// the status's metadata, which no span or metric reads. Only a failure's message is decoded.
    fn finish_from(self, headers: &http::HeaderMap) -> Option<Self> {
        let Some(code) = headers.get(GRPC_STATUS) else {
            return Some(self);
        };
        let code = tonic::Code::from_bytes(code.as_bytes());
        let mut call = self;
        let error_type = error_type_of(headers, code);
        if code == tonic::Code::Ok {
            call.complete(code, "", error_type);
        } else {
            let status = tonic::Status::from_header_map(headers);
            let message = status.as_ref().map_or("", tonic::Status::message);
            call.complete(code, message, error_type);
        }
        None
    }

    fn complete(&mut self, code: tonic::Code, message: &str, error_type: &'static str) {
        if self.done {
            return;
        }
        self.done = true;
        spans::end_rpc(&self.cx, self.side, code, message);
        if let Some(api) = &self.api {
            let status = Tag::grpc_status(code);
            let rpc = Tag::rpc(api.rpc);
            let millis = spans::millis(self.start.elapsed());
            match &api.model {
                Some(model) => api
                    .metrics
                    .incr(&API_PREDICT_REQUESTS, &[rpc, status, Tag::model(model)]),
                None => api.metrics.incr(&API_PREDICT_REQUESTS, &[rpc, status]),
            }
            api.metrics
                .distribution(&API_PREDICT_LATENCY_MS, millis, &[rpc, status]);
            if code == tonic::Code::Ok {
                if millis <= LATENCY_SLA_MS {
                    api.metrics.incr(&API_PREDICT_WITHIN_SLA, &[rpc]);
                }
            } else {
                let error_type = Tag::error_type(error_type);
                api.metrics
                    .incr(&API_PREDICT_ERRORS, &[rpc, error_type, Tag::fault(code)]);
            }
        }
    }
}

impl Drop for RpcCall {
    fn drop(&mut self) {
        self.complete(
            tonic::Code::Cancelled,
            "call dropped before its status was known",
            grpc_code_name(tonic::Code::Cancelled),
        );
    }
}

pin_project! {
    /// Future of a traced call: polls the inner future under the call's context and ends the span when
    /// the response headers already carry the status.
    pub struct TracedFuture<F> {
        #[pin]
        inner: WithContext<F>,
        call: Option<RpcCall>,
    }
}

impl<F> TracedFuture<F> {
    pub(crate) fn new(inner: WithContext<F>, call: Option<RpcCall>) -> Self {
        Self { inner, call }
    }
}

impl<F, B, E> Future for TracedFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<TracedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let call = this.call.take();
        Poll::Ready(match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let call = call.and_then(|call| call.finish_from(&parts.headers));
                let call = match call {
                    Some(call) if parts.status != http::StatusCode::OK => {
                        call.finish(tonic::Code::Unknown, parts.status.as_str());
                        None
                    }
                    call => call,
                };
                Ok(http::Response::from_parts(
                    parts,
                    TracedBody { inner: body, call },
                ))
            }
            Err(error) => {
                if let Some(call) = call {
                    // Transport failure: tonic reports it to the caller as UNAVAILABLE.
                    call.finish(tonic::Code::Unavailable, "transport error");
                }
                Err(error)
            }
        })
    }
}

pin_project! {
    /// Response body of a traced call: ends the span at the trailers (normal responses).
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        call: Option<RpcCall>,
    }
}

impl<B> TracedBody<B> {
    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Body> Body for TracedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let _attached = this.call.as_ref().map(|call| call.cx.clone().attach());
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(call) = this.call.take()
                {
                    *this.call = call.finish_from(trailers);
                }
            }
            Some(Err(_)) => {
                if let Some(call) = this.call.take() {
                    call.finish(tonic::Code::Internal, "response body failed");
                }
            }
            None => {
                if let Some(call) = this.call.take() {
                    call.finish(tonic::Code::Unknown, "response ended without grpc-status");
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
