//! Materialization is a batch job: each run, successful or not, sends `batch_job.runs{status}`,
//! `batch_job.status` (what the "batch job failed" monitor watches), `batch_job.duration_s` and
//! `batch_job.rows` per feature view, read here from a real UDP socket; each pipeline is timed as
//! `redis.command.latency_ms{command:HSET}`.

use crate::common;

use common::*;
use feature_store::{CsvFile, Error, MaterializeOptions};
use testkit::redis::RedisServer;

const JOB: &str = "job:materialize";

fn options(agent: &StatsdAgent) -> MaterializeOptions {
    MaterializeOptions {
        metrics: agent.metrics.clone(),
        ..MaterializeOptions::default()
    }
}

#[tokio::test]
async fn a_run_reports_success_and_rows_then_a_malformed_file_reports_failure() {
    let server = RedisServer::start().expect("redis-server");
    let agent = StatsdAgent::start(SERVICE);

    let report = feature_store::materialize(
        &redis_config(&server.url()),
        &registry(),
        &tiny_csvs(),
        &options(&agent),
    )
    .await
    .expect("materialize");
    assert_eq!(report.rows, 7);
    let lines = agent.lines();
    let value = |metric: &str, kind: &str, tags: &str| value_of(&lines, metric, kind, tags);
    assert_eq!(
        value("batch_job.runs", "c", &format!("{JOB},status:success")).as_deref(),
        Some("1"),
        "{lines:#?}"
    );
    assert_eq!(
        value("batch_job.status", "g", JOB).as_deref(),
        Some("1"),
        "{lines:#?}"
    );
    let duration: f64 = value("batch_job.duration_s", "d", JOB)
        .expect("batch_job.duration_s")
        .parse()
        .expect("one sample");
    assert!(duration > 0.0 && duration < 60.0, "{duration}");
    for (view, rows) in [
        ("customer_profile", "3"),
        ("customer_activity", "1"),
        ("zone_demand", "2"),
        ("zone_weather", "1"),
    ] {
        assert_eq!(
            value("batch_job.rows", "c", &format!("{JOB},feature_view:{view}")).as_deref(),
            Some(rows),
            "{view}: {lines:#?}"
        );
    }
    // One pipeline per view (batches of 500).
    let pipelines = value("redis.command.latency_ms", "d", "command:HSET").expect("HSET latency");
    assert_eq!(pipelines.split(':').count(), 4, "{pipelines}");
    for line in &lines {
        assert!(!line.contains("c-1") && !line.contains("z-1"), "{line}");
    }

    // A malformed file: nothing is written and the run is reported failed.
    let malformed = vec![CsvFile::new(
        "customer_profile.csv",
        "customer_profile",
        "customer_id,event_timestamp,account_age_days\nc-9,2025-06-10T11:00:00Z,not-a-number\n",
    )];
    let error = feature_store::materialize(
        &redis_config(&server.url()),
        &registry(),
        &malformed,
        &options(&agent),
    )
    .await
    .expect_err("malformed file");
    assert!(matches!(error, Error::Csv { .. }), "{error:?}");
    let lines = agent.lines();
    let value = |metric: &str, kind: &str, tags: &str| value_of(&lines, metric, kind, tags);
    assert_eq!(
        value("batch_job.runs", "c", &format!("{JOB},status:failed")).as_deref(),
        Some("1"),
        "{lines:#?}"
    );
    assert_eq!(
        value("batch_job.runs", "c", &format!("{JOB},status:success")),
        None,
        "{lines:#?}"
    );
    assert_eq!(
        value("batch_job.status", "g", JOB).as_deref(),
        Some("0"),
        "{lines:#?}"
    );
    assert!(value("batch_job.duration_s", "d", JOB).is_some(), "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.starts_with("batch_job.rows")),
        "{lines:#?}"
    );
    agent.metrics.shutdown(std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn an_unreachable_redis_is_a_failed_run() {
    let server = RedisServer::start().expect("redis-server");
    let url = server.url();
    drop(server);
    let agent = StatsdAgent::start(SERVICE);
    let mut redis = redis_config(&url);
    redis.connect_timeout = std::time::Duration::from_secs(2);
    let error = feature_store::materialize(&redis, &registry(), &tiny_csvs(), &options(&agent))
        .await
        .expect_err("no Redis");
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    let lines = agent.lines();
    assert_eq!(
        value_of(&lines, "batch_job.runs", "c", &format!("{JOB},status:failed")).as_deref(),
        Some("1"),
        "{lines:#?}"
    );
    assert_eq!(
        value_of(&lines, "batch_job.status", "g", JOB).as_deref(),
        Some("0")
    );
}
