//! Feature drift end to end: Predict traffic into a real model-service, `model.feature_drift.psi` and
//! `model.inference.batch_rows` out as DogStatsD datagrams on a real UDP socket.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::{TestServer, bundled_repository, request};
use model_runtime::Manifest;
use proto::models::v1::FeatureRow;
use telemetry::{Metrics, MetricsOptions, ServiceTags};
use testkit::statsd::DogStatsdSocket;

const SHIFTED: &str = "customer_profile:payment_failures_90d";
/// Left out of every row: it takes its default, which must not count as drift.
const ABSENT: &str = "customer_activity:sessions_7d";
/// A single-bin baseline: never reported.
const CONSTANT: &str = "customer_profile:chargebacks_1y";
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

fn manifest() -> Manifest {
    let path = bundled_repository().join("customer_risk/1/manifest.json");
    Manifest::from_json(&std::fs::read(path).expect("manifest")).expect("valid")
}

/// `ROWS` rows drawn from the training baseline (a low-discrepancy walk over each feature's bins, the
/// middle of the bin as the value), except `SHIFTED`, far above anything seen in training, and
/// `ABSENT`, left out.
fn rows(manifest: &Manifest) -> Vec<FeatureRow> {
    let golden = (5f64.sqrt() - 1.0) / 2.0;
    (0..ROWS)
        .map(|j| {
            let mut features = HashMap::new();
            for (k, input) in manifest.inputs.iter().enumerate() {
                let name = input.name.as_str();
                let value = match name {
                    ABSENT => continue,
                    SHIFTED => 40.0,
                    _ => {
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

/// `model.feature_drift.psi` values by feature, parsed from the datagrams.
fn psi_by_feature(datagrams: &[String]) -> BTreeMap<String, f64> {
    let mut found = BTreeMap::new();
    for line in datagrams.iter().flat_map(|d| d.lines()) {
        let Some(rest) = line.strip_prefix("model.feature_drift.psi:") else {
            continue;
        };
        let (value, tags) = rest.split_once("|g|#").expect("a gauge with tags");
        let tags: Vec<&str> = tags.split(',').collect();
        assert_eq!(tags[..2], ["model:customer_risk", "model_version:1"], "{line}");
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

#[tokio::test]
async fn shifted_inputs_are_reported_as_drift_over_dogstatsd() {
    let (socket, metrics) = agent().await;
    let mut server = TestServer::start_configured(
        |config| {
            config.drift_interval_secs = 1;
            config.drift_min_rows = 500;
        },
        Some(metrics.clone()),
    )
    .await;
    let manifest = manifest();
    let rows = rows(&manifest);
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
        .filter(|input| ![ABSENT, CONSTANT].contains(&input.name.as_str()))
        .count();
    let batches = small.len() / 50 + 1;
    // The sink flushes every 100 ms; the first drift report comes about a second after start. Gauges
    // are re-sent every flush, so the socket never goes quiet: read until everything has arrived.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut datagrams = Vec::new();
    while (psi_by_feature(&datagrams).len() < watched || batch_rows(&datagrams).len() < batches)
        && Instant::now() < deadline
    {
        assert!(metrics.flush(Duration::from_secs(2)));
        datagrams.extend(socket.next_datagram_async().await);
    }

    let psi = psi_by_feature(&datagrams);
    assert_eq!(psi.len(), watched, "{psi:?}\n{datagrams:#?}");
    assert!(psi[SHIFTED] > 0.25, "{psi:?}");
    for (feature, value) in &psi {
        if feature != SHIFTED {
            assert!(*value < 0.1, "{feature} is drawn from its baseline: {value}");
        }
    }
    assert!(!psi.contains_key(ABSENT), "defaulted values are not drift");
    assert!(
        !psi.contains_key(CONSTANT),
        "a single-bin baseline is not watched"
    );

    let mut rows_per_batch = batch_rows(&datagrams);
    rows_per_batch.sort_by(f64::total_cmp);
    let mut expected = vec![50.0; batches - 1];
    expected.push(large.len() as f64);
    assert_eq!(rows_per_batch, expected);

    server.stop().await;
    metrics.shutdown(Duration::from_secs(2));
}
