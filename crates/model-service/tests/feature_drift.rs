//! Drift end to end: Predict traffic into a real model-service; `model.feature_drift.psi`,
//! `model.prediction_drift.psi`, the drift-alert events and `model.inference.batch_rows` out as DogStatsD
//! datagrams on a real UDP socket. Traffic drawn like the training data stays below 0.1 everywhere; then
//! shifted inputs cross 0.25, and so does the risk score they move, each with its event. An hour of
//! real-time-shaped traffic (one hour of one weekday) raises no drift at all, since the inputs derived
//! from the request's time, and the surge factor that follows them, are compared with their weekly
//! baselines only over a whole week.

use crate::common;

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
            FeatureRow {
                features,
                values: Vec::new(),
            }
        })
        .collect()
}

/// `model.feature_drift.psi` values of `model` by feature, parsed from the datagrams (the latest of each).
fn psi_by_feature(datagrams: &[String], model: &str) -> BTreeMap<String, f64> {
    gauges(datagrams, "model.feature_drift.psi", model, "feature")
}

/// `model.prediction_drift.psi` values of `model` by output (the latest of each).
fn psi_by_output(datagrams: &[String], model: &str) -> BTreeMap<String, f64> {
    gauges(datagrams, "model.prediction_drift.psi", model, "output")
}

/// The latest value of each `metric` gauge of `model`, by its `key` tag.
fn gauges(datagrams: &[String], metric: &str, model: &str, key: &str) -> BTreeMap<String, f64> {
    let mut found = BTreeMap::new();
    for line in datagrams.iter().flat_map(|d| d.lines()) {
        let Some(rest) = line.strip_prefix(metric).and_then(|r| r.strip_prefix(':')) else {
            continue;
        };
        let (value, tags) = rest.split_once("|g|#").expect("a gauge with tags");
        let tags: Vec<&str> = tags.split(',').collect();
        if tags[0] != format!("model:{model}") {
            continue;
        }
        assert_eq!(tags[1], "model_version:1", "{line}");
        assert_eq!(
            tags[3..],
            ["env:test", "service:model-service", "version:0.1.0"],
            "{line}"
        );
        let name = tags[2].strip_prefix(&format!("{key}:")).expect("the name tag");
        found.insert(name.to_owned(), value.parse::<f64>().expect("a number"));
    }
    found
}

/// The drift-alert events among the datagrams: the `event:` name and the tag naming what drifted.
fn events(datagrams: &[String]) -> Vec<String> {
    datagrams
        .iter()
        .flat_map(|d| d.lines())
        .filter(|line| line.starts_with("_e{"))
        .filter_map(|line| {
            let tags = line.rsplit_once("|#")?.1;
            let tags: Vec<&str> = tags.split(',').collect();
            let event = tags.iter().find_map(|t| t.strip_prefix("event:"))?;
            if !event.ends_with("_drift_alert") {
                return None;
            }
            let what = tags
                .iter()
                .find(|t| t.starts_with("feature:") || t.starts_with("output:"));
            Some(format!("{event} {}", what.unwrap_or(&"-")))
        })
        .collect()
}

/// Customer-risk rows of the bundled snapshot's customers, drawn as the training rows were (the same
/// generator wrote both), with `change` applied to each (row number, input name, value).
fn snapshot_rows(change: impl Fn(usize, &str, f64) -> Option<f64>) -> Vec<FeatureRow> {
    let read = |view: &str| -> HashMap<String, Vec<(String, f64)>> {
        let path = format!(
            "{}/../feature-store/snapshot/{view}.csv",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).expect("snapshot");
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().expect("header").split(',').collect();
        lines
            .map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                let values = header[2..]
                    .iter()
                    .zip(&fields[2..])
                    .map(|(name, value)| (format!("{view}:{name}"), value.parse().expect("a number")))
                    .collect();
                (fields[0].to_owned(), values)
            })
            .collect()
    };
    let (profiles, activity) = (read("customer_profile"), read("customer_activity"));
    let mut customers: Vec<&String> = profiles.keys().filter(|c| activity.contains_key(*c)).collect();
    customers.sort();
    customers
        .iter()
        .enumerate()
        .map(|(row, customer)| {
            let values = profiles[*customer].iter().chain(&activity[*customer]);
            let features = values
                .filter_map(|(name, value)| Some((name.clone(), change(row, name, *value)?)))
                .collect();
            FeatureRow {
                features,
                values: Vec::new(),
            }
        })
        .collect()
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

/// Sends `rows` in batches of 50 and one larger batch (scored on the blocking pool); returns the
/// batches' sizes, sorted.
async fn send(server: &mut TestServer, rows: &[FeatureRow]) -> Vec<f64> {
    let (small, large) = rows.split_at(rows.len() - 150);
    let mut sizes = Vec::new();
    for batch in small.chunks(50).chain([large]) {
        server
            .client
            .predict(request("customer_risk", "", batch.to_vec()))
            .await
            .expect("predict");
        sizes.push(batch.len() as f64);
    }
    sizes.sort_by(f64::total_cmp);
    sizes
}

