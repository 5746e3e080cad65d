//! Concurrent requests' calls to a dependency merged into one call.
//!
//! A call costs far more than a row: on two cores a customer alone costs about 600 µs of CPU across the
//! services, and each customer added to the same call 20-50 µs (docs/benchmarks.md). So while
//! [`Merging::calls_in_flight`] calls of an RPC are in flight, the requests that arrive wait for one of
//! them to return; then the waiting requests that ask the same thing of the same models (the same feature
//! lists and entity keys, or the same model versions and arms) go as one call, their rows one after the
//! other, at most [`Merging::max_rows`] rows a call, and each takes its own rows of the answer. A request
//! that finds a call free goes at once, alone, exactly as without merging: one caller sees no difference.
//!
//! What a request sees is what it would have seen alone:
//! - its rows and only its rows, in its order (the answer is cut where its rows were put);
//! - its own deadline: it stops waiting when its budget is spent, and is not sent if it was spent while
//!   it waited (or if its caller went away);
//! - a rejection of the merged call (bad input, an answer of the wrong shape) is never shared: each
//!   request it carried is sent again alone, so one request's fault fails only that request. A dependency
//!   failure (unavailable, deadline, breaker open) is the same for every request and is shared.
//!
//! Traces: a request whose call was merged has a `downstream.merged_call` span, from when it began to
//! wait to its answer, tagged with the dependency and the number of requests the call carried. One
//! request's span, in a sampled trace if any is, is the parent of the call itself (its trace holds the
//! dependency's spans); every other request's span links to it. The link is one way: Datadog shows a
//! span's incoming links beside its own, so the carrier lists the requests it carried without each being
//! written twice (and without the SDK's cap on one span's links cutting a large call's list short).

use std::mem;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use opentelemetry::trace::{FutureExt as _, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use proto::feast::types::RepeatedValue;
use proto::features::v1::GetOnlineFeaturesRequest;
use proto::models::v1::{PredictManyRequest, PredictManyResponse, PredictRequest, PredictResponse};
use server_kit::Deadline;
use telemetry::catalog::DOWNSTREAM_MERGED_REQUESTS;
use telemetry::trace::spans;
use telemetry::{Metrics, Tag};
use tokio::sync::oneshot;
use tower::ServiceExt as _;

use super::answers::OnlineFeatures;
use super::fetch::FeatureFetch;
use super::{Call, Rpc, Shared};
use crate::error::Error;

/// How concurrent requests' calls are merged (`None` in [`super::Downstream::new`]: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merging {
    /// Calls of one RPC in flight at once before requests wait to be merged (at least 1).
    pub calls_in_flight: usize,
    /// The most entity rows (feature fetch) or rows per model (inference) one merged call carries. A
    /// request with more goes alone.
    pub max_rows: usize,
}

/// A request that can carry other requests' rows after its own.
pub trait Merge: Sized + Send + Sync + 'static {
    type Answer: Send + 'static;
    /// Where a request's rows are, to cut its part of the answer (or of the merged request) out again.
    type Shape: Send + 'static;

    /// Whether `other` asks the same of the same models, so that one call can carry both.
    fn joins(&self, other: &Self) -> bool;
    /// The most rows of any one part of the request (entity rows, or the rows of one model).
    fn rows(&self) -> usize;
    fn shape(&self) -> Self::Shape;
    /// Puts `other`'s rows after this request's own.
    fn absorb(&mut self, other: Self);
    /// The requests a merged request was made of, whose shapes are `shapes` in order.
    fn parts(&self, shapes: &[Self::Shape]) -> Vec<Self>;
    /// The answer to a merged request as the answers to the requests it was made of; an error if the
    /// answer does not hold the rows asked for.
    fn split(answer: Self::Answer, shapes: &[Self::Shape]) -> Result<Vec<Self::Answer>, String>;
}

/// A request waiting for a call, and where its answer goes.
struct Waiter<R: Merge> {
    request: R,
    deadline: Deadline,
    /// The request's trace context, and when it began to wait (its span's start).
    trace: Context,
    since: SystemTime,
    reply: oneshot::Sender<Result<R::Answer, Error>>,
}

