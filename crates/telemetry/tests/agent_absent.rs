//! With nothing listening, recording stays fast and bounded, drops are counted, nothing errors, and
//! shutdown returns quickly.

use std::{
    net::UdpSocket,
    time::{Duration, Instant},
};

use telemetry::{
    DogStatsdUrl, Metrics, MetricsOptions, ServiceTags, Tag,
    catalog::{API_PREDICT_LATENCY_MS, MODEL_FEATURE_DRIFT_PSI},
};

/// A UDP port nobody listens on (bound, then released).
fn silent_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}

#[test]
fn hundred_thousand_records_with_no_agent_stay_bounded() {
    let tags = ServiceTags {
        env: "test".into(),
        service: "gateway".into(),
        version: "1".into(),
    };
    let target = DogStatsdUrl::Udp {
        host: "127.0.0.1".into(),
        port: silent_port(),
    };
    let options = MetricsOptions {
        flush_interval: Duration::from_secs(3600),
        max_series: 100,
        max_samples: 10_000,
        ..MetricsOptions::new(target, tags)
    };
    let metrics = Metrics::start(options).expect("start");
    let status = Tag::grpc_status(tonic::Code::Ok);
    let started = Instant::now();
    for i in 0..100_000u32 {
        metrics.distribution(
            &API_PREDICT_LATENCY_MS,
            f64::from(i),
            &[Tag::rpc("QuotePrice"), status],
        );
    }
    // Distinct series past the cap (feature names are deployment data; a bug could make them unbounded).
    let names: Vec<String> = (0..1_000).map(|i| format!("feature_{i}")).collect();
    for name in &names {
        metrics.gauge(
            &MODEL_FEATURE_DRIFT_PSI,
            0.1,
            &[Tag::model("risk"), Tag::feature(name)],
        );
    }
    let elapsed = started.elapsed();
    let stats = metrics.stats();
    assert!(stats.series <= 100, "{stats:?}");
    assert_eq!(stats.buffered_samples, 10_000, "{stats:?}");
    assert_eq!(stats.dropped, 90_000 + 901, "{stats:?}");
    // Generous even for an unoptimized build on a busy machine: well under 10 µs per record.
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");

    let started = Instant::now();
    assert!(metrics.shutdown(Duration::from_secs(2)));
    assert!(started.elapsed() < Duration::from_secs(2));
    // After shutdown the handle is a no-op.
    metrics.distribution(&API_PREDICT_LATENCY_MS, 1.0, &[]);
}

#[test]
fn unresolvable_agent_host_drops_and_counts() {
    let tags = ServiceTags {
        env: "test".into(),
        service: "gateway".into(),
        version: "1".into(),
    };
    let target = DogStatsdUrl::Udp {
        host: "agent.invalid".into(),
        port: 8125,
    };
    let options = MetricsOptions {
        flush_interval: Duration::from_secs(3600),
        ..MetricsOptions::new(target, tags)
    };
    let metrics = Metrics::start(options).expect("start");
    metrics.distribution(&API_PREDICT_LATENCY_MS, 1.0, &[]);
    assert!(metrics.flush(Duration::from_secs(5)));
    assert_eq!(metrics.stats().dropped, 1);
    metrics.shutdown(Duration::from_secs(2));
}
