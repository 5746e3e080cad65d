//! Per-row cost of `ModelVersion::predict` on the bundled models, by batch size: the figures behind the
//! model-service's choice between scoring inline on the async worker and on a blocking thread. Also
//! what drift counting adds: `predict_tallied` against `predict`, and `drift_observe`, the binning of
//! one row's watched inputs alone.
//!
//! `cargo bench -p model-runtime --bench predict`; criterion reports time per call and, through
//! `Throughput::Elements`, rows per second.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use model_runtime::{ModelRepository, Row};

const BATCH_SIZES: [usize; 5] = [1, 16, 64, 256, 1000];

fn bench_predict(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model-service/models");
    let repository = ModelRepository::load(&root).expect("the bundled repository loads");
    for model in repository.models() {
        let version = model.default_version();
        // Each row carries every input at its default, nudged so rows differ.
        let rows: Vec<Row> = (0..*BATCH_SIZES.iter().max().unwrap_or(&1))
            .map(|i| {
                version
                    .inputs()
                    .iter()
                    .map(|input| (input.name.clone(), input.default + (i % 7) as f64))
                    .collect::<HashMap<_, _>>()
            })
            .collect();
        let mut group = c.benchmark_group(format!("predict/{}", model.name()));
        for batch in BATCH_SIZES {
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::from_parameter(batch), &rows[..batch], |b, rows| {
                b.iter(|| version.predict(black_box(rows)).expect("rows score"));
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("predict_tallied/{}", model.name()));
        for batch in BATCH_SIZES {
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::from_parameter(batch), &rows[..batch], |b, rows| {
                b.iter(|| version.predict_tallied(black_box(rows)).expect("rows score"));
            });
        }
        group.finish();

        // One row's values in input order, as the tensor builder hands them over.
        let profile = version.drift_profile();
        let values: Vec<f64> = version
            .inputs()
            .iter()
            .map(|input| rows[3][&input.name])
            .collect();
        let mut tally = profile.tally();
        c.bench_function(&format!("drift_observe/{}", model.name()), |b| {
            b.iter(|| {
                for (input, value) in black_box(&values).iter().enumerate() {
                    profile.observe(&mut tally, input, Some(*value));
                }
            });
        });
    }
}

criterion_group!(benches, bench_predict);
criterion_main!(benches);
