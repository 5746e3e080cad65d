//! Scoring: defaults, post-processing and errors, on a linear model whose outputs are easy to compute.

use serde_json::json;
use tempfile::TempDir;

use super::*;
use crate::testutil::{Linear, manifest, manifest_with_probe, write_good_version, write_version};
use crate::{LoadError, ModelRepository, PredictError};

/// `score = clamp(a + 2b + 0.5, 0, 10)`, `spread = a - b`, `tier` bands score at 2 and 5;
/// defaults a = 1, b = 2.
fn linear() -> (TempDir, Arc<ModelVersion>) {
    let root = TempDir::new().expect("temp dir");
    write_good_version(root.path(), "m", "1");
    let repository = ModelRepository::load(root.path()).expect("loads");
    let version = repository.get("m", None).expect("m").clone();
    (root, version)
}

fn row(values: &[(&str, f64)]) -> Row {
    values
        .iter()
        .map(|(name, value)| (name.to_string(), *value))
        .collect()
}

#[test]
fn scores_every_row_in_order() {
    let (_root, model) = linear();
    let rows: Vec<Row> = (0..300)
        .map(|i| row(&[("a", i as f64 / 100.0), ("b", 0.25)]))
        .collect();
    let predictions = model.predict(&rows).expect("scores");
    assert_eq!(predictions.len(), 300);
    for (i, prediction) in predictions.iter().enumerate() {
        let a = i as f64 / 100.0;
        assert!((prediction.outputs["score"] - (a + 1.0)).abs() < 1e-6, "row {i}");
        assert!(
            (prediction.outputs["spread"] - (a - 0.25)).abs() < 1e-6,
            "row {i}"
        );
        assert!(prediction.defaulted_inputs.is_empty());
    }
}

#[test]
fn clamp_bounds_the_output() {
    let (_root, model) = linear();
    let predictions = model
        .predict(&[row(&[("a", -5.0), ("b", 0.0)]), row(&[("a", 50.0), ("b", 0.0)])])
        .expect("scores");
    assert_eq!(predictions[0].outputs["score"], 0.0);
    assert_eq!(predictions[1].outputs["score"], 10.0);
    // Unclamped output passes through.
    assert_eq!(predictions[1].outputs["spread"], 50.0);
}

#[test]
fn derived_bands_use_strict_upper_bounds() {
    let (_root, model) = linear();
    // score = a + 0.5 with b = 0: 1.0, 2.0 (exactly the first upper bound), 4.9, 5.0, 9.
    let rows: Vec<Row> = [0.5, 1.5, 4.4, 4.5, 8.5]
        .iter()
        .map(|a| row(&[("a", *a), ("b", 0.0)]))
        .collect();
    let tiers: Vec<f64> = model
        .predict(&rows)
        .expect("scores")
        .iter()
        .map(|p| p.outputs["tier"])
        .collect();
    assert_eq!(tiers, [1.0, 2.0, 2.0, 3.0, 3.0]);
}

#[test]
fn absent_and_non_finite_inputs_take_defaults() {
    let (_root, model) = linear();
    let rows = vec![
        row(&[]),
        row(&[("a", f64::NAN), ("b", 0.0)]),
        row(&[("a", 0.0), ("b", f64::INFINITY)]),
        // Finite as f64, infinite as the model's float32.
        row(&[("a", 1e300), ("b", 0.0)]),
    ];
    let predictions = model.predict(&rows).expect("scores");
    assert_eq!(predictions[0].defaulted_inputs, ["a", "b"]);
    assert_eq!(predictions[0].outputs["score"], 5.5);
    assert_eq!(predictions[0].outputs["tier"], 3.0);
    assert_eq!(predictions[1].defaulted_inputs, ["a"]);
    assert_eq!(predictions[1].outputs["score"], 1.5);
    assert_eq!(predictions[2].defaulted_inputs, ["b"]);
    assert_eq!(predictions[2].outputs["score"], 4.5);
    assert_eq!(predictions[3].defaulted_inputs, ["a"]);
}

#[test]
fn unknown_input_names_the_row_and_input() {
    let (_root, model) = linear();
    let rows = vec![
        row(&[("a", 1.0)]),
        row(&[("a", 1.0), ("zz", 1.0), ("customer:typo", 2.0)]),
    ];
    assert_eq!(
        model.predict(&rows).expect_err("unknown input"),
        PredictError::UnknownInput {
            row: 1,
            name: "customer:typo".into()
        }
    );
}

#[test]
fn positional_rows_score_as_the_same_named_rows_do() {
    let (_root, model) = linear();
    // Inputs in order: a, b. NaN and values too large for float32 take the default, as by name.
    let named = vec![
        row(&[("a", 0.5), ("b", 0.25)]),
        row(&[("b", 0.0)]),
        row(&[("a", 0.0), ("b", 1e300)]),
    ];
    let positional = vec![vec![0.5, 0.25], vec![f64::NAN, 0.0], vec![0.0, 1e300]];
    let by_name = model.predict(&named).expect("scores by name");
    assert_eq!(model.predict(&positional).expect("scores by position"), by_name);
    let mixed = vec![
        Inputs::Positional(vec![0.5, 0.25]),
        Inputs::Named(row(&[("b", 0.0)])),
    ];
    assert_eq!(model.predict(&mixed).expect("scores either form"), by_name[..2]);
    assert_eq!(by_name[1].defaulted_inputs, ["a"]);
    assert_eq!(by_name[2].defaulted_inputs, ["b"]);
}

