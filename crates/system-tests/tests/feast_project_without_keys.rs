//! A `FEAST_PROJECT` with no key in Redis answers every feature NOT_FOUND, which looks like a healthy
//! service. The real feature-service binary, on a real redis-server holding the bundled snapshot of
//! project `pricing`, says so once at start: one warning naming the project, and the gauge
//! `features.project_keys_found` at 0 over a real UDP socket (1 for the right project, with no warning).
//! It still starts and serves.

use std::time::Duration;

use system_tests::materialize_snapshot;
use system_tests::processes::ServiceProcess;
use testkit::redis::RedisServer;
use testkit::statsd::DogStatsdSocket;

const WARNING: &str = "Redis holds no key of the Feast project";
const GAUGE: &str = "features.project_keys_found:";

/// Starts the feature-service on `redis` with `FEAST_PROJECT=project`, waits for the gauge, stops the
/// service, and returns the gauge's value and the warning lines the service logged.
async fn start_with_project(redis: &RedisServer, project: &str) -> (String, Vec<String>) {
    let socket = DogStatsdSocket::bind();
    let env = [
        ("REDIS_URL", redis.url()),
        ("FEAST_PROJECT", project.to_owned()),
        ("DD_DOGSTATSD_URL", socket.url()),
        ("DD_TRACE_ENABLED", "false".to_owned()),
        ("TELEMETRY_METRICS_FLUSH_INTERVAL_MS", "50".to_owned()),
    ];
    // Returns once health answers SERVING: the check does not hold start-up back.
    let service = ServiceProcess::start("feature-service", &env).await;
    let datagrams = socket.receive_until(Duration::from_secs(30), |d| d.contains(GAUGE));
    let (status, lines) = service.terminate().await;
    assert!(status.success(), "{status}: {lines:#?}");
    let value = datagrams
        .iter()
        .flat_map(|datagram| datagram.lines())
        .find_map(|line| Some(line.strip_prefix(GAUGE)?.split('|').next()?.to_owned()))
        .unwrap_or_else(|| panic!("no {GAUGE} in {datagrams:#?}; logged: {lines:#?}"));
    let warnings = lines.into_iter().filter(|line| line.contains(WARNING)).collect();
    (value, warnings)
}

#[tokio::test]
async fn a_project_with_no_key_in_redis_is_warned_about_once_and_measured() {
    let redis = RedisServer::start().expect("redis-server");
    assert!(materialize_snapshot(&redis.url()).await > 0);
    // `ricing` ends every key of `pricing`: a suffix match alone would take them for its own.
    for project in ["wrong", "ricing"] {
        let (value, warnings) = start_with_project(&redis, project).await;
        assert_eq!(value, "0", "{project}");
        assert_eq!(warnings.len(), 1, "{project}: {warnings:#?}");
        let warning: serde_json::Value = serde_json::from_str(&warnings[0]).expect("a JSON log line");
        assert_eq!(warning["level"], "WARN", "{warning}");
        assert_eq!(warning["project"], project, "{warning}");
        let message = warning["message"].as_str().unwrap_or_default();
        assert!(message.contains("every feature will be missing"), "{warning}");
    }
}

#[tokio::test]
async fn the_right_project_is_measured_without_a_warning() {
    let redis = RedisServer::start().expect("redis-server");
    materialize_snapshot(&redis.url()).await;
    let (value, warnings) = start_with_project(&redis, "pricing").await;
    assert_eq!(value, "1");
    assert!(warnings.is_empty(), "{warnings:#?}");
}