struct State<R: Merge> {
    in_flight: usize,
    waiting: Vec<Waiter<R>>,
}

/// The merging of one RPC's calls.
pub struct Merger<R: Merge> {
    rpc: Rpc<R, R::Answer>,
    service: &'static str,
    merging: Merging,
    metrics: Metrics,
    state: Mutex<State<R>>,
}

impl<R: Merge> Merger<R> {
    pub fn new(rpc: Rpc<R, R::Answer>, service: &'static str, merging: Merging, metrics: Metrics) -> Self {
        Self {
            rpc,
            service,
            merging: Merging {
                calls_in_flight: merging.calls_in_flight.max(1),
                max_rows: merging.max_rows.max(1),
            },
            metrics,
            state: Mutex::new(State {
                in_flight: 0,
                waiting: Vec::new(),
            }),
        }
    }

    /// The answer to `request`, from a call of its own if one is free, else from a merged one.
    pub async fn call(self: &Arc<Self>, request: R, deadline: Deadline) -> Result<R::Answer, Error> {
        match self.turn(request, deadline) {
            Turn::Now(request, _slot) => {
                self.record(1);
                self.send(Shared::new(request), deadline).await
            }
            Turn::Wait(answer) => match tokio::time::timeout_at(deadline.tokio_instant(), answer).await {
                Ok(Ok(result)) => result,
                // Dropped unanswered: the runtime is shutting down.
                Ok(Err(_)) | Err(_) => Err(Error::DeadlineExceeded(self.service)),
            },
        }
    }

    /// Whether `request` goes now, alone, or waits to be merged (then a drain is started if a call is
    /// free).
    fn turn(self: &Arc<Self>, request: R, deadline: Deadline) -> Turn<R> {
        let mut state = self.lock();
        let free = state.in_flight < self.merging.calls_in_flight;
        if free && state.waiting.is_empty() {
            state.in_flight += 1;
            return Turn::Now(request, Slot(Arc::clone(self)));
        }
        let (reply, answer) = oneshot::channel();
        state.waiting.push(Waiter {
            request,
            deadline,
            trace: Context::current(),
            since: SystemTime::now(),
            reply,
        });
        if free {
            state.in_flight += 1;
            drop(state);
            Slot::spawn_drain(&tokio::runtime::Handle::current(), Arc::clone(self));
        }
        Turn::Wait(answer)
    }

