//! Manifest parsing and validation, and the clamp and band rules.

use serde_json::{Value, json};

use super::*;
use crate::testutil::manifest;

fn parse(value: &Value) -> Result<Manifest, ManifestError> {
    Manifest::from_json(value.to_string().as_bytes())
}

fn invalid(value: &Value) -> ManifestError {
    parse(value).expect_err("the manifest is rejected")
}

fn bands(bands: Value) -> Value {
    let mut value = manifest("m", "1");
    value["derived"][0]["bands"] = bands;
    value
}

#[test]
fn parses_the_training_script_format_and_ignores_unknown_fields() {
    let manifest = parse(&manifest("m", "1")).expect("valid");
    assert_eq!(manifest.inputs.len(), 2);
    assert_eq!(
        manifest.inputs[0].baseline.as_ref().map(|b| b.edges.len()),
        Some(3)
    );
    assert_eq!(manifest.outputs[0].clamp, Some([0.0, 10.0]));
    assert_eq!(manifest.derived[0].bands.len(), 3);
    assert_eq!(
        manifest.metrics.as_ref().and_then(|m| m.get("training_rows")),
        Some(&json!(10))
    );
    assert_eq!(
        manifest.output_names().collect::<Vec<_>>(),
        ["score", "spread", "tier"]
    );
}

#[test]
fn baseline_metrics_clamp_and_derived_are_optional() {
    let value = json!({
        "model": "m", "version": "1", "input_tensor": "input",
        "inputs": [{"name": "a", "default": 0.0}],
        "outputs": [{"name": "y", "tensor": "output", "column": 0}]
    });
    let manifest = parse(&value).expect("valid");
    assert!(manifest.derived.is_empty() && manifest.metrics.is_none() && manifest.outputs[0].clamp.is_none());
}

#[test]
fn rejects_missing_required_fields_and_bad_json() {
    let mut value = manifest("m", "1");
    value.as_object_mut().expect("object").remove("input_tensor");
    assert!(matches!(invalid(&value), ManifestError::Json(_)));
    assert!(matches!(
        Manifest::from_json(b"[1, 2"),
        Err(ManifestError::Json(_))
    ));
}

#[test]
fn rejects_empty_inputs_outputs_and_names() {
    let mut value = manifest("m", "1");
    value["inputs"] = json!([]);
    assert!(matches!(
        invalid(&value),
        ManifestError::Empty { field: "inputs" }
    ));
    let mut value = manifest("m", "1");
    value["outputs"] = json!([]);
    assert!(matches!(
        invalid(&value),
        ManifestError::Empty { field: "outputs" }
    ));
    let mut value = manifest("m", "1");
    value["inputs"][0]["name"] = json!("");
    assert!(matches!(
        invalid(&value),
        ManifestError::Empty {
            field: "inputs[].name"
        }
    ));
}

#[test]
fn rejects_duplicate_names() {
    let mut value = manifest("m", "1");
    value["inputs"][1]["name"] = json!("a");
    assert!(matches!(invalid(&value), ManifestError::Duplicate { field: "inputs", name } if name == "a"));
    let mut value = manifest("m", "1");
    value["derived"][0]["name"] = json!("spread");
    assert!(matches!(invalid(&value), ManifestError::Duplicate { name, .. } if name == "spread"));
}

#[test]
fn rejects_non_finite_defaults() {
    // JSON cannot carry NaN, but a manifest built in code can.
    let mut manifest = parse(&manifest("m", "1")).expect("valid");
    manifest.inputs[1].default = f64::INFINITY;
    assert!(matches!(manifest.validate(), Err(ManifestError::NonFiniteDefault { name }) if name == "b"));
}

#[test]
fn rejects_inverted_clamp() {
    let mut value = manifest("m", "1");
    value["outputs"][0]["clamp"] = json!([3.0, 1.0]);
    assert!(matches!(
        invalid(&value),
        ManifestError::Clamp { lo: 3.0, hi: 1.0, .. }
    ));
    // lo == hi is a constant output, odd but valid.
    value["outputs"][0]["clamp"] = json!([1.0, 1.0]);
    parse(&value).expect("valid");
}

#[test]
fn rejects_bad_bands() {
    let cases = [
        (json!([]), "there are none"),
        (
            json!([{"upper": 1.0, "value": 1.0}]),
            "the last band must have `upper: null`",
        ),
        (
            json!([{"upper": null, "value": 1.0}, {"upper": null, "value": 2.0}]),
            "only the last band may have `upper: null`",
        ),
        (
            json!([{"upper": 2.0, "value": 1.0}, {"upper": 1.0, "value": 2.0}, {"upper": null, "value": 3.0}]),
            "upper bounds must be strictly increasing",
        ),
        (
            json!([{"upper": 1.0, "value": 1.0}, {"upper": 1.0, "value": 2.0}, {"upper": null, "value": 3.0}]),
            "upper bounds must be strictly increasing",
        ),
    ];
    for (value, expected) in cases {
        match invalid(&bands(value.clone())) {
            ManifestError::Bands { name, reason } => {
                assert_eq!((name.as_str(), reason), ("tier", expected), "{value}");
            }
            other => panic!("{value}: {other:?}"),
        }
    }
}

#[test]
fn rejects_derived_from_an_unknown_output() {
    let mut value = manifest("m", "1");
    value["derived"][0]["from"] = json!("tier");
    assert!(matches!(invalid(&value), ManifestError::UnknownSource { from, .. } if from == "tier"));
}

