//! DogStatsD over the agent's Unix datagram socket (`DD_DOGSTATSD_URL=unix://...`): 8192-byte
//! packets, and an absent socket never gets a file created at its path.

use std::{path::Path, time::Duration};

use telemetry::{DogStatsdUrl, Metrics, ServiceTags, Tag, catalog::REDIS_COMMAND_LATENCY_MS};

use crate::common;

use common::{receive_all, unix_agent};

fn tags() -> ServiceTags {
    ServiceTags {
        env: "test".into(),
        service: "feature-service".into(),
        version: "1".into(),
    }
}

fn start(path: &Path) -> Metrics {
    common::start_with(DogStatsdUrl::Unix(path.to_owned()), tags(), |options| options)
}

#[test]
fn packs_up_to_8192_bytes_over_the_unix_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dsd.socket");
    let agent = unix_agent(&path);
    let metrics = start(&path);
    for i in 0..20_000 {
        metrics.distribution(
            &REDIS_COMMAND_LATENCY_MS,
            0.25 + f64::from(i % 1000) / 1000.0,
            &[Tag::command("HMGET")],
        );
    }
    // Like the agent, read while the flush writes (Linux queues only ~10 datagrams per Unix socket).
    let reader = std::thread::spawn(move || receive_all(&agent));
    assert!(metrics.flush(Duration::from_secs(2)));
    let datagrams = reader.join().expect("reader");
    let values: usize = datagrams
        .iter()
        .map(|d| {
            assert!(d.len() <= 8192, "{} bytes", d.len());
            assert!(d.starts_with("redis.command.latency_ms:"), "{d}");
            assert!(
                d.ends_with("|d|#command:HMGET,env:test,service:feature-service,version:1"),
                "{d}"
            );
            d.split('|').next().map_or(0, |head| head.split(':').count() - 1)
        })
        .sum();
    assert_eq!(values, 20_000);
    assert!(
        datagrams.iter().any(|d| d.len() > 7000),
        "UDS packets use the larger limit"
    );
    assert_eq!(metrics.stats().dropped, 0);
    metrics.shutdown(Duration::from_secs(2));
}

#[test]
fn absent_agent_socket_is_never_created_and_drops_are_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dsd.socket");
    let metrics = start(&path);
    for _ in 0..100 {
        metrics.distribution(&REDIS_COMMAND_LATENCY_MS, 1.0, &[Tag::command("GET")]);
    }
    assert!(metrics.flush(Duration::from_secs(2)));
    assert!(!path.exists(), "no file may appear at the agent's socket path");
    assert_eq!(metrics.stats().dropped, 100);
    assert_eq!(metrics.stats().datagrams_sent, 0);

    // The agent comes up: the next flush connects, and the drop count goes out.
    let agent = unix_agent(&path);
    metrics.distribution(&REDIS_COMMAND_LATENCY_MS, 2.0, &[Tag::command("GET")]);
    assert!(metrics.flush(Duration::from_secs(2)));
    let mut lines = receive_all(&agent);
    lines.sort();
    assert_eq!(
        lines,
        [
            "redis.command.latency_ms:2|d|#command:GET,env:test,service:feature-service,version:1",
            "telemetry.dropped:100|c|#signal:metric,reason:agent_unavailable,env:test,service:feature-service,version:1",
        ]
    );
    metrics.shutdown(Duration::from_secs(2));
}

#[test]
fn a_regular_file_at_the_socket_path_is_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dsd.socket");
    std::fs::write(&path, b"not a socket").expect("write file");
    let metrics = start(&path);
    metrics.distribution(&REDIS_COMMAND_LATENCY_MS, 1.0, &[Tag::command("GET")]);
    assert!(metrics.flush(Duration::from_secs(2)));
    assert_eq!(std::fs::read(&path).ok().as_deref(), Some(&b"not a socket"[..]));
    assert_eq!(metrics.stats().dropped, 1);
    metrics.shutdown(Duration::from_secs(2));
}
