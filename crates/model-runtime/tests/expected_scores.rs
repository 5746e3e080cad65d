//! tract scores the bundled models exactly as onnxruntime did when the training script recorded
//! `expected_scores.json`, once the manifest's post-processing is applied.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use model_runtime::{ModelRepository, Row};
use serde::Deserialize;

const TOLERANCE: f64 = 1e-5;

#[derive(Deserialize)]
struct Expected {
    version: String,
    rows: Vec<ExpectedRow>,
}

#[derive(Deserialize)]
struct ExpectedRow {
    features: HashMap<String, f64>,
    outputs: BTreeMap<String, f64>,
}

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model-service/models")
}

fn load() -> (ModelRepository, BTreeMap<String, Expected>) {
    let root = repository_root();
    let repository = ModelRepository::load(&root).expect("the bundled repository loads");
    let json = std::fs::read(root.join("expected_scores.json")).expect("expected_scores.json is readable");
    let expected = serde_json::from_slice(&json).expect("expected_scores.json parses");
    (repository, expected)
}

#[test]
fn every_bundled_model_has_recorded_scores() {
    let (repository, expected) = load();
    let served: Vec<&str> = repository.models().map(|m| m.name()).collect();
    let recorded: Vec<&str> = expected.keys().map(String::as_str).collect();
    assert_eq!(served, recorded);
    assert!(
        repository.skipped().is_empty(),
        "skipped versions: {:?}",
        repository.skipped()
    );
}

#[test]
fn batch_scores_match_onnxruntime() {
    let (repository, expected) = load();
    for (model, expected) in &expected {
        let version = repository
            .get(model, Some(&expected.version))
            .expect("recorded version is served");
        let rows: Vec<Row> = expected.rows.iter().map(|row| row.features.clone()).collect();
        let predictions = version.predict(&rows).expect("rows score");
        assert_eq!(predictions.len(), rows.len());
        for (index, (prediction, row)) in predictions.iter().zip(&expected.rows).enumerate() {
            let mut names: Vec<&String> = prediction.outputs.keys().collect();
            names.sort();
            assert_eq!(
                names,
                row.outputs.keys().collect::<Vec<_>>(),
                "{model} row {index}: output names"
            );
            for (name, want) in &row.outputs {
                let got = prediction.outputs[name];
                assert!(
                    (got - want).abs() <= TOLERANCE,
                    "{model} row {index} {name}: tract {got}, recorded {want}"
                );
            }
            let missing: Vec<String> = version
                .inputs()
                .iter()
                .filter(|input| !row.features.contains_key(&input.name))
                .map(|input| input.name.clone())
                .collect();
            assert_eq!(
                prediction.defaulted_inputs, missing,
                "{model} row {index}: defaulted inputs"
            );
        }
    }
}

#[test]
fn one_row_at_a_time_matches_the_batch() {
    let (repository, expected) = load();
    for (model, expected) in &expected {
        let version = repository
            .get(model, Some(&expected.version))
            .expect("recorded version is served");
        let rows: Vec<Row> = expected.rows.iter().map(|row| row.features.clone()).collect();
        let batch = version.predict(&rows).expect("rows score");
        for (row, in_batch) in rows.iter().zip(&batch) {
            let alone = version.predict(std::slice::from_ref(row)).expect("row scores");
            for (name, value) in &in_batch.outputs {
                assert!(
                    (alone[0].outputs[name] - value).abs() <= 1e-6,
                    "{model} {name}: batch-dependent result"
                );
            }
        }
    }
}
