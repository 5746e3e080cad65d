//! Every answer, error or not, carries its request id (`x-request-id` response header), and every failed
//! request, also during an outage, has a log line with that id and its duration: the id a caller quotes
//! finds the call.

use proto::inference::v1::{PredictCustomerRiskRequest, QuotePriceRequest, RecordOutcomeRequest};
use system_tests::processes::{ProcessStack, json_lines};

fn id_of(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no x-request-id in {metadata:?}"))
}

fn risk(id: &str) -> PredictCustomerRiskRequest {
    PredictCustomerRiskRequest {
        customer_id: id.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_answer_names_its_request_and_every_failure_is_logged_under_it() {
    let stack = ProcessStack::start(&[]).await;
    let mut client = stack.client();

    // Answers carry their id: the caller's own when it sent one, else the gateway's.
    let answered = client
        .predict_customer_risk(risk("C000001"))
        .await
        .expect("healthy");
    let mut answered_ids = vec![id_of(answered.metadata())];
    let mut mine = tonic::Request::new(risk("C000002"));
    mine.metadata_mut()
        .insert("x-request-id", "caller-chosen-7".parse().expect("ascii"));
    let echoed = client.predict_customer_risk(mine).await.expect("healthy");
    assert_eq!(id_of(echoed.metadata()), "caller-chosen-7");
    answered_ids.push("caller-chosen-7".to_owned());
    let quote = client
        .quote_price(QuotePriceRequest {
            customer_id: "C000003".into(),
            zone_id: "Z0003".into(),
            base_price: 10.0,
            ..Default::default()
        })
        .await
        .expect("quote");
    answered_ids.push(id_of(quote.metadata()));
    let outcome = client
        .record_outcome(RecordOutcomeRequest {
            quote_id: quote.into_inner().quote_id,
            booked: false,
            revenue: 0.0,
            ..Default::default()
        })
        .await
        .expect("outcome");
    answered_ids.push(id_of(outcome.metadata()));

    // An outage: every call fails, and each failure names its request.
    let ProcessStack {
        mut models,
        features,
        gateway,
    } = stack;
    models.kill();
    let mut failed_ids = Vec::new();
    for i in 0..9 {
        let failed = client
            .predict_customer_risk(risk(&format!("C{:06}", 10 + i)))
            .await
            .expect_err("the model-service is gone");
        failed_ids.push(id_of(failed.metadata()));
    }
    // A caller's mistake too.
    let refused = client
        .record_outcome(RecordOutcomeRequest {
            quote_id: "no-such-quote".into(),
            booked: false,
            revenue: 0.0,
            ..Default::default()
        })
        .await
        .expect_err("unknown quote");
    failed_ids.push(id_of(refused.metadata()));
    let distinct: std::collections::BTreeSet<&String> = failed_ids.iter().collect();
    assert_eq!(distinct.len(), failed_ids.len(), "ids repeat: {failed_ids:?}");

    let (status, lines) = gateway.terminate().await;
    assert!(status.success(), "gateway exited with {status}");
    features.terminate().await;
    let lines = json_lines(&lines);
    for id in &failed_ids {
        let line = lines
            .iter()
            .find(|l| l["request_id"] == id.as_str() && l["message"] == "request failed")
            .unwrap_or_else(|| panic!("no `request failed` line for {id}"));
        assert!(line["duration_ms"].as_f64().is_some(), "{line}");
        assert!(line["error_type"].is_string(), "{line}");
    }
    for id in &answered_ids {
        let line = lines
            .iter()
            .find(|l| l["request_id"] == id.as_str() && l["duration_ms"].as_f64().is_some())
            .unwrap_or_else(|| panic!("no line with a duration for the answered {id}"));
        assert!(line["level"] == "INFO", "{line}");
    }
}
