//! Windows: recording tallies, closing only features that reached the minimum (and, for an input that
//! follows a cycle, lasted it), carrying the others over, and what a closed window reports.

use model_runtime::Manifest;

use super::*;

const PAYMENT_FAILURES: &str = "customer_profile:payment_failures_90d";
const ACCOUNT_AGE: &str = "customer_profile:account_age_days";

fn bundled(model: &str) -> DriftProfile {
    let path = format!("{}/models/{model}/1/manifest.json", env!("CARGO_MANIFEST_DIR"));
    let manifest = Manifest::from_json(&std::fs::read(path).expect("bundled manifest")).expect("valid");
    DriftProfile::from_manifest(&manifest)
}

fn profile() -> DriftProfile {
    bundled("customer_risk")
}

/// The column of `name` among the customer-risk inputs.
fn column(name: &str) -> usize {
    [
        ACCOUNT_AGE,
        "customer_profile:lifetime_bookings",
        "customer_profile:cancellation_rate",
        "customer_profile:avg_booking_value",
        PAYMENT_FAILURES,
        "customer_profile:chargebacks_1y",
        "customer_activity:sessions_7d",
        "customer_activity:bookings_30d",
        "customer_activity:days_since_last_booking",
    ]
    .iter()
    .position(|n| *n == name)
    .expect("an input")
}

fn tally(profile: &DriftProfile, name: &str, values: &[Option<f64>]) -> DriftTally {
    let mut tally = profile.tally();
    for value in values {
        profile.observe(&mut tally, column(name), *value);
    }
    tally
}

#[test]
fn every_bundled_input_and_output_is_watched_the_cyclic_ones_over_a_week() {
    let watched = |profile: &DriftProfile, kind: Watched| -> Vec<String> {
        let features = profile.features().iter().filter(|f| f.kind() == kind);
        features.map(|f| f.name().to_owned()).collect()
    };
    let risk = profile();
    assert_eq!(
        watched(&risk, Watched::Input).len(),
        9,
        "chargebacks_1y too: its baseline has a bin per count"
    );
    assert!(risk.features().iter().all(|f| f.window().is_zero()));
    let surge = bundled("demand_surge");
    assert_eq!(watched(&surge, Watched::Input).len(), 10);
    let week = Duration::from_secs(7 * 24 * 3600);
    for feature in surge.features() {
        // The time-derived inputs, and the surge factor that follows them.
        let cyclic = ["hour_of_day", "day_of_week", "is_weekend", "surge_factor"].contains(&feature.name());
        let expected = if cyclic { week } else { Duration::ZERO };
        assert_eq!(feature.window(), expected, "{}", feature.name());
    }
    assert_eq!(watched(&risk, Watched::Output), ["risk_score"]);
    assert_eq!(watched(&surge, Watched::Output), ["surge_factor"]);
}

#[test]
fn a_feature_that_follows_a_cycle_is_measured_only_over_the_whole_cycle() {
    let surge = bundled("demand_surge");
    let window = DriftWindow::new("demand_surge", "1", surge.clone());
    let start = Instant::now();
    // An hour of traffic at 14:00 (column 7), as real time sends it: one bin of the week's ten, which
    // against the week would score a PSI near 8 in every one-minute window.
    for minute in 1..=60 {
        let mut tally = surge.tally();
        for _ in 0..100 {
            surge.observe(&mut tally, 7, Some(14.0));
        }
        window.record(&tally);
        let closed = window.close(100, start + Duration::from_secs(60 * minute));
        assert!(closed.is_empty(), "minute {minute}: {closed:?}");
    }
    // A week after the start, the window closes with every row of it.
    let closed = window.close(100, start + Duration::from_secs(7 * 24 * 3600));
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!((closed[0].name.as_str(), closed[0].rows), ("hour_of_day", 6000));
}

#[test]
fn a_feature_is_reported_once_it_has_the_minimum_rows_then_starts_over() {
    let profile = profile();
    let window = DriftWindow::new("customer_risk", "1", profile.clone());
    // 0 failures in 86.8% of rows and 1+ in 13.2%: the training mix.
    let mut values = vec![Some(0.0); 868];
    values.extend(vec![Some(2.0); 132]);
    window.record(&tally(&profile, PAYMENT_FAILURES, &values[..600]));
    window.record(&tally(&profile, ACCOUNT_AGE, &[Some(50.0); 10]));
    assert!(
        window.close(1000, Instant::now()).is_empty(),
        "600 rows is under the minimum"
    );

    window.record(&tally(&profile, PAYMENT_FAILURES, &values[600..]));
    window.record(&tally(&profile, PAYMENT_FAILURES, &[None, None, None]));
    let closed = window.close(1000, Instant::now());
    assert_eq!(closed.len(), 1, "{closed:?}");
    let drift = &closed[0];
    assert_eq!(
        (
            drift.model.as_str(),
            drift.model_version.as_str(),
            drift.name.as_str()
        ),
        ("customer_risk", "1", PAYMENT_FAILURES)
    );
    assert_eq!((drift.rows, drift.defaulted), (1000, 3));
    assert!(drift.psi < 1e-9, "the training mix: {drift:?}");

    // A new window: the old rows are gone; the account-age rows below the minimum are still there.
    let rest = window.close(1, Instant::now());
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!((rest[0].name.as_str(), rest[0].rows), (ACCOUNT_AGE, 10));
    assert!(window.close(1, Instant::now()).is_empty());
}

