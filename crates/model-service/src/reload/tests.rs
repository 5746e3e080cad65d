//! Snapshots: resolving notes the use where the next snapshot still sees it, and a version loaded again
//! gets a fresh entry and window.

use model_runtime::{LookupError, ModelRepository};

use super::*;

fn bundled() -> Arc<ModelRepository> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
    Arc::new(ModelRepository::load(root).expect("the bundled repository loads"))
}

#[test]
fn a_resolved_version_comes_with_its_window_and_its_use_outlives_the_snapshot() {
    let repository = bundled();
    let drift = DriftMonitor::new(&repository, 10);
    let snapshot = Snapshot::new(Arc::clone(&repository), &drift);
    let resolved = snapshot.resolve("customer_risk", None).expect("default");
    assert_eq!(resolved.version.version(), "1");
    let window = resolved.drift.expect("customer_risk is watched");
    assert!(Arc::ptr_eq(
        &window,
        &drift.window(&resolved.version).expect("window")
    ));
    assert_eq!(snapshot.idle_secs("customer_risk", "1"), 0);

    // The same loaded versions in the next snapshot: the same entries, so uses noted through either
    // count for both.
    let versions: Vec<LoadedVersion> = repository.loaded().cloned().collect();
    let next = snapshot.successor(
        ModelRepository::from_versions(repository.root(), versions),
        &drift,
    );
    let (old, new) = (
        snapshot.version_use("customer_risk", "1").expect("entry"),
        next.version_use("customer_risk", "1").expect("entry"),
    );
    assert!(Arc::ptr_eq(old, new));

    // The folder loaded again: a new entry, with the window the monitor keeps for the new load.
    let folder = repository
        .loaded()
        .find(|held| held.version.model() == "customer_risk")
        .expect("customer_risk")
        .folder
        .clone();
    let reloaded = LoadedVersion {
        version: Arc::new(folder.load().expect("loads again")),
        folder,
        retiring: false,
    };
    drift.forget("customer_risk", "1", &Metrics::disabled());
    let fresh_window = drift.watch(&reloaded.version).expect("watched");
    let after = next.successor(next.repository().with_version(reloaded), &drift);
    let entry = after.version_use("customer_risk", "1").expect("entry");
    assert!(!Arc::ptr_eq(entry, new));
    let resolved = after.resolve("customer_risk", Some("1")).expect("by name");
    assert!(Arc::ptr_eq(&resolved.drift.expect("window"), &fresh_window));
    assert!(Arc::ptr_eq(
        next.version_use("demand_surge", "1").expect("entry"),
        after.version_use("demand_surge", "1").expect("entry"),
    ));
}

#[test]
fn lookups_fail_as_the_repository_says() {
    let snapshot = Snapshot::new(bundled(), &DriftMonitor::default());
    let error = snapshot
        .resolve("customer_risk", Some("9"))
        .expect_err("no such version");
    assert_eq!(
        error,
        LookupError::UnknownVersion {
            model: "customer_risk".into(),
            version: "9".into(),
            available: vec!["1".into()],
        }
    );
    assert!(snapshot.resolve("churn", None).is_err());
    let resolved = snapshot.resolve("demand_surge", None).expect("default");
    assert!(resolved.drift.is_none(), "no windows kept");
}
