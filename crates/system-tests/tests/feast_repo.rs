//! A team's own Feast repository, declared once, in Feast: `deploy/feast/registry_from_feast.py` (what
//! `cargo xtask feast-registry` runs) generates the feature-service's registry from it, and the
//! feature-service serves what Feast's own `feast materialize-incremental` wrote to a real Redis.
//!
//! 1. A small repository (`fixtures/feast/repo/features.py`: an int64 entity, a string entity whose type
//!    Feast infers, a view keyed by each and one keyed by both) with parquet offline data and a private
//!    redis-server as its online store.
//! 2. The registry generated from the Python definitions before `feast apply`, and from the registry
//!    `feast apply` wrote (as a file and through `feature_store.yaml`), are the same, and the expected one.
//! 3. The real feature-service binary on that registry and Redis answers `GetOnlineFeatures` over gRPC with
//!    the newest parquet values, their event times, nulls as NULL_VALUE and unknown entities as NOT_FOUND.
//! 4. Definitions the feature-service cannot serve are refused, each named, and nothing is written.
//!
//! Feast runs from `target/venvs/feast`, which `cargo xtask setup` (and `cargo xtask test`) installs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;
use proto::feast::types::value::Val;
use proto::feast::types::{RepeatedValue, Value};
use proto::features::v1::feature_service_client::FeatureServiceClient;
use proto::features::v1::{FieldStatus, GetOnlineFeaturesRequest};
use serde_json::{Value as Json, json};
use system_tests::processes::ServiceProcess;
use testkit::redis::RedisServer;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/feast");
const GENERATOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/feast/registry_from_feast.py"
);
const PROJECT: &str = "fleet";

/// `target/venvs/feast`, next to the profile directory of this test's binaries.
fn venv() -> PathBuf {
    let venv = testkit::installed("venvs/feast");
    assert!(
        venv.join("bin/feast").exists(),
        "Feast is not installed in {}: run `cargo xtask setup`",
        venv.display()
    );
    venv
}

