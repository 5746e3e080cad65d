//! Feature drift end to end: Predict traffic into a real model-service, `model.feature_drift.psi` and
//! `model.inference.batch_rows` out as DogStatsD datagrams on a real UDP socket. Traffic drawn from the
//! baseline stays below 0.1 and shifted inputs cross 0.25; an hour of real-time-shaped traffic (one hour
//! of one weekday) raises no drift at all, since the inputs derived from the request's time are compared
//! with their weekly baseline only over a whole week.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::{TestServer, bundled_repository, request};
use model_runtime::Manifest;
use proto::models::v1::FeatureRow;
use telemetry::{Metrics, MetricsOptions, ServiceTags};
use testkit::statsd::DogStatsdSocket;

/// Far above anything seen in training.
const SHIFTED: &str = "customer_profile:payment_failures_90d";
/// Nearly always 0 in training (97.4%): its baseline has a bin per count, so one customer in five with
/// a chargeback is a shift that shows.
const CHARGEBACKS: &str = "customer_profile:chargebacks_1y";
/// Left out of every row: it takes its default, which must not count as drift.
const ABSENT: &str = "customer_activity:sessions_7d";
const ROWS: usize = 600;

/// A test agent, and a sink sending to it every 100 ms.
async fn agent() -> (DogStatsdSocket, Metrics) {
    let socket = DogStatsdSocket::bind();
    let target = socket.target();
    let tags = ServiceTags {
        env: "test".into(),
        service: "model-service".into(),
        version: "0.1.0".into(),
    };
    let options = MetricsOptions {
        flush_interval: Duration::from_millis(100),
        ..MetricsOptions::new(target, tags)
    };
    (socket, Metrics::start(options).expect("metrics sink"))
}

fn manifest(model: &str) -> Manifest {
    let path = bundled_repository().join(format!("{model}/1/manifest.json"));
    Manifest::from_json(&std::fs::read(path).expect("manifest")).expect("valid")
}

/// `rows` rows drawn from the training baseline (a low-discrepancy walk over each feature's bins, the
/// middle of the bin as the value), except where `value(input, row)` says otherwise: `Some(None)` leaves
/// the input out, `Some(Some(v))` sends `v`.
fn rows(
    manifest: &Manifest,
    rows: usize,
    value: impl Fn(&str, usize) -> Option<Option<f64>>,
) -> Vec<FeatureRow> {
    let golden = (5f64.sqrt() - 1.0) / 2.0;
    (0..rows)
        .map(|j| {
            let mut features = HashMap::new();
            for (k, input) in manifest.inputs.iter().enumerate() {
                let name = input.name.as_str();
                let value = match value(name, j) {
                    Some(None) => continue,
                    Some(Some(v)) => v,
                    None => {
                        let baseline = input.baseline.as_ref().expect("every input has a baseline");
                        let u = (j as f64 * golden + k as f64 * 0.1234).fract();
                        let mut cumulative = 0.0;
                        let bin = baseline
                            .fractions
                            .iter()
                            .position(|f| {
                                cumulative += f;
                                u < cumulative
                            })
                            .unwrap_or(baseline.fractions.len() - 1);
                        (baseline.edges[bin] + baseline.edges[bin + 1]) / 2.0
                    }
                };
                features.insert(name.to_owned(), value);
            }
            FeatureRow { features }
        })
        .collect()
}

/// `model.feature_drift.psi` values of `model` by feature, parsed from the datagrams.
fn psi_by_feature(datagrams: &[String], model: &str) -> BTreeMap<String, f64> {
    let mut found = BTreeMap::new();
    for line in datagrams.iter().flat_map(|d| d.lines()) {
        let Some(rest) = line.strip_prefix("model.feature_drift.psi:") else {
            continue;
        };
        let (value, tags) = rest.split_once("|g|#").expect("a gauge with tags");
        let tags: Vec<&str> = tags.split(',').collect();
        assert_eq!(
            tags[..2],
            [format!("model:{model}"), "model_version:1".into()],
            "{line}"
        );
        assert_eq!(
            tags[3..],
            ["env:test", "service:model-service", "version:0.1.0"],
            "{line}"
        );
        let feature = tags[2].strip_prefix("feature:").expect("a feature tag");
        found.insert(feature.to_owned(), value.parse::<f64>().expect("a number"));
    }
    found
}

