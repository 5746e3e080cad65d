//! Loading: layout, version ordering and the skip-or-fail policy, and load errors that name the file.

use serde_json::json;
use tempfile::TempDir;

use super::*;
use crate::ManifestError;
use crate::testutil::{Linear, manifest, write_good_version, write_version};

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
    let rows = vec![
        [("a".to_owned(), 1.0), ("b".to_owned(), 1.0)].into(),
        [("a".to_owned(), 3.0)].into(),
    ];
    let predictions = version.predict(&rows).expect("scores");
    assert_eq!(predictions[0].outputs["score"], 3.5);
    assert_eq!(predictions[1].outputs["score"], 7.5);
}
