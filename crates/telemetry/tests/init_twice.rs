//! `init` twice in one process (as tests do) neither panics nor replaces the first pipelines, and
//! shutting down with no agent anywhere returns within the bounded wait.

use std::time::{Duration, Instant};

use telemetry::{Metrics, Tag, TelemetryConfig, catalog::CACHE_MODEL_METADATA_HIT};

#[test]
fn second_init_reuses_the_first_and_shutdown_is_bounded_without_an_agent() {
    let mut config = TelemetryConfig::for_service("init-test");
    // Nothing listens on these: the OTLP export fails fast, DogStatsD datagrams go nowhere.
    config.agent_host = "127.0.0.1".into();
    config.dogstatsd_port = 9;
    config.otlp_endpoint = Some("http://127.0.0.1:9".into());
    config.log_format = telemetry::LogFormat::Json;

    let first = telemetry::init(&config, "init-test", "0.0.1");
    assert_eq!(first.tags().service, "init-test");
    assert_eq!(first.tags().version, "0.0.1");
    assert!(Metrics::global().is_enabled());

    config.service = Some("other".into());
    let second = telemetry::init(&config, "other", "0.0.2");
    assert_eq!(second.tags().service, "other");

    telemetry::metrics().incr(&CACHE_MODEL_METADATA_HIT, &[]);
    let _ = Tag::job("x");
    let cx = telemetry::trace::spans::server_span(&opentelemetry::Context::new(), "pkg.Svc", "Method");
    telemetry::trace::spans::end_rpc(&cx, telemetry::trace::spans::RpcSide::Server, tonic::Code::Ok, "");
    tracing::info!(request_id = "r1", "a log line");

    drop(second);
    let started = Instant::now();
    first.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    tracing::info!("logged after shutdown, written directly");
}
