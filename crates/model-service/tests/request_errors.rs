//! Every rejected request gets the right gRPC code and a message naming what was wrong.

mod common;

use common::{TestServer, request, row};
use proto::models::v1::GetModelMetadataRequest;
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
