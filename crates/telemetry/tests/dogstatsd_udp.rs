//! DogStatsD output read from a real UDP socket: names, types, tags (with env/service/version),
//! multi-value distribution packets within the 1432-byte UDP limit, and `telemetry.dropped`.

use std::time::Duration;

use telemetry::{
    DogStatsdUrl, EventAlert, JobStatus, LookupStatus, Metrics, MetricsOptions, ServiceTags, Tag,
    catalog::{
        API_PREDICT_LATENCY_MS, API_PREDICT_REQUESTS, BATCH_JOB_STATUS, CACHE_MODEL_METADATA_HIT,
        FEATURES_LOOKUPS, MODEL_CRAI_RISK_SCORE, MODEL_VERSION_LOADED,
    },
    events::BatchJobFinished,
};

use crate::common;

use common::{receive_all, udp_agent as agent};

fn tags() -> ServiceTags {
    ServiceTags {
        env: "test".into(),
        service: "gateway".into(),
        version: "1.2.3".into(),
    }
}

fn start(target: DogStatsdUrl) -> Metrics {
    common::start_with(target, tags(), |options| options)
}

#[test]
fn sends_counts_gauges_and_distributions_with_service_tags() {
    let (socket, target) = agent();
    let metrics = start(target);
    let ok = tonic::Code::Ok;
    metrics.incr(
        &API_PREDICT_REQUESTS,
        &[Tag::rpc("QuotePrice"), Tag::grpc_status(ok)],
    );
    metrics.count(
        &API_PREDICT_REQUESTS,
        4,
        &[Tag::grpc_status(ok), Tag::rpc("QuotePrice")],
    );
    metrics.incr(&CACHE_MODEL_METADATA_HIT, &[]);
    metrics.distribution(
        &API_PREDICT_LATENCY_MS,
        12.5,
        &[Tag::rpc("QuotePrice"), Tag::grpc_status(ok)],
    );
    metrics.distribution(
        &API_PREDICT_LATENCY_MS,
        3.0,
        &[Tag::rpc("QuotePrice"), Tag::grpc_status(ok)],
    );
    metrics.incr(
        &FEATURES_LOOKUPS,
        &[
            Tag::feature_view("customer_stats"),
            Tag::lookup_status(LookupStatus::OutsideMaxAge),
        ],
    );
    BatchJobFinished {
        job: "materialize",
        status: JobStatus::Failed,
        duration: Duration::from_millis(1500),
        rows: &[],
        error: Some("redis down"),
    }
    .emit_to(&metrics);
    assert!(metrics.flush(Duration::from_secs(2)));

    let mut lines = receive_all(&socket);
    lines.sort();
    let service = "env:test,service:gateway,version:1.2.3";
    let expected = [
        format!("api.predict.latency_ms:12.5:3|d|#rpc:QuotePrice,status:ok,{service}"),
        format!("api.predict.requests:5|c|#rpc:QuotePrice,status:ok,{service}"),
        format!("batch_job.duration_s:1.5|d|#job:materialize,{service}"),
        format!("batch_job.runs:1|c|#job:materialize,status:failed,{service}"),
        format!("batch_job.status:0|g|#job:materialize,{service}"),
        format!("cache.model_metadata.hit:1|c|#{service}"),
        format!("features.lookups:1|c|#feature_view:customer_stats,status:outside_max_age,{service}"),
    ];
    assert_eq!(lines, expected);

    // Gauges are re-sent every flush; counts and distributions only when they changed.
    assert!(metrics.flush(Duration::from_secs(2)));
    assert_eq!(
        receive_all(&socket),
        vec![format!("batch_job.status:0|g|#job:materialize,{service}")]
    );
    assert!(metrics.shutdown(Duration::from_secs(2)));
}

