//! Every rejected request gets the right gRPC code and a message naming what was wrong.

use crate::common;

use common::{TestServer, request, row};
use model_service::service::MAX_ROW_FEATURES;
use std::collections::HashMap;

use proto::models::v1::{FeatureRow, GetModelMetadataRequest};
use tonic::Code;

fn assert_status(status: &tonic::Status, code: Code, fragments: &[&str]) {
    assert_eq!(status.code(), code, "{status:?}");
    for fragment in fragments {
        assert!(
            status.message().contains(fragment),
            "{fragment:?} missing from {:?}",
            status.message()
        );
    }
}

#[tokio::test]
async fn unknown_model_is_not_found_and_lists_the_known_ones() {
    let mut server = TestServer::start().await;
    let status = server
        .client
        .predict(request("churn", "", vec![row(&[])]))
        .await
        .expect_err("unknown model");
    assert_status(
        &status,
        Code::NotFound,
        &["churn", "customer_risk", "demand_surge"],
    );
    let metadata = GetModelMetadataRequest {
        model: "churn".into(),
        version: String::new(),
    };
    let status = server
        .client
        .get_model_metadata(metadata)
        .await
        .expect_err("unknown model");
    assert_status(&status, Code::NotFound, &["churn", "customer_risk"]);
    server.stop().await;
}

#[tokio::test]
async fn unknown_version_is_not_found_and_lists_the_available_ones() {
    let mut server = TestServer::start().await;
    let status = server
        .client
        .predict(request("customer_risk", "7", vec![row(&[])]))
        .await
        .expect_err("unknown version");
    assert_status(
        &status,
        Code::NotFound,
        &["\"7\"", "customer_risk", "available versions: 1"],
    );
    let metadata = GetModelMetadataRequest {
        model: "demand_surge".into(),
        version: "2".into(),
    };
    let status = server
        .client
        .get_model_metadata(metadata)
        .await
        .expect_err("unknown version");
    assert_status(&status, Code::NotFound, &["\"2\"", "available versions: 1"]);
    server.stop().await;
}

#[tokio::test]
async fn empty_model_name_is_invalid() {
    let mut server = TestServer::start().await;
    let status = server
        .client
        .predict(request("", "", vec![row(&[])]))
        .await
        .expect_err("no model");
    assert_status(&status, Code::InvalidArgument, &["`model`"]);
    let metadata = GetModelMetadataRequest {
        model: String::new(),
        version: String::new(),
    };
    let status = server
        .client
        .get_model_metadata(metadata)
        .await
        .expect_err("no model");
    assert_status(&status, Code::InvalidArgument, &["`model`"]);
    server.stop().await;
}

#[tokio::test]
async fn no_rows_is_invalid() {
    let mut server = TestServer::start().await;
    let status = server
        .client
        .predict(request("customer_risk", "", vec![]))
        .await
        .expect_err("no rows");
    assert_status(&status, Code::InvalidArgument, &["`rows`"]);
    server.stop().await;
}

#[tokio::test]
async fn rows_over_the_cap_are_invalid() {
    let mut server = TestServer::start_with(5).await;
    let rows = vec![row(&[]); 6];
    let status = server
        .client
        .predict(request("customer_risk", "", rows))
        .await
        .expect_err("too many rows");
    assert_status(&status, Code::InvalidArgument, &["`rows`", "6", "5"]);
    // At the cap is fine.
    server
        .client
        .predict(request("customer_risk", "", vec![row(&[]); 5]))
        .await
        .expect("at the cap");
    server.stop().await;
}

#[tokio::test]
async fn unknown_input_is_invalid_and_named() {
    let mut server = TestServer::start().await;
    let rows = vec![
        row(&[("hour_of_day", 3.0)]),
        row(&[("hour_of_day", 3.0), ("zone_demand:typo", 1.0)]),
    ];
    let status = server
        .client
        .predict(request("demand_surge", "", rows))
        .await
        .expect_err("unknown input");
    assert_status(&status, Code::InvalidArgument, &["rows[1]", "zone_demand:typo"]);
    server.stop().await;
}

#[tokio::test]
async fn rows_by_position_are_refused_without_a_version_in_both_forms_or_of_another_width() {
    let mut server = TestServer::start().await;
    let by_position = |values: Vec<f64>| FeatureRow {
        features: HashMap::new(),
        values,
    };
    let too_many_values = format!(
        "rows[0] has {} values; at most {MAX_ROW_FEATURES} are allowed per row",
        MAX_ROW_FEATURES + 1
    );
    let cases = [
        // Positions are one version's inputs: the default version may change under the caller.
        (
            request("customer_risk", "", vec![by_position(vec![1.0; 9])]),
            vec!["rows[0].values needs `version`"],
        ),
        (
            request(
                "customer_risk",
                "1",
                vec![
                    by_position(vec![1.0; 9]),
                    FeatureRow {
                        values: vec![1.0; 9],
                        ..row(&[("customer_profile:chargebacks_1y", 0.0)])
                    },
                ],
            ),
            vec!["rows[1] has both `features` and `values`"],
        ),
        (
            request(
                "customer_risk",
                "1",
                vec![by_position(vec![1.0; 9]), by_position(vec![1.0; 10])],
            ),
            vec![
                "rows[1].values has 10 values",
                "takes 9 inputs",
                "GetModelMetadata",
            ],
        ),
        // The row cap counts values as it counts features, and says which it counted.
        (
            request(
                "customer_risk",
                "1",
                vec![by_position(vec![1.0; MAX_ROW_FEATURES + 1])],
            ),
            vec![too_many_values.as_str()],
        ),
    ];
    for (request, fragments) in cases {
        let status = server.client.predict(request).await.expect_err("refused");
        assert_status(&status, Code::InvalidArgument, &fragments);
    }
    let fine = request("customer_risk", "1", vec![by_position(vec![1.0; 9])]);
    server
        .client
        .predict(fine)
        .await
        .expect("nine values, version named");
    server.stop().await;
}

#[tokio::test]
async fn a_row_with_more_features_than_the_cap_is_invalid_and_named() {
    let mut server = TestServer::start().await;
    // Names no model takes: refused for their number before any is looked up.
    let names: Vec<String> = (0..=MAX_ROW_FEATURES).map(|i| format!("x:f{i}")).collect();
    let wide: Vec<(&str, f64)> = names.iter().map(|name| (name.as_str(), 1.0)).collect();
    let rows = vec![row(&[("hour_of_day", 3.0)]), row(&wide)];
    let status = server
        .client
        .predict(request("demand_surge", "", rows))
        .await
        .expect_err("too many features");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        status.message(),
        format!(
            "rows[1] has {} features; at most {MAX_ROW_FEATURES} are allowed per row",
            MAX_ROW_FEATURES + 1
        )
    );
    // At the cap the row gets as far as its inputs, where the unknown names are refused one by one.
    let status = server
        .client
        .predict(request("demand_surge", "", vec![row(&wide[..MAX_ROW_FEATURES])]))
        .await
        .expect_err("unknown inputs");
    assert_status(
        &status,
        Code::InvalidArgument,
        &["rows[0].features has unknown input"],
    );
    server.stop().await;
}
