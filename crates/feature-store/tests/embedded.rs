//! The embedded store (no Redis): loaded from CSV files in Feast's encoded layout, timestamps rebased so
//! the newest row is "now" while relative ages (and so the deliberately stale rows) are kept.

use crate::common;

use std::time::{Duration, SystemTime};

use common::*;
use feature_store::{BackendKind, CsvFile, Error, OnlineStore, StoreConfig};
use prost_types::Timestamp;
use proto::features::v1::FieldStatus;

async fn embedded(files: Vec<CsvFile>) -> Result<OnlineStore, Error> {
    let mut config = StoreConfig::new(registry());
    config.snapshot = Some(files);
    OnlineStore::open(config).await
}

#[tokio::test]
async fn rebased_snapshot_keeps_relative_ages() {
    let store = embedded(tiny_csvs()).await.expect("loads");
    assert_eq!(store.backend(), BackendKind::Embedded);
    let response = store
        .get_online_features(
            request(
                &[
                    "zone_demand:open_requests_15m",
                    "customer_profile:account_age_days",
                    "customer_profile:cancellation_rate",
                ],
                &[
                    ("zone_id", &["z-1", "z-stale", "z-1"]),
                    ("customer_id", &["c-1", "c-stale", "c-2"]),
                ],
            ),
            None,
        )
        .await
        .expect("read");
    // The newest row of the snapshot (z-1's demand) is now.
    let newest = SystemTime::try_from(response.results[0].event_timestamps[0]).expect("time");
    let age = SystemTime::now().duration_since(newest).unwrap_or_default();
    assert!(age < Duration::from_secs(60), "newest row is {age:?} old");
    assert_eq!(cell(&response, 0, 0), (int64(40), FieldStatus::Present));
    assert_eq!(cell(&response, 0, 1), (int64(1), FieldStatus::OutsideMaxAge));
    assert_eq!(cell(&response, 1, 0), (int64(100), FieldStatus::Present));
    assert_eq!(cell(&response, 1, 1), (int64(700), FieldStatus::OutsideMaxAge));
    assert_eq!(cell(&response, 2, 2).1, FieldStatus::NullValue);
    // z-stale is exactly two hours older than z-1.
    let ts: &[Timestamp] = &response.results[0].event_timestamps;
    assert_eq!(ts[0].seconds - ts[1].seconds, 2 * 3600);
}

/// The bundled snapshot, rebased: a row is OUTSIDE_MAX_AGE exactly when it is older than its view's max
/// age relative to the snapshot's newest row; the snapshot has both kinds in every view.
#[tokio::test]
async fn the_bundled_snapshot_serves_fresh_and_stale_rows() {
    let store = OnlineStore::open(StoreConfig::new(registry()))
        .await
        .expect("bundled snapshot loads");
    assert_eq!(store.backend(), BackendKind::Embedded);
    let files = CsvFile::bundled();
    let rows: Vec<(String, String, i64)> = files
        .iter()
        .flat_map(|file| {
            file.text.lines().skip(1).map(|line| {
                let mut cells = line.split(',');
                let id = cells.next().expect("id").to_owned();
                let ts: Timestamp = cells.next().expect("ts").parse().expect("RFC 3339");
                (file.view.clone(), id, ts.seconds)
            })
        })
        .collect();
    let Some(newest) = rows.iter().map(|r| r.2).max() else {
        return; // Built without a snapshot.
    };
    let registry = registry();
    for file in &files {
        let view = registry.view(&file.view).expect("bundled file for a known view");
        let ttl = view.ttl.expect("max age").as_secs() as i64;
        let view_rows: Vec<&(String, String, i64)> = rows.iter().filter(|r| r.0 == view.name).collect();
        let feature = format!("{}:{}", view.name, view.features[0].name);
        let (mut fresh, mut stale) = (0, 0);
        for chunk in view_rows.chunks(feature_store::MAX_ENTITY_ROWS) {
            let ids: Vec<&str> = chunk.iter().map(|r| r.1.as_str()).collect();
            let response = store
                .get_online_features(request(&[&feature], &[(view.join_keys[0].as_str(), &ids)]), None)
                .await
                .expect("read");
            for (i, row) in chunk.iter().enumerate() {
                let want = if newest - row.2 > ttl {
                    FieldStatus::OutsideMaxAge
                } else {
                    FieldStatus::Present
                };
                assert_eq!(cell(&response, 0, i).1, want, "{} {}", view.name, row.1);
                if want == FieldStatus::Present {
                    fresh += 1
                } else {
                    stale += 1
                }
            }
        }
        assert!(
            fresh > 0 && stale > 0,
            "{}: {fresh} fresh, {stale} stale",
            view.name
        );
    }
}