    fn lock(&self) -> MutexGuard<'_, State<R>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, requests: usize) {
        #[allow(clippy::cast_precision_loss)]
        self.metrics.distribution(
            &DOWNSTREAM_MERGED_REQUESTS,
            requests as f64,
            &[Tag::dependency(self.service)],
        );
    }

    async fn send(&self, message: Shared<R>, deadline: Deadline) -> Result<R::Answer, Error> {
        self.rpc.clone().oneshot(Call { message, deadline }).await
    }

    /// The waiting requests still wanted, in groups that can each go as one call. A request whose
    /// caller went away is dropped; one whose budget is spent is answered so.
    fn group(&self, waiting: Vec<Waiter<R>>) -> Vec<Vec<Waiter<R>>> {
        let mut groups: Vec<(usize, Vec<Waiter<R>>)> = Vec::new();
        for waiter in waiting {
            if waiter.reply.is_closed() {
                continue;
            }
            if waiter.deadline.is_spent() {
                let _ = waiter.reply.send(Err(Error::DeadlineExceeded(self.service)));
                continue;
            }
            let rows = waiter.request.rows();
            let fits = groups.iter_mut().find(|(total, group)| {
                total + rows <= self.merging.max_rows && group[0].request.joins(&waiter.request)
            });
            match fits {
                Some((total, group)) => {
                    *total += rows;
                    group.push(waiter);
                }
                None => groups.push((rows, vec![waiter])),
            }
        }
        groups.into_iter().map(|(_, group)| group).collect()
    }

    /// One call for `group`'s requests, each answered with its part of the answer. The call is made in
    /// the trace of the first request whose trace is sampled (kept), so that the dependency's spans are
    /// kept whenever a request they served is.
    async fn send_group(&self, mut group: Vec<Waiter<R>>) {
        self.record(group.len());
        if let Some(sampled) = group
            .iter()
            .position(|waiter| waiter.trace.span().span_context().is_sampled())
        {
            group.swap(0, sampled);
        }
        let mut waiters = group.into_iter();
        let Some(first) = waiters.next() else { return };
        let others: Vec<Waiter<R>> = waiters.collect();
        if others.is_empty() {
            let answer = self
                .send(Shared::new(first.request), first.deadline)
                .with_context(first.trace)
                .await;
            let _ = first.reply.send(answer);
            return;
        }
        let requests = others.len() + 1;
        let carrier = spans::merged_call_span(&first.trace, self.service, requests, first.since);
        let mut spans = Vec::with_capacity(requests);
        let mut replies = Vec::with_capacity(requests);
        let mut shapes = Vec::with_capacity(requests);
        let mut deadlines = Vec::with_capacity(requests);
        let mut request = first.request;
        shapes.push(request.shape());
        replies.push(first.reply);
        deadlines.push(first.deadline);
        for waiter in others {
            let span = spans::merged_call_span(&waiter.trace, self.service, requests, waiter.since);
            span.span()
                .add_link(carrier.span().span_context().clone(), Vec::new());
            spans.push(span);
            shapes.push(waiter.request.shape());
            replies.push(waiter.reply);
            deadlines.push(waiter.deadline);
            request.absorb(waiter.request);
        }
        spans.insert(0, carrier);
        // The longest budget: each request still stops waiting at its own.
        let deadline = deadlines.iter().copied().max().unwrap_or(first.deadline);
        let merged = Shared::new(request);
        let answer = self
            .send(merged.clone(), deadline)
            .with_context(spans[0].clone())
            .await;
        let outcome = match answer {
            Ok(answer) => R::split(answer, &shapes).map_err(|reason| Error::BadResponse {
                service: self.service,
                reason,
            }),
            Err(error) => Err(error),
        };
        match outcome {
            Ok(parts) => {
                for (reply, part) in replies.into_iter().zip(parts) {
                    let _ = reply.send(Ok(part));
                }
            }
            Err(error) if error.is_dependency_failure() => {
                for span in &spans {
                    spans::record_error(span, error.kind(), error.to_string());
                }
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
            // Refused, or answered in a shape that cannot be cut: one request's fault must not be every
            // request's, so each goes again alone, under its own span.
            Err(error) => {
                let requests = merged.parts(&shapes).into_iter().zip(deadlines);
                let alone = requests
                    .zip(replies)
                    .zip(&spans)
                    .map(|(((request, deadline), reply), span)| {
                        span.span().add_event(
                            "sent again alone",
                            vec![KeyValue::new("error.message", error.to_string())],
                        );
                        let call = self
                            .send(Shared::new(request), deadline)
                            .with_context(span.clone());
                        async move {
                            let _ = reply.send(call.await);
                        }
                    });
                futures::future::join_all(alone).await;
            }
        }
        for span in &spans {
            spans::end(span);
        }
    }
}

/// What a request does on arrival.
enum Turn<R: Merge> {
    /// A call is free and none waits: the request goes at once, alone, holding the slot.
    Now(R, Slot<R>),
    /// The request waits for its part of a merged call's answer.
    Wait(oneshot::Receiver<Result<R::Answer, Error>>),
}

/// A place among an RPC's calls in flight. Dropped (its call ended, or the caller went away), it sends
/// what waits in a drain of its own, or frees the place.
struct Slot<R: Merge>(Arc<Merger<R>>);