#[test]
fn packs_distribution_samples_into_datagrams_under_1432_bytes() {
    let (socket, target) = agent();
    let metrics = start(target);
    let tags = [
        Tag::model("customer_risk"),
        Tag::model_version("20240601"),
        Tag::variant("treatment"),
    ];
    let samples: Vec<f64> = (0..5000).map(|i| f64::from(i) / 4999.0).collect();
    for sample in &samples {
        metrics.distribution(&MODEL_CRAI_RISK_SCORE, *sample, &tags);
    }
    assert!(metrics.flush(Duration::from_secs(2)));
    let datagrams = receive_all(&socket);

    let mut received = Vec::new();
    for datagram in &datagrams {
        assert!(datagram.len() <= 1432, "{} bytes", datagram.len());
        let (head, tail) = datagram.split_once("|d|#").expect("a distribution line");
        assert_eq!(
            tail,
            "model:customer_risk,model_version:20240601,variant:treatment,env:test,service:gateway,version:1.2.3"
        );
        let values = head.strip_prefix("model.crai.risk_score:").expect("metric name");
        received.extend(values.split(':').map(|v| v.parse::<f64>().expect("a number")));
    }
    assert_eq!(received.len(), samples.len(), "every sample arrives exactly once");
    for (got, sent) in received.iter().zip(&samples) {
        assert!((got - sent).abs() <= sent.abs() * 1e-5 + 1e-12, "{got} vs {sent}");
    }
    // ~5000 values of ~8 bytes in ~1300-byte packets: far fewer datagrams than samples.
    assert!(datagrams.len() < 50, "{} datagrams", datagrams.len());
    let mean_fill = datagrams.iter().map(String::len).sum::<usize>() / datagrams.len();
    assert!(mean_fill > 1200, "packets are filled, mean {mean_fill} bytes");
    assert_eq!(metrics.stats().datagrams_sent, datagrams.len() as u64);
    metrics.shutdown(Duration::from_secs(2));
}

#[test]
fn reports_its_own_drops_as_telemetry_dropped() {
    let (socket, target) = agent();
    let options = MetricsOptions {
        max_series: 1,
        ..MetricsOptions::new(target, tags())
    };
    let metrics = Metrics::start(options).expect("start sink");
    metrics.gauge(&BATCH_JOB_STATUS, 1.0, &[Tag::job("a")]);
    metrics.gauge(&BATCH_JOB_STATUS, 1.0, &[Tag::job("b")]);
    metrics.gauge(&BATCH_JOB_STATUS, f64::NAN, &[Tag::job("a")]);
    assert!(metrics.flush(Duration::from_secs(2)));
    let mut lines = receive_all(&socket);
    lines.sort();
    let service = "env:test,service:gateway,version:1.2.3";
    assert_eq!(
        lines,
        [
            format!("batch_job.status:1|g|#job:a,{service}"),
            format!("telemetry.dropped:1|c|#signal:metric,reason:invalid_value,{service}"),
            format!("telemetry.dropped:1|c|#signal:metric,reason:series_limit,{service}"),
        ]
    );
    assert_eq!(metrics.stats().dropped, 2);
    metrics.shutdown(Duration::from_secs(2));
}

#[test]
fn flushes_on_its_own_every_interval() {
    let (socket, target) = agent();
    let options = MetricsOptions {
        flush_interval: Duration::from_millis(50),
        ..MetricsOptions::new(target, tags())
    };
    let metrics = Metrics::start(options).expect("start sink");
    metrics.incr(&CACHE_MODEL_METADATA_HIT, &[]);
    let mut buf = [0u8; 2048];
    let n = socket
        .recv(&mut buf)
        .expect("a datagram without an explicit flush");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("cache.model_metadata.hit:1|c"));
    metrics.shutdown(Duration::from_secs(2));
}

#[test]
fn sends_events_with_their_tags_and_the_service_tags() {
    let (socket, target) = agent();
    let metrics = start(target);
    metrics.event(
        &MODEL_VERSION_LOADED,
        EventAlert::Info,
        "Model version loaded: customer_risk 2",
        "customer_risk version 2 (default)\nloaded",
        &[Tag::model("customer_risk"), Tag::model_version("2")],
    );
    assert!(metrics.flush(Duration::from_secs(2)));
    let datagrams = receive_all(&socket);
    let event = datagrams
        .iter()
        .find(|d| d.starts_with("_e{"))
        .unwrap_or_else(|| panic!("no event among {datagrams:?}"));
    let title = "Model version loaded: customer_risk 2";
    let text = "customer_risk version 2 (default) loaded";
    assert_eq!(
        event,
        &format!(
            "_e{{{},{}}}:{title}|{text}|k:model_version_loaded|t:info|#event:model_version_loaded,model:customer_risk,model_version:2,env:test,service:gateway,version:1.2.3",
            title.len(),
            text.len()
        )
    );
    metrics.shutdown(Duration::from_secs(2));
}
