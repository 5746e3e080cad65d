//! The merger against a model RPC of its own: it answers each row with the row's first value, refuses
//! a call holding a negative value, and can be held until released.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::trace::{SpanContext, TraceFlags, TraceId, TraceState};
use proto::models::v1::{FeatureRow, Prediction};
use tokio::sync::Semaphore;
use tonic::{Code, Status};
use tower::util::BoxCloneSyncService;

use super::*;
use crate::downstream::fetch::tests::ids;

/// What the RPC saw, and the gate it waits at.
#[derive(Default)]
struct Seen {
    /// Each call's rows (first values), in call order.
    calls: Mutex<Vec<Vec<f64>>>,
    /// The trace each call was made in.
    traces: Mutex<Vec<TraceId>>,
    /// Calls started and not yet answered.
    open: AtomicUsize,
}

struct Rig {
    merger: Arc<Merger<PredictRequest>>,
    seen: Arc<Seen>,
    gate: Arc<Semaphore>,
}

/// A merger over the test RPC; calls wait at the gate until [`Rig::release`].
fn rig(calls_in_flight: usize, max_rows: usize, fail: Option<Code>) -> Rig {
    let seen = Arc::new(Seen::default());
    let gate = Arc::new(Semaphore::new(0));
    let (rpc_seen, rpc_gate) = (Arc::clone(&seen), Arc::clone(&gate));
    let rpc = BoxCloneSyncService::new(tower::service_fn(move |call: Call<Shared<PredictRequest>>| {
        let (seen, gate) = (Arc::clone(&rpc_seen), Arc::clone(&rpc_gate));
        async move {
            let values: Vec<f64> = call.message.rows.iter().map(|row| row.values[0]).collect();
            seen.calls.lock().unwrap().push(values.clone());
            seen.traces
                .lock()
                .unwrap()
                .push(Context::current().span().span_context().trace_id());
            seen.open.fetch_add(1, Ordering::SeqCst);
            gate.acquire().await.expect("gate open").forget();
            seen.open.fetch_sub(1, Ordering::SeqCst);
            if let Some(code) = fail {
                return Err(Error::Downstream {
                    service: "model-service",
                    status: Status::new(code, "down"),
                });
            }
            if values.iter().any(|v| *v < 0.0) {
                return Err(Error::Downstream {
                    service: "model-service",
                    status: Status::invalid_argument("a negative value"),
                });
            }
            Ok(PredictResponse {
                model: call.message.model.clone(),
                version: "1".into(),
                predictions: values
                    .iter()
                    .map(|v| Prediction {
                        outputs: [("echo".to_owned(), *v)].into(),
                        defaulted_inputs: Vec::new(),
                    })
                    .collect(),
            })
        }
    }));
    let merging = Merging {
        calls_in_flight,
        max_rows,
    };
    Rig {
        merger: Arc::new(Merger::new(rpc, "model-service", merging, Metrics::disabled())),
        seen,
        gate,
    }
}

fn request(model: &str, values: &[f64]) -> PredictRequest {
    PredictRequest {
        model: model.into(),
        version: "1".into(),
        variant: "control".into(),
        rows: values
            .iter()
            .map(|v| FeatureRow {
                features: Default::default(),
                values: vec![*v],
            })
            .collect(),
    }
}

fn echoed(answer: &PredictResponse) -> Vec<f64> {
    answer.predictions.iter().map(|p| p.outputs["echo"]).collect()
}

fn soon() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

impl Rig {
    /// A request sent from a task of its own.
    fn send(
        &self,
        model: &str,
        values: &[f64],
        deadline: Deadline,
    ) -> tokio::task::JoinHandle<Result<PredictResponse, Error>> {
        self.send_in(Context::new(), model, values, deadline)
    }

    /// A request sent from a task of its own, in the trace of `trace`.
    fn send_in(
        &self,
        trace: Context,
        model: &str,
        values: &[f64],
        deadline: Deadline,
    ) -> tokio::task::JoinHandle<Result<PredictResponse, Error>> {
        let (merger, request) = (Arc::clone(&self.merger), request(model, values));
        tokio::spawn(async move { merger.call(request, deadline).with_context(trace).await })
    }

