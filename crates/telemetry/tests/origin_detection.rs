//! Origin detection on real sockets: with `DD_EXTERNAL_ENV` and `DD_ENTITY_ID` set (through the
//! configuration, as clap reads them), every metric and event line ends with the DogStatsD origin
//! fields, and packed distribution lines still fit the 1432-byte UDP and 8192-byte Unix socket limits
//! with the fields included.

use std::time::Duration;

use telemetry::{
    DogStatsdUrl, EventAlert, Metrics, MetricsOptions, MetricsOrigin, ServiceTags, Tag, TelemetryConfig,
    catalog::{
        API_PREDICT_LATENCY_MS, API_PREDICT_REQUESTS, BATCH_JOB_STATUS, MODEL_CRAI_RISK_SCORE,
        MODEL_VERSION_LOADED,
    },
};

const POD_UID: &str = "75a2b6d5-3949-4afb-ad0d-92ff0674e759";
/// What the Datadog Admission Controller injects as `DD_EXTERNAL_ENV`.
const EXTERNAL: &str = "it-false,cn-gateway,pu-75a2b6d5-3949-4afb-ad0d-92ff0674e759";
const CONTAINER: &str = "8c046cb0b72cd4c99f51b5591cd5b095967f58ee003710a45280c28ee1a9c7fa";
const SERVICE: &str = "env:test,service:gateway,version:1.2.3";

fn config() -> TelemetryConfig {
    let mut config = TelemetryConfig::for_service("gateway");
    config.external_env = Some(EXTERNAL.into());
    config.entity_id = Some(POD_UID.into());
    config
}

/// What `config()` yields, with the container pinned: procfs differs from one machine to the next.
fn origin() -> MetricsOrigin {
    MetricsOrigin {
        container: Some(CONTAINER.into()),
        ..MetricsOrigin::detect(&config())
    }
}

/// How every line must end: the service tags, the entity id tag, then the origin fields.
fn ending(container: Option<&str>) -> String {
    let container = container.map(|c| format!("|c:{c}")).unwrap_or_default();
    format!("{SERVICE},dd.internal.entity_id:{POD_UID}{container}|e:{EXTERNAL}")
}

use crate::common;

use common::{receive_all, udp_agent as agent, unix_agent};

fn start(target: DogStatsdUrl, origin: MetricsOrigin) -> Metrics {
    let tags = ServiceTags {
        env: "test".into(),
        service: "gateway".into(),
        version: "1.2.3".into(),
    };
    common::start_with(target, tags, |options| MetricsOptions { origin, ..options })
}

#[test]
fn every_metric_and_event_line_ends_with_the_origin_fields() {
    let (socket, target) = agent();
    let metrics = start(target, origin());
    let ok = tonic::Code::Ok;
    metrics.incr(
        &API_PREDICT_REQUESTS,
        &[Tag::rpc("QuotePrice"), Tag::grpc_status(ok)],
    );
    metrics.distribution(&API_PREDICT_LATENCY_MS, 12.5, &[Tag::rpc("QuotePrice")]);
    metrics.gauge(&BATCH_JOB_STATUS, 1.0, &[Tag::job("materialize")]);
    // A dropped value, reported as telemetry.dropped.
    metrics.gauge(&BATCH_JOB_STATUS, f64::NAN, &[Tag::job("materialize")]);
    metrics.event(
        &MODEL_VERSION_LOADED,
        EventAlert::Info,
        "Model version loaded: customer_risk 2",
        "customer_risk version 2",
        &[Tag::model("customer_risk"), Tag::model_version("2")],
    );
    assert!(metrics.flush(Duration::from_secs(2)));
    let mut lines = receive_all(&socket);
    lines.sort();
    let end = ending(Some(CONTAINER));
    let title = "Model version loaded: customer_risk 2";
    let text = "customer_risk version 2";
    let expected = [
        format!(
            "_e{{{},{}}}:{title}|{text}|k:model_version_loaded|t:info|#event:model_version_loaded,model:customer_risk,model_version:2,{end}",
            title.len(),
            text.len()
        ),
        format!("api.predict.latency_ms:12.5|d|#rpc:QuotePrice,{end}"),
        format!("api.predict.requests:1|c|#rpc:QuotePrice,status:ok,{end}"),
        format!("batch_job.status:1|g|#job:materialize,{end}"),
        format!("telemetry.dropped:1|c|#signal:metric,reason:invalid_value,{end}"),
    ];
    assert_eq!(lines, expected);
    assert!(metrics.shutdown(Duration::from_secs(2)));
}

