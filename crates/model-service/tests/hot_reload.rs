//! Hot reload end to end: a real model-service polling a writable copy of the bundled repository every
//! second, real gRPC calls, and its metrics and events read on a real DogStatsD socket. A version folder
//! moved into place is served (and becomes the default) under load with no failed call; a folder whose
//! graph is garbage, or whose probe rows score otherwise than recorded, is rejected once and the old
//! version keeps serving; a symlink swapped in one rename is loaded again; a removed version is served
//! while requests name it and retired once idle, but a model's last version is kept.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use common::{Datagrams, TestServer, bundled_repository, count, events, request, row, statsd_agent};
use proto::models::v1::GetModelMetadataRequest;
use serde_json::json;
use testkit::models::ModelRepositoryCopy;
use tonic::Code;

/// An input that every probe row of customer_risk carries, so its default can change without changing
/// what a probe scores.
const PROBED_INPUT: &str = "customer_profile:account_age_days";

/// A model-service on `repository`, polling it every second, retiring an idle removed version after
/// `retire_after_secs`.
async fn serve(
    repository: &ModelRepositoryCopy,
    metrics: &telemetry::Metrics,
    retire_after_secs: u64,
) -> TestServer {
    let root = repository.path().to_owned();
    TestServer::start_configured(
        move |config| {
            config.model_repository = root;
            config.reload_interval_secs = 1;
            config.retire_after_secs = retire_after_secs;
        },
        Some(metrics.clone()),
    )
    .await
}

/// The version a one-row Predict call of `model` naming `version` ("" for the default) is answered by.
async fn predict(server: &TestServer, model: &str, version: &str) -> Result<String, tonic::Status> {
    let mut client = server.client.clone();
    let response = client.predict(request(model, version, vec![row(&[])])).await?;
    Ok(response.into_inner().version)
}

/// `GetModelMetadata` of `model` (its default version when `version` is "").
async fn metadata(
    server: &TestServer,
    model: &str,
    version: &str,
) -> proto::models::v1::GetModelMetadataResponse {
    let mut client = server.client.clone();
    let request = GetModelMetadataRequest {
        model: model.into(),
        version: version.into(),
    };
    client
        .get_model_metadata(request)
        .await
        .expect("metadata")
        .into_inner()
}

async fn available_versions(server: &TestServer, model: &str) -> Vec<String> {
    metadata(server, model, "").await.available_versions
}

/// Waits for the `event` event of customer_risk version `version`; returns every line received by then.
async fn event(datagrams: &Datagrams, event: &str, version: &str) -> Vec<String> {
    let what = format!("{event} event for customer_risk {version}");
    datagrams
        .wait_for(&what, |lines| {
            !events(lines, event, "customer_risk", version).is_empty()
        })
        .await
}

/// Calls `check` every 100 ms until it holds; fails naming `what` after 20 s.
async fn eventually<F: Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_is_served_under_load_without_a_failed_request() {
    let repository = ModelRepositoryCopy::of(&bundled_repository());
    let (datagrams, metrics) = statsd_agent();
    let server = serve(&repository, &metrics, 120).await;

    // Four callers asking for the default version, back to back, for the whole test.
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let failed = Arc::new(Mutex::new(Vec::<tonic::Status>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (answered, failed, stop) = (Arc::clone(&answered), Arc::clone(&failed), Arc::clone(&stop));
            let mut client = server.client.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match client.predict(request("customer_risk", "", vec![row(&[])])).await {
                        Ok(response) => answered
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(response.into_inner().version),
                        Err(status) => failed.lock().unwrap_or_else(PoisonError::into_inner).push(status),
                    }
                }
            })
        })
        .collect();
    let answers = |version: &str| {
        let answered = answered.lock().unwrap_or_else(PoisonError::into_inner);
        answered.iter().filter(|v| v.as_str() == version).count()
    };
    eventually("the load is running", || async { answers("1") >= 100 }).await;

    repository.add_copy("customer_risk", "1", "2");
    eventually("answers from version 2", || async { answers("2") >= 1 }).await;
    let seen = answers("2");
    eventually("more answers from version 2", || async {
        answers("2") >= seen + 100
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.expect("caller");
    }
    let failed = std::mem::take(&mut *failed.lock().unwrap_or_else(PoisonError::into_inner));
    assert!(
        failed.is_empty(),
        "{} calls failed: {:?}",
        failed.len(),
        failed.first()
    );

    let described = metadata(&server, "customer_risk", "").await;
    assert_eq!(described.version, "2");
    assert_eq!(described.available_versions, ["1", "2"]);
    event(&datagrams, "model_version_loaded", "2").await;
    let lines = event(&datagrams, "model_version_promoted", "2").await;
    assert_eq!(
        events(&lines, "model_version_promoted", "customer_risk", "2").len(),
        1
    );
    assert!(events(&lines, "model_version_rejected", "customer_risk", "2").is_empty());

    server.stop().await;
    metrics.shutdown(Duration::from_secs(2));
}

