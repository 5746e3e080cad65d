//! Prediction records in a real Redis: the writer gathers them off the response path and writes each
//! hash's share (`predictions:{<bucket>.<shard>}`, named by the id alone) in one call; when serving
//! ends `finish` writes every record still queued before it returns, so each prediction the gateway
//! answered keeps its record (and a label for it joins) even if the process exits at once. Records an
//! earlier release wrote as string keys still take their labels.

use std::sync::Arc;
use std::time::Duration;

use feature_store::{RedisConfig, RedisConnection};
use gateway::error::Error;
use gateway::predictions::{BUCKET, Label, Labelled, PredictionStore, hash_of, record};
use server_kit::Deadline;
use telemetry::Metrics;
use testkit::redis::{RedisServer, Reply};

const KEPT: usize = 3_000;
const TTL: Duration = Duration::from_secs(3_600);

fn integer(reply: Reply) -> i64 {
    match reply {
        Reply::Integer(n) => n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// The record hashes in `redis`.
fn hashes(redis: &RedisServer) -> Vec<String> {
    match redis.command(&["KEYS", "predictions:*"]).expect("KEYS") {
        Reply::Array(Some(keys)) => keys
            .into_iter()
            .map(|key| match key {
                Reply::Bulk(Some(bytes)) => String::from_utf8(bytes).expect("utf-8 key"),
                other => panic!("a key: {other:?}"),
            })
            .collect(),
        other => panic!("KEYS answered {other:?}"),
    }
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

const BAD: Label = Label::Customer {
    bad: true,
    outcome: 3,
};

async fn store(redis: &RedisServer) -> PredictionStore {
    let connection = Arc::new(RedisConnection::open(&RedisConfig::new(redis.url())).expect("connection"));
    connection.wait_connected().await;
    PredictionStore::redis(connection, TTL, Metrics::disabled())
}

#[tokio::test]
async fn records_still_queued_when_serving_ends_are_written_before_finish_returns() {
    let redis = RedisServer::start().expect("redis-server");
    let store = store(&redis).await;

    let ids: Vec<String> = (0..KEPT).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for (i, id) in ids.iter().enumerate() {
        store.keep(
            id.clone(),
            record("customer_risk", "1", "control", i as f64 / KEPT as f64),
        );
    }
    store.finish(Duration::from_secs(10)).await;
    let hashes = hashes(&redis);
    let fields: i64 = hashes
        .iter()
        .map(|hash| integer(redis.command(&["HLEN", hash]).expect("HLEN")))
        .sum();
    assert_eq!(
        fields, KEPT as i64,
        "every record kept before finish is in Redis when it returns"
    );
    // Few hashes hold them all (one per shard of each bucket the ids were minted in), each kept the TTL
    // past its bucket.
    assert!(!hashes.is_empty() && hashes.len() <= 8, "{hashes:?}");
    for hash in &hashes {
        let ttl = integer(redis.command(&["TTL", hash]).expect("TTL"));
        let (least, most) = (TTL.as_secs() as i64 - 5, (TTL + BUCKET).as_secs() as i64);
        assert!((least..=most).contains(&ttl), "{hash}: TTL {ttl}");
    }
    let (hash, _) = hash_of(&ids[7]).expect("a UUIDv7");
    let held = redis.command(&["HEXISTS", &hash, &ids[7]]).expect("HEXISTS");
    assert_eq!(integer(held), 1, "the id names its hash");

    // The records are the ones kept: a label joins each with its own output, once.
    for (i, id) in ids.iter().enumerate().step_by(499) {
        let labelled = store
            .label(id, BAD, "customer_risk", deadline())
            .await
            .expect("labelled");
        assert!(
            matches!(&labelled, Labelled::New(r) if r.output == i as f64 / KEPT as f64),
            "{id}: {labelled:?}"
        );
        let again = store
            .label(id, BAD, "customer_risk", deadline())
            .await
            .expect("a retry");
        assert!(matches!(again, Labelled::Duplicate(_)), "{id}: {again:?}");
    }
    let good = Label::Customer {
        bad: false,
        outcome: 1,
    };
    let conflict = store.label(&ids[0], good, "customer_risk", deadline()).await;
    assert!(matches!(conflict, Err(Error::LabelConflict(_))), "{conflict:?}");
    let surge = Label::Surge { factor: 1.2 };
    let wrong = store.label(&ids[1], surge, "demand_surge", deadline()).await;
    assert!(matches!(wrong, Err(Error::InvalidArgument { .. })), "{wrong:?}");
    for unknown in [uuid::Uuid::now_v7().to_string(), uuid::Uuid::new_v4().to_string()] {
        let missing = store.label(&unknown, BAD, "customer_risk", deadline()).await;
        assert!(
            matches!(missing, Err(Error::PredictionNotFound(_))),
            "{missing:?}"
        );
    }

    // The writer has stopped: a record kept after finish is dropped (and counted), never half-written.
    let late = uuid::Uuid::now_v7().to_string();
    store.keep(late.clone(), record("customer_risk", "1", "control", 0.5));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (hash, _) = hash_of(&late).expect("a UUIDv7");
    let written = redis.command(&["HEXISTS", &hash, &late]).expect("HEXISTS");
    assert_eq!(integer(written), 0);
}

#[tokio::test]
async fn a_record_an_earlier_release_wrote_as_a_string_still_takes_its_label() {
    let redis = RedisServer::start().expect("redis-server");
    let store = store(&redis).await;
    let json =
        r#"{"model":"customer_risk","version":"1","variant":"control","output":0.25,"created_at_ms":1}"#;
    // A UUIDv7 (which names a hash that does not hold it) and an id no hash could hold.
    for id in [uuid::Uuid::now_v7().to_string(), uuid::Uuid::new_v4().to_string()] {
        let key = format!("prediction:{{{id}}}");
        redis.command(&["SET", &key, json, "EX", "3600"]).expect("SET");

        let labelled = store
            .label(&id, BAD, "customer_risk", deadline())
            .await
            .expect("labelled");
        assert!(
            matches!(&labelled, Labelled::New(r) if r.output == 0.25),
            "{id}: {labelled:?}"
        );
        let again = store
            .label(&id, BAD, "customer_risk", deadline())
            .await
            .expect("a retry");
        assert!(matches!(again, Labelled::Duplicate(_)), "{id}: {again:?}");
        let label = redis
            .command(&["EXISTS", &format!("{key}:label")])
            .expect("EXISTS");
        assert_eq!(
            integer(label),
            1,
            "its label is beside it, as that release kept it"
        );
    }
    assert!(hashes(&redis).is_empty(), "no hash was written for them");
    store.finish(Duration::from_secs(5)).await;
}