fn command(program: &Path, args: &[&str], dir: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn spawn(program: &Path, args: &[&str], dir: &Path) -> Child {
    command(program, args, dir)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// Waits for `child`; panics with its output unless it succeeded.
fn succeeded(child: Child, what: &str) -> Output {
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn feature_store_yaml(redis_port: u16) -> String {
    format!(
        "project: {PROJECT}\n\
         registry: data/registry.db\n\
         provider: local\n\
         offline_store:\n  type: file\n\
         online_store:\n  type: redis\n  connection_string: \"127.0.0.1:{redis_port}\"\n\
         entity_key_serialization_version: 3\n"
    )
}

/// A Feast repository in `dir`: the fixture's definitions, `feature_store.yaml` for Redis on `redis_port`.
fn write_repo(dir: &Path, definitions: &str, redis_port: u16) {
    std::fs::create_dir_all(dir.join("data")).expect("repo dir");
    std::fs::copy(
        Path::new(FIXTURES).join(definitions).join("features.py"),
        dir.join("features.py"),
    )
    .expect("copy definitions");
    std::fs::write(dir.join("feature_store.yaml"), feature_store_yaml(redis_port)).expect("yaml");
}

/// An event time `ago` seconds before `now`, with a fraction, as Feast keeps sub-second precision.
fn at(now: u64, ago: u64) -> Timestamp {
    Timestamp {
        seconds: i64::try_from(now - ago).expect("seconds"),
        nanos: 250_000_000,
    }
}

fn int64(v: i64) -> Value {
    Value {
        val: Some(Val::Int64Val(v)),
    }
}

fn double(v: f64) -> Value {
    Value {
        val: Some(Val::DoubleVal(v)),
    }
}

fn string(v: &str) -> Value {
    Value {
        val: Some(Val::StringVal(v.to_owned())),
    }
}

/// What one response cell must be.
type Cell = (Value, FieldStatus, Timestamp);

fn present(value: Value, at: &Timestamp) -> Cell {
    (value, FieldStatus::Present, *at)
}

fn not_found() -> Cell {
    (Value::default(), FieldStatus::NotFound, Timestamp::default())
}

fn expected_registry() -> Json {
    json!({
        "project": PROJECT,
        "entities": [
            { "name": "driver", "join_key": "driver_id", "value_type": "INT64" },
            { "name": "zone", "join_key": "zone_id", "value_type": "STRING" }
        ],
        "feature_views": [
            {
                "name": "driver_stats",
                "entities": ["driver_id"],
                "ttl_seconds": 86_400,
                "features": [
                    { "name": "trips_today", "value_type": "INT64" },
                    { "name": "rating", "value_type": "DOUBLE" },
                    { "name": "tier", "value_type": "STRING" }
                ]
            },
            {
                "name": "driver_zone_stats",
                "entities": ["zone_id", "driver_id"],
                "ttl_seconds": 7_200,
                "features": [
                    { "name": "acceptance_rate", "value_type": "DOUBLE" },
                    { "name": "trips_in_zone", "value_type": "INT64" }
                ]
            }
        ]
    })
}

fn read_json(path: &Path) -> Json {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("registry JSON")
}

async fn check(
    client: &mut FeatureServiceClient<tonic::transport::Channel>,
    features: &[&str],
    entities: HashMap<String, RepeatedValue>,
    want: &[Vec<Cell>],
) {
    let request = GetOnlineFeaturesRequest {
        features: features.iter().map(|f| (*f).to_owned()).collect(),
        entities,
    };
    let response = client
        .get_online_features(request)
        .await
        .expect("GetOnlineFeatures")
        .into_inner();
    assert_eq!(response.feature_names, features);
    for ((feature, vector), want) in features.iter().zip(&response.results).zip(want) {
        let got: Vec<Cell> = vector
            .values
            .iter()
            .zip(&vector.statuses)
            .zip(&vector.event_timestamps)
            .map(|((value, status), at)| {
                let status = FieldStatus::try_from(*status).expect("known status");
                (value.clone(), status, *at)
            })
            .collect();
        assert_eq!(&got, want, "{feature}");
    }
}

#[tokio::test]
async fn the_feature_service_serves_what_feast_materialized_from_a_generated_registry() {
    let venv = venv();
    let (python, feast) = (venv.join("bin/python"), venv.join("bin/feast"));
    let redis = RedisServer::start().expect("redis-server");
    let tmp = tempfile::tempdir().expect("temp dir");
    let repo = tmp.path().join("repo");
    write_repo(&repo, "repo", redis.port());
    let path = |p: &Path| p.to_str().expect("UTF-8 path").to_owned();

    // The offline data: driver 1001 has an older row Feast must not serve, driver 1002 a null.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let (d1_old, d1, d2) = (at(now, 3_000), at(now, 600), at(now, 1_200));
    let (north, south) = (at(now, 900), at(now, 300));
    let tables = json!({
        path(&repo.join("data/driver_stats.parquet")): {
            "dtypes": { "driver_id": "int64", "trips_today": "Int64", "rating": "float64", "tier": "string" },
            "rows": [
                { "driver_id": 1001, "event_timestamp": d1_old.to_string(), "trips_today": 3, "rating": 4.1, "tier": "silver" },
                { "driver_id": 1001, "event_timestamp": d1.to_string(), "trips_today": 7, "rating": 4.85, "tier": "gold" },
                { "driver_id": 1002, "event_timestamp": d2.to_string(), "trips_today": null, "rating": 3.5, "tier": "bronze" }
            ]
        },
        path(&repo.join("data/driver_zone_stats.parquet")): {
            "dtypes": { "driver_id": "int64", "zone_id": "string", "acceptance_rate": "float64", "trips_in_zone": "Int64" },
            "rows": [
                { "driver_id": 1001, "zone_id": "z-north", "event_timestamp": north.to_string(), "acceptance_rate": 0.92, "trips_in_zone": 5 },
                { "driver_id": 1001, "zone_id": "z-south", "event_timestamp": south.to_string(), "acceptance_rate": 0.5, "trips_in_zone": 1 }
            ]
        }
    });
    let tables_file = tmp.path().join("tables.json");
    std::fs::write(&tables_file, tables.to_string()).expect("tables");
    let writer = format!("{FIXTURES}/write_parquet.py");
    succeeded(
        spawn(&python, &[&writer, &path(&tables_file)], tmp.path()),
        "writing the parquet files",
    );

    // From the Python definitions alone: no `feast apply` yet, and none left behind.
    let from_definitions = tmp.path().join("from_definitions.json");
    let args = ["--repo", &path(&repo), "--out", &path(&from_definitions)];
    succeeded(
        spawn(&python, &[&[GENERATOR][..], &args].concat(), tmp.path()),
        "the generator on the definitions",
    );
    assert!(
        !repo.join("data/registry.db").exists(),
        "reading the definitions wrote a registry"
    );
    assert_eq!(read_json(&from_definitions), expected_registry());

    let repo_arg = path(&repo);
    succeeded(
        spawn(&feast, &["-c", &repo_arg, "apply"], tmp.path()),
        "feast apply",
    );
    let end = Timestamp {
        seconds: i64::try_from(now).expect("seconds"),
        nanos: 0,
    }
    .to_string();
    succeeded(
        spawn(
            &feast,
            &["-c", &repo_arg, "materialize-incremental", &end],
            tmp.path(),
        ),
        "feast materialize-incremental",
    );

    // From what `feast apply` registered: the file, and the registry feature_store.yaml names.
    let from_file = tmp.path().join("from_registry_db.json");
    let from_registry = tmp.path().join("from_registry.json");
    let db = path(&repo.join("data/registry.db"));
    let file_args = ["--registry-db", &db, "--out", &path(&from_file)];
    let yaml_args = [
        "--repo",
        &repo_arg,
        "--from-registry",
        "--out",
        &path(&from_registry),
    ];
    let by_file = spawn(&python, &[&[GENERATOR][..], &file_args].concat(), tmp.path());
    let by_yaml = spawn(&python, &[&[GENERATOR][..], &yaml_args].concat(), tmp.path());
    succeeded(by_file, "the generator on registry.db");
    succeeded(by_yaml, "the generator on the repository's registry");
    assert_eq!(read_json(&from_file), expected_registry());
    assert_eq!(read_json(&from_registry), expected_registry());
    assert!(
        !tmp.path().join("data").exists(),
        "a registry was looked for in the working directory"
    );

    let features = ServiceProcess::start(
        "feature-service",
        &[
            ("REDIS_URL", redis.url()),
            ("FEATURE_REGISTRY", path(&from_definitions)),
            ("FEAST_PROJECT", PROJECT.to_owned()),
        ],
    )
    .await;
    let mut client = FeatureServiceClient::new(features.channel());
    let column = |values: Vec<Value>| RepeatedValue { val: values };

    check(
        &mut client,
        &[
            "driver_stats:trips_today",
            "driver_stats:rating",
            "driver_stats:tier",
        ],
        HashMap::from([(
            "driver_id".to_owned(),
            column(vec![int64(1001), int64(1002), int64(4040)]),
        )]),
        &[
            vec![
                present(int64(7), &d1),
                (Value::default(), FieldStatus::NullValue, d2),
                not_found(),
            ],
            vec![present(double(4.85), &d1), present(double(3.5), &d2), not_found()],
            vec![
                present(string("gold"), &d1),
                present(string("bronze"), &d2),
                not_found(),
            ],
        ],
    )
    .await;

    // The view keyed by both entities, with a view keyed by one of them in the same request.
    check(
        &mut client,
        &[
            "driver_zone_stats:acceptance_rate",
            "driver_zone_stats:trips_in_zone",
            "driver_stats:tier",
        ],
        HashMap::from([
            (
                "zone_id".to_owned(),
                column(vec![string("z-north"), string("z-south"), string("z-south")]),
            ),
            (
                "driver_id".to_owned(),
                column(vec![int64(1001), int64(1001), int64(1002)]),
            ),
        ]),
        &[
            vec![
                present(double(0.92), &north),
                present(double(0.5), &south),
                not_found(),
            ],
            vec![present(int64(5), &north), present(int64(1), &south), not_found()],
            vec![
                present(string("gold"), &d1),
                present(string("gold"), &d1),
                present(string("bronze"), &d2),
            ],
        ],
    )
    .await;

    let (status, _) = features.terminate().await;
    assert!(status.success(), "feature-service exited with {status}");
}

#[test]
fn what_the_feature_service_cannot_serve_is_refused_by_name() {
    let python = venv().join("bin/python");
    let tmp = tempfile::tempdir().expect("temp dir");
    let repo = tmp.path().join("repo");
    // Nothing connects to this Redis: reading definitions only plans.
    write_repo(&repo, "unsupported", 1);
    let out = tmp.path().join("registry.json");
    let (repo_arg, out_arg) = (repo.to_str().expect("path"), out.to_str().expect("path"));
    let output = command(
        &python,
        &[GENERATOR, "--repo", repo_arg, "--out", out_arg],
        tmp.path(),
    )
    .output()
    .expect("run the generator");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for needle in [
        "feature driver_profile:attributes: Feast type Map",
        "feature view fleet_totals: no entities",
        "on-demand feature view trip_distance_m",
        "nothing written",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
    }
    assert!(!out.exists(), "a refused registry was written");
    assert!(
        !repo.join("data/registry.db").exists(),
        "reading the definitions wrote a registry"
    );
}
