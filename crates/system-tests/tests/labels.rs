//! Delayed labels through the three services as processes, predictions kept in a real Redis: every
//! prediction carries an id, a label joins it once (a retry is a duplicate, a different label a
//! conflict, an unknown id NOT_FOUND), and the online quality gauges move the way the labels say — up
//! for labels the scores rank right, down once inverted ones arrive — beside the manifest's baseline.

use std::time::Duration;

use proto::inference::v1::inference_service_client::InferenceServiceClient;
use proto::inference::v1::record_label_request::Label;
use proto::inference::v1::{
    CustomerOutcome, PredictCustomerRiskRequest, PredictDemandSurgeRequest, RecordLabelRequest,
};
use system_tests::materialize_snapshot;
use system_tests::processes::ProcessStack;
use testkit::redis::RedisServer;
use testkit::statsd::DogStatsdSocket;
use tonic::Code;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(15);

/// `(prediction_id, risk_score)` of a risk prediction for each of `customers`.
async fn risk_predictions(
    client: &mut InferenceServiceClient<Channel>,
    customers: &[String],
) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for customer in customers {
        let response = client
            .predict_customer_risk(PredictCustomerRiskRequest {
                customer_id: customer.clone(),
                ..Default::default()
            })
            .await
            .expect("risk")
            .into_inner();
        let id = response.metadata.expect("metadata").prediction_id;
        assert!(!id.is_empty(), "a model prediction carries an id");
        out.push((id, response.risk_score));
    }
    out
}

async fn label(
    client: &mut InferenceServiceClient<Channel>,
    prediction_id: &str,
    label: Label,
) -> Result<bool, tonic::Status> {
    client
        .record_label(RecordLabelRequest {
            prediction_id: prediction_id.to_owned(),
            label: Some(label),
        })
        .await
        .map(|r| r.into_inner().duplicate)
}

fn outcome(bad: bool) -> Label {
    Label::CustomerOutcome(if bad {
        CustomerOutcome::Chargeback
    } else {
        CustomerOutcome::Good
    } as i32)
}

/// The latest value of the gauge `name` with exactly these leading tags, once one arrives that `wanted`
/// accepts (within [`WAIT`]); `None` if none did.
fn gauge(socket: &DogStatsdSocket, name: &str, tags: &str, wanted: impl Fn(f64) -> bool) -> Option<f64> {
    let prefix = format!("{name}:");
    let value_of = |line: &str| -> Option<f64> {
        let rest = line.strip_prefix(&prefix)?;
        let (value, rest) = rest.split_once("|g|#")?;
        rest.starts_with(tags).then(|| value.parse().ok()).flatten()
    };
    let datagrams = socket.receive_until(WAIT, |d| d.lines().filter_map(value_of).any(&wanted));
    datagrams
        .iter()
        .flat_map(|d| d.lines())
        .filter_map(value_of)
        .filter(|v| wanted(*v))
        .last()
}

#[tokio::test]
async fn labels_join_predictions_once_and_move_the_quality_gauges() {
    let socket = DogStatsdSocket::bind();
    let redis = RedisServer::start().expect("redis-server");
    materialize_snapshot(&redis.url()).await;
    let env = [
        ("DD_DOGSTATSD_URL", socket.url()),
        ("DD_ENV", "labels-test".to_owned()),
        ("DD_TRACE_ENABLED", "false".to_owned()),
        ("TELEMETRY_METRICS_FLUSH_INTERVAL_MS", "100".to_owned()),
        ("REDIS_URL", redis.url()),
        ("QUOTE_REDIS_URL", redis.url()),
    ];
    let gateway = [("QUALITY_REPORT_SECS", "1".to_owned())];
    let stack = ProcessStack::start_each(&env, &[], &[], &gateway).await;
    let mut client = stack.client();

    // Labels the scores rank right: the riskier half turned out bad.
    let customers: Vec<String> = (1..=200).map(|i| format!("C{i:06}")).collect();
    let predictions = risk_predictions(&mut client, &customers).await;
    let mut scores: Vec<f64> = predictions.iter().map(|(_, s)| *s).collect();
    scores.sort_by(f64::total_cmp);
    let median = scores[scores.len() / 2];
    for (id, score) in &predictions {
        let duplicate = label(&mut client, id, outcome(*score >= median))
            .await
            .expect("label recorded");
        assert!(!duplicate);
    }
    let risk_tags = "model:customer_risk,model_version:1,variant:control";
    let good = gauge(&socket, "model.accuracy", risk_tags, |v| v > 0.9);
    assert!(
        good.is_some(),
        "no AUC above 0.9 for labels the scores rank right"
    );
    let baseline = gauge(
        &socket,
        "model.accuracy.baseline",
        "model:customer_risk,model_version:1",
        |_| true,
    );
    assert_eq!(baseline, Some(0.8706), "the manifest's offline AUC");

    // A retry is a duplicate; a different label, an unknown id or the wrong kind of label is refused.
    let (first_id, first_score) = &predictions[0];
    let same = outcome(*first_score >= median);
    assert!(
        label(&mut client, first_id, same).await.expect("retry"),
        "a retry is a duplicate"
    );
    let other = outcome(*first_score < median);
    let conflict = label(&mut client, first_id, other).await.expect_err("conflict");
    assert_eq!(conflict.code(), Code::AlreadyExists, "{conflict:?}");
    let unknown = uuid::Uuid::now_v7().to_string();
    let missing = label(&mut client, &unknown, same).await.expect_err("unknown");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    let wrong = label(&mut client, first_id, Label::RealisedSurgeFactor(1.5))
        .await
        .expect_err("a surge label for a risk prediction");
    assert_eq!(wrong.code(), Code::InvalidArgument, "{wrong:?}");
    let empty = client
        .record_label(RecordLabelRequest {
            prediction_id: first_id.clone(),
            label: None,
        })
        .await
        .expect_err("no label");
    assert_eq!(empty.code(), Code::InvalidArgument);

    // Inverted labels for new predictions of the same customers: the window's AUC falls to about 0.5.
    let again = risk_predictions(&mut client, &customers).await;
    for (id, score) in &again {
        label(&mut client, id, outcome(*score < median))
            .await
            .expect("label recorded");
    }
    let fallen = gauge(&socket, "model.accuracy", risk_tags, |v| v < 0.6);
    assert!(fallen.is_some(), "the AUC did not fall with inverted labels");

    // Surge: realised factors equal to the predicted ones give R² = 1.
    let mut surge_labels = 0;
    for zone in 1..=120 {
        let response = client
            .predict_demand_surge(PredictDemandSurgeRequest {
                zone_id: format!("Z{zone:04}"),
                ..Default::default()
            })
            .await
            .expect("surge")
            .into_inner();
        let id = response.metadata.expect("metadata").prediction_id;
        label(
            &mut client,
            &id,
            Label::RealisedSurgeFactor(response.surge_factor),
        )
        .await
        .expect("surge label");
        surge_labels += 1;
    }
    assert_eq!(surge_labels, 120);
    let exact = gauge(
        &socket,
        "model.accuracy",
        "model:demand_surge,model_version:1,variant:control",
        |v| v > 0.999,
    );
    assert!(exact.is_some(), "no R² of 1 for exact surge labels");
    stack.terminate().await;
}
