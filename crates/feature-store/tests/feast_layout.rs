//! The Feast layout proof: `fixtures/feast/feast_golden.json` holds what a real `feast materialize`
//! (feast 0.67.0, entity_key_serialization_version 3) wrote to Redis; `generate.py` beside it regenerates it.
//!
//! 1. Those exact bytes, loaded into a real redis-server, read back through `OnlineStore` give Feast's
//!    values, timestamps and the expected statuses.
//! 2. The encoder produces byte-identical keys, fields, values and timestamps, and `materialize` of the
//!    same rows fills a fresh Redis with exactly the hashes Feast wrote.
//! 3. Feast's `serialize_entity_key` and `_mmh3` outputs for further cases match `layout`.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use feature_store::{CsvFile, MaterializeOptions, OnlineStore, RedisConfig, Registry, StoreConfig, layout};
use prost_types::Timestamp;
use proto::feast::types::value::Val;
use proto::feast::types::{RepeatedValue, Value};
use proto::features::v1::{FieldStatus, GetOnlineFeaturesRequest};
use serde_json::Value as Json;
use testkit::redis::{RedisServer, Reply};

const GOLDEN: &str = include_str!("fixtures/feast/feast_golden.json");

fn golden() -> Json {
    serde_json::from_str(GOLDEN).expect("golden JSON parses")
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The golden dump as key → field → value, all hex.
type Dump = BTreeMap<String, BTreeMap<String, String>>;

fn golden_dump(golden: &Json) -> Dump {
    golden["redis"]
        .as_array()
        .expect("redis dump")
        .iter()
        .map(|entry| {
            let fields = entry["fields"]
                .as_object()
                .expect("fields")
                .iter()
                .map(|(f, v)| (f.clone(), v.as_str().expect("hex value").to_owned()))
                .collect();
            (entry["key_hex"].as_str().expect("key").to_owned(), fields)
        })
        .collect()
}

fn load_dump(server: &RedisServer, dump: &Dump) {
    for (key, fields) in dump {
        let key = hex(key);
        let mut args: Vec<Vec<u8>> = vec![b"HSET".to_vec(), key];
        for (field, value) in fields {
            args.push(hex(field));
            args.push(hex(value));
        }
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let reply = server.command_bytes(&args).expect("HSET");
        assert!(matches!(reply, Reply::Integer(_)), "HSET answered {reply:?}");
    }
}

fn read_dump(server: &RedisServer) -> Dump {
    let Reply::Array(Some(keys)) = server.command(&["KEYS", "*"]).expect("KEYS") else {
        panic!("KEYS")
    };
    let mut dump = Dump::new();
    for key in keys {
        let Reply::Bulk(Some(key)) = key else {
            panic!("key")
        };
        let Reply::Array(Some(items)) = server.command_bytes(&[b"HGETALL", &key]).expect("HGETALL") else {
            panic!("HGETALL")
        };
        let mut fields = BTreeMap::new();
        for pair in items.chunks(2) {
            let [Reply::Bulk(Some(f)), Reply::Bulk(Some(v))] = pair else {
                panic!("pair")
            };
            fields.insert(to_hex(f), to_hex(v));
        }
        dump.insert(to_hex(&key), fields);
    }
    dump
}

/// A golden feature value (JSON number or null) as the Value Feast stores for that feature's type.
fn expected_value(json: &Json, value_type: feature_store::ValueType) -> Value {
    let val = match (json, value_type) {
        (Json::Null, _) => None,
        (n, feature_store::ValueType::Int64) => Some(Val::Int64Val(n.as_i64().expect("i64"))),
        (n, feature_store::ValueType::Double) => Some(Val::DoubleVal(n.as_f64().expect("f64"))),
        (other, t) => panic!("unexpected golden value {other} for {t}"),
    };
    Value { val }
}

fn request(features: Vec<String>, join_key: &str, ids: &[&str]) -> GetOnlineFeaturesRequest {
    let column = RepeatedValue {
        val: ids
            .iter()
            .map(|id| Value {
                val: Some(Val::StringVal((*id).to_owned())),
            })
            .collect(),
    };
    GetOnlineFeaturesRequest {
        features,
        entities: HashMap::from([(join_key.to_owned(), column)]),
    }
}

/// The bundled registry with every max age removed, so nothing is OUTSIDE_MAX_AGE.
fn registry_without_ttl() -> Registry {
    let mut json: Json = serde_json::from_str(feature_store::BUNDLED_REGISTRY).expect("registry JSON");
    for view in json["feature_views"].as_array_mut().expect("views") {
        view["ttl_seconds"] = Json::from(0);
    }
    Registry::from_json(&json.to_string(), "test").expect("registry")
}

async fn check_reads(registry: Registry, url: &str, golden: &Json) {
    let mut config = StoreConfig::new(registry.clone());
    config.redis = Some(RedisConfig::new(url));
    let store = OnlineStore::open(config).await.expect("store opens");
    tokio::time::timeout(Duration::from_secs(10), store.wait_connected())
        .await
        .expect("connected to Redis");
    let now = SystemTime::now();
    for row in golden["rows"].as_array().expect("rows") {
        let view = registry
            .view(row["view"].as_str().expect("view"))
            .expect("view in registry");
        let features: Vec<String> = view
            .features
            .iter()
            .map(|f| format!("{}:{}", view.name, f.name))
            .collect();
        let id = row["entity_id"].as_str().expect("id");
        let response = store
            .get_online_features(
                request(features, row["join_key"].as_str().expect("join key"), &[id]),
                None,
            )
            .await
            .expect("read");
        let event = Timestamp::from_str(row["event_timestamp"].as_str().expect("ts")).expect("RFC 3339");
        let stale = view.ttl.is_some_and(|ttl| {
            SystemTime::try_from(event).expect("time") + ttl < now - Duration::from_secs(1)
        });
        for (feature, vector) in view.features.iter().zip(&response.results) {
            let want = expected_value(&row["features"][&feature.name], feature.value_type);
            let status = match (&want.val, stale) {
                (None, _) => FieldStatus::NullValue,
                (Some(_), true) => FieldStatus::OutsideMaxAge,
                (Some(_), false) => FieldStatus::Present,
            };
            let context = format!("{}:{} of {id}", view.name, feature.name);
            assert_eq!(vector.values[0], want, "{context}");
            assert_eq!(vector.statuses[0], status as i32, "{context}");
            assert_eq!(vector.event_timestamps[0], event, "{context}");
        }
    }
}

#[tokio::test]
async fn feast_written_bytes_read_back_with_feast_values_and_statuses() {
    let golden = golden();
    assert_eq!(golden["entity_key_serialization_version"], 3);
    let server = RedisServer::start().expect("redis-server");
    load_dump(&server, &golden_dump(&golden));
    // With the real max ages every golden row (2025) is stale: values come back OUTSIDE_MAX_AGE.
    check_reads(Registry::bundled().expect("registry"), &server.url(), &golden).await;
    // Without max ages the same bytes are PRESENT (or NULL_VALUE where Feast stored a null).
    check_reads(registry_without_ttl(), &server.url(), &golden).await;
}

#[test]
fn encoder_is_byte_identical_to_feast() {
    let golden = golden();
    let dump = golden_dump(&golden);
    let registry = Registry::bundled().expect("registry");
    let project = golden["project"].as_str().expect("project");
    for row in golden["rows"].as_array().expect("rows") {
        let view = registry.view(row["view"].as_str().expect("view")).expect("view");
        let id = Value {
            val: Some(Val::StringVal(row["entity_id"].as_str().expect("id").to_owned())),
        };
        let entity_key =
            layout::serialize_entity_key(&[(row["join_key"].as_str().expect("join key"), &id)]).expect("key");
        let key = to_hex(&layout::redis_key(&entity_key, project));
        assert_eq!(key, row["redis_key_hex"].as_str().expect("key hex"));
        let stored = dump.get(&key).expect("Feast wrote this key");
        let event = Timestamp::from_str(row["event_timestamp"].as_str().expect("ts")).expect("RFC 3339");
        assert_eq!(
            stored[&to_hex(&view.timestamp_field)],
            to_hex(&layout::encode_timestamp(&event))
        );
        for feature in &view.features {
            let value = expected_value(&row["features"][&feature.name], feature.value_type);
            assert_eq!(
                stored[&to_hex(&feature.field)],
                to_hex(&layout::encode_value(&value)),
                "{}:{}",
                view.name,
                feature.name
            );
        }
    }
}

#[test]
fn entity_keys_and_field_hashes_match_feast() {
    let golden = golden();
    for case in golden["entity_keys"].as_array().expect("cases") {
        let keys: Vec<&str> = case["join_keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k.as_str().expect("key"))
            .collect();
        let values: Vec<Value> = case["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| {
                let (kind, v) = v.as_object().expect("value").iter().next().expect("one member");
                let val = match kind.as_str() {
                    "string_val" => Val::StringVal(v.as_str().expect("str").to_owned()),
                    "int64_val" => Val::Int64Val(v.as_i64().expect("i64")),
                    "int32_val" => Val::Int32Val(i32::try_from(v.as_i64().expect("i32")).expect("i32")),
                    "bytes_val" => Val::BytesVal(hex(v.as_str().expect("hex"))),
                    other => panic!("unexpected kind {other}"),
                };
                Value { val: Some(val) }
            })
            .collect();
        let pairs: Vec<(&str, &Value)> = keys.iter().copied().zip(&values).collect();
        let serialized = layout::serialize_entity_key(&pairs).expect("serializable");
        assert_eq!(
            to_hex(&serialized),
            case["serialized_hex"].as_str().expect("hex"),
            "{case}"
        );
    }
    let registry = Registry::bundled().expect("registry");
    for hash in golden["field_hashes"].as_array().expect("hashes") {
        let (view, feature) = (
            hash["view"].as_str().expect("view"),
            hash["feature"].as_str().expect("feature"),
        );
        let want = hash["hex"].as_str().expect("hex");
        assert_eq!(to_hex(&layout::field_hash(view, feature).expect("hash")), want);
        let registered = registry
            .view(view)
            .and_then(|v| v.feature_index(feature).map(|i| v.features[i].field.clone()));
        assert_eq!(to_hex(&registered.expect("feature in registry")), want);
    }
}

/// The golden rows as the CSV files `materialize` reads, with Feast's earlier rows left out (Feast kept
/// only the newest one per entity).
fn golden_csv(golden: &Json, registry: &Registry) -> Vec<CsvFile> {
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for row in golden["rows"].as_array().expect("rows") {
        let view = registry.view(row["view"].as_str().expect("view")).expect("view");
        let text = files.entry(view.name.clone()).or_insert_with(|| {
            let names: Vec<&str> = view.features.iter().map(|f| f.name.as_str()).collect();
            format!("{},event_timestamp,{}\n", view.join_keys[0], names.join(","))
        });
        let cells: Vec<String> = view
            .features
            .iter()
            .map(|f| match &row["features"][&f.name] {
                Json::Null => String::new(),
                Json::Number(n) if n.is_f64() => format!("{:?}", n.as_f64().expect("f64")),
                n => n.to_string(),
            })
            .collect();
        text.push_str(&format!(
            "{},{},{}\n",
            row["entity_id"].as_str().expect("id"),
            row["event_timestamp"].as_str().expect("ts"),
            cells.join(",")
        ));
    }
    files
        .into_iter()
        .map(|(view, text)| CsvFile::new(format!("{view}.csv"), view, text))
        .collect()
}

#[tokio::test]
async fn materialize_fills_redis_exactly_as_feast_did() {
    let golden = golden();
    let registry = Registry::bundled().expect("registry");
    let server = RedisServer::start().expect("redis-server");
    let files = golden_csv(&golden, &registry);
    let report = feature_store::materialize(
        &RedisConfig::new(server.url()),
        &registry,
        &files,
        &MaterializeOptions::default(),
    )
    .await
    .expect("materialize");
    assert_eq!(report.rows, golden["rows"].as_array().expect("rows").len());
    assert_eq!(read_dump(&server), golden_dump(&golden));
}
