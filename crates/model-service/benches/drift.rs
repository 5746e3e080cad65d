//! What a Predict call pays to add its drift tally to the version's window (`DriftWindow::record`:
//! one relaxed `fetch_add` per non-empty bin), for a tally of 1 row and of 1000 rows of the bundled
//! customer-risk model. The binning itself is in `model-runtime`'s `predict` bench (`drift_observe`,
//! `predict_tallied`).
//!
//! `cargo bench -p model-service --bench drift`

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use model_runtime::{ModelRepository, Row};
use model_service::drift::DriftWindow;

fn bench_record(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let repository = ModelRepository::load(&root).expect("the bundled repository loads");
    let version = repository.get("customer_risk", None).expect("customer_risk");
    let window = DriftWindow::for_version(version);
    let mut group = c.benchmark_group("drift_record/customer_risk");
    for batch in [1usize, 1000] {
        // Rows spread over the inputs' ranges, so a large batch fills most bins.
        let rows: Vec<Row> = (0..batch)
            .map(|i| {
                version
                    .inputs()
                    .iter()
                    .map(|input| (input.name.clone(), input.default * (i % 11) as f64 / 5.0))
                    .collect::<HashMap<_, _>>()
            })
            .collect();
        let (_, tally) = version.predict_tallied(&rows).expect("rows score");
        group.bench_with_input(BenchmarkId::from_parameter(batch), &tally, |b, tally| {
            b.iter(|| window.record(black_box(tally)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_record);
criterion_main!(benches);
