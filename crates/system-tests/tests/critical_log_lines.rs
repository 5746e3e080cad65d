//! The log lines that mean someone must act now carry `alert: critical` (Datadog keeps them 90 days in the
//! `pricing-critical` index) and name the dependency at fault in a field Datadog does not read as the
//! line's own service: a model-service that goes away opens the gateway's breaker, logged so.

use proto::inference::v1::PredictCustomerRiskRequest;
use system_tests::processes::{ProcessStack, json_lines};

#[tokio::test]
async fn an_opening_breaker_is_a_critical_line_naming_the_dependency() {
    // Every call reaches the model-service: no customer's risk answered again from the CRAI cache.
    let stack = ProcessStack::start(&[("CRAI_CACHE_TTL_MS", "0".to_owned())]).await;
    let mut client = stack.client();
    let risk = |id: &str| PredictCustomerRiskRequest {
        customer_id: id.into(),
        ..Default::default()
    };
    client
        .predict_customer_risk(risk("C000001"))
        .await
        .expect("healthy first");
    let ProcessStack {
        mut models,
        features,
        gateway,
    } = stack;
    models.kill();
    for i in 0..20 {
        let answer = client
            .predict_customer_risk(risk(&format!("C{:06}", 2 + i)))
            .await;
        assert!(answer.is_err(), "the model-service is gone");
    }
    // It comes back: a probe gets through, the breaker closes, and the log says so.
    models.restart().await;
    let back = std::time::Instant::now();
    loop {
        if client.predict_customer_risk(risk("C000001")).await.is_ok() {
            break;
        }
        assert!(
            back.elapsed() < std::time::Duration::from_secs(20),
            "the gateway never used the model-service again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, lines) = gateway.terminate().await;
    assert!(status.success(), "gateway exited with {status}");
    features.terminate().await;

    let lines = json_lines(&lines);
    let opened = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("circuit breaker open"))
        })
        .unwrap_or_else(|| panic!("no breaker line in {lines:#?}"));
    assert_eq!(opened["alert"], "critical", "{opened}");
    assert_eq!(opened["level"], "ERROR", "{opened}");
    assert_eq!(opened["dependency"], "model-service", "{opened}");
    assert_eq!(opened["dd.service"], "gateway", "{opened}");
    for reserved in ["service", "host", "source", "status"] {
        assert!(
            opened.get(reserved).is_none(),
            "`{reserved}` is Datadog's: {opened}"
        );
    }
    let last_breaker_line = lines
        .iter()
        .rfind(|l| {
            l["dependency"] == "model-service"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("circuit breaker"))
        })
        .expect("breaker lines");
    assert!(
        last_breaker_line["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("circuit breaker closed")),
        "after the recovery the last breaker line still says: {last_breaker_line}"
    );
    let failed = lines
        .iter()
        .find(|l| l["message"] == "request failed")
        .unwrap_or_else(|| panic!("no failed request line in {lines:#?}"));
    assert!(
        failed["duration_ms"].as_f64().is_some(),
        "the latency facet: {failed}"
    );
    assert!(failed["error_type"].is_string(), "{failed}");
}