#[tokio::test]
async fn malformed_csv_is_an_error_with_its_line() {
    let cases = [
        (
            "customer_id,event_timestamp,account_age_days\nc-1,2025-01-01T00:00:00Z,ten\n",
            2,
            "ten",
        ),
        (
            "customer_id,event_timestamp,nope\nc-1,2025-01-01T00:00:00Z,1\n",
            1,
            "nope",
        ),
        ("customer_id,account_age_days\nc-1,1\n", 1, "event_timestamp"),
        (
            "customer_id,event_timestamp\n,2025-01-01T00:00:00Z\n",
            2,
            "empty entity id",
        ),
        ("customer_id,event_timestamp\nc-1,yesterday\n", 2, "yesterday"),
    ];
    for (text, line, needle) in cases {
        let error = embedded(vec![CsvFile::new("p.csv", "customer_profile", text)])
            .await
            .err()
            .expect("fails");
        match &error {
            Error::Csv {
                file,
                line: l,
                reason,
            } => {
                assert_eq!((file.as_str(), *l), ("p.csv", line), "{error}");
                assert!(reason.contains(needle), "{error}");
            }
            other => panic!("expected a CSV error, got {other:?}"),
        }
    }
    let error = embedded(vec![CsvFile::new("x.csv", "no_such_view", "a\n")])
        .await
        .err()
        .expect("fails");
    assert!(error.to_string().contains("no_such_view"), "{error}");
}

#[test]
fn files_are_read_from_disk_with_the_view_from_their_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("zone_weather.csv");
    std::fs::write(
        &path,
        "zone_id,event_timestamp,temperature_c\nz-1,2025-01-01T00:00:00Z,3.5\n",
    )
    .expect("write");
    let file = CsvFile::read(&path, None).expect("reads");
    assert_eq!(file.view, "zone_weather");
    assert_eq!(
        CsvFile::read(&path, Some("zone_demand")).expect("reads").view,
        "zone_demand"
    );
    assert!(matches!(
        CsvFile::read(&dir.path().join("missing.csv"), None),
        Err(Error::Io { .. })
    ));
}

/// Rows that repeat an entity read its one key: each row of a request, few rows or many, with ids
/// repeated across rows, holds what a request for that row's entities alone gets.
#[tokio::test]
async fn repeated_entities_answer_each_row_as_alone() {
    let store = embedded(tiny_csvs()).await.expect("loads");
    let features = [
        "zone_demand:open_requests_15m",
        "customer_profile:account_age_days",
        "customer_profile:cancellation_rate",
    ];
    let (customers, zones) = (["c-1", "c-2", "c-stale", "c-none"], ["z-1", "z-stale", "z-none"]);
    // Below and above the row count past which repeated keys are found through a map.
    for rows in [5, 40] {
        let row_customers: Vec<&str> = (0..rows).map(|r| customers[r % customers.len()]).collect();
        let row_zones: Vec<&str> = (0..rows).map(|r| zones[r % zones.len()]).collect();
        let all = store
            .get_online_features(
                request(
                    &features,
                    &[("customer_id", &row_customers), ("zone_id", &row_zones)],
                ),
                None,
            )
            .await
            .expect("read");
        for row in 0..rows {
            let alone = store
                .get_online_features(
                    request(
                        &features,
                        &[
                            ("customer_id", &[row_customers[row]]),
                            ("zone_id", &[row_zones[row]]),
                        ],
                    ),
                    None,
                )
                .await
                .expect("read");
            for (f, feature) in features.iter().enumerate() {
                assert_eq!(
                    cell(&all, f, row),
                    cell(&alone, f, 0),
                    "{rows} rows: row {row} ({}, {}), {feature}",
                    row_customers[row],
                    row_zones[row],
                );
            }
        }
    }
}
