//! Property: whatever a Predict request holds (any model and version strings, real and made-up feature
//! names, rows by position of any width, with or without names or a version, NaN, infinities, values
//! beyond f32, empty rows, too many rows), the service never panics and answers exactly what the request
//! deserves: OK with one finite prediction per row, or the first problem's INVALID_ARGUMENT / NOT_FOUND
//! with a message naming the field at fault. The one outcome the oracle cannot foresee: a row with an
//! absurd (finite) value may drive a model to a non-finite output, answered INVALID_ARGUMENT naming that
//! row.
//!
//! Runs the handler in process (no network) on the bundled model repository, so 256 cases take well
//! under a second; the request checks happen in the handler, not in any layer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use model_runtime::ModelRepository;
use model_service::service::Models;
use proptest::prelude::*;
use proto::models::v1::model_service_server::ModelService;
use proto::models::v1::{FeatureRow, PredictRequest, PredictResponse};
use tonic::{Code, Request, Status};

/// A low cap, so that "too many rows" is reached as often as batches over the inline limit (64).
const MAX_ROWS: usize = 80;
const MODELS: [&str; 2] = ["customer_risk", "demand_surge"];

fn repository() -> Arc<ModelRepository> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
    Arc::new(ModelRepository::load(root).expect("the bundled repository loads"))
}

/// The input names of each bundled model.
fn input_names(repository: &ModelRepository) -> HashMap<String, Vec<String>> {
    MODELS
        .iter()
        .map(|model| {
            let version = repository.get(model, None).expect("a bundled model");
            let names = version.inputs().iter().map(|input| input.name.clone()).collect();
            ((*model).to_owned(), names)
        })
        .collect()
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -1e6..1e6_f64,
        1 => any::<f64>(),
        1 => prop::sample::select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
            1e39, // finite, but infinite as the f32 the model takes
            f64::from(f32::MAX),
            f64::MIN_POSITIVE,
            -0.0,
        ]),
    ]
}

/// A row of the model's own input names (`clean`), or of those mixed with made-up names. By position:
/// one value per input of the model (`clean`), or 8 to 11 values (the bundled models take 9 and 10)
/// that sometimes come with names too.
fn row(names: Vec<String>, clean: bool, positional: bool) -> BoxedStrategy<FeatureRow> {
    let noise = if clean { 0 } else { 1 };
    let width = names.len();
    let name = prop_oneof![
        8 => prop::sample::select(names),
        noise => "\\PC{0,12}",
        noise => "[a-z_]{1,8}:[a-z_]{1,8}",
    ];
    if !positional {
        return prop::collection::hash_map(name, value(), 0..12)
            .prop_map(|features| FeatureRow {
                features,
                values: Vec::new(),
            })
            .boxed();
    }
    let (widths, named) = if clean {
        (width..width + 1, 0..1)
    } else {
        (8..12, 0..2)
    };
    (
        prop::collection::vec(value(), widths),
        prop::collection::hash_map(name, value(), named),
    )
        .prop_map(|(values, features)| FeatureRow { features, values })
        .boxed()
}

/// Three in four requests use only their model's input names, so that many get all the way to
/// scoring; the others mix in made-up names and the other model's.
fn request(names: HashMap<String, Vec<String>>) -> impl Strategy<Value = PredictRequest> {
    let model = prop_oneof![
        6 => prop::sample::select(MODELS.to_vec()).prop_map(str::to_owned),
        1 => Just(String::new()),
        1 => "\\PC{0,16}",
    ];
    (model, prop::bool::weighted(0.75), prop::bool::weighted(0.3))
        .prop_flat_map(move |(model, clean, positional)| {
            let own = match names.get(&model) {
                Some(own) if clean => own.clone(),
                _ => names.values().flatten().cloned().collect(),
            };
            (Just(model), rows(own, clean, positional))
        })
        .prop_flat_map(|(model, rows)| fields(model, rows))
}

/// Row counts: mostly small, sometimes around the inline limit and the cap, sometimes none.
fn rows(names: Vec<String>, clean: bool, positional: bool) -> impl Strategy<Value = Vec<FeatureRow>> {
    prop_oneof![
        6 => prop::collection::vec(row(names.clone(), clean, positional), 0..8),
        2 => prop::collection::vec(row(names, clean, positional), 60..MAX_ROWS + 6),
    ]
}

fn fields(model: String, rows: Vec<FeatureRow>) -> impl Strategy<Value = PredictRequest> {
    // Rows by position need a version: most such requests name the bundled one.
    let (default, named) = match rows.iter().any(|row| !row.values.is_empty()) {
        false => (4, 2),
        true => (1, 5),
    };
    let version = prop_oneof![
        default => Just(String::new()),
        named => Just("1".to_owned()),
        1 => "\\PC{0,6}",
    ];
    (version, "\\PC{0,8}").prop_map(move |(version, variant)| PredictRequest {
        model: model.clone(),
        version,
        rows: rows.clone(),
        variant,
    })
}

