//! Per-value statuses read from a real Redis: present, stale (value still returned), missing, null, and
//! malformed bytes (INVALID, never an error or a panic).

use crate::common;

use common::*;
use feature_store::{Registry, layout};
use prost::Message;
use proto::feast::types::Value;
use proto::features::v1::FieldStatus;
use testkit::redis::{RedisServer, Reply};

fn key(join_key: &str, id: &str) -> Vec<u8> {
    let entity = layout::serialize_entity_key(&[(join_key, &string(id))]).expect("key");
    layout::redis_key(&entity, "pricing").to_vec()
}

fn field(registry: &Registry, view: &str, feature: &str) -> Vec<u8> {
    let view = registry.view(view).expect("view");
    view.features[view.feature_index(feature).expect("feature")]
        .field
        .to_vec()
}

fn hset(server: &RedisServer, key: &[u8], field: &[u8], value: &[u8]) {
    let reply = server.command_bytes(&[b"HSET", key, field, value]).expect("HSET");
    assert!(matches!(reply, Reply::Integer(_)), "{reply:?}");
}

#[tokio::test]
async fn present_stale_missing_and_null() {
    let server = RedisServer::start().expect("redis-server");
    fill(&server.url()).await;
    let store = redis_store(&server.url(), no_cache()).await;

    let response = store
        .get_online_features(
            request(
                &[
                    "customer_profile:account_age_days",
                    "customer_profile:cancellation_rate",
                    "customer_activity:sessions_7d",
                    "customer_profile:chargebacks_1y",
                ],
                &[("customer_id", &["c-1", "c-2", "c-stale", "nobody"])],
            ),
            None,
        )
        .await
        .expect("read");
    assert_eq!(response.feature_names[2], "customer_activity:sessions_7d");

    // c-1: the newer of its two rows.
    assert_eq!(cell(&response, 0, 0), (int64(100), FieldStatus::Present));
    assert_eq!(cell(&response, 1, 0), (double(0.1), FieldStatus::Present));
    assert_eq!(cell(&response, 2, 0), (int64(7), FieldStatus::Present));
    // c-2: empty CSV cells are nulls; no activity row.
    assert_eq!(cell(&response, 1, 1), (Value::default(), FieldStatus::NullValue));
    assert_eq!(cell(&response, 3, 1), (Value::default(), FieldStatus::NullValue));
    assert_eq!(cell(&response, 2, 1), (Value::default(), FieldStatus::NotFound));
    // c-stale: 8 days old, max age 7 days: stale, value still returned.
    assert_eq!(cell(&response, 0, 2), (int64(700), FieldStatus::OutsideMaxAge));
    // Unknown entity.
    for f in 0..4 {
        assert_eq!(cell(&response, f, 3), (Value::default(), FieldStatus::NotFound));
        assert_eq!(
            response.results[f].event_timestamps[3],
            prost_types::Timestamp::default()
        );
    }
    // Event times are the rows' own (rebased together, so relative ages are kept).
    let ts = |f: usize, row: usize| response.results[f].event_timestamps[row].seconds;
    assert_eq!(ts(0, 0) - ts(0, 2), 8 * 24 * 3600 - 3600);
    assert_eq!(ts(2, 0) - ts(0, 0), 30 * 60);
}

#[tokio::test]
async fn several_views_and_entity_columns_in_one_request() {
    let server = RedisServer::start().expect("redis-server");
    fill(&server.url()).await;
    let store = redis_store(&server.url(), no_cache()).await;
    let response = store
        .get_online_features(
            request(
                &[
                    "zone_demand:open_requests_15m",
                    "customer_profile:lifetime_bookings",
                    "zone_weather:temperature_c",
                ],
                &[
                    ("customer_id", &["c-1", "c-1", "c-2"]),
                    ("zone_id", &["z-1", "z-stale", "z-1"]),
                ],
            ),
            None,
        )
        .await
        .expect("read");
    assert_eq!(cell(&response, 0, 0), (int64(40), FieldStatus::Present));
    assert_eq!(cell(&response, 0, 1), (int64(1), FieldStatus::OutsideMaxAge));
    assert_eq!(cell(&response, 0, 2), (int64(40), FieldStatus::Present));
    assert_eq!(cell(&response, 1, 0), (int64(10), FieldStatus::Present));
    assert_eq!(cell(&response, 1, 1), (int64(10), FieldStatus::Present));
    assert_eq!(cell(&response, 1, 2), (int64(1), FieldStatus::Present));
    assert_eq!(cell(&response, 2, 0), (double(21.5), FieldStatus::Present));
    assert_eq!(cell(&response, 2, 1), (Value::default(), FieldStatus::NotFound));
}

#[tokio::test]
async fn malformed_bytes_are_invalid_values_not_errors() {
    let server = RedisServer::start().expect("redis-server");
    fill(&server.url()).await;
    let registry = registry();
    let c1 = key("customer_id", "c-1");
    // Not a protobuf at all (a truncated varint).
    hset(
        &server,
        &c1,
        &field(&registry, "customer_profile", "account_age_days"),
        &[0x20, 0xff],
    );
    // A valid Value of the wrong type (a string where the registry says INT64).
    let wrong = string("forty").encode_to_vec();
    hset(
        &server,
        &c1,
        &field(&registry, "customer_profile", "lifetime_bookings"),
        &wrong,
    );
    // A member of Feast's newer Value this platform does not know (json_val = 32, "{}").
    hset(
        &server,
        &c1,
        &field(&registry, "customer_profile", "avg_booking_value"),
        &[0x82, 0x02, 0x02, b'{', b'}'],
    );
    // A malformed event time for customer_activity: its values count as infinitely old.
    hset(&server, &c1, b"_ts:customer_activity", &[0x08]);
    // A key that is not a hash at all.
    let z1 = key("zone_id", "z-1");
    server.command_bytes(&[b"DEL", &z1]).expect("DEL");
    server.command_bytes(&[b"SET", &z1, b"oops"]).expect("SET");

    let store = redis_store(&server.url(), no_cache()).await;
    let response = store
        .get_online_features(
            request(
                &[
                    "customer_profile:account_age_days",
                    "customer_profile:lifetime_bookings",
                    "customer_profile:cancellation_rate",
                    "customer_activity:sessions_7d",
                    "zone_demand:open_requests_15m",
                    "customer_profile:avg_booking_value",
                ],
                &[("customer_id", &["c-1"]), ("zone_id", &["z-1"])],
            ),
            None,
        )
        .await
        .expect("malformed data is not a request error");
    assert_eq!(cell(&response, 0, 0), (Value::default(), FieldStatus::Invalid));
    assert_eq!(cell(&response, 1, 0), (Value::default(), FieldStatus::Invalid));
    assert_eq!(cell(&response, 2, 0), (double(0.1), FieldStatus::Present));
    assert_eq!(cell(&response, 3, 0), (int64(7), FieldStatus::OutsideMaxAge));
    assert_eq!(cell(&response, 4, 0), (Value::default(), FieldStatus::Invalid));
    assert_eq!(cell(&response, 5, 0), (Value::default(), FieldStatus::Invalid));
}