    /// Waits until `n` calls are open at the gate.
    async fn open(&self, n: usize) {
        for _ in 0..500 {
            if self.seen.open.load(Ordering::SeqCst) == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("{n} calls never opened: {:?}", self.seen.calls.lock().unwrap());
    }

    /// Waits until `n` requests wait for a call.
    async fn waiting(&self, n: usize) {
        for _ in 0..500 {
            if self.merger.lock().waiting.len() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("{n} requests never waited");
    }

    fn release(&self, calls: usize) {
        self.gate.add_permits(calls);
    }

    fn calls(&self) -> Vec<Vec<f64>> {
        self.seen.calls.lock().unwrap().clone()
    }

    fn in_flight(&self) -> usize {
        self.merger.lock().in_flight
    }
}

#[tokio::test]
async fn a_request_that_finds_a_call_free_goes_alone_at_once() {
    let rig = rig(1, 64, None);
    rig.release(2);
    let first = rig.send("risk", &[1.0, 2.0], soon()).await.unwrap().unwrap();
    let second = rig.send("risk", &[3.0], soon()).await.unwrap().unwrap();
    assert_eq!((echoed(&first), echoed(&second)), (vec![1.0, 2.0], vec![3.0]));
    assert_eq!(rig.calls(), [vec![1.0, 2.0], vec![3.0]]);
    assert_eq!(rig.in_flight(), 0, "every slot given back");
}

#[tokio::test]
async fn requests_that_wait_go_as_one_call_and_each_gets_its_own_rows() {
    let rig = rig(1, 64, None);
    let first = rig.send("risk", &[1.0], soon());
    rig.open(1).await;
    let waiting: Vec<_> = [&[2.0, 3.0][..], &[4.0], &[5.0, 6.0, 7.0]]
        .into_iter()
        .map(|values| rig.send("risk", values, soon()))
        .collect();
    rig.waiting(3).await;
    rig.release(2);
    assert_eq!(echoed(&first.await.unwrap().unwrap()), [1.0]);
    let answers: Vec<Vec<f64>> = futures::future::join_all(waiting)
        .await
        .into_iter()
        .map(|answer| echoed(&answer.unwrap().unwrap()))
        .collect();
    assert_eq!(answers, [vec![2.0, 3.0], vec![4.0], vec![5.0, 6.0, 7.0]]);
    assert_eq!(rig.calls(), [vec![1.0], vec![2.0, 3.0, 4.0, 5.0, 6.0, 7.0]]);
    assert_eq!(rig.in_flight(), 0);
}

#[tokio::test]
async fn only_requests_for_the_same_model_and_within_the_row_cap_share_a_call() {
    let rig = rig(1, 3, None);
    let first = rig.send("risk", &[0.0], soon());
    rig.open(1).await;
    let risk_a = rig.send("risk", &[1.0, 2.0], soon());
    rig.waiting(1).await;
    let surge = rig.send("surge", &[10.0], soon());
    rig.waiting(2).await;
    let risk_b = rig.send("risk", &[3.0], soon());
    rig.waiting(3).await;
    // Past the cap of 3 rows with risk_a and risk_b: a call of its own.
    let risk_c = rig.send("risk", &[4.0], soon());
    rig.waiting(4).await;
    rig.release(4);
    first.await.unwrap().unwrap();
    assert_eq!(echoed(&risk_a.await.unwrap().unwrap()), [1.0, 2.0]);
    assert_eq!(echoed(&surge.await.unwrap().unwrap()), [10.0]);
    assert_eq!(echoed(&risk_b.await.unwrap().unwrap()), [3.0]);
    assert_eq!(echoed(&risk_c.await.unwrap().unwrap()), [4.0]);
    let mut calls = rig.calls();
    calls[1..].sort_by(|a, b| a[0].total_cmp(&b[0]));
    assert_eq!(calls, [vec![0.0], vec![1.0, 2.0, 3.0], vec![4.0], vec![10.0]]);
}

#[tokio::test]
async fn a_refused_merged_call_is_sent_again_alone_so_only_the_bad_request_fails() {
    let rig = rig(1, 64, None);
    let first = rig.send("risk", &[0.0], soon());
    rig.open(1).await;
    let good = rig.send("risk", &[1.0], soon());
    rig.waiting(1).await;
    let bad = rig.send("risk", &[-1.0], soon());
    rig.waiting(2).await;
    rig.release(4);
    first.await.unwrap().unwrap();
    assert_eq!(echoed(&good.await.unwrap().unwrap()), [1.0]);
    match bad.await.unwrap() {
        Err(Error::Downstream { status, .. }) => {
            assert_eq!(
                (status.code(), status.message()),
                (Code::InvalidArgument, "a negative value")
            );
        }
        other => panic!("the bad request must fail as it would alone: {other:?}"),
    }
    let mut again = rig.calls()[2..].to_vec();
    again.sort_by(|a, b| a[0].total_cmp(&b[0]));
    assert_eq!(rig.calls()[1], [1.0, -1.0]);
    assert_eq!(again, [vec![-1.0], vec![1.0]]);
}

#[tokio::test]
async fn a_dependency_failure_is_every_merged_requests_and_is_not_sent_again() {
    let rig = rig(1, 64, Some(Code::Unavailable));
    let first = rig.send("risk", &[0.0], soon());
    rig.open(1).await;
    let waiting: Vec<_> = (1..=3)
        .map(|v| rig.send("risk", &[f64::from(v)], soon()))
        .collect();
    rig.waiting(3).await;
    rig.release(2);
    assert!(first.await.unwrap().is_err());
    for answer in futures::future::join_all(waiting).await {
        match answer.unwrap() {
            Err(Error::Downstream { status, .. }) => assert_eq!(status.code(), Code::Unavailable),
            other => panic!("the dependency's failure: {other:?}"),
        }
    }
    assert_eq!(rig.calls().len(), 2, "one merged call, not sent again");
}

#[tokio::test]
async fn a_request_stops_waiting_at_its_deadline_and_is_not_sent_then() {
    let rig = rig(1, 64, None);
    let first = rig.send("risk", &[0.0], soon());
    rig.open(1).await;
    let short = rig.send("risk", &[1.0], Deadline::after(Duration::from_millis(20)));
    rig.waiting(1).await;
    let gone = rig.send("risk", &[2.0], soon());
    rig.waiting(2).await;
    gone.abort();
    let kept = rig.send("risk", &[3.0], soon());
    rig.waiting(3).await;
    match short.await.unwrap() {
        Err(Error::DeadlineExceeded(service)) => assert_eq!(service, "model-service"),
        other => panic!("a spent budget: {other:?}"),
    }
    rig.release(2);
    first.await.unwrap().unwrap();
    assert_eq!(echoed(&kept.await.unwrap().unwrap()), [3.0]);
    assert_eq!(
        rig.calls(),
        [vec![0.0], vec![3.0]],
        "neither the spent request nor the one whose caller went away is sent"
    );
    assert_eq!(rig.in_flight(), 0);
}

#[tokio::test]
async fn a_caller_that_goes_away_mid_call_gives_its_slot_to_those_waiting() {
    let rig = rig(1, 64, None);
    let first = rig.send("risk", &[0.0], soon());
    rig.open(1).await;
    let waiting = rig.send("risk", &[1.0], soon());
    rig.waiting(1).await;
    first.abort();
    rig.open(2).await;
    rig.release(1);
    // The aborted call's gate wait is dropped with it; the waiting request's call holds a permit.
    assert_eq!(echoed(&waiting.await.unwrap().unwrap()), [1.0]);
    assert_eq!(rig.calls(), [vec![0.0], vec![1.0]]);
    assert_eq!(rig.in_flight(), 0);
}

#[tokio::test]
async fn with_two_calls_in_flight_the_second_request_does_not_wait() {
    let rig = rig(2, 64, None);
    let first = rig.send("risk", &[0.0], soon());
    let second = rig.send("risk", &[1.0], soon());
    rig.open(2).await;
    let third = rig.send("risk", &[2.0], soon());
    rig.waiting(1).await;
    rig.release(3);
    for (answer, value) in [(first, 0.0), (second, 1.0), (third, 2.0)] {
        assert_eq!(echoed(&answer.await.unwrap().unwrap()), [value]);
    }
    assert_eq!(rig.calls().len(), 3);
}

#[test]
fn a_merged_quote_call_splits_per_model_and_per_request() {
    let quote = |risk: &[f64], surge: &[f64]| PredictManyRequest {
        requests: vec![request("risk", risk), request("surge", surge)],
    };
    let mut merged = quote(&[1.0], &[10.0]);
    let other = quote(&[2.0, 3.0], &[20.0]);
    assert!(merged.joins(&other));
    assert!(!merged.joins(&PredictManyRequest {
        requests: vec![request("surge", &[1.0]), request("risk", &[1.0])],
    }));
    let shapes = vec![merged.shape(), other.shape()];
    merged.absorb(other);
    assert_eq!(merged.rows(), 3);
    let parts = merged.parts(&shapes);
    assert_eq!(parts, [quote(&[1.0], &[10.0]), quote(&[2.0, 3.0], &[20.0])]);
    let answer = PredictManyResponse {
        responses: merged
            .requests
            .iter()
            .map(|r| PredictResponse {
                model: r.model.clone(),
                version: "1".into(),
                predictions: r
                    .rows
                    .iter()
                    .map(|row| Prediction {
                        outputs: [("echo".to_owned(), row.values[0])].into(),
                        defaulted_inputs: Vec::new(),
                    })
                    .collect(),
            })
            .collect(),
    };
    let split = PredictManyRequest::split(answer.clone(), &shapes).expect("the rows asked for");
    let echoes: Vec<Vec<Vec<f64>>> = split
        .iter()
        .map(|part| part.responses.iter().map(echoed).collect())
        .collect();
    assert_eq!(
        echoes,
        [vec![vec![1.0], vec![10.0]], vec![vec![2.0, 3.0], vec![20.0]]]
    );
    assert_eq!(split[1].responses[1].model, "surge");

    // One model's answer alone is cut the same way, and refused the same way.
    let risk_shapes = [1, 2];
    let risk = PredictRequest::split(answer.responses[0].clone(), &risk_shapes).expect("3 rows");
    assert_eq!(
        risk.iter().map(echoed).collect::<Vec<_>>(),
        [vec![1.0], vec![2.0, 3.0]]
    );
    assert_eq!(
        PredictRequest::split(answer.responses[0].clone(), &[1, 3]).expect_err("a row short"),
        "3 predictions for 4 rows of risk"
    );

    let mut short = answer;
    short.responses[0].predictions.pop();
    assert_eq!(
        PredictManyRequest::split(short, &shapes).expect_err("a row short"),
        "2 predictions for 3 rows of risk"
    );
}

#[test]
fn merged_feature_fetches_carry_their_entity_rows_in_order_and_part_again() {
    let risk: Arc<[String]> = Arc::from(["customer_profile:chargebacks_1y".to_owned()]);
    let fetch = |features: &Arc<[String]>, customers: &[&str]| FeatureFetch {
        features: vec![Arc::clone(features)],
        rest: GetOnlineFeaturesRequest {
            features: Vec::new(),
            entities: [("customer_id".to_owned(), ids(customers))].into(),
        },
    };
    let mut merged = fetch(&risk, &["c-1"]);
    let other = fetch(&risk, &["c-2", "c-3"]);
    assert!(merged.joins(&other));
    // The same names in a list of another model's: not the same request.
    let lookalike: Arc<[String]> = Arc::from(["customer_profile:chargebacks_1y".to_owned()]);
    assert!(!merged.joins(&fetch(&lookalike, &["c-4"])));
    let mut zone = fetch(&risk, &["z-1"]);
    zone.rest.entities = [(
        "zone_id".to_owned(),
        zone.rest.entities.remove("customer_id").unwrap(),
    )]
    .into();
    assert!(!merged.joins(&zone), "other join keys");

    let shapes = vec![merged.shape(), other.shape()];
    merged.absorb(other);
    assert_eq!(merged.rows(), 3);
    assert_eq!(merged, fetch(&risk, &["c-1", "c-2", "c-3"]));
    assert_eq!(
        merged.parts(&shapes),
        [fetch(&risk, &["c-1"]), fetch(&risk, &["c-2", "c-3"])]
    );
}

/// A caller's trace context, sampled (kept) or not.
fn caller(trace: u128, sampled: bool) -> Context {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let span = SpanContext::new(
        TraceId::from(trace),
        opentelemetry::trace::SpanId::from(7_u64),
        flags,
        true,
        TraceState::default(),
    );
    Context::new().with_remote_span_context(span)
}

#[tokio::test]
async fn a_merged_call_is_made_in_the_trace_of_a_sampled_request() {
    let rig = rig(1, 64, None);
    let first = rig.send_in(caller(1, true), "risk", &[0.0], soon());
    rig.open(1).await;
    let unsampled = rig.send_in(caller(2, false), "risk", &[1.0], soon());
    rig.waiting(1).await;
    let sampled = rig.send_in(caller(3, true), "risk", &[2.0], soon());
    rig.waiting(2).await;
    rig.release(2);
    first.await.unwrap().unwrap();
    assert_eq!(echoed(&unsampled.await.unwrap().unwrap()), [1.0]);
    assert_eq!(echoed(&sampled.await.unwrap().unwrap()), [2.0]);
    let traces = rig.seen.traces.lock().unwrap().clone();
    assert_eq!(traces, [TraceId::from(1_u128), TraceId::from(3_u128)]);
    // The carrier's rows go first; each request still gets its own.
    assert_eq!(rig.calls()[1], [2.0, 1.0]);
}
