//! Filling Redis with features in Feast's layout for tests, through the same `materialize` code the
//! `materialize` command runs.

use std::time::SystemTime;

use feature_store::{CsvFile, MaterializeOptions, RedisConfig, Registry, materialize};

/// Writes CSV text per view (`(view, csv)`, the snapshot's format) into Redis at `url`; returns rows written.
pub async fn materialize_csv(url: &str, views: &[(&str, &str)]) -> usize {
    let files: Vec<CsvFile> = views
        .iter()
        .map(|(view, text)| CsvFile::new(format!("{view}.csv"), *view, *text))
        .collect();
    write(url, &files, false).await
}

/// Writes the bundled snapshot, its newest row rebased to now (as the demo sees it); returns rows written.
pub async fn materialize_snapshot(url: &str) -> usize {
    write(url, &CsvFile::bundled(), true).await
}

async fn write(url: &str, files: &[CsvFile], rebase_timestamps: bool) -> usize {
    let registry = Registry::bundled().expect("bundled registry");
    let options = MaterializeOptions {
        rebase_timestamps,
        ..MaterializeOptions::default()
    };
    materialize(&RedisConfig::new(url), &registry, files, &options)
        .await
        .expect("materialize")
        .rows
}

/// RFC 3339 in UTC with second precision, the snapshot's timestamp format.
pub fn rfc3339(time: SystemTime) -> String {
    let mut ts = prost_types::Timestamp::from(time);
    ts.nanos = 0;
    ts.to_string()
}

/// A Feast string value (entity ids are strings here).
pub fn string_value(s: &str) -> proto::feast::types::Value {
    proto::feast::types::Value {
        val: Some(proto::feast::types::value::Val::StringVal(s.to_owned())),
    }
}

/// A `GetOnlineFeatures` request for `features` with string entity columns, e.g.
/// `online_request(&["customer_profile:account_age_days"], &[("customer_id", &["C000001"])])`.
pub fn online_request(
    features: &[&str],
    entities: &[(&str, &[&str])],
) -> proto::features::v1::GetOnlineFeaturesRequest {
    proto::features::v1::GetOnlineFeaturesRequest {
        features: features.iter().map(|f| (*f).to_owned()).collect(),
        entities: entities
            .iter()
            .map(|(key, ids)| {
                let column = proto::feast::types::RepeatedValue {
                    val: ids.iter().map(|id| string_value(id)).collect(),
                };
                ((*key).to_owned(), column)
            })
            .collect(),
    }
}
