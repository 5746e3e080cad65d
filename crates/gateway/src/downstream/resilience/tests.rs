use std::sync::atomic::AtomicU32;

use tonic::Code;

use super::*;
use crate::downstream::MODEL_SERVICE;

fn layer(failures: u32, open_ms: u64, retry_ratio: f32) -> ResilienceLayer {
    let resilience = Resilience {
        breaker_failures: failures,
        breaker_open: Duration::from_millis(open_ms),
        retry_ratio,
    };
    ResilienceLayer::new(MODEL_SERVICE, resilience, Metrics::default())
}

/// One call through `layer` to a dependency that answers `answer`, counting the attempts in `calls`.
async fn attempt(
    layer: &ResilienceLayer,
    calls: &Arc<AtomicU32>,
    answer: Result<(), Code>,
    budget: Duration,
) -> Result<(), Error> {
    let calls = calls.clone();
    let service = layer.layer(tower::service_fn(move |_: tonic::Request<()>| {
        calls.fetch_add(1, Ordering::Relaxed);
        async move {
            answer
                .map(tonic::Response::new)
                .map_err(|code| Status::new(code, "test"))
        }
    }));
    let call = Call {
        message: (),
        deadline: Deadline::after(budget),
    };
    service.oneshot(call).await
}

async fn answered(
    layer: &ResilienceLayer,
    calls: &Arc<AtomicU32>,
    answer: Result<(), Code>,
) -> Result<(), Error> {
    attempt(layer, calls, answer, Duration::from_millis(200)).await
}

/// A call to a dependency that never answers.
async fn hanging(layer: &ResilienceLayer, budget: Duration) -> Result<(), Error> {
    let service = layer.layer(tower::service_fn(|_: tonic::Request<()>| {
        std::future::pending::<Result<tonic::Response<()>, Status>>()
    }));
    let call = Call {
        message: (),
        deadline: Deadline::after(budget),
    };
    service.oneshot(call).await
}

#[tokio::test]
async fn the_breaker_opens_after_consecutive_failures_fails_fast_and_closes_on_a_good_probe() {
    let layer = layer(3, 100, 0.0);
    let calls = Arc::new(AtomicU32::new(0));
    for _ in 0..3 {
        let error = answered(&layer, &calls, Err(Code::Internal)).await.unwrap_err();
        assert!(matches!(error, Error::Downstream { .. }), "{error}");
    }
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    let error = answered(&layer, &calls, Ok(())).await.unwrap_err();
    assert!(matches!(error, Error::CircuitOpen(MODEL_SERVICE)), "{error}");
    assert_eq!(
        Status::from(error).code(),
        Code::Unavailable,
        "an open breaker answers UNAVAILABLE"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 3, "refused without calling");
    // The first wait is jittered between half and all of 100 ms.
    tokio::time::sleep(Duration::from_millis(120)).await;
    answered(&layer, &calls, Ok(())).await.expect("probe succeeds");
    answered(&layer, &calls, Ok(())).await.expect("closed again");
    assert_eq!(calls.load(Ordering::Relaxed), 5);
}

