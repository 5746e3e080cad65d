//! Prediction records in a real Redis: the writer sends them in batches off the response path, and
//! when serving ends `finish` writes every record still queued before it returns, so each prediction
//! the gateway answered keeps its record (and a label for it joins) even if the process exits at once.

use std::sync::Arc;
use std::time::Duration;

use feature_store::{RedisConfig, RedisConnection};
use gateway::predictions::{Label, Labelled, PredictionStore, record};
use server_kit::Deadline;
use telemetry::Metrics;
use testkit::redis::{RedisServer, Reply};

const KEPT: usize = 3_000;

fn keys(redis: &RedisServer) -> i64 {
    match redis.command(&["DBSIZE"]).expect("DBSIZE") {
        Reply::Integer(n) => n,
        other => panic!("DBSIZE answered {other:?}"),
    }
}

#[tokio::test]
async fn records_still_queued_when_serving_ends_are_written_before_finish_returns() {
    let redis = RedisServer::start().expect("redis-server");
    let connection = Arc::new(RedisConnection::open(&RedisConfig::new(redis.url())).expect("connection"));
    connection.wait_connected().await;
    let store = PredictionStore::redis(
        Arc::clone(&connection),
        Duration::from_secs(3_600),
        Metrics::disabled(),
    );

    let ids: Vec<String> = (0..KEPT).map(|i| format!("prediction-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        store.keep(
            id.clone(),
            record("customer_risk", "1", "control", i as f64 / KEPT as f64),
        );
    }
    store.finish(Duration::from_secs(10)).await;
    assert_eq!(
        keys(&redis),
        KEPT as i64,
        "every record kept before finish is in Redis when it returns"
    );
    let ttl = redis
        .command(&["TTL", &format!("prediction:{{{}}}", ids[7])])
        .expect("TTL");
    assert!(
        matches!(ttl, Reply::Integer(t) if t > 3_500 && t <= 3_600),
        "{ttl:?}"
    );

    // The records are the ones kept: a label joins each with its own output.
    let bad = Label::Customer {
        bad: true,
        outcome: 3,
    };
    for (i, id) in ids.iter().enumerate().step_by(499) {
        let labelled = store
            .label(id, bad, "customer_risk", Deadline::after(Duration::from_secs(5)))
            .await
            .expect("labelled");
        assert!(
            matches!(&labelled, Labelled::New(r) if r.output == i as f64 / KEPT as f64),
            "{id}: {labelled:?}"
        );
    }

    // The writer has stopped: a record kept after finish is dropped (and counted), never half-written.
    store.keep("late".to_owned(), record("customer_risk", "1", "control", 0.5));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let late = redis.command(&["EXISTS", "prediction:{late}"]).expect("EXISTS");
    assert!(matches!(late, Reply::Integer(0)), "{late:?}");
}