#[test]
fn rejects_bad_baselines() {
    let cases = [
        json!({"edges": [0.0], "fractions": []}),
        json!({"edges": [0.0, 1.0, 2.0], "fractions": [1.0]}),
        json!({"edges": [0.0, 2.0, 1.0], "fractions": [0.5, 0.5]}),
        json!({"edges": [0.0, 1.0, 2.0], "fractions": [0.5, 0.6]}),
        json!({"edges": [0.0, 1.0, 2.0], "fractions": [-0.5, 1.5]}),
    ];
    for baseline in cases {
        let mut value = manifest("m", "1");
        value["inputs"][0]["baseline"] = baseline.clone();
        assert!(
            matches!(invalid(&value), ManifestError::Baseline { name, .. } if name == "a"),
            "{baseline}"
        );
    }
}

#[test]
fn an_input_is_watched_with_a_baseline_that_can_show_a_shift_or_says_why_not() {
    let single_bin = json!({"edges": [0.0, 2.0], "fractions": [1.0]});
    let two_bins = json!({"edges": [0.0, 1.0, 2.0], "fractions": [0.5, 0.5]});
    let rejected = [
        (single_bin.clone(), json!({})),
        (single_bin.clone(), json!({"window_secs": 60})),
        (two_bins.clone(), json!({"unwatched": " "})),
        (two_bins.clone(), json!({"unwatched": "why", "window_secs": 60})),
        (json!(null), json!({"window_secs": 60})),
    ];
    for (baseline, drift) in rejected {
        let mut value = manifest("m", "1");
        value["inputs"][0]["baseline"] = baseline.clone();
        value["inputs"][0]["drift"] = drift.clone();
        assert!(
            matches!(invalid(&value), ManifestError::Drift { name, .. } if name == "a"),
            "{baseline} {drift}"
        );
    }
    let accepted = [
        (single_bin, json!({"unwatched": "constant in training"}), false, 0),
        (two_bins.clone(), json!({}), true, 0),
        (
            two_bins,
            json!({"window_secs": 604800, "why": "a weekly cycle"}),
            true,
            604800,
        ),
        (json!(null), json!({"unwatched": "a request-time flag"}), false, 0),
        (json!(null), json!({}), false, 0),
    ];
    for (baseline, drift, watched, window) in accepted {
        let mut value = manifest("m", "1");
        value["inputs"][0]["baseline"] = baseline.clone();
        value["inputs"][0]["drift"] = drift.clone();
        let parsed = parse(&value).unwrap_or_else(|e| panic!("{baseline} {drift}: {e}"));
        let input = &parsed.inputs[0];
        assert_eq!(
            (input.watched(), input.drift.window_secs),
            (watched, window),
            "{baseline} {drift}"
        );
    }
}

#[test]
fn an_output_baseline_needs_two_bins_or_more_unless_it_is_unwatched() {
    let mut value = manifest("m", "1");
    value["outputs"][0]["baseline"] = json!({"edges": [0.0, 1.0], "fractions": [1.0]});
    assert!(matches!(invalid(&value), ManifestError::OutputDrift { .. }));
    value["outputs"][0]["drift"] = json!({"unwatched": "one class only"});
    assert!(!parse(&value).expect("valid").outputs[0].watched());
    value["outputs"][0]["drift"] = json!({"window_secs": 604800});
    value["outputs"][0]["baseline"] = json!({"edges": [0.0, 0.5, 1.0], "fractions": [0.5, 0.6]});
    assert!(matches!(invalid(&value), ManifestError::OutputBaseline { .. }));
    value["outputs"][0]["baseline"] = json!({"edges": [0.0, 0.5, 1.0], "fractions": [0.4, 0.6]});
    let output = &parse(&value).expect("valid").outputs[0];
    assert!(output.watched() && output.drift.window_secs == 604800);
}

#[test]
fn probes_name_inputs_and_outputs_it_has() {
    let cases = [
        (json!({"features": {"nope": 1.0}}), "names no input"),
        (
            json!({"features": {"a": 1.0}, "outputs": {"nope": 1.0}}),
            "names no output",
        ),
    ];
    for (probe, reason) in cases {
        let mut value = manifest("m", "1");
        value["probes"] = json!([{"features": {}}, probe.clone()]);
        let error = invalid(&value);
        assert!(
            matches!(&error, ManifestError::Probe { index: 1, reason: r, .. } if *r == reason),
            "{probe}: {error}"
        );
    }
    let mut value = manifest("m", "1");
    value["probes"] = json!([{"features": {"a": 1.0}, "outputs": {"score": 3.5, "tier": 2.0}}]);
    assert_eq!(parse(&value).expect("valid").probes.len(), 1);
}

#[test]
fn clamp_and_bands_apply() {
    let manifest = parse(&manifest("m", "1")).expect("valid");
    let score = &manifest.outputs[0];
    assert_eq!(
        [score.apply(-1.0), score.apply(4.0), score.apply(11.0)],
        [0.0, 4.0, 10.0]
    );
    assert_eq!(manifest.outputs[1].apply(-123.0), -123.0);
    let tier = &manifest.derived[0];
    let values: Vec<f64> = [-1.0, 1.999, 2.0, 4.999, 5.0, 1e9]
        .iter()
        .map(|v| tier.apply(*v))
        .collect();
    assert_eq!(values, [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
}
