//! The inference timeout: large batches waiting for a blocking-pool slot are answered DEADLINE_EXCEEDED
//! at the inference timeout or just before the caller's deadline, whichever is first; small batches
//! run inline and are not bounded.

use std::time::{Duration, Instant};

use model_runtime::ModelRepository;
use proto::models::v1::FeatureRow;
use proto::models::v1::model_service_server::ModelService;
use tonic::Code;

use super::*;

fn models(timeout: Duration) -> Models {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
    let repository =
        ModelRepository::load(std::path::PathBuf::from(root)).expect("the bundled repository loads");
    Models::new(Arc::new(repository), 1000)
        .with_metrics(Metrics::disabled())
        .with_inference_timeout(timeout)
}

/// Takes every blocking-pool slot, as long-running batches would.
fn occupy(models: &Models) -> OwnedSemaphorePermit {
    let slots = u32::try_from(models.blocking.available_permits()).expect("a few slots");
    Arc::clone(&models.blocking)
        .try_acquire_many_owned(slots)
        .expect("free slots")
}

/// A call through the gRPC handler (the inherent `predict` takes the parsed request).
async fn call(
    models: &Models,
    request: Request<PredictRequest>,
) -> Result<Response<PredictResponse>, Status> {
    ModelService::predict(models, request).await
}

fn request(rows: usize) -> Request<PredictRequest> {
    Request::new(PredictRequest {
        model: "customer_risk".into(),
        version: String::new(),
        rows: vec![FeatureRow::default(); rows],
        variant: String::new(),
    })
}

#[tokio::test]
async fn a_large_batch_without_a_slot_times_out_naming_the_model_and_the_limit() {
    let models = models(Duration::from_millis(30));
    let busy = occupy(&models);
    let started = Instant::now();
    let status = call(&models, request(INLINE_MAX_ROWS + 1))
        .await
        .expect_err("no slot within the timeout");
    let took = started.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    for fragment in [
        "customer_risk",
        "version 1",
        "65 rows",
        "30 ms",
        "INFERENCE_TIMEOUT_MS",
    ] {
        assert!(
            status.message().contains(fragment),
            "{fragment:?} missing: {status:?}"
        );
    }
    assert!(
        took >= Duration::from_millis(30) && took < Duration::from_secs(1),
        "{took:?}"
    );

    // Small batches run inline: not bounded, not waiting for the pool.
    call(&models, request(INLINE_MAX_ROWS))
        .await
        .expect("an inline batch is scored");

    drop(busy);
    let response = call(&models, request(INLINE_MAX_ROWS + 1))
        .await
        .expect("a slot is free again");
    assert_eq!(response.get_ref().predictions.len(), INLINE_MAX_ROWS + 1);
}

#[tokio::test]
async fn the_callers_deadline_bounds_the_wait_when_it_comes_first() {
    let models = models(Duration::from_secs(10));
    let _busy = occupy(&models);
    let mut request = request(200);
    request.set_timeout(Duration::from_millis(100));
    // Paused, the clock jumps to the service's timer when nothing else is left to run: `took` is when the
    // service chose to answer, not that plus however long a loaded machine took to wake this test.
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let status = call(&models, request)
        .await
        .expect_err("past the caller's deadline");
    let took = started.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("the caller's deadline"), "{status:?}");
    // Answered a few milliseconds before the deadline, so this reason reaches the caller first.
    assert!(
        took >= Duration::from_millis(80) && took < Duration::from_millis(100),
        "{took:?}"
    );
}
