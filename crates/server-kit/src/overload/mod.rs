//! Overload protection for a whole process: at most so many requests run at once, and the next one is
//! answered RESOURCE_EXHAUSTED at once rather than queued. The limit is `MAX_CONCURRENT_REQUESTS`, or,
//! for a server built with [`OverloadLayer::adaptive`], one that moves below it to keep the latency of the
//! calls served near its no-queue level ([`gradient`]), so that a spike costs only the excess.
//!
//! A queue in front of a saturated service only adds latency: every queued request waits for one that is
//! already late, and callers with deadlines time out anyway, after having held their connections and
//! memory. Refusing at once tells the caller to back off or try another replica while its deadline still
//! allows it. This is tower's `ConcurrencyLimit` + `LoadShed`, done as one non-blocking semaphore
//! `try_acquire` so that it can also answer the refusal itself:
//!
//! - tower's `ConcurrencyLimit` waits in `poll_ready` and `LoadShed` turns that into an `Overloaded`
//!   error. tonic 0.14 maps that error (in its `RecoverError` wrapper, through `Status::try_from_error`,
//!   a downcast it documents as unstable) to RESOURCE_EXHAUSTED "Too many active requests for the
//!   connection", which is wrong here (the limit is per process) and would not be counted.
//! - This layer answers a proper gRPC response itself: HTTP 200, trailers-only, `grpc-status: 8`,
//!   `grpc-message: server overloaded: N requests in flight; retry with backoff`, whatever layers sit
//!   outside it. Each refusal adds 1 to `grpc.server.shed`.
//!
//! A request holds its slot until its response body hands over its last frame (a gRPC answer's trailers) or
//! is dropped, so streaming responses count for as long as they stream, and a caller that sends its next
//! request the moment it has an answer never finds its own last call still counted. The limit in force is the
//! gauge `grpc.server.concurrency_limit`, sent from start and on every change. `grpc.health.v1.Health` calls
//! are neither limited nor counted: a saturated replica is busy, not unhealthy, and a failing probe would get
//! it restarted.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use telemetry::Metrics;
use telemetry::catalog::{GRPC_SERVER_CONCURRENCY_LIMIT, GRPC_SERVER_SHED};
use tower::{Layer, Service};

use gradient::Gradient;

mod gradient;

/// Requests to these gRPC services bypass the limit.
const EXEMPT_PREFIXES: &[&str] = &["/grpc.health.v1.Health/"];

/// Limits the requests in flight across every connection of a server; see the module docs.
#[derive(Clone)]
pub struct OverloadLayer {
    limit: Arc<Limit>,
}

struct Limit {
    in_flight: AtomicUsize,
    max: usize,
    /// Moves the limit below `max`; without it the limit is `max`.
    gradient: Option<Gradient>,
    metrics: Metrics,
}

impl Limit {
    fn current(&self) -> usize {
        self.gradient.as_ref().map_or(self.max, Gradient::limit)
    }

    /// A slot if one is free.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let in_flight = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        if in_flight > self.current() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if let Some(gradient) = &self.gradient {
            gradient.admitted(in_flight);
        }
        Some(Slot {
            limit: Arc::clone(self),
            admitted: Instant::now(),
            in_flight,
        })
    }
}

/// One admitted request's place in the limit, given back when dropped.
struct Slot {
    limit: Arc<Limit>,
    admitted: Instant,
    /// Requests in flight when this one was admitted, itself included.
    in_flight: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limit.in_flight.fetch_sub(1, Ordering::AcqRel);
        let Some(gradient) = &self.limit.gradient else {
            return;
        };
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.admitted);
        if let Some(limit) = gradient.finished(latency, self.in_flight, now) {
            self.limit
                .metrics
                .gauge(&GRPC_SERVER_CONCURRENCY_LIMIT, limit as f64, &[]);
            tracing::debug!(limit, "concurrency limit moved");
        }
    }
}