#[tokio::test]
async fn a_half_open_breaker_lets_one_probe_through_at_a_time() {
    let layer = layer(1, 20, 0.0);
    let calls = Arc::new(AtomicU32::new(0));
    answered(&layer, &calls, Err(Code::Internal)).await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(30)).await;
    // The probe hangs (a dependency that stopped answering); meanwhile everyone else fails fast.
    let hung = layer.clone();
    let probe = tokio::spawn(async move { hanging(&hung, Duration::from_millis(300)).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..5 {
        let error = answered(&layer, &calls, Ok(())).await.unwrap_err();
        assert!(matches!(error, Error::CircuitOpen(_)), "{error}");
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        1,
        "only the probe reached the dependency"
    );
    let error = probe.await.expect("probe task").unwrap_err();
    assert!(matches!(error, Error::DeadlineExceeded(_)), "{error}");
    // The failed probe reopened the breaker; once open time passes, a good probe closes it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    answered(&layer, &calls, Ok(())).await.expect("probe succeeds");
    answered(&layer, &calls, Ok(())).await.expect("closed");
}

#[tokio::test]
async fn rejections_show_the_dependency_is_up() {
    let layer = layer(2, 10_000, 0.0);
    let calls = Arc::new(AtomicU32::new(0));
    for _ in 0..10 {
        let error = answered(&layer, &calls, Err(Code::InvalidArgument))
            .await
            .unwrap_err();
        assert!(!matches!(error, Error::CircuitOpen(_)));
    }
    assert_eq!(calls.load(Ordering::Relaxed), 10);
}

#[tokio::test]
async fn a_dependency_shedding_load_does_not_open_its_breaker() {
    let layer = layer(2, 10_000, 0.0);
    let calls = Arc::new(AtomicU32::new(0));
    for _ in 0..10 {
        let error = answered(&layer, &calls, Err(Code::ResourceExhausted))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Downstream { .. }), "{error}");
        assert_eq!(
            Status::from(error).code(),
            Code::ResourceExhausted,
            "passed on to the caller"
        );
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        10,
        "every call reached the dependency"
    );
    // It still opens for a dependency that fails.
    for _ in 0..2 {
        let _ = answered(&layer, &calls, Err(Code::Internal)).await;
    }
    let error = answered(&layer, &calls, Ok(())).await.unwrap_err();
    assert!(matches!(error, Error::CircuitOpen(_)), "{error}");
}

#[tokio::test]
async fn a_connection_lost_mid_call_is_the_outage_it_is() {
    // hyper ends a call whose connection closes before the answer (a dependency that crashed mid-call)
    // as CANCELLED: an unreachable dependency, retried and counted, not the caller's deadline.
    let layer = layer(2, 60_000, 1000.0);
    let calls = Arc::new(AtomicU32::new(0));
    let error = answered(&layer, &calls, Err(Code::Cancelled)).await.unwrap_err();
    assert!(error.is_unreachable(), "{error}");
    assert_eq!(Status::from(&error).code(), Code::Unavailable, "{error}");
    assert_eq!(calls.load(Ordering::Relaxed), 2, "retried once");
    let error = answered(&layer, &calls, Ok(())).await.unwrap_err();
    assert!(
        matches!(error, Error::CircuitOpen(_)),
        "both attempts counted: {error}"
    );
}

