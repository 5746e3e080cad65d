//! SIGTERM under load: the gateway turns NOT_SERVING at once, keeps answering through its drain delay,
//! then stops accepting; every call it accepted is answered, and it exits 0 within its grace period.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use system_tests::load::{Load, Outcome, Window};
use system_tests::processes::ProcessStack;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const DRAIN: Duration = Duration::from_millis(500);

#[tokio::test]
async fn sigterm_under_load_answers_every_accepted_call() {
    let stack = ProcessStack::start_each(
        &[],
        &[],
        &[],
        &[
            ("SHUTDOWN_DRAIN_DELAY_MS", DRAIN.as_millis().to_string()),
            ("SHUTDOWN_GRACE_MS", "5000".to_owned()),
        ],
    )
    .await;
    let load = Load::start(stack.gateway.channel(), 8, Duration::ZERO, 2000, 200);
    let warm = Instant::now();
    load.wait_for(warm, 300, Duration::from_secs(20)).await;

    let mut health = HealthClient::new(stack.gateway.channel());
    let sigterm = Instant::now();
    stack.gateway.signal_term();
    // Health turns NOT_SERVING at once, while calls are still answered (the drain delay).
    let not_serving = loop {
        let status = health
            .check(HealthCheckRequest::default())
            .await
            .map(|r| r.into_inner().status());
        if status.is_ok_and(|s| s == ServingStatus::NotServing) {
            break sigterm.elapsed();
        }
        assert!(
            sigterm.elapsed() < DRAIN,
            "health still SERVING {:?} after SIGTERM",
            sigterm.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let ProcessStack {
        gateway,
        features,
        models,
    } = stack;
    let (status, lines) = gateway.wait_exit().await;
    let exited = sigterm.elapsed();
    let samples = load.stop().await;

    let before = Window::of(samples.iter().filter(|s| s.started < sigterm));
    let draining = Window::of(
        samples
            .iter()
            .filter(|s| s.started >= sigterm && s.started < sigterm + DRAIN / 2),
    );
    let later = Window::of(samples.iter().filter(|s| s.started >= sigterm + DRAIN / 2));
    eprintln!("SIGTERM under load: NOT_SERVING after {not_serving:?}, exit after {exited:?} ({status})");
    eprintln!("  started before SIGTERM: {before}");
    eprintln!("  started while draining: {draining}");
    eprintln!("  started later:          {later}");

    assert!(status.success(), "gateway exited with {status}: {lines:?}");
    assert!(exited < DRAIN + Duration::from_secs(5), "{exited:?}");
    assert!(
        before.total > 0 && draining.total > 0,
        "load ran through the drain"
    );
    // Everything sent before SIGTERM or during the drain delay was accepted, and answered.
    assert_eq!(before.error_rate(), 0.0, "{before}");
    assert_eq!(draining.error_rate(), 0.0, "{draining}");
    // Every call the gateway accepted (it logs each one's x-request-id) was answered; the calls that
    // failed were refused before any work: the connection was closed, or the stream refused (GOAWAY).
    let accepted: HashSet<&str> = lines
        .iter()
        .filter_map(|line| line.split("\"request_id\":\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(
        accepted.len() >= before.total,
        "the gateway logged the calls it handled"
    );
    for sample in &samples {
        if let Outcome::Err(code, message) = &sample.outcome {
            assert!(
                !accepted.contains(sample.request_id.as_str()),
                "accepted but not answered: {} {code:?} {message}",
                sample.request_id
            );
            assert!(
                matches!(code, tonic::Code::Unavailable | tonic::Code::Cancelled),
                "{code:?} {message}"
            );
        }
    }
    let panics = lines.iter().filter(|l| l.contains("panicked")).count();
    assert_eq!(panics, 0, "{lines:?}");
    for process in [features, models] {
        let (status, _) = process.terminate().await;
        assert!(status.success());
    }
}
