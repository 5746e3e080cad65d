//! Loading: layout, version ordering and the skip-or-fail policy, and load errors that name the file.

use serde_json::json;
use tempfile::TempDir;

use super::*;
use crate::testutil::{Linear, manifest, write_good_version, write_version};
use crate::{ManifestError, Row};

fn load_err(root: &Path) -> LoadError {
    ModelRepository::load(root).expect_err("the load fails")
}

/// A repository whose only model `m` has version `1` written with `onnx` and `manifest`.
fn single(onnx: &[u8], manifest: serde_json::Value) -> TempDir {
    let root = TempDir::new().expect("temp dir");
    write_version(root.path(), "m", "1", onnx, &manifest);
    root
}

#[test]
fn default_version_is_the_numerically_highest() {
    let root = TempDir::new().expect("temp dir");
    for version in ["9", "10", "2"] {
        write_good_version(root.path(), "m", version);
    }
    let repository = ModelRepository::load(root.path()).expect("loads");
    let model = repository.model("m").expect("model m");
    assert_eq!(model.version_names().collect::<Vec<_>>(), ["2", "9", "10"]);
    assert_eq!(model.default_version().version(), "10");
    assert_eq!(repository.get("m", None).expect("default").version(), "10");
    assert_eq!(repository.get("m", Some("9")).expect("v9").version(), "9");
}

#[test]
fn other_files_and_folders_in_the_root_are_ignored() {
    let root = TempDir::new().expect("temp dir");
    write_good_version(root.path(), "m", "1");
    std::fs::write(root.path().join("train.py"), "print('hi')").expect("write");
    std::fs::write(root.path().join("README.md"), "# models").expect("write");
    std::fs::write(root.path().join("expected_scores.json"), "{}").expect("write");
    std::fs::create_dir_all(root.path().join("__pycache__")).expect("mkdir");
    std::fs::create_dir_all(root.path().join(".git/objects")).expect("mkdir");
    std::fs::create_dir_all(root.path().join("m/notes")).expect("mkdir");
    let repository = ModelRepository::load(root.path()).expect("loads");
    assert_eq!(repository.models().map(Model::name).collect::<Vec<_>>(), ["m"]);
    assert_eq!(
        repository
            .model("m")
            .expect("m")
            .version_names()
            .collect::<Vec<_>>(),
        ["1"]
    );
}

#[test]
fn a_broken_newer_version_is_skipped_and_the_default_falls_back() {
    let root = TempDir::new().expect("temp dir");
    write_good_version(root.path(), "m", "1");
    write_version(root.path(), "m", "2", b"not a protobuf", &manifest("m", "2"));
    let repository = ModelRepository::load(root.path()).expect("loads");
    assert_eq!(repository.get("m", None).expect("default").version(), "1");
    let [skipped] = repository.skipped() else {
        panic!("one skipped version: {:?}", repository.skipped())
    };
    assert_eq!((skipped.model.as_str(), skipped.version.as_str()), ("m", "2"));
    assert!(
        matches!(skipped.error, LoadError::Onnx { .. }),
        "{:?}",
        skipped.error
    );
    assert_eq!(
        repository.get("m", Some("2")).expect_err("not served"),
        LookupError::UnknownVersion {
            model: "m".into(),
            version: "2".into(),
            available: vec!["1".into()]
        }
    );
}