#[tokio::test]
async fn a_call_cancelled_by_its_own_grpc_timeout_is_the_deadline() {
    // tonic ends a call whose grpc-timeout passed as CANCELLED "Timeout expired": with the deadline
    // spent, that is DEADLINE_EXCEEDED, not a lost connection.
    let deadline = Deadline::after(Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let error = Error::downstream(MODEL_SERVICE, Status::cancelled("Timeout expired"), &deadline);
    assert!(matches!(error, Error::DeadlineExceeded(_)), "{error}");
    let live = Deadline::after(Duration::from_secs(10));
    let error = Error::downstream(MODEL_SERVICE, Status::cancelled("connection closed"), &live);
    assert!(error.is_unreachable(), "{error}");
}

#[tokio::test]
async fn unreachable_calls_are_retried_only_within_the_budget() {
    // A breaker that never opens here, so only the budget limits retries.
    let layer = layer(u32::MAX, 10, 0.1);
    let calls = Arc::new(AtomicU32::new(0));
    let requests = 200;
    for _ in 0..requests {
        let _ = answered(&layer, &calls, Err(Code::Unavailable)).await;
    }
    let retries = calls.load(Ordering::Relaxed) - requests;
    // 10% of the calls plus the floor of 3 a second over the 10 s window.
    assert!(retries > 0, "some retries happen");
    assert!(
        retries <= requests / 10 + 30,
        "{retries} retries for {requests} calls"
    );
}

#[tokio::test]
async fn timeouts_of_a_dependency_answering_other_calls_do_not_open_the_breaker() {
    // Overload: some calls wait out their deadline while the dependency keeps answering the rest.
    let layer = layer(3, 60_000, 0.0);
    let calls = Arc::new(AtomicU32::new(0));
    let waiting: Vec<_> = (0..6)
        .map(|_| {
            let layer = layer.clone();
            tokio::spawn(async move { hanging(&layer, Duration::from_millis(50)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    answered(&layer, &calls, Ok(()))
        .await
        .expect("answered meanwhile");
    for timed_out in waiting {
        let error = timed_out.await.expect("task").unwrap_err();
        assert!(matches!(error, Error::DeadlineExceeded(_)), "{error}");
    }
    answered(&layer, &calls, Ok(()))
        .await
        .expect("six timeouts of a busy dependency left the breaker closed");
    // A dependency that answers nothing while calls wait: those timeouts are the outage they look like.
    // (Three noticed on time open it; on a busy machine a timer fired late is not held against it, so
    // allow for some.)
    let mut opened = false;
    for _ in 0..30 {
        if let Err(Error::CircuitOpen(_)) = hanging(&layer, Duration::from_millis(20)).await {
            opened = true;
            break;
        }
    }
    assert!(opened, "timeouts of a silent dependency never opened its breaker");
}

#[tokio::test]
async fn timeouts_the_gateway_noticed_late_do_not_open_the_breaker() {
    // A gateway short of CPU reads its timers (and the answers waiting) late: its own overload, not the
    // dependency's failure.
    let layer = layer(1, 60_000, 0.0);
    let starved = layer.clone();
    let call = tokio::spawn(async move { hanging(&starved, Duration::from_millis(20)).await });
    tokio::task::yield_now().await;
    // The test runtime has one thread: blocking it starves the call's timer.
    std::thread::sleep(Duration::from_millis(60));
    let error = call.await.expect("task").unwrap_err();
    assert!(matches!(error, Error::DeadlineExceeded(_)), "{error}");
    let calls = Arc::new(AtomicU32::new(0));
    answered(&layer, &calls, Ok(()))
        .await
        .expect("a late-noticed timeout left the breaker closed");
    // The same timeout noticed on time opens it (one failure opens this breaker; on a busy machine
    // another timer may fire late too, so allow for some).
    let mut opened = false;
    for _ in 0..30 {
        if let Err(Error::CircuitOpen(_)) = hanging(&layer, Duration::from_millis(20)).await {
            opened = true;
            break;
        }
    }
    assert!(opened, "a timeout noticed on time never opened the breaker");
}

#[tokio::test]
async fn timeouts_of_calls_given_almost_no_time_do_not_open_the_breaker() {
    let layer = layer(2, 10_000, 0.0);
    for _ in 0..5 {
        let error = hanging(&layer, Duration::from_millis(2)).await.unwrap_err();
        assert!(matches!(error, Error::DeadlineExceeded(_)), "{error}");
    }
    // Given time, the same timeouts count.
    for _ in 0..2 {
        let _ = hanging(&layer, Duration::from_millis(20)).await;
    }
    let calls = Arc::new(AtomicU32::new(0));
    let error = attempt(&layer, &calls, Ok(()), Duration::from_millis(20))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::CircuitOpen(_)), "{error}");
}

#[tokio::test]
async fn a_spent_deadline_is_not_called() {
    let layer = layer(5, 100, 0.1);
    let calls = Arc::new(AtomicU32::new(0));
    let error = attempt(&layer, &calls, Ok(()), Duration::ZERO).await.unwrap_err();
    assert!(matches!(error, Error::DeadlineExceeded(MODEL_SERVICE)));
    assert_eq!(calls.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn each_attempt_sends_what_is_left_of_the_deadline_as_its_grpc_timeout() {
    let layer = layer(5, 100, 0.1);
    let seen = Arc::new(std::sync::Mutex::new(None));
    let service = layer.layer(tower::service_fn({
        let seen = seen.clone();
        move |request: tonic::Request<()>| {
            let header = request.metadata().get("grpc-timeout").cloned();
            *seen.lock().expect("lock") = header;
            async { Ok::<_, Status>(tonic::Response::new(())) }
        }
    }));
    let call = Call {
        message: (),
        deadline: Deadline::after(Duration::from_millis(80)),
    };
    service.oneshot(call).await.expect("answered");
    let header = seen
        .lock()
        .expect("lock")
        .clone()
        .expect("a grpc-timeout was sent");
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert("grpc-timeout", header);
    let sent = Deadline::from_grpc_timeout(&metadata)
        .expect("parses")
        .remaining();
    assert!(
        sent <= Duration::from_millis(80) && sent > Duration::from_millis(40),
        "{sent:?}"
    );
}