/// A folder for customer_risk version 2 changed by `change` is rejected once, its version is not served
/// and the old one keeps serving; later polls (a good version 3 is loaded after it) do not report it
/// again. Returns the rejection event's line.
async fn rejected_once(change: impl FnOnce(&std::path::Path)) -> String {
    let repository = ModelRepositoryCopy::of(&bundled_repository());
    let (datagrams, metrics) = statsd_agent();
    let server = serve(&repository, &metrics, 120).await;
    assert_eq!(predict(&server, "customer_risk", "").await.expect("predict"), "1");

    let staged = repository.staged_copy("customer_risk", "1", "2");
    change(&staged);
    std::fs::rename(&staged, repository.version_dir("customer_risk", "2")).expect("move into place");
    let lines = event(&datagrams, "model_version_rejected", "2").await;
    let [rejection] = events(&lines, "model_version_rejected", "customer_risk", "2")[..] else {
        panic!("one rejection event: {lines:#?}")
    };
    let rejection = rejection.clone();
    assert_eq!(predict(&server, "customer_risk", "").await.expect("predict"), "1");
    assert_eq!(available_versions(&server, "customer_risk").await, ["1"]);
    let status = predict(&server, "customer_risk", "2")
        .await
        .expect_err("not served");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // Polls go on: a good version added now is loaded by a later one, which saw the broken folder again.
    repository.add_copy("customer_risk", "1", "3");
    event(&datagrams, "model_version_loaded", "3").await;
    assert_eq!(predict(&server, "customer_risk", "").await.expect("predict"), "3");
    let lines = datagrams
        .wait_for("the rejection count", |lines| {
            count(lines, "model.versions.rejected", "customer_risk", "2") >= 1
        })
        .await;
    assert_eq!(count(&lines, "model.versions.rejected", "customer_risk", "2"), 1);
    assert_eq!(
        events(&lines, "model_version_rejected", "customer_risk", "2").len(),
        1
    );
    assert_eq!(available_versions(&server, "customer_risk").await, ["1", "3"]);

    server.stop().await;
    metrics.shutdown(Duration::from_secs(2));
    rejection
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_whose_graph_is_garbage_is_rejected_once_and_the_old_one_keeps_serving() {
    let rejection = rejected_once(|dir| {
        std::fs::write(dir.join("model.onnx"), b"\x08\x07 not an ONNX graph").expect("write");
    })
    .await;
    assert!(rejection.contains("tract cannot load"), "{rejection}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_whose_probe_rows_score_otherwise_than_recorded_is_rejected() {
    let rejection = rejected_once(|dir| {
        edit_manifest(dir, |manifest| {
            manifest["probes"][3]["outputs"]["risk_score"] = json!(0.5)
        });
    })
    .await;
    assert!(
        rejection.contains("probe 3 scores") && rejection.contains("records 0.5"),
        "{rejection}"
    );
}

/// Rewrites the manifest of the version folder `dir` as `change` says.
fn edit_manifest(dir: &std::path::Path, change: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read the manifest")).expect("JSON");
    change(&mut manifest);
    std::fs::write(&path, manifest.to_string()).expect("write the manifest");
}

/// `PROBED_INPUT`'s default in the metadata of customer_risk version `version`.
async fn probed_default(server: &TestServer, version: &str) -> f64 {
    let described = metadata(server, "customer_risk", version).await;
    let input = described.inputs.iter().find(|input| input.name == PROBED_INPUT);
    input.expect("the probed input").default_value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_version_swapped_in_one_rename_is_loaded_again() {
    let repository = ModelRepositoryCopy::of(&bundled_repository());
    let (datagrams, metrics) = statsd_agent();
    let server = serve(&repository, &metrics, 120).await;
    let original = probed_default(&server, "1").await;

    // Two releases of version 2, apart only in one input's default.
    // Staged in a hidden folder of the root, which the scan ignores.
    let first = repository.staged_copy("customer_risk", "1", "2");
    let second = repository.staged_copy("customer_risk", "1", "2");
    edit_manifest(&second, |manifest| {
        let inputs = manifest["inputs"].as_array_mut().expect("inputs");
        let input = inputs.iter_mut().find(|input| input["name"] == PROBED_INPUT);
        input.expect("the probed input")["default"] = json!(original + 100.0);
    });
    let link = repository.version_dir("customer_risk", "2");
    std::os::unix::fs::symlink(&first, &link).expect("link release a");
    event(&datagrams, "model_version_loaded", "2").await;
    assert_eq!(probed_default(&server, "2").await, original);

    // ln -s release-b tmp && mv -T tmp 2: nothing under either release changed, only where 2 leads.
    let staged_link = repository.path().join("customer_risk/.2-next");
    std::os::unix::fs::symlink(&second, &staged_link).expect("link release b");
    std::fs::rename(&staged_link, &link).expect("swap the link");
    let lines = datagrams
        .wait_for("a second load of version 2", |lines| {
            events(lines, "model_version_loaded", "customer_risk", "2").len() >= 2
        })
        .await;
    let loads = events(&lines, "model_version_loaded", "customer_risk", "2");
    let from = |line: &str, release: &std::path::Path| {
        let release = release.canonicalize().expect("a release folder");
        line.contains(&format!("loaded from {}", release.display()))
    };
    assert!(from(loads[0], &first) && from(loads[1], &second), "{loads:#?}");
    assert_eq!(probed_default(&server, "2").await, original + 100.0);
    assert_eq!(available_versions(&server, "customer_risk").await, ["1", "2"]);
    assert_eq!(predict(&server, "customer_risk", "").await.expect("predict"), "2");
    assert!(events(&lines, "model_version_rejected", "customer_risk", "2").is_empty());

    server.stop().await;
    metrics.shutdown(Duration::from_secs(2));
}

/// `model.versions.loaded` gauge lines of `model` version `version`.
fn loaded_gauges<'a>(lines: &'a [String], model: &str, version: &str) -> Vec<&'a String> {
    let prefix = format!("model.versions.loaded:1|g|#model:{model},model_version:{version},");
    lines.iter().filter(|line| line.starts_with(&prefix)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_version_is_served_while_named_and_retired_once_idle_but_a_models_last_is_kept() {
    const RETIRE_AFTER_SECS: u64 = 2;
    let repository = ModelRepositoryCopy::of(&bundled_repository());
    repository.add_copy("customer_risk", "1", "2");
    let (datagrams, metrics) = statsd_agent();
    let server = serve(&repository, &metrics, RETIRE_AFTER_SECS).await;
    assert_eq!(predict(&server, "customer_risk", "").await.expect("predict"), "2");

    // customer_risk's default and demand_surge's only version go.
    std::fs::remove_dir_all(repository.version_dir("customer_risk", "2")).expect("remove");
    std::fs::remove_dir_all(repository.version_dir("demand_surge", "1")).expect("remove");
    // The default falls back to the version whose folder is there.
    event(&datagrams, "model_version_promoted", "1").await;
    assert_eq!(predict(&server, "customer_risk", "").await.expect("predict"), "1");

    // Named for twice the grace period: still served, still listed.
    let named_until = Instant::now() + Duration::from_secs(2 * RETIRE_AFTER_SECS);
    // When the last call that names it was sent: the service notes the use no earlier.
    let mut last_named = Instant::now();
    while Instant::now() < named_until {
        last_named = Instant::now();
        assert_eq!(
            predict(&server, "customer_risk", "2")
                .await
                .expect("still served"),
            "2"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(available_versions(&server, "customer_risk").await, ["1", "2"]);
    let lines = datagrams.lines();
    assert!(events(&lines, "model_version_retired", "customer_risk", "2").is_empty());

    // Idle: retired.
    let lines = event(&datagrams, "model_version_retired", "2").await;
    // The service counts idle time in whole seconds, so it may retire up to a second early.
    let idle = last_named.elapsed();
    assert!(
        idle >= Duration::from_secs(RETIRE_AFTER_SECS - 1),
        "retired {idle:?} after its last use"
    );
    assert_eq!(available_versions(&server, "customer_risk").await, ["1"]);
    let status = predict(&server, "customer_risk", "2").await.expect_err("retired");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(predict(&server, "customer_risk", "").await.expect("predict"), "1");

    // demand_surge's folder went before customer_risk 2's and nothing named it since: it would have been
    // retired long ago, were it not its model's last version.
    assert!(events(&lines, "model_version_retired", "demand_surge", "1").is_empty());
    assert_eq!(available_versions(&server, "demand_surge").await, ["1"]);
    assert_eq!(predict(&server, "demand_surge", "").await.expect("kept"), "1");

    // The retired version's gauge is no longer sent: two flushes after the event carry the others'.
    let after_event = lines.len();
    let lines = datagrams
        .wait_for("two flushes after the retirement", |lines| {
            loaded_gauges(&lines[after_event.min(lines.len())..], "customer_risk", "1").len() >= 2
        })
        .await;
    let later = &lines[after_event..];
    assert!(
        loaded_gauges(later, "customer_risk", "2").is_empty(),
        "{later:#?}"
    );
    assert!(
        !loaded_gauges(later, "demand_surge", "1").is_empty(),
        "{later:#?}"
    );

    server.stop().await;
    metrics.shutdown(Duration::from_secs(2));
}