#[test]
fn a_positional_row_of_another_length_is_refused() {
    let (_root, model) = linear();
    for values in [vec![], vec![1.0], vec![1.0, 2.0, 3.0]] {
        let count = values.len();
        assert_eq!(
            model.predict(&[vec![1.0, 2.0], values]).expect_err("wrong count"),
            PredictError::InputCount {
                row: 1,
                values: count,
                inputs: 2
            }
        );
    }
}

#[test]
fn no_rows_is_no_predictions() {
    let (_root, model) = linear();
    assert!(model.predict::<Row>(&[]).expect("nothing to do").is_empty());
}

#[test]
fn metadata_accessors() {
    let (_root, model) = linear();
    assert_eq!((model.model(), model.version()), ("m", "1"));
    assert_eq!(
        model
            .inputs()
            .iter()
            .map(|i| (i.name.as_str(), i.default))
            .collect::<Vec<_>>(),
        [("a", 1.0), ("b", 2.0)]
    );
    assert_eq!(
        model.output_names().collect::<Vec<_>>(),
        ["score", "spread", "tier"]
    );
    assert!(model.dir().ends_with("m/1"));
    assert!(format!("{model:?}").contains("\"m\""));
}

#[test]
fn a_non_finite_model_output_is_an_error() {
    let root = TempDir::new().expect("temp dir");
    // Finite on the defaults (the load's probe row), infinite for a large `a`.
    let linear = Linear {
        weights: vec![vec![3.0e38, 1.0], vec![1.0, 1.0]],
        ..Linear::two_by_two()
    };
    let mut manifest = manifest("m", "1");
    manifest["derived"] = json!([]);
    write_version(root.path(), "m", "1", &linear.onnx(), &manifest);
    let repository = ModelRepository::load(root.path()).expect("loads");
    let model = repository.get("m", None).expect("m");
    let error = model
        .predict(&[row(&[("a", 10.0)])])
        .expect_err("infinite output");
    assert!(
        matches!(&error, PredictError::NonFiniteOutput { output, row: 0, .. } if output == "score"),
        "{error:?}"
    );
}

#[test]
fn a_version_that_cannot_score_its_probes_is_not_served() {
    let root = TempDir::new().expect("temp dir");
    let nan = Linear {
        weights: vec![vec![f32::NAN, 1.0], vec![1.0, 1.0]],
        ..Linear::two_by_two()
    };
    let mut manifest = manifest("m", "2");
    manifest["derived"] = json!([]);
    write_version(root.path(), "m", "2", &nan.onnx(), &manifest);
    // Version 1 scores its probe as recorded; version 2 (newer) scores only NaN: 1 is served.
    let mut manifest = manifest_with_probe("m", "1");
    manifest["derived"] = json!([]);
    write_version(root.path(), "m", "1", &Linear::two_by_two().onnx(), &manifest);
    let repository = ModelRepository::load(root.path()).expect("loads");
    assert_eq!(repository.get("m", None).expect("m").version(), "1");
    let [skipped] = repository.skipped() else {
        panic!("{:?}", repository.skipped())
    };
    assert!(
        matches!(
            &skipped.error,
            LoadError::Probe {
                index: 0,
                source: PredictError::NonFiniteOutput { .. },
                ..
            }
        ),
        "{:?}",
        skipped.error
    );
}

#[test]
fn predict_tallied_counts_what_each_watched_input_was_fed() {
    let (_root, model) = linear();
    // Only `a` has a baseline ([0, 1, 2]: two bins); `b` is not watched.
    let names: Vec<&str> = model
        .drift_profile()
        .features()
        .iter()
        .map(|feature| feature.name())
        .collect();
    assert_eq!(names, ["a"]);
    let rows = vec![
        row(&[("a", 0.5), ("b", 1.0)]),
        row(&[("a", 1.0)]),
        row(&[("a", 99.0)]),
        row(&[("b", 3.0)]),
        row(&[("a", f64::NAN)]),
        row(&[("a", 1e300)]),
    ];
    let (predictions, tally) = model.predict_tallied(&rows).expect("scores");
    assert_eq!(predictions, model.predict(&rows).expect("scores"));
    // 99 counts in the last bin; absent, NaN and f32-overflowing values took the default.
    assert_eq!(tally.counts(), [1, 2]);
    assert_eq!(tally.defaulted(), [3]);

    let error = model
        .predict_tallied(&[row(&[("zz", 1.0)])])
        .expect_err("unknown input");
    assert!(matches!(error, PredictError::UnknownInput { .. }), "{error:?}");
}

#[test]
fn a_version_that_scores_a_probe_otherwise_than_recorded_is_not_loaded() {
    let root = TempDir::new().expect("temp dir");
    let mut manifest = manifest_with_probe("m", "1");
    manifest["probes"][0]["outputs"]["score"] = json!(4.6);
    let dir = root.path().join("m/1");
    write_version(root.path(), "m", "1", &Linear::two_by_two().onnx(), &manifest);
    let error = crate::load_version_folder(&dir).expect_err("a wrong probe");
    assert!(
        matches!(&error, LoadError::ProbeMismatch { index: 0, output, expected, got, .. }
            if output == "score" && *expected == 4.6 && (*got - 4.5).abs() < 1e-6),
        "{error}"
    );
    assert!(
        error.to_string().contains("probe 0 scores \"score\" as 4.5"),
        "{error}"
    );
    // As recorded, it loads.
    write_version(
        root.path(),
        "m",
        "1",
        &Linear::two_by_two().onnx(),
        &manifest_with_probe("m", "1"),
    );
    let version = crate::load_version_folder(&dir).expect("loads");
    assert_eq!((version.model(), version.version()), ("m", "1"));
}
