//! The system's end-to-end tests (`tests/`, one file per behaviour) and what they need beyond the test
//! kit: the three services started for real — in-process gRPC servers ([`services`]) or separate
//! processes from their binaries ([`processes`]) — steady load on the gateway ([`load`]), and Redis
//! filled through the `materialize` code ([`materialize_csv`], [`materialize_snapshot`]).
//!
//! A new end-to-end test goes in `tests/`; a fixture any crate's tests could use (a server, a sink, a
//! certificate) goes in the leaf `testkit` crate instead, so those crates need not build the services.
#![forbid(unsafe_code)]

pub mod load;
pub mod processes;
pub mod services;

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
