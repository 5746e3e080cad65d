//! No request makes the feature-service ship an answer past `MAX_RESPONSE_BYTES`: the answer is failed
//! with OUT_OF_RANGE instead of sent, and one within the limit is answered as usual.

use crate::common;

use common::*;
use tonic::Code;

#[tokio::test]
async fn an_answer_past_the_response_limit_is_refused_not_sent() {
    let server = Server::start(config(None, &["--max-response-bytes", "2048"])).await;
    let mut client = server.client.clone();
    let features = [
        "customer_profile:account_age_days",
        "customer_profile:lifetime_bookings",
        "customer_profile:cancellation_rate",
    ];
    let ids: Vec<String> = (0..400).map(|i| format!("C{i:06}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();

    let small = client
        .get_online_features(request(&features, &[("customer_id", &ids[..2])]))
        .await
        .expect("a small answer is sent");
    assert_eq!(small.get_ref().results.len(), features.len());

    let status = client
        .get_online_features(request(&features, &[("customer_id", &ids)]))
        .await
        .expect_err("1,200 values do not fit in 2 KiB");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("2048"), "{status:?}");
    server.stop().await.expect("clean stop");
}