impl fmt::Debug for OverloadLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OverloadLayer")
            .field("max", &self.limit.max)
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl OverloadLayer {
    /// At most `max` requests at once (at least 1); refusals are counted on `metrics`.
    pub fn new(max: usize, metrics: Metrics) -> Self {
        Self::with(max, None, metrics)
    }

    /// At most as many requests at once as keep latency near its no-queue level or within `tolerated`,
    /// whichever is higher, and never more than `max` ([`gradient`]); refusals are counted on `metrics`.
    pub fn adaptive(max: usize, tolerated: Duration, metrics: Metrics) -> Self {
        let max = max.max(1);
        Self::with(max, Some(Gradient::new(max, tolerated)), metrics)
    }

    /// This layer's ceiling and metrics with an adaptive limit below the ceiling that tolerates
    /// `tolerated` of latency.
    #[must_use]
    pub fn to_adaptive(&self, tolerated: Duration) -> Self {
        Self::adaptive(self.limit.max, tolerated, self.limit.metrics.clone())
    }

    fn with(max: usize, gradient: Option<Gradient>, metrics: Metrics) -> Self {
        Self {
            limit: Arc::new(Limit {
                in_flight: AtomicUsize::new(0),
                max: max.max(1),
                gradient,
                metrics,
            }),
        }
    }

    /// Sends `grpc.server.concurrency_limit` with the limit in force; the server does as it starts
    /// serving, the adaptive limit on every change.
    pub fn report_limit(&self) {
        self.limit
            .metrics
            .gauge(&GRPC_SERVER_CONCURRENCY_LIMIT, self.limit() as f64, &[]);
    }

    /// Requests running now (health checks not counted).
    pub fn in_flight(&self) -> usize {
        self.limit.in_flight.load(Ordering::Acquire)
    }

    /// `MAX_CONCURRENT_REQUESTS`: the limit, or the most the adaptive limit may rise to.
    pub fn max(&self) -> usize {
        self.limit.max
    }

    /// The limit in force now.
    pub fn limit(&self) -> usize {
        self.limit.current()
    }

    pub fn is_adaptive(&self) -> bool {
        self.limit.gradient.is_some()
    }
}

impl<S> Layer<S> for OverloadLayer {
    type Service = OverloadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OverloadService {
            inner,
            limit: Arc::clone(&self.limit),
        }
    }
}

/// The service [`OverloadLayer`] wraps around the inner stack.
#[derive(Clone)]
pub struct OverloadService<S> {
    inner: S,
    limit: Arc<Limit>,
}

impl<S> fmt::Debug for OverloadService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OverloadService")
            .field("max", &self.limit.max)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for OverloadService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<OverloadBody<ResBody>>;
    type Error = S::Error;
    type Future = OverloadFuture<S::Future>;

    /// The inner stack's readiness (tonic's router is always ready). The limit is not checked here, as
    /// tower's `ConcurrencyLimit` would: waiting for readiness is the unbounded queue this layer avoids.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        if EXEMPT_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
            return OverloadFuture::running(self.inner.call(request), None);
        }
        match self.limit.admit() {
            Some(slot) => OverloadFuture::running(self.inner.call(request), Some(slot)),
            None => {
                let limit = self.limit.current();
                RequestShed { limit, path }.emit(&self.limit.metrics);
                OverloadFuture::Shed { limit }
            }
        }
    }
}

/// The refusal: a trailers-only gRPC response (HTTP 200, `content-type: application/grpc`,
/// `grpc-status: 8` and the message in the headers, empty body).
fn overloaded<B>(limit: usize) -> http::Response<OverloadBody<B>> {
    tonic::Status::resource_exhausted(format!(
        "server overloaded: {limit} requests in flight; retry with backoff"
    ))
    .into_http()
}

/// A request refused because the server was at its concurrency limit.
struct RequestShed<'a> {
    limit: usize,
    path: &'a str,
}

impl RequestShed<'_> {
    /// `grpc.server.shed` and a DEBUG line: under overload, one log line per refusal would add load
    /// where there is least room for it; the counter is what monitors watch.
    fn emit(&self, metrics: &Metrics) {
        metrics.incr(&GRPC_SERVER_SHED, &[]);
        tracing::debug!(
            limit = self.limit,
            path = self.path,
            "request shed: concurrency limit reached"
        );
    }
}

pin_project! {
    /// The response future of [`OverloadService`].
    #[project = OverloadFutureProj]
    pub enum OverloadFuture<F> {
        Running {
            #[pin]
            future: F,
            slot: Option<Slot>,
        },
        Shed {
            limit: usize,
        },
    }
}

impl<F> OverloadFuture<F> {
    fn running(future: F, slot: Option<Slot>) -> Self {
        Self::Running { future, slot }
    }
}

impl<F> fmt::Debug for OverloadFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self {
            Self::Running { .. } => "Running",
            Self::Shed { .. } => "Shed",
        };
        f.debug_tuple("OverloadFuture").field(&state).finish()
    }
}

impl<F, B, E> Future for OverloadFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<OverloadBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            OverloadFutureProj::Running { future, slot } => {
                let response = std::task::ready!(future.poll(cx))?;
                // The slot moves into the body: a request is in flight until its response is sent.
                let slot = slot.take();
                Poll::Ready(Ok(response.map(|body| OverloadBody::Inner { body, slot })))
            }
            OverloadFutureProj::Shed { limit } => Poll::Ready(Ok(overloaded(*limit))),
        }
    }
}

pin_project! {
    /// The response body of [`OverloadService`]: the inner one holding its request's slot, or the empty
    /// body of a refusal.
    #[project = OverloadBodyProj]
    pub enum OverloadBody<B> {
        Inner {
            #[pin]
            body: B,
            slot: Option<Slot>,
        },
        Empty,
    }
}