#[test]
fn a_shifted_feature_crosses_the_alert_threshold() {
    let profile = profile();
    let window = DriftWindow::new("customer_risk", "1", profile.clone());
    window.record(&tally(&profile, PAYMENT_FAILURES, &[Some(40.0); 500]));
    let closed = window.close(500, Instant::now());
    assert_eq!(closed.len(), 1);
    // Everything in the 13.2% bin: (1 − 0.132)·ln(1/0.132) + (1e-4 − 0.868)·ln(1e-4/0.868) ≈ 9.63.
    assert!(
        (closed[0].psi - 9.628_450_904_714_775).abs() < 1e-9,
        "{:?}",
        closed[0]
    );
    assert!(closed[0].psi > PSI_ALERT);
}

#[test]
fn the_monitor_reports_every_window_and_finds_versions() {
    let profile = profile();
    let window = Arc::new(DriftWindow::new("customer_risk", "1", profile.clone()));
    window.record(&tally(&profile, ACCOUNT_AGE, &[Some(5000.0); 20]));
    let monitor = DriftMonitor {
        windows: Mutex::new(HashMap::from([(
            "customer_risk".to_owned(),
            HashMap::from([("1".to_owned(), window)]),
        )])),
        min_rows: 20,
    };
    let reported = monitor.report(&Metrics::disabled());
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].name, ACCOUNT_AGE);
    assert!(reported[0].psi > PSI_ALERT);
    assert!(monitor.report(&Metrics::disabled()).is_empty());
}

#[test]
fn only_a_window_that_takes_the_psi_above_the_threshold_crosses_it() {
    let profile = profile();
    let window = DriftWindow::new("customer_risk", "1", profile.clone());
    let training_mix: Vec<Option<f64>> = (0..1000).map(|i| Some(if i < 868 { 0.0 } else { 2.0 })).collect();
    let crossed = |values: &[Option<f64>]| {
        window.record(&tally(&profile, PAYMENT_FAILURES, values));
        let closed = window.close(500, Instant::now());
        assert_eq!(closed.len(), 1, "{closed:?}");
        (closed[0].psi > PSI_ALERT, closed[0].crossed)
    };
    assert_eq!(crossed(&training_mix), (false, false));
    assert_eq!(crossed(&[Some(40.0); 500]), (true, true), "it crosses");
    assert_eq!(
        crossed(&[Some(40.0); 500]),
        (true, false),
        "it stays above: no second event"
    );
    assert_eq!(crossed(&training_mix), (false, false));
    assert_eq!(crossed(&[Some(40.0); 500]), (true, true), "it crosses again");
}

#[test]
fn the_monitor_follows_the_versions_served() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
    let repository = ModelRepository::load(root).expect("the bundled repository loads");
    let monitor = DriftMonitor::new(&repository, 20);
    let risk = repository.get("customer_risk", None).expect("customer_risk");
    let window = monitor.window(risk).expect("watched from the start");
    window.record(&tally(&profile(), ACCOUNT_AGE, &[Some(5000.0); 20]));

    // A new load of the same folder starts a new window: the rows of the old one are not carried over.
    monitor.forget("customer_risk", "1", &Metrics::disabled());
    assert!(monitor.window(risk).is_none(), "forgotten");
    assert!(
        monitor.report(&Metrics::disabled()).is_empty(),
        "nothing left to report for it"
    );
    let renewed = monitor.watch(risk).expect("watched again");
    assert!(!Arc::ptr_eq(&renewed, &window));
    assert!(Arc::ptr_eq(&monitor.window(risk).expect("the new one"), &renewed));
    renewed.record(&tally(&profile(), ACCOUNT_AGE, &[Some(5000.0); 20]));
    let reported = monitor.report(&Metrics::disabled());
    assert_eq!(reported.len(), 1, "{reported:?}");
}