#[test]
fn detection_follows_the_configuration() {
    let (socket, target) = agent();
    // Whatever this machine's procfs shows: a container id, `in-<inode>`, or nothing.
    let detected = MetricsOrigin::detect(&config());
    assert_eq!(detected.external_data.as_deref(), Some(EXTERNAL));
    assert_eq!(detected.entity_id.as_deref(), Some(POD_UID));
    if let Some(container) = &detected.container {
        let inode = container
            .strip_prefix("in-")
            .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 2));
        let id = container.len() >= 32
            && container
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b'-' | b'_'));
        assert!(inode || id, "not a container field value: {container}");
    }
    let metrics = start(target, detected.clone());
    metrics.incr(&API_PREDICT_REQUESTS, &[Tag::rpc("QuotePrice")]);
    assert!(metrics.flush(Duration::from_secs(2)));
    assert_eq!(
        receive_all(&socket),
        [format!(
            "api.predict.requests:1|c|#rpc:QuotePrice,{}",
            ending(detected.container.as_deref())
        )]
    );
    metrics.shutdown(Duration::from_secs(2));

    // DD_ORIGIN_DETECTION_ENABLED=false: no fields; the explicitly set entity id stays.
    let (socket, target) = agent();
    let mut off = config();
    off.origin_detection_enabled = false;
    let origin = MetricsOrigin::detect(&off);
    assert_eq!(origin.container, None);
    assert_eq!(origin.external_data, None);
    let metrics = start(target, origin);
    metrics.incr(&API_PREDICT_REQUESTS, &[Tag::rpc("QuotePrice")]);
    assert!(metrics.flush(Duration::from_secs(2)));
    assert_eq!(
        receive_all(&socket),
        [format!(
            "api.predict.requests:1|c|#rpc:QuotePrice,{SERVICE},dd.internal.entity_id:{POD_UID}"
        )]
    );
    metrics.shutdown(Duration::from_secs(2));
}

const MODEL_TAGS: [Tag<'static>; 3] = [
    Tag::model("customer_risk"),
    Tag::model_version("20240601"),
    Tag::variant("treatment"),
];

/// Checks packed lines: within `limit`, ending with the fields, every sample once, and full.
fn check_packed(datagrams: &[String], limit: usize, samples: usize) {
    let end = format!(
        "|d|#model:customer_risk,model_version:20240601,variant:treatment,{}",
        ending(Some(CONTAINER))
    );
    let mut values = 0;
    for datagram in datagrams {
        assert!(datagram.len() <= limit, "{} bytes: {datagram}", datagram.len());
        let head = datagram
            .strip_suffix(&end)
            .unwrap_or_else(|| panic!("does not end with the fields: {datagram}"));
        let packed = head.strip_prefix("model.crai.risk_score:").expect("metric name");
        values += packed.split(':').count();
    }
    assert_eq!(values, samples, "every sample arrives exactly once");
    let fullest = datagrams.iter().map(String::len).max().unwrap_or(0);
    assert!(
        fullest > limit - 20,
        "packets are filled up to the limit: {fullest} of {limit}"
    );
}

#[test]
fn packed_distributions_fit_the_udp_limit_with_the_fields() {
    let (socket, target) = agent();
    let metrics = start(target, origin());
    for i in 0..5000 {
        metrics.distribution(&MODEL_CRAI_RISK_SCORE, f64::from(i) / 4999.0, &MODEL_TAGS);
    }
    assert!(metrics.flush(Duration::from_secs(2)));
    let datagrams = receive_all(&socket);
    check_packed(&datagrams, 1432, 5000);
    assert_eq!(metrics.stats().datagrams_sent, datagrams.len() as u64);
    metrics.shutdown(Duration::from_secs(2));
}

#[test]
fn packed_distributions_fit_the_unix_socket_limit_with_the_fields() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dsd.socket");
    let agent = unix_agent(&path);
    let metrics = start(DogStatsdUrl::Unix(path), origin());
    for i in 0..20_000 {
        metrics.distribution(&MODEL_CRAI_RISK_SCORE, f64::from(i) / 19_999.0, &MODEL_TAGS);
    }
    // Read while the flush writes (Linux queues only ~10 datagrams per Unix socket).
    let reader = std::thread::spawn(move || receive_all(&agent));
    assert!(metrics.flush(Duration::from_secs(2)));
    let datagrams = reader.join().expect("reader");
    check_packed(&datagrams, 8192, 20_000);
    assert_eq!(metrics.stats().dropped, 0);
    metrics.shutdown(Duration::from_secs(2));
}