// By hand: the derive would require `B: Default`.
#[allow(clippy::derivable_impls)]
impl<B> Default for OverloadBody<B> {
    fn default() -> Self {
        Self::Empty
    }
}

impl<B> fmt::Debug for OverloadBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self {
            Self::Inner { .. } => "Inner",
            Self::Empty => "Empty",
        };
        f.debug_tuple("OverloadBody").field(&state).finish()
    }
}

impl<B: Body> Body for OverloadBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project() {
            OverloadBodyProj::Inner { mut body, slot } => {
                let frame = std::task::ready!(body.as_mut().poll_frame(cx));
                // The response's last frame (a gRPC answer's trailers) frees the slot as it is handed
                // over, before the caller can see the answer end: a caller that sends its next request
                // the moment it has one finds the slot free. Waiting for hyper to poll again or to drop
                // us let such a caller be refused with the server at its limit by its own last call.
                let finished = match &frame {
                    None => true,
                    Some(Ok(frame)) => frame.is_trailers() || body.is_end_stream(),
                    Some(Err(_)) => false,
                };
                if finished {
                    slot.take();
                }
                Poll::Ready(frame)
            }
            OverloadBodyProj::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Inner { body, .. } => body.is_end_stream(),
            Self::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Inner { body, .. } => body.size_hint(),
            Self::Empty => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt as _;

    use super::*;

    /// A stand-in for the router: answers 200 with a body that is not finished until it is read.
    fn router()
    -> impl Service<http::Request<()>, Response = http::Response<String>, Error = Infallible> + Clone {
        tower::service_fn(|_request: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(String::from("reply")))
        })
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(format!("http://localhost{path}"))
            .body(())
            .expect("a request")
    }

    #[tokio::test]
    async fn the_refusal_is_a_trailers_only_grpc_response_with_code_8() {
        let layer = OverloadLayer::new(1, Metrics::disabled());
        let mut service = layer.layer(router());
        let first = service
            .ready()
            .await
            .expect("ready")
            .call(request("/models.v1.ModelService/Predict"))
            .await
            .expect("first answered");
        assert_eq!(layer.in_flight(), 1, "the unfinished body holds the slot");

        let refused = service
            .clone()
            .oneshot(request("/models.v1.ModelService/Predict"))
            .await
            .expect("refusal answered");
        assert_eq!(refused.status(), http::StatusCode::OK);
        let headers = refused.headers();
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["grpc-status"], "8");
        let message = headers["grpc-message"].to_str().expect("ascii");
        assert_eq!(
            message,
            "server overloaded: 1 requests in flight; retry with backoff".replace(' ', "%20")
        );
        assert!(refused.body().is_end_stream());

        // Health checks pass through and are not counted.
        let health = service
            .clone()
            .oneshot(request("/grpc.health.v1.Health/Check"))
            .await
            .expect("health answered");
        assert!(health.headers().get("grpc-status").is_none());
        assert_eq!(layer.in_flight(), 1);

        drop(first);
        assert_eq!(layer.in_flight(), 0);
        let next = service
            .oneshot(request("/models.v1.ModelService/Predict"))
            .await
            .expect("answered");
        assert!(next.headers().get("grpc-status").is_none(), "taken again");
    }

    type Frames = futures::stream::Iter<std::vec::IntoIter<Result<Frame<bytes::Bytes>, Infallible>>>;

    /// A gRPC answer as tonic sends one: its message, then its trailers.
    fn grpc_answer() -> http_body_util::StreamBody<Frames> {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        http_body_util::StreamBody::new(futures::stream::iter(vec![
            Ok(Frame::data(bytes::Bytes::from_static(b"answer"))),
            Ok(Frame::trailers(trailers)),
        ]))
    }

    #[tokio::test]
    async fn the_slot_is_free_once_the_trailers_are_handed_over() {
        use http_body_util::BodyExt as _;

        let layer = OverloadLayer::new(1, Metrics::disabled());
        let service = layer.layer(tower::service_fn(|_request: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(grpc_answer()))
        }));
        let mut body = service
            .clone()
            .oneshot(request("/models.v1.ModelService/Predict"))
            .await
            .expect("answered")
            .into_body();
        let message = body.frame().await.expect("a frame").expect("data");
        assert!(message.is_data());
        assert_eq!(
            layer.in_flight(),
            1,
            "the message alone does not finish the answer"
        );
        let trailers = body.frame().await.expect("a frame").expect("trailers");
        assert!(trailers.is_trailers());
        // The caller may have the whole answer now and send its next request at once: it is let in
        // although the body has been neither polled to its end nor dropped.
        assert_eq!(layer.in_flight(), 0, "the trailers free the slot");
        let next = service
            .oneshot(request("/models.v1.ModelService/Predict"))
            .await
            .expect("answered");
        assert!(
            next.headers().get("grpc-status").is_none(),
            "admitted, not refused"
        );
        drop(body);
    }
}
