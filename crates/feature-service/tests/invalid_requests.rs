//! Invalid requests get INVALID_ARGUMENT (or NOT_FOUND for names the registry lacks) with a message
//! naming the field at fault.

use crate::common;

use common::*;
use proto::feast::types::RepeatedValue;
use tonic::Code;

#[tokio::test]
async fn invalid_requests_are_rejected_with_the_field_named() {
    let server = Server::start(config(None, &[])).await;
    let mut client = server.client.clone();
    let one: &[&str] = &["c-1"];
    let many: Vec<String> = (0..1001).map(|i| format!("c-{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut wrong_type = request(&["customer_profile:account_age_days"], &[]);
    wrong_type.entities.insert(
        "customer_id".into(),
        RepeatedValue {
            val: vec![proto::feast::types::Value {
                val: Some(proto::feast::types::value::Val::Int64Val(1)),
            }],
        },
    );
    let cases = vec![
        (
            request(&[], &[("customer_id", one)]),
            Code::InvalidArgument,
            "features: at least one",
        ),
        (
            request(&["account_age_days"], &[("customer_id", one)]),
            Code::InvalidArgument,
            "features[0]: malformed",
        ),
        (
            request(&["nope:x"], &[("customer_id", one)]),
            Code::NotFound,
            "unknown feature view \"nope\"",
        ),
        (
            request(&["customer_profile:nope"], &[("customer_id", one)]),
            Code::NotFound,
            "unknown feature \"nope\" in feature view \"customer_profile\"",
        ),
        (
            request(
                &["customer_profile:account_age_days"],
                &[("customer_id", &["a", "b"]), ("zone_id", one)],
            ),
            Code::InvalidArgument,
            "every entity column must have the same length",
        ),
        (
            request(&["zone_demand:available_drivers"], &[("customer_id", one)]),
            Code::InvalidArgument,
            "missing join key \"zone_id\"",
        ),
        (
            request(&["customer_profile:account_age_days"], &[("customer_id", &many)]),
            Code::InvalidArgument,
            "1001 entity rows is more than the limit of 1000",
        ),
        (
            request(&["customer_profile:account_age_days"], &[("customer_id", &[""])]),
            Code::InvalidArgument,
            "entities[\"customer_id\"][0]: empty entity id",
        ),
        (
            wrong_type,
            Code::InvalidArgument,
            "expected a STRING value, got int64",
        ),
    ];
    for (req, code, needle) in cases {
        let status = client.get_online_features(req).await.expect_err("rejected");
        assert_eq!(status.code(), code, "{}", status.message());
        assert!(
            status.message().contains(needle),
            "{:?} does not contain {needle:?}",
            status.message()
        );
    }
    server.stop().await.expect("clean shutdown");
}