/// Datagrams until `done` holds for all read so far, for at most 10 s. The sink flushes every 100 ms and
/// re-sends every gauge each time, so the socket never goes quiet; reading keeps up with it (a socket
/// left full drops what comes next, an event among it).
async fn read_until(
    socket: &DogStatsdSocket,
    metrics: &Metrics,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut datagrams = Vec::new();
    assert!(metrics.flush(Duration::from_secs(2)));
    while !done(&datagrams) && Instant::now() < deadline {
        datagrams.extend(socket.next_datagram_async().await);
    }
    datagrams
}

#[tokio::test]
async fn traffic_like_the_training_data_stays_stable_and_shifted_inputs_and_predictions_drift() {
    let (socket, metrics) = agent().await;
    let mut server = reporting_every_second(&metrics).await;
    let manifest = manifest("customer_risk");
    let watched = manifest
        .inputs
        .iter()
        .filter(|input| input.name != ABSENT)
        .count();

    // The snapshot's customers as they are: every input and the risk score stay below 0.1.
    let like_training = snapshot_rows(|_, name, value| (name != ABSENT).then_some(value));
    let batches = send(&mut server, &like_training).await;
    let datagrams = read_until(&socket, &metrics, |d| {
        psi_by_feature(d, "customer_risk").len() == watched && !psi_by_output(d, "customer_risk").is_empty()
    })
    .await;
    let (features, outputs) = (
        psi_by_feature(&datagrams, "customer_risk"),
        psi_by_output(&datagrams, "customer_risk"),
    );
    assert_eq!(features.len(), watched, "{features:?}\n{datagrams:#?}");
    assert!(!features.contains_key(ABSENT), "defaulted values are not drift");
    for (name, value) in features.iter().chain(&outputs) {
        assert!(*value < 0.1, "{name} is drawn like the training rows: {value}");
    }
    assert_eq!(outputs.keys().collect::<Vec<_>>(), ["risk_score"]);
    assert!(events(&datagrams).is_empty(), "{:?}", events(&datagrams));
    let mut rows_per_batch = batch_rows(&datagrams);
    rows_per_batch.sort_by(f64::total_cmp);
    assert_eq!(rows_per_batch, batches);

    // The same customers with payment failures far above training and one in five with a chargeback:
    // those two inputs and the risk score they raise cross 0.25, each with its event; the rest do not.
    let shifted = snapshot_rows(|row, name, value| match name {
        ABSENT => None,
        SHIFTED => Some(40.0),
        CHARGEBACKS if row % 5 == 0 => Some(1.0),
        _ => Some(value),
    });
    send(&mut server, &shifted).await;
    let crossed = |d: &[String]| {
        let events = events(d);
        [
            "feature_drift_alert feature:customer_profile:payment_failures_90d",
            "prediction_drift_alert output:risk_score",
        ]
        .iter()
        .all(|e| events.iter().any(|seen| seen == e))
    };
    let mut datagrams = read_until(&socket, &metrics, crossed).await;
    // A flush more, so each gauge's latest value is this window's.
    datagrams.extend(read_until(&socket, &metrics, |d| d.len() >= 3).await);
    let (features, outputs) = (
        psi_by_feature(&datagrams, "customer_risk"),
        psi_by_output(&datagrams, "customer_risk"),
    );
    for (name, value) in features.iter().chain(&outputs) {
        if [SHIFTED, CHARGEBACKS, "risk_score"].contains(&name.as_str()) {
            assert!(*value > 0.25, "{name} is shifted: {value}");
        } else {
            assert!(*value < 0.1, "{name} is drawn like the training rows: {value}");
        }
    }
    let mut events = events(&datagrams);
    events.sort();
    assert_eq!(
        events,
        [
            "feature_drift_alert feature:customer_profile:chargebacks_1y",
            "feature_drift_alert feature:customer_profile:payment_failures_90d",
            "prediction_drift_alert output:risk_score",
        ],
        "one event for each PSI that crossed"
    );

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
    let done = |d: &[String]| psi_by_feature(d, "demand_surge").len() == watched_each_window;
    if !done(&datagrams) {
        datagrams.extend(read_until(&socket, &metrics, done).await);
    }
    let psi = psi_by_feature(&datagrams, "demand_surge");
    assert_eq!(psi.len(), watched_each_window, "{psi:?}");
    // The surge factor follows the time inputs' weekly cycle: it too is measured over a week.
    assert_eq!(psi_by_output(&datagrams, "demand_surge"), BTreeMap::new());
    assert!(events(&datagrams).is_empty(), "{:?}", events(&datagrams));
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
