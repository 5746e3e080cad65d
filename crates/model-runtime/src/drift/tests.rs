//! The binning rule, PSI (identical, shifted and hand-computed cases) and the profile's tally layout.

use serde_json::json;

use super::*;

fn deciles() -> Vec<f64> {
    vec![0.1; 10]
}

#[test]
fn bins_follow_the_manifest_convention() {
    let bins = Bins::new(&[0.0, 1.0, 6.0, 10.0]);
    assert_eq!(bins.len(), 3);
    // Bin i is [edges[i], edges[i+1]): an inner edge starts the next bin.
    for (value, bin) in [(0.0, 0), (0.999, 0), (1.0, 1), (5.9, 1), (6.0, 2), (9.5, 2)] {
        assert_eq!(bins.index(value), bin, "{value}");
    }
    // The last bin is closed, and values outside the edges count in the end bins.
    assert_eq!(bins.index(10.0), 2);
    assert_eq!(bins.index(1e9), 2);
    assert_eq!(bins.index(-3.0), 0);
    assert_eq!(bins.index(f64::NEG_INFINITY), 0);
}

#[test]
fn one_bin_and_degenerate_edges() {
    let single = Bins::new(&[0.0, 2.0]);
    assert_eq!((single.len(), single.index(-1.0), single.index(7.0)), (1, 0, 0));
    assert_eq!(Bins::new(&[]).len(), 1);
    assert!(!single.is_empty());
}

#[test]
fn identical_distribution_scores_about_zero() {
    let expected = [0.868, 0.132];
    assert_eq!(psi(&expected, &[868, 132]), Some(0.0));
    // Proportional counts of any size, and a near-identical sample, stay far under the threshold.
    assert!(psi(&deciles(), &[50; 10]).expect("rows") < 1e-12);
    let sample = [52, 48, 49, 51, 50, 47, 53, 50, 49, 51];
    let value = psi(&deciles(), &sample).expect("rows");
    assert!((0.0..0.01).contains(&value), "{value}");
}

#[test]
fn a_shifted_distribution_crosses_the_alert_threshold() {
    // The deciles' top three bins get everything: PSI is large.
    let shifted = [0, 0, 0, 0, 0, 0, 0, 100, 200, 200];
    assert!(psi(&deciles(), &shifted).expect("rows") > 0.25);
    // A moderate shift: one decile's worth of rows moved from the bottom bin to the top one.
    let moderate = [0, 100, 100, 100, 100, 100, 100, 100, 100, 200];
    let value = psi(&deciles(), &moderate).expect("rows");
    assert!(value > 0.25, "{value}");
    // Something in between stays in the "moderate" band.
    let mild = [70, 100, 100, 100, 100, 100, 100, 100, 100, 130];
    let value = psi(&deciles(), &mild).expect("rows");
    assert!((0.01..0.25).contains(&value), "{value}");
}

#[test]
fn hand_computed_values() {
    // (0.3 − 0.5)·ln(0.3/0.5) + (0.7 − 0.5)·ln(0.7/0.5) = 0.2·ln(7/3) = 0.169459572...
    let value = psi(&[0.5, 0.5], &[30, 70]).expect("rows");
    assert!((value - 0.2 * (7.0f64 / 3.0).ln()).abs() < 1e-12, "{value}");
    assert!((value - 0.169_459_572_077_440_7).abs() < 1e-12, "{value}");

    // An empty bin takes the epsilon: (1e-4 − 0.25)·ln(1e-4/0.25) + 0.25·ln(2) + 0 = 2.128515893...
    let value = psi(&[0.25, 0.25, 0.5], &[0, 50, 50]).expect("rows");
    let by_hand = (PSI_EPSILON - 0.25) * (PSI_EPSILON / 0.25).ln() + 0.25 * 2f64.ln();
    assert!((value - by_hand).abs() < 1e-12, "{value} vs {by_hand}");
    assert!((value - 2.128_515_893_252_973_5).abs() < 1e-9, "{value}");

    // A baseline fraction of 0 is floored the same way, so the value stays finite.
    let value = psi(&[0.0, 1.0], &[1, 1]).expect("rows");
    assert!(value.is_finite() && value > 0.25, "{value}");
}