/// `model.inference.batch_rows` samples, parsed from the datagrams.
fn batch_rows(datagrams: &[String]) -> Vec<f64> {
    datagrams
        .iter()
        .flat_map(|d| d.lines())
        .filter_map(|line| {
            let rest = line.strip_prefix("model.inference.batch_rows:")?;
            let (values, tags) = rest.split_once("|d|#").expect("a distribution with tags");
            assert_eq!(
                tags, "model:customer_risk,env:test,service:model-service,version:0.1.0",
                "{line}"
            );
            Some(
                values
                    .split(':')
                    .map(|v| v.parse::<f64>().expect("a number"))
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect()
}

/// A model-service reporting drift every second, for windows of 500 rows or more.
async fn reporting_every_second(metrics: &Metrics) -> TestServer {
    TestServer::start_configured(
        |config| {
            config.drift_interval_secs = 1;
            config.drift_min_rows = 500;
        },
        Some(metrics.clone()),
    )
    .await
}

#[tokio::test]
async fn shifted_inputs_are_reported_as_drift_over_dogstatsd() {
    let (socket, metrics) = agent().await;
    let mut server = reporting_every_second(&metrics).await;
    let manifest = manifest("customer_risk");
    let rows = rows(&manifest, ROWS, |name, row| match name {
        ABSENT => Some(None),
        SHIFTED => Some(Some(40.0)),
        CHARGEBACKS if row % 5 == 0 => Some(Some(1.0)),
        _ => None,
    });
    // Batches scored inline and one on the blocking pool (> INLINE_MAX_ROWS).
    let (small, large) = rows.split_at(ROWS - 100);
    for batch in small.chunks(50).chain([large]) {
        server
            .client
            .predict(request("customer_risk", "", batch.to_vec()))
            .await
            .expect("predict");
    }

    let watched = manifest
        .inputs
        .iter()
        .filter(|input| input.name != ABSENT)
        .count();
    let batches = small.len() / 50 + 1;
    // The sink flushes every 100 ms; the first drift report comes about a second after start. Gauges
    // are re-sent every flush, so the socket never goes quiet: read until everything has arrived.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut datagrams = Vec::new();
    while (psi_by_feature(&datagrams, "customer_risk").len() < watched
        || batch_rows(&datagrams).len() < batches)
        && Instant::now() < deadline
    {
        assert!(metrics.flush(Duration::from_secs(2)));
        datagrams.extend(socket.next_datagram_async().await);
    }

    let psi = psi_by_feature(&datagrams, "customer_risk");
    assert_eq!(psi.len(), watched, "{psi:?}\n{datagrams:#?}");
    for (feature, value) in &psi {
        if [SHIFTED, CHARGEBACKS].contains(&feature.as_str()) {
            assert!(*value > 0.25, "{feature} is shifted: {value}");
        } else {
            assert!(*value < 0.1, "{feature} is drawn from its baseline: {value}");
        }
    }
    assert!(!psi.contains_key(ABSENT), "defaulted values are not drift");

    let mut rows_per_batch = batch_rows(&datagrams);
    rows_per_batch.sort_by(f64::total_cmp);
    let mut expected = vec![50.0; batches - 1];
    expected.push(large.len() as f64);
    assert_eq!(rows_per_batch, expected);

    server.stop().await;
    metrics.shutdown(Duration::from_secs(2));
}

/// Demand-surge rows of one hour of one weekday (Monday 14:00, as every call in an hour of real-time
/// traffic carries), the other inputs drawn from their baseline, over four report windows: no PSI
/// crosses 0.25 (the time-derived inputs alone would score about 8 against their weekly baseline).
#[tokio::test]
async fn an_hour_of_real_time_traffic_raises_no_drift() {
    let (socket, metrics) = agent().await;
    let mut server = reporting_every_second(&metrics).await;
    let manifest = manifest("demand_surge");
    let time_derived = ["hour_of_day", "day_of_week", "is_weekend"];
    let rows = rows(&manifest, ROWS, |name, _| match name {
        "hour_of_day" => Some(Some(14.0)),
        "day_of_week" | "is_weekend" => Some(Some(0.0)),
        _ => None,
    });
    let watched_each_window = manifest.inputs.len() - time_derived.len();
    // Traffic for four report intervals, each gauge value read as it is sent.
    let mut datagrams = Vec::new();
    let end = Instant::now() + Duration::from_millis(4200);
    while Instant::now() < end {
        for batch in rows.chunks(50) {
            server
                .client
                .predict(request("demand_surge", "", batch.to_vec()))
                .await
                .expect("predict");
        }
        let read_until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < read_until {
            datagrams.extend(socket.next_datagram_async().await);
        }
    }
    // The last window's report, if it came after the traffic stopped.
    let deadline = Instant::now() + Duration::from_secs(5);
    while psi_by_feature(&datagrams, "demand_surge").len() < watched_each_window && Instant::now() < deadline
    {
        assert!(metrics.flush(Duration::from_secs(2)));
        datagrams.extend(socket.next_datagram_async().await);
    }
    let psi = psi_by_feature(&datagrams, "demand_surge");
    assert_eq!(psi.len(), watched_each_window, "{psi:?}");
    let every_value = datagrams
        .iter()
        .flat_map(|d| d.lines())
        .filter(|line| line.starts_with("model.feature_drift.psi:"));
    for line in every_value {
        let value: f64 = line["model.feature_drift.psi:".len()..]
            .split('|')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a gauge value");
        assert!(
            time_derived
                .iter()
                .all(|name| !line.contains(&format!("feature:{name},"))),
            "measured over a week, not a second: {line}"
        );
        assert!(value < 0.1, "drawn from the baseline: {line}");
    }

    server.stop().await;
    metrics.shutdown(Duration::from_secs(2));
}