/// What the request deserves, in the order the service checks: the status code and fragments its
/// message must hold, or `None` for OK.
fn expected(request: &PredictRequest, repository: &ModelRepository) -> Option<(Code, Vec<String>)> {
    if request.model.is_empty() {
        return Some((Code::InvalidArgument, vec!["`model`".into()]));
    }
    if request.rows.is_empty() {
        return Some((Code::InvalidArgument, vec!["`rows`".into()]));
    }
    if request.rows.len() > MAX_ROWS {
        return Some((
            Code::InvalidArgument,
            vec![
                "`rows`".into(),
                request.rows.len().to_string(),
                MAX_ROWS.to_string(),
            ],
        ));
    }
    // A row's form is checked before its model is looked up.
    for (index, row) in request.rows.iter().enumerate() {
        if row.values.is_empty() {
            continue;
        }
        if !row.features.is_empty() {
            return Some((Code::InvalidArgument, vec![format!("rows[{index}] has both")]));
        }
        if request.version.is_empty() {
            return Some((
                Code::InvalidArgument,
                vec![format!("rows[{index}].values needs `version`")],
            ));
        }
    }
    let version = (!request.version.is_empty()).then_some(request.version.as_str());
    let Ok(model) = repository.get(&request.model, version) else {
        let named = if repository.model(&request.model).is_err() {
            format!("{:?}", request.model)
        } else {
            format!("{:?}", request.version)
        };
        return Some((Code::NotFound, vec![named]));
    };
    let inputs: Vec<&str> = model.inputs().iter().map(|input| input.name.as_str()).collect();
    for (index, row) in request.rows.iter().enumerate() {
        if !row.values.is_empty() && row.values.len() != inputs.len() {
            return Some((
                Code::InvalidArgument,
                vec![format!("rows[{index}].values has {} values", row.values.len())],
            ));
        }
        let unknown = row
            .features
            .keys()
            .filter(|name| !inputs.contains(&name.as_str()))
            .min();
        if let Some(name) = unknown {
            return Some((
                Code::InvalidArgument,
                vec![format!("rows[{index}].features"), format!("{name:?}")],
            ));
        }
    }
    None
}

/// Beyond anything a model input means; only such rows may drive a model to a non-finite output.
const ABSURD: f64 = 1e15;

/// Checks `outcome` against [`expected`]; true when it was OK.
fn check(
    request: &PredictRequest,
    outcome: &Result<PredictResponse, Status>,
    repository: &ModelRepository,
) -> Result<bool, TestCaseError> {
    match (expected(request, repository), outcome) {
        (None, Ok(response)) => {
            prop_assert_eq!(&response.model, &request.model);
            prop_assert_eq!(response.predictions.len(), request.rows.len());
            for prediction in &response.predictions {
                prop_assert!(!prediction.outputs.is_empty());
                prop_assert!(
                    prediction.outputs.values().all(|v| v.is_finite()),
                    "{:?}",
                    prediction.outputs
                );
            }
            Ok(true)
        }
        (Some((code, fragments)), Err(status)) => {
            prop_assert_eq!(status.code(), code, "{:?}", status);
            for fragment in fragments {
                prop_assert!(
                    status.message().contains(&fragment),
                    "{:?} missing from {:?}",
                    fragment,
                    status.message()
                );
            }
            Ok(false)
        }
        (None, Err(status))
            if status.code() == Code::InvalidArgument && status.message().contains("non-finite") =>
        {
            let named = status
                .message()
                .strip_prefix("rows[")
                .and_then(|rest| rest.split_once(']'))
                .and_then(|(index, _)| index.parse::<usize>().ok())
                .and_then(|index| request.rows.get(index));
            let absurd = named.is_some_and(|row| {
                row.features
                    .values()
                    .chain(&row.values)
                    .any(|v| v.is_finite() && v.abs() >= ABSURD)
            });
            prop_assert!(absurd, "{:?} names no row with an absurd value", status);
            Ok(false)
        }
        (want, got) => Err(TestCaseError::fail(format!("expected {want:?}, got {got:?}"))),
    }
}

#[test]
fn any_predict_request_gets_the_answer_it_deserves() {
    let repository = repository();
    let names = input_names(&repository);
    let models = Models::new(Arc::clone(&repository), MAX_ROWS)
        .with_metrics(telemetry::Metrics::disabled())
        // Generous: a timeout is not what is tested here, and debug builds share two cores.
        .with_inference_timeout(Duration::from_secs(10));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let config = ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let scored = AtomicUsize::new(0);
    let scored_by_position = AtomicUsize::new(0);
    proptest!(config, |(request in request(names.clone()))| {
        let outcome = runtime
            .block_on(ModelService::predict(&models, Request::new(request.clone())))
            .map(tonic::Response::into_inner);
        if check(&request, &outcome, &repository)? {
            scored.fetch_add(1, Ordering::Relaxed);
            if request.rows.iter().any(|row| !row.values.is_empty()) {
                scored_by_position.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    // The property says little if nearly every request is refused before scoring.
    let scored = scored.into_inner();
    assert!(scored >= 256 / 4, "only {scored} of 256 requests were scored");
    // About 20 expected: clean requests by position that name version "1".
    let by_position = scored_by_position.into_inner();
    assert!(
        by_position >= 4,
        "only {by_position} requests by position were scored"
    );
}

#[test]
fn the_oracle_agrees_with_hand_written_cases() {
    let repository = repository();
    let request = |model: &str, rows: Vec<HashMap<String, f64>>| PredictRequest {
        model: model.into(),
        version: String::new(),
        rows: rows
            .into_iter()
            .map(|features| FeatureRow {
                features,
                values: Vec::new(),
            })
            .collect(),
        variant: String::new(),
    };
    let row = |pairs: &[(&str, f64)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    assert_eq!(
        expected(&request("customer_risk", vec![row(&[])]), &repository),
        None
    );
    let unknown = expected(
        &request(
            "demand_surge",
            vec![row(&[("hour_of_day", 3.0)]), row(&[("b", 1.0), ("a", 1.0)])],
        ),
        &repository,
    );
    assert_eq!(
        unknown,
        Some((
            Code::InvalidArgument,
            vec!["rows[1].features".into(), "\"a\"".into()]
        ))
    );
    let missing = expected(&request("churn", vec![row(&[])]), &repository);
    assert_eq!(missing, Some((Code::NotFound, vec!["\"churn\"".into()])));
}
