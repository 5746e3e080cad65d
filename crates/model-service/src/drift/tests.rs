//! Windows: recording tallies, closing only features that reached the minimum, carrying the others
//! over, and what a closed window reports.

use model_runtime::Manifest;

use super::*;

const PAYMENT_FAILURES: &str = "customer_profile:payment_failures_90d";
const ACCOUNT_AGE: &str = "customer_profile:account_age_days";

fn profile() -> DriftProfile {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/customer_risk/1/manifest.json"
    );
    let manifest = Manifest::from_json(&std::fs::read(path).expect("bundled manifest")).expect("valid");
    DriftProfile::from_manifest(&manifest)
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
fn the_bundled_profile_skips_single_bin_features() {
    let profile = profile();
    assert_eq!(profile.features().len(), 8);
    assert!(
        profile
            .features()
            .iter()
            .all(|f| f.name() != "customer_profile:chargebacks_1y")
    );
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
    assert!(window.close(1000).is_empty(), "600 rows is under the minimum");

    window.record(&tally(&profile, PAYMENT_FAILURES, &values[600..]));
    window.record(&tally(&profile, PAYMENT_FAILURES, &[None, None, None]));
    let closed = window.close(1000);
    assert_eq!(closed.len(), 1, "{closed:?}");
    let drift = &closed[0];
    assert_eq!(
        (
            drift.model.as_str(),
            drift.model_version.as_str(),
            drift.feature.as_str()
        ),
        ("customer_risk", "1", PAYMENT_FAILURES)
    );
    assert_eq!((drift.rows, drift.defaulted), (1000, 3));
    assert!(drift.psi < 1e-9, "the training mix: {drift:?}");

    // A new window: the old rows are gone; the account-age rows below the minimum are still there.
    let rest = window.close(1);
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!((rest[0].feature.as_str(), rest[0].rows), (ACCOUNT_AGE, 10));
    assert!(window.close(1).is_empty());
}

#[test]
fn a_shifted_feature_crosses_the_alert_threshold() {
    let profile = profile();
    let window = DriftWindow::new("customer_risk", "1", profile.clone());
    window.record(&tally(&profile, PAYMENT_FAILURES, &[Some(40.0); 500]));
    let closed = window.close(500);
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
        windows: HashMap::from([(
            "customer_risk".to_owned(),
            HashMap::from([("1".to_owned(), window)]),
        )]),
        min_rows: 20,
    };
    let reported = monitor.report(&Metrics::disabled());
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].feature, ACCOUNT_AGE);
    assert!(reported[0].psi > PSI_ALERT);
    assert!(monitor.report(&Metrics::disabled()).is_empty());
}
