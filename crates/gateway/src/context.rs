//! The request context layer: before a public RPC reaches its handler, it is given a request id (the
//! caller's `x-request-id`, else a new UUIDv7), a deadline (the gateway's budget or the caller's
//! `grpc-timeout`, whichever comes first, less the answering margin: see [`server_kit::Deadline`]) and a
//! log span, entered for as long as the call runs, so every line logged while handling it — its failure
//! included — carries `rpc`, `request_id` and, once validated, the `customer_id` / `zone_id` it is about.
//!
//! A handler takes its [`RequestContext`] from the request and hands its result to
//! [`RequestContext::answer`], the one place a failed request is logged and turned into its status.

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use opentelemetry::trace::TraceContextExt as _;
use server_kit::Deadline;
use tonic::{Request, Response, Status};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::instrument::Instrumented;

use crate::error::Error;

/// What every handler knows of the call it serves.
#[derive(Clone)]
pub struct RequestContext {
    pub rpc: &'static str,
    pub request_id: String,
    pub deadline: Deadline,
    started: Instant,
    span: tracing::Span,
}

impl RequestContext {
    /// The context the layer attached, and the message.
    pub fn take<T>(mut request: Request<T>) -> Result<(Self, T), Status> {
        let context = request
            .extensions_mut()
            .remove::<Self>()
            .ok_or_else(|| Status::internal("the request context layer is missing from the server stack"))?;
        Ok((context, request.into_inner()))
    }

    /// Adds the entity the request is about to its log span.
    pub fn about(&self, key: &'static str, id: &str) {
        self.span.record(key, id);
    }

    /// The experiment arm that answered, on the call's log lines and its server span (`variant`).
    pub fn variant(&self, variant: &str) {
        self.span.record("variant", variant);
        opentelemetry::Context::current()
            .span()
            .set_attribute(opentelemetry::KeyValue::new("variant", variant.to_owned()));
    }

    /// Time since the call began, for the `duration_ms` of its log lines (the latency facet).
    pub fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1e3
    }

    /// The handler's answer: a failure is logged (by whose fault it is) and mapped to its status.
    pub fn answer<T>(&self, result: Result<T, Error>) -> Result<Response<T>, Status> {
        result.map(Response::new).map_err(|error| {
            let _span = self.span.enter();
            server_kit::reject(error, self.started)
        })
    }
}

/// Gives each call of the listed RPCs its [`RequestContext`]; other services (health, reflection) pass.
#[derive(Clone)]
pub struct RequestContextLayer {
    budget: Duration,
    rpcs: &'static [&'static str],
}

impl RequestContextLayer {
    /// `budget`: the most any request may take; `rpcs`: the method names given a context.
    pub fn new(budget: Duration, rpcs: &'static [&'static str]) -> Self {
        Self { budget, rpcs }
    }
}

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContextService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestContextService<S> {
    inner: S,
    layer: RequestContextLayer,
}

/// The longest `x-request-id` taken from a caller; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

impl<S, B, ResB> Service<http::Request<B>> for RequestContextService<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Answered<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        let Some(rpc) = self.layer.rpcs.iter().copied().find(|rpc| *rpc == method) else {
            return Answered {
                inner: self.inner.call(request).instrument(tracing::Span::none()),
                request_id: None,
            };
        };
        let headers = request.headers();
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID_LEN)
            .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        let deadline = Deadline::for_headers(headers, Some(self.layer.budget))
            .unwrap_or_else(|| Deadline::after(self.layer.budget));
        let span = tracing::info_span!(
            "request",
            rpc,
            request_id = %request_id,
            customer_id = tracing::field::Empty,
            zone_id = tracing::field::Empty,
            variant = tracing::field::Empty,
        );
        let header = http::HeaderValue::from_str(&request_id).ok();
        request.extensions_mut().insert(RequestContext {
            rpc,
            request_id,
            deadline,
            started: Instant::now(),
            span: span.clone(),
        });
        Answered {
            inner: self.inner.call(request).instrument(span),
            request_id: header,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestContextService`]: the answer, error or not, carries its request
    /// id in the `x-request-id` response header, so a caller can quote it and find the call's log lines.
    pub struct Answered<F> {
        #[pin]
        inner: Instrumented<F>,
        request_id: Option<http::HeaderValue>,
    }
}

impl<F, ResB, E> Future for Answered<F>
where
    F: Future<Output = Result<http::Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut answer = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some(id)) = (&mut answer, this.request_id.take()) {
            response.headers_mut().insert("x-request-id", id);
        }
        Poll::Ready(answer)
    }
}