impl<R: Merge> Slot<R> {
    /// A drain of `merger`'s waiting requests on `runtime`, in a place among the calls in flight already
    /// counted. The slot is made when the drain first runs: a drain dropped unrun (the runtime shutting
    /// down) has no slot to give back, so its drop cannot start another.
    fn spawn_drain(runtime: &tokio::runtime::Handle, merger: Arc<Merger<R>>) {
        runtime.spawn(async move { Slot(merger).drain().await });
    }

    /// Sends what waits, merged, until nothing does.
    async fn drain(self) {
        loop {
            let waiting = mem::take(&mut self.0.lock().waiting);
            if waiting.is_empty() {
                // Dropping the slot looks again, under the lock.
                return;
            }
            let groups = self.0.group(waiting);
            futures::future::join_all(groups.into_iter().map(|group| self.0.send_group(group))).await;
        }
    }
}

impl<R: Merge> Drop for Slot<R> {
    fn drop(&mut self) {
        let merger = &self.0;
        let mut state = merger.lock();
        if !state.waiting.is_empty()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            drop(state);
            // This slot's place passes to the new drain.
            Slot::spawn_drain(&runtime, Arc::clone(merger));
            return;
        }
        state.in_flight -= 1;
    }
}

/// The feature fetch: requests for the same features of entities with the same join keys carry their
/// entity rows one after the other.
impl Merge for FeatureFetch {
    type Answer = OnlineFeatures;
    type Shape = usize;

    fn joins(&self, other: &Self) -> bool {
        // The models' own lists, shared by every request for them: compared by address.
        self.features.len() == other.features.len()
            && self
                .features
                .iter()
                .zip(&other.features)
                .all(|(a, b)| Arc::ptr_eq(a, b))
            && self.rest.features == other.rest.features
            && self.rest.entities.len() == other.rest.entities.len()
            && self
                .rest
                .entities
                .keys()
                .all(|key| other.rest.entities.contains_key(key))
    }

    fn rows(&self) -> usize {
        self.rest
            .entities
            .values()
            .map(|column| column.val.len())
            .max()
            .unwrap_or(0)
    }

    fn shape(&self) -> usize {
        self.rows()
    }

    fn absorb(&mut self, other: Self) {
        for (key, column) in other.rest.entities {
            if let Some(mine) = self.rest.entities.get_mut(&key) {
                mine.val.extend(column.val);
            }
        }
    }

    fn parts(&self, shapes: &[usize]) -> Vec<Self> {
        ranges(shapes.iter().copied())
            .map(|range| {
                let entities = self
                    .rest
                    .entities
                    .iter()
                    .map(|(key, column)| {
                        let val = column.val.get(range.clone()).unwrap_or_default().to_vec();
                        (key.clone(), RepeatedValue { val })
                    })
                    .collect();
                FeatureFetch {
                    features: self.features.clone(),
                    rest: GetOnlineFeaturesRequest {
                        features: self.rest.features.clone(),
                        entities,
                    },
                }
            })
            .collect()
    }

    fn split(answer: OnlineFeatures, shapes: &[usize]) -> Result<Vec<OnlineFeatures>, String> {
        answer.into_parts(shapes)
    }
}

/// The consecutive ranges of requests of `rows` rows each, put one after the other.
fn ranges(rows: impl IntoIterator<Item = usize>) -> impl Iterator<Item = Range<usize>> {
    rows.into_iter().scan(0, |start, rows| {
        *start += rows;
        Some(*start - rows..*start)
    })
}

/// Whether two requests score the same model version and arm.
fn same_model(a: &PredictRequest, b: &PredictRequest) -> bool {
    a.model == b.model && a.version == b.version && a.variant == b.variant
}

/// A model request's rows `range`, as a request of its own.
fn rows_of(request: &PredictRequest, range: Range<usize>) -> PredictRequest {
    PredictRequest {
        model: request.model.clone(),
        version: request.version.clone(),
        variant: request.variant.clone(),
        rows: request.rows.get(range).unwrap_or_default().to_vec(),
    }
}