#[test]
fn nothing_counted_or_mismatched_is_no_value() {
    assert_eq!(psi(&deciles(), &[0; 10]), None);
    assert_eq!(psi(&[0.5, 0.5], &[1, 2, 3]), None);
}

fn profile() -> DriftProfile {
    let manifest = json!({
        "model": "m", "version": "1", "input_tensor": "input",
        "inputs": [
            {"name": "a", "default": 1.0, "baseline": {"edges": [0.0, 1.0, 2.0], "fractions": [0.5, 0.5]}},
            {"name": "constant", "default": 0.0, "baseline": {"edges": [0.0, 2.0], "fractions": [1.0]},
             "drift": {"unwatched": "constant in training"}},
            {"name": "no_baseline", "default": 0.0},
            {"name": "c", "default": 5.0,
             "baseline": {"edges": [0.0, 3.0, 6.0, 9.0], "fractions": [0.2, 0.5, 0.3]}}
        ],
        "outputs": [{"name": "y", "tensor": "output"}]
    });
    let manifest = Manifest::from_json(manifest.to_string().as_bytes()).expect("valid");
    DriftProfile::from_manifest(&manifest)
}

#[test]
fn the_profile_watches_inputs_with_a_baseline_unless_the_manifest_says_why_not() {
    let profile = profile();
    let names: Vec<&str> = profile.features().iter().map(DriftFeature::name).collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(profile.bin_count(), 5);
    assert!(!profile.is_empty());
    assert_eq!(profile.features()[1].expected(), [0.2, 0.5, 0.3]);
    assert!(DriftProfile::default().is_empty());
}

#[test]
fn observations_land_in_their_feature_slice() {
    let profile = profile();
    let mut tally = profile.tally();
    // Inputs by tensor column: 0 = a, 1 = constant, 2 = no_baseline, 3 = c.
    for (input, value) in [
        (0, Some(0.5)),
        (0, Some(1.0)),
        (0, Some(7.0)),
        (1, Some(1.0)),
        (2, Some(1.0)),
        (3, Some(3.0)),
        (3, Some(-1.0)),
        (3, None),
        (0, None),
        (0, None),
        (9, Some(1.0)),
    ] {
        profile.observe(&mut tally, input, value);
    }
    let [a, c] = profile.features() else {
        panic!("two features")
    };
    assert_eq!(a.slice(tally.counts()), [1, 2]);
    assert_eq!(c.slice(tally.counts()), [1, 1, 0]);
    assert_eq!(tally.defaulted(), [2, 1]);
    assert_eq!(a.psi(a.slice(tally.counts())), psi(&[0.5, 0.5], &[1, 2]));
}

#[test]
fn an_output_with_a_baseline_is_watched_after_the_inputs() {
    let manifest = json!({
        "model": "m", "version": "1", "input_tensor": "input",
        "inputs": [
            {"name": "a", "default": 1.0, "baseline": {"edges": [0.0, 1.0, 2.0], "fractions": [0.5, 0.5]}}
        ],
        "outputs": [
            {"name": "unwatched", "tensor": "output"},
            {"name": "score", "tensor": "output", "column": 1,
             "baseline": {"edges": [0.0, 0.2, 0.5, 1.0], "fractions": [0.6, 0.3, 0.1]}}
        ]
    });
    let manifest = Manifest::from_json(manifest.to_string().as_bytes()).expect("valid");
    let profile = DriftProfile::from_manifest(&manifest);
    let kinds: Vec<(&str, Watched)> = profile.features().iter().map(|f| (f.name(), f.kind())).collect();
    assert_eq!(kinds, [("a", Watched::Input), ("score", Watched::Output)]);
    assert_eq!(profile.bin_count(), 5);
    let mut tally = profile.tally();
    for value in [0.1, 0.3, 0.9, 1.0] {
        profile.observe_output(&mut tally, 1, value);
    }
    profile.observe_output(&mut tally, 0, 0.5);
    profile.observe_output(&mut tally, 7, 0.5);
    let score = &profile.features()[1];
    assert_eq!(score.slice(tally.counts()), [1, 1, 2]);
    assert_eq!(profile.features()[0].slice(tally.counts()), [0, 0]);
}