#[test]
fn a_model_without_a_loadable_version_fails_the_load() {
    let root = TempDir::new().expect("temp dir");
    write_good_version(root.path(), "good", "1");
    write_version(root.path(), "bad", "1", b"\x08\x07garbage", &manifest("bad", "1"));
    let error = load_err(root.path());
    let LoadError::NoLoadableVersion { model, source, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(model, "bad");
    assert!(matches!(**source, LoadError::Onnx { .. }), "{source:?}");
    let message = error.to_string();
    assert!(message.contains("bad/1/model.onnx"), "names the file: {message}");
}

#[test]
fn empty_and_missing_roots_fail() {
    let root = TempDir::new().expect("temp dir");
    std::fs::write(root.path().join("README.md"), "# nothing here").expect("write");
    assert!(matches!(load_err(root.path()), LoadError::EmptyRepository { .. }));
    let missing = root.path().join("nope");
    let error = load_err(&missing);
    assert!(matches!(error, LoadError::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("nope"), "{error}");
}

#[test]
fn lookup_errors_list_what_exists() {
    let root = TempDir::new().expect("temp dir");
    write_good_version(root.path(), "alpha", "1");
    write_good_version(root.path(), "beta", "1");
    let repository = ModelRepository::load(root.path()).expect("loads");
    let error = repository.get("gamma", None).expect_err("unknown");
    assert_eq!(
        error,
        LookupError::UnknownModel {
            model: "gamma".into(),
            known: vec!["alpha".into(), "beta".into()]
        }
    );
    assert!(error.to_string().contains("alpha, beta"), "{error}");
}

#[test]
fn malformed_manifest_names_the_file() {
    let root = TempDir::new().expect("temp dir");
    let dir = root.path().join("m/1");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("model.onnx"), Linear::two_by_two().onnx()).expect("write");
    std::fs::write(dir.join("manifest.json"), "{\"model\": \"m\",").expect("write");
    let error = load_err(root.path());
    let LoadError::NoLoadableVersion { source, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(matches!(**source, LoadError::Manifest { .. }), "{source:?}");
    assert!(error.to_string().contains("m/1/manifest.json"), "{error}");
}

#[test]
fn missing_manifest_is_an_io_error_naming_it() {
    let root = TempDir::new().expect("temp dir");
    let dir = root.path().join("m/1");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("model.onnx"), Linear::two_by_two().onnx()).expect("write");
    let error = load_err(root.path());
    assert!(error.to_string().contains("m/1/manifest.json"), "{error}");
}

/// The error behind a single-version repository's failure.
fn version_error(onnx: &[u8], manifest: serde_json::Value) -> LoadError {
    let root = single(onnx, manifest);
    match load_err(root.path()) {
        LoadError::NoLoadableVersion { source, .. } => *source,
        other => panic!("{other:?}"),
    }
}

#[test]
fn manifest_must_match_its_folder() {
    let error = version_error(&Linear::two_by_two().onnx(), manifest("other", "1"));
    assert!(
        matches!(error, LoadError::ManifestMismatch { field: "model", .. }),
        "{error:?}"
    );
    let error = version_error(&Linear::two_by_two().onnx(), manifest("m", "7"));
    assert!(
        matches!(error, LoadError::ManifestMismatch { field: "version", .. }),
        "{error:?}"
    );
}

#[test]
fn input_count_must_match_the_model_width() {
    let mut manifest = manifest("m", "1");
    manifest["inputs"]
        .as_array_mut()
        .expect("inputs")
        .push(json!({"name": "c", "default": 0.0}));
    let error = version_error(&Linear::two_by_two().onnx(), manifest);
    assert!(
        matches!(
            error,
            LoadError::InputWidth {
                manifest: 3,
                model: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("m/1/model.onnx"), "{error}");
}

#[test]
fn input_tensor_must_exist() {
    let mut manifest = manifest("m", "1");
    manifest["input_tensor"] = json!("features");
    let error = version_error(&Linear::two_by_two().onnx(), manifest);
    assert!(
        matches!(&error, LoadError::InputTensor { found, .. } if found == &["input"]),
        "{error:?}"
    );
}

#[test]
fn output_tensor_must_exist() {
    let mut manifest = manifest("m", "1");
    manifest["outputs"][1]["tensor"] = json!("probabilities");
    let error = version_error(&Linear::two_by_two().onnx(), manifest);
    assert!(
        matches!(&error, LoadError::MissingOutputTensor { output, tensor, .. } if output == "spread" && tensor == "probabilities"),
        "{error:?}"
    );
}

#[test]
fn output_column_must_exist() {
    let mut manifest = manifest("m", "1");
    manifest["outputs"][1]["column"] = json!(2);
    let error = version_error(&Linear::two_by_two().onnx(), manifest);
    assert!(
        matches!(
            error,
            LoadError::OutputColumn {
                column: 2,
                width: 2,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn invalid_manifest_is_reported_before_the_model_is_read() {
    let mut manifest = manifest("m", "1");
    manifest["inputs"] = json!([]);
    let error = version_error(b"never parsed", manifest);
    assert!(
        matches!(
            error,
            LoadError::Manifest {
                source: ManifestError::Empty { field: "inputs" },
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_flat_output_is_one_column() {
    let linear = Linear {
        flat: true,
        ..Linear::two_by_two()
    };
    let linear = Linear {
        bias: vec![0.5],
        weights: vec![vec![1.0], vec![2.0]],
        ..linear
    };
    let mut manifest = manifest("m", "1");
    manifest["outputs"] = json!([{"name": "score", "tensor": "output", "column": 0}]);
    let root = single(&linear.onnx(), manifest);
    let repository = ModelRepository::load(root.path()).expect("loads");
    let version = repository.get("m", None).expect("m");
    let rows: Vec<Row> = vec![
        [("a".to_owned(), 1.0), ("b".to_owned(), 1.0)].into(),
        [("a".to_owned(), 3.0)].into(),
    ];
    let predictions = version.predict(&rows).expect("scores");
    assert_eq!(predictions[0].outputs["score"], 3.5);
    assert_eq!(predictions[1].outputs["score"], 7.5);
}

/// The folders a scan of `root` finds, as `model/version`.
fn scanned(root: &Path) -> Vec<String> {
    ModelRepository::scan(root)
        .expect("scans")
        .iter()
        .map(|folder| format!("{}/{}", folder.model, folder.version))
        .collect()
}

/// The fingerprint a scan of `root` gives `model` version `version`.
fn fingerprint(root: &Path, model: &str, version: &str) -> Fingerprint {
    let folders = ModelRepository::scan(root).expect("scans");
    let found = folders
        .into_iter()
        .find(|folder| folder.model == model && folder.version == version);
    found.expect("the version folder is scanned").fingerprint
}

#[test]
fn a_scan_lists_version_folders_in_order_and_loads_nothing() {
    let root = TempDir::new().expect("temp dir");
    for version in ["10", "9"] {
        write_good_version(root.path(), "m", version);
    }
    // Not loadable, but a scan does not load: it only finds folders.
    write_version(root.path(), "a", "1", b"garbage", &manifest("a", "1"));
    std::fs::create_dir_all(root.path().join("m/empty")).expect("mkdir");
    std::fs::create_dir_all(root.path().join("m/.staging-11")).expect("mkdir");
    std::fs::write(root.path().join("m/.staging-11/manifest.json"), "{}").expect("write");
    assert_eq!(scanned(root.path()), ["a/1", "m/9", "m/10"]);
    let error = ModelRepository::scan(root.path().join("nope")).expect_err("no root");
    assert!(matches!(error, LoadError::Io { .. }), "{error:?}");
}

#[test]
fn a_fingerprint_changes_with_the_files_and_not_otherwise() {
    let root = TempDir::new().expect("temp dir");
    write_good_version(root.path(), "m", "1");
    let before = fingerprint(root.path(), "m", "1");
    assert_eq!(fingerprint(root.path(), "m", "1"), before, "nothing changed");
    let mut changed = manifest("m", "1");
    changed["description"] = json!("retrained");
    std::fs::write(root.path().join("m/1/manifest.json"), changed.to_string()).expect("write");
    let after = fingerprint(root.path(), "m", "1");
    assert_ne!(after, before, "the manifest was rewritten");
    std::fs::remove_file(root.path().join("m/1/model.onnx")).expect("remove");
    assert_ne!(fingerprint(root.path(), "m", "1"), after, "the graph is gone");
}

#[test]
fn a_symlink_swapped_in_one_rename_changes_the_fingerprint_and_the_folder_read() {
    let root = TempDir::new().expect("temp dir");
    let elsewhere = TempDir::new().expect("temp dir");
    // Two releases of `m` 1 outside the repository, identical but for their place.
    write_good_version(elsewhere.path(), "a", "1");
    write_good_version(elsewhere.path(), "b", "1");
    let rewrite = |release: &str| {
        let manifest_path = elsewhere.path().join(release).join("1/manifest.json");
        std::fs::write(manifest_path, manifest("m", "1").to_string()).expect("write");
    };
    rewrite("a");
    rewrite("b");
    std::fs::create_dir_all(root.path().join("m")).expect("mkdir");
    let link = root.path().join("m/1");
    std::os::unix::fs::symlink(elsewhere.path().join("a/1"), &link).expect("link");
    let before = fingerprint(root.path(), "m", "1");

    // ln -s b tmp && mv -T tmp 1
    let staged = root.path().join("m/.tmp");
    std::os::unix::fs::symlink(elsewhere.path().join("b/1"), &staged).expect("link");
    std::fs::rename(&staged, &link).expect("swap");
    let folders = ModelRepository::scan(root.path()).expect("scans");
    let [folder] = folders.as_slice() else {
        panic!("one version folder: {folders:?}")
    };
    assert_ne!(folder.fingerprint, before);
    let expected = elsewhere.path().join("b/1").canonicalize().expect("resolves");
    assert_eq!(folder.fingerprint.canonical(), Some(expected.as_path()));
    let loaded = folder.load().expect("loads");
    assert_eq!((loaded.model(), loaded.version()), ("m", "1"));
    assert_eq!(
        loaded.dir(),
        expected,
        "read where the link led when fingerprinted"
    );
}

#[test]
fn a_skipped_version_keeps_the_fingerprint_it_failed_with() {
    let root = TempDir::new().expect("temp dir");
    write_good_version(root.path(), "m", "1");
    write_version(root.path(), "m", "2", b"not a protobuf", &manifest("m", "2"));
    let repository = ModelRepository::load(root.path()).expect("loads");
    let [skipped] = repository.skipped() else {
        panic!("{:?}", repository.skipped())
    };
    assert_eq!(skipped.fingerprint, fingerprint(root.path(), "m", "2"));
    let [loaded] = repository.loaded().collect::<Vec<_>>()[..] else {
        panic!("one loaded version")
    };
    assert_eq!(loaded.folder.fingerprint, fingerprint(root.path(), "m", "1"));
    assert!(!loaded.retiring);
}

/// `m` versions `versions` loaded from `root`, as the repository holds them.
fn loaded(root: &Path, versions: &[&str]) -> Vec<LoadedVersion> {
    for version in versions {
        write_good_version(root, "m", version);
    }
    let repository = ModelRepository::load(root).expect("loads");
    repository.loaded().cloned().collect()
}

fn names(repository: &ModelRepository) -> (Vec<&str>, &str) {
    let model = repository.model("m").expect("m");
    (model.version_names().collect(), model.default_version().version())
}

#[test]
fn a_repository_is_built_from_kept_versions_plus_a_new_one() {
    let root = TempDir::new().expect("temp dir");
    let versions = loaded(root.path(), &["1", "2"]);
    let repository = ModelRepository::from_versions(root.path(), versions.clone());
    assert_eq!(names(&repository), (vec!["1", "2"], "2"));

    // A newer version becomes the default; the versions kept are the same loaded values.
    write_good_version(root.path(), "m", "10");
    let folder = VersionFolder::at("m", "10", root.path().join("m/10"));
    let ten = LoadedVersion {
        version: Arc::new(folder.load().expect("loads")),
        folder,
        retiring: false,
    };
    let grown = repository.with_version(ten.clone());
    assert_eq!(names(&grown), (vec!["1", "2", "10"], "10"));
    let kept = grown.get("m", Some("1")).expect("1");
    assert!(Arc::ptr_eq(kept, &versions[0].version));

    // The same version again replaces the one held.
    let again = LoadedVersion {
        version: Arc::new(ten.folder.load().expect("loads")),
        ..ten.clone()
    };
    let replaced = grown.with_version(again.clone());
    assert_eq!(names(&replaced), (vec!["1", "2", "10"], "10"));
    let held = replaced.get("m", Some("10")).expect("10");
    assert!(Arc::ptr_eq(held, &again.version) && !Arc::ptr_eq(held, &ten.version));
    assert!(
        ModelRepository::from_versions(root.path(), [])
            .models()
            .next()
            .is_none()
    );
}

#[test]
fn a_retiring_version_is_served_by_name_but_is_not_the_default() {
    let root = TempDir::new().expect("temp dir");
    let mut versions = loaded(root.path(), &["1", "2"]);
    versions[1].retiring = true;
    let repository = ModelRepository::from_versions(root.path(), versions.clone());
    assert_eq!(names(&repository), (vec!["1", "2"], "1"));
    assert_eq!(repository.get("m", Some("2")).expect("by name").version(), "2");
    let model = repository.model("m").expect("m");
    assert!(model.loaded_version("2").expect("2").retiring);

    // Every version retiring: the newest stays the default, so the model still answers.
    versions[0].retiring = true;
    let repository = ModelRepository::from_versions(root.path(), versions);
    assert_eq!(names(&repository), (vec!["1", "2"], "2"));
}