/// One model's answer to requests of `rows` rows each, put one after the other, as each request's
/// answer; an error if it does not hold one prediction a row.
fn cut(
    mut response: PredictResponse,
    rows: impl IntoIterator<Item = usize> + Clone,
) -> Result<Vec<PredictResponse>, String> {
    let total: usize = rows.clone().into_iter().sum();
    if response.predictions.len() != total {
        return Err(format!(
            "{} predictions for {total} rows of {}",
            response.predictions.len(),
            response.model
        ));
    }
    let mut predictions = mem::take(&mut response.predictions).into_iter();
    Ok(rows
        .into_iter()
        .map(|rows| PredictResponse {
            model: response.model.clone(),
            version: response.version.clone(),
            predictions: predictions.by_ref().take(rows).collect(),
        })
        .collect())
}

/// Model `model`'s rows in each request of `shapes`.
fn model_rows(shapes: &[Vec<usize>], model: usize) -> impl Iterator<Item = usize> + Clone + '_ {
    shapes
        .iter()
        .map(move |shape| shape.get(model).copied().unwrap_or(0))
}

/// One model's rows: requests for the same version and arm carry their rows one after the other.
impl Merge for PredictRequest {
    type Answer = PredictResponse;
    type Shape = usize;

    fn joins(&self, other: &Self) -> bool {
        same_model(self, other)
    }

    fn rows(&self) -> usize {
        self.rows.len()
    }

    fn shape(&self) -> usize {
        self.rows.len()
    }

    fn absorb(&mut self, other: Self) {
        self.rows.extend(other.rows);
    }

    fn parts(&self, shapes: &[usize]) -> Vec<Self> {
        ranges(shapes.iter().copied())
            .map(|range| rows_of(self, range))
            .collect()
    }

    fn split(answer: PredictResponse, shapes: &[usize]) -> Result<Vec<PredictResponse>, String> {
        cut(answer, shapes.iter().copied())
    }
}

/// Several models' rows (a quote's risk and surge): requests for the same versions and arms, in the
/// same order, carry each model's rows one after the other.
impl Merge for PredictManyRequest {
    type Answer = PredictManyResponse;
    /// Each model's rows.
    type Shape = Vec<usize>;

    fn joins(&self, other: &Self) -> bool {
        self.requests.len() == other.requests.len()
            && self
                .requests
                .iter()
                .zip(&other.requests)
                .all(|(a, b)| same_model(a, b))
    }

    fn rows(&self) -> usize {
        self.requests.iter().map(|r| r.rows.len()).max().unwrap_or(0)
    }

    fn shape(&self) -> Vec<usize> {
        self.requests.iter().map(|r| r.rows.len()).collect()
    }

    fn absorb(&mut self, other: Self) {
        for (mine, theirs) in self.requests.iter_mut().zip(other.requests) {
            mine.rows.extend(theirs.rows);
        }
    }

    fn parts(&self, shapes: &[Vec<usize>]) -> Vec<Self> {
        let mut parts: Vec<Self> = shapes
            .iter()
            .map(|_| PredictManyRequest {
                requests: Vec::with_capacity(self.requests.len()),
            })
            .collect();
        for (model, request) in self.requests.iter().enumerate() {
            for (part, range) in parts.iter_mut().zip(ranges(model_rows(shapes, model))) {
                part.requests.push(rows_of(request, range));
            }
        }
        parts
    }

    fn split(answer: PredictManyResponse, shapes: &[Vec<usize>]) -> Result<Vec<PredictManyResponse>, String> {
        let models = shapes.first().map_or(0, Vec::len);
        if answer.responses.len() != models {
            return Err(format!(
                "{} answers for {models} requests",
                answer.responses.len()
            ));
        }
        let mut parts: Vec<PredictManyResponse> = shapes
            .iter()
            .map(|_| PredictManyResponse {
                responses: Vec::with_capacity(models),
            })
            .collect();
        for (model, response) in answer.responses.into_iter().enumerate() {
            for (part, cut) in parts.iter_mut().zip(cut(response, model_rows(shapes, model))?) {
                part.responses.push(cut);
            }
        }
        Ok(parts)
    }
}

#[cfg(test)]
mod tests;
