//! Predict, GetModelMetadata and health over real gRPC, with the bundled models.

use crate::common;

use std::collections::{BTreeMap, HashMap};

use common::{TestServer, bundled_repository, features, request, row};
use model_service::service::INLINE_MAX_ROWS;
use proto::models::v1::{FeatureRow, GetModelMetadataRequest};
use serde::Deserialize;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[derive(Deserialize)]
struct Expected {
    version: String,
    rows: Vec<ExpectedRow>,
}

#[derive(Deserialize)]
struct ExpectedRow {
    features: HashMap<String, f64>,
    outputs: BTreeMap<String, f64>,
}

fn expected_scores() -> BTreeMap<String, Expected> {
    let json = std::fs::read(bundled_repository().join("expected_scores.json")).expect("readable");
    serde_json::from_slice(&json).expect("parses")
}

#[tokio::test]
async fn predict_returns_the_recorded_scores() {
    let mut server = TestServer::start().await;
    for (model, expected) in expected_scores() {
        let rows = expected.rows.iter().map(|r| features(&r.features)).collect();
        // Empty version: the default (newest) version, which is the one recorded.
        let response = server
            .client
            .predict(request(&model, "", rows))
            .await
            .expect("predict")
            .into_inner();
        assert_eq!(
            (response.model.as_str(), response.version.as_str()),
            (model.as_str(), expected.version.as_str())
        );
        assert_eq!(response.predictions.len(), expected.rows.len());
        for (index, (got, want)) in response.predictions.iter().zip(&expected.rows).enumerate() {
            assert_eq!(got.outputs.len(), want.outputs.len(), "{model} row {index}");
            for (name, value) in &want.outputs {
                let score = got.outputs[name];
                assert!(
                    (score - value).abs() <= 1e-5,
                    "{model} row {index} {name}: {score} vs {value}"
                );
            }
            let defaulted_everything_absent = got
                .defaulted_inputs
                .iter()
                .all(|name| !want.features.contains_key(name));
            assert!(
                defaulted_everything_absent,
                "{model} row {index}: {:?}",
                got.defaulted_inputs
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn rows_by_position_score_as_the_same_rows_by_name() {
    let mut server = TestServer::start().await;
    for (model, expected) in expected_scores() {
        let metadata = server
            .client
            .get_model_metadata(GetModelMetadataRequest {
                model: model.clone(),
                version: expected.version.clone(),
            })
            .await
            .expect("metadata")
            .into_inner();
        assert!(metadata.takes_positional_rows);
        let named: Vec<_> = expected.rows.iter().map(|r| features(&r.features)).collect();
        // The same values in GetModelMetadata's order; an input a row lacks is NaN: its default.
        let positional = expected
            .rows
            .iter()
            .map(|r| FeatureRow {
                features: HashMap::new(),
                values: metadata
                    .inputs
                    .iter()
                    .map(|input| r.features.get(&input.name).copied().unwrap_or(f64::NAN))
                    .collect(),
            })
            .collect();
        let by_name = server
            .client
            .predict(request(&model, &expected.version, named))
            .await
            .expect("by name")
            .into_inner();
        let by_position = server
            .client
            .predict(request(&model, &expected.version, positional))
            .await
            .expect("by position")
            .into_inner();
        assert_eq!(by_position, by_name, "{model}");
        assert!(by_name.predictions.iter().any(|p| !p.defaulted_inputs.is_empty()));
    }
    server.stop().await;
}

#[tokio::test]
async fn absent_and_nan_inputs_are_reported_as_defaulted() {
    let mut server = TestServer::start().await;
    let rows = vec![row(&[
        ("customer_profile:account_age_days", f64::NAN),
        ("customer_profile:chargebacks_1y", 0.0),
    ])];
    let response = server
        .client
        .predict(request("customer_risk", "1", rows))
        .await
        .expect("predict")
        .into_inner();
    let defaulted = &response.predictions[0].defaulted_inputs;
    assert_eq!(defaulted.len(), 8, "{defaulted:?}");
    assert_eq!(defaulted[0], "customer_profile:account_age_days");
    assert!(!defaulted.contains(&"customer_profile:chargebacks_1y".to_owned()));
    server.stop().await;
}

#[tokio::test]
async fn a_large_batch_matches_rows_scored_alone() {
    let mut server = TestServer::start().await;
    let batch: Vec<_> = (0..INLINE_MAX_ROWS * 3 + 1)
        .map(|i| {
            row(&[
                ("zone_demand:demand_supply_ratio", i as f64 / 100.0),
                ("hour_of_day", (i % 24) as f64),
            ])
        })
        .collect();
    let response = server
        .client
        .predict(request("demand_surge", "", batch.clone()))
        .await
        .expect("predict");
    let predictions = response.into_inner().predictions;
    assert_eq!(predictions.len(), batch.len());
    for index in [0, INLINE_MAX_ROWS, batch.len() - 1] {
        let alone = server
            .client
            .predict(request("demand_surge", "", vec![batch[index].clone()]))
            .await
            .expect("predict");
        let alone = alone.into_inner().predictions[0].outputs["surge_factor"];
        assert!(
            (predictions[index].outputs["surge_factor"] - alone).abs() <= 1e-6,
            "row {index}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn metadata_describes_inputs_outputs_and_versions() {
    let mut server = TestServer::start_with(250).await;
    let request = GetModelMetadataRequest {
        model: "customer_risk".into(),
        version: String::new(),
    };
    let metadata = server
        .client
        .get_model_metadata(request)
        .await
        .expect("metadata")
        .into_inner();
    assert_eq!(
        (metadata.model.as_str(), metadata.version.as_str()),
        ("customer_risk", "1")
    );
    assert_eq!(metadata.inputs.len(), 9);
    assert_eq!(metadata.inputs[0].name, "customer_profile:account_age_days");
    assert!(
        metadata
            .inputs
            .iter()
            .all(|input| input.default_value.is_finite())
    );
    assert_eq!(metadata.outputs, ["risk_score", "risk_multiplier"]);
    assert_eq!(metadata.available_versions, ["1"]);
    assert_eq!(metadata.max_batch_rows, 250);

    let request = GetModelMetadataRequest {
        model: "demand_surge".into(),
        version: "1".into(),
    };
    let metadata = server
        .client
        .get_model_metadata(request)
        .await
        .expect("metadata")
        .into_inner();
    assert_eq!(metadata.inputs.len(), 10);
    assert_eq!(metadata.outputs, ["surge_factor"]);
    server.stop().await;
}

#[tokio::test]
async fn health_is_serving_once_loaded() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel.clone());
    for service in ["", model_service::SERVICE_NAME] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("check");
        assert_eq!(
            response.into_inner().status(),
            ServingStatus::Serving,
            "service {service:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn predict_many_answers_each_request_in_order_or_names_the_one_that_failed() {
    use proto::models::v1::PredictManyRequest;
    let mut server = TestServer::start_with(3).await;
    let expected = expected_scores();
    let first_row = |model: &str| features(&expected[model].rows[0].features);
    let many = |requests| PredictManyRequest { requests };
    let answer = server
        .client
        .predict_many(many(vec![
            request("demand_surge", "", vec![first_row("demand_surge")]),
            request("customer_risk", "", vec![first_row("customer_risk")]),
        ]))
        .await
        .expect("predict many")
        .into_inner();
    let models: Vec<&str> = answer.responses.iter().map(|r| r.model.as_str()).collect();
    assert_eq!(models, ["demand_surge", "customer_risk"]);
    for response in &answer.responses {
        let want = &expected[&response.model].rows[0].outputs;
        for (name, value) in want {
            let got = response.predictions[0].outputs[name];
            assert!(
                (got - value).abs() <= 1e-5,
                "{} {name}: {got} vs {value}",
                response.model
            );
        }
    }

    let refused = |status: tonic::Status, code: tonic::Code, says: &str| {
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(says), "{status:?}");
    };
    let empty = server
        .client
        .predict_many(many(Vec::new()))
        .await
        .expect_err("empty");
    refused(empty, tonic::Code::InvalidArgument, "`requests` is empty");
    let unknown = server
        .client
        .predict_many(many(vec![
            request("customer_risk", "", vec![first_row("customer_risk")]),
            request("no_such_model", "", vec![first_row("customer_risk")]),
        ]))
        .await
        .expect_err("unknown model");
    refused(unknown, tonic::Code::NotFound, "requests[1]:");
    // The row cap (3 here) is the call's, over all its requests.
    let rows = |n| (0..n).map(|_| first_row("customer_risk")).collect::<Vec<_>>();
    let over = server
        .client
        .predict_many(many(vec![
            request("customer_risk", "", rows(2)),
            request("customer_risk", "", rows(2)),
        ]))
        .await
        .expect_err("over the cap");
    refused(over, tonic::Code::InvalidArgument, "4 rows; at most 3");
    let too_many = (0..17).map(|_| request("customer_risk", "", rows(0))).collect();
    let too_many = server
        .client
        .predict_many(many(too_many))
        .await
        .expect_err("17 requests");
    refused(too_many, tonic::Code::InvalidArgument, "17 requests; at most 16");
    server.stop().await;
}
