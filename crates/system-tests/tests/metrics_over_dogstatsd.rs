//! One request of each public RPC, through the three services as processes, sends the design record's
//! metrics over a real UDP socket: the catalog's names, types and tag keys, the unified service tags on
//! every datagram, and never a customer, zone, request or quote id.

use std::collections::{BTreeMap, BTreeSet};

use proto::inference::v1::{
    BatchPredictCustomerRiskRequest, BatchPredictDemandSurgeRequest, PredictCustomerRiskRequest,
    PredictDemandSurgeRequest, QuotePriceRequest, RecordOutcomeRequest,
};
use system_tests::materialize_snapshot;
use system_tests::processes::ProcessStack;
use telemetry::catalog::{MetricKind, by_name};
use testkit::redis::RedisServer;
use testkit::statsd::DogStatsdSocket;

/// What each metric was seen with: its type letter and its tag keys.
#[derive(Debug, Default)]
struct Seen {
    types: BTreeSet<String>,
    tag_keys: BTreeSet<String>,
    tag_values: BTreeSet<String>,
    services: BTreeSet<String>,
}

fn parse(datagrams: &[String]) -> BTreeMap<String, Seen> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for line in datagrams.iter().flat_map(|d| d.lines()) {
        if line.starts_with("_e{") {
            continue; // events are checked on their own
        }
        let mut parts = line.split('|');
        let name_values = parts.next().unwrap_or_default();
        let name = name_values.split(':').next().unwrap_or_default().to_owned();
        let entry = seen.entry(name).or_default();
        for part in parts {
            if let Some(tags) = part.strip_prefix('#') {
                for tag in tags.split(',') {
                    let (key, value) = tag.split_once(':').unwrap_or((tag, ""));
                    entry.tag_keys.insert(key.to_owned());
                    entry.tag_values.insert(value.to_owned());
                    if key == "service" {
                        entry.services.insert(value.to_owned());
                    }
                }
            } else if !part.starts_with('@') && !is_origin_field(part) {
                entry.types.insert(part.to_owned());
            }
        }
    }
    seen
}

/// DogStatsD 1.2+ origin fields (`c:` container, `e:` external data, `card:` cardinality), which a
/// service sends where it detects its container; they are not the metric type.
fn is_origin_field(part: &str) -> bool {
    ["c:", "e:", "card:"]
        .iter()
        .any(|prefix| part.starts_with(prefix))
}

#[tokio::test]
async fn each_rpc_emits_the_catalog_metrics() {
    let socket = DogStatsdSocket::bind();
    let redis = RedisServer::start().expect("redis-server");
    materialize_snapshot(&redis.url()).await;
    let env = [
        ("DD_DOGSTATSD_URL", socket.url()),
        ("DD_ENV", "metrics-test".to_owned()),
        ("DD_TRACE_ENABLED", "false".to_owned()),
        ("REDIS_URL", redis.url()),
        ("QUOTE_REDIS_URL", redis.url()),
    ];
    let stack = ProcessStack::start(&env).await;
    let mut client = stack.client();
    let customer = "C000123";
    let zone = "Z0077";
    let request_id = "req-metrics-7f3a";
    let mut risk = tonic::Request::new(PredictCustomerRiskRequest {
        customer_id: customer.into(),
        ..Default::default()
    });
    risk.metadata_mut()
        .insert("x-request-id", request_id.parse().expect("ascii"));
    client.predict_customer_risk(risk).await.expect("risk");
    client
        .predict_demand_surge(PredictDemandSurgeRequest {
            zone_id: zone.into(),
            ..Default::default()
        })
        .await
        .expect("surge");
    let quote = client
        .quote_price(QuotePriceRequest {
            customer_id: customer.into(),
            zone_id: zone.into(),
            base_price: 20.0,
            ..Default::default()
        })
        .await
        .expect("quote")
        .into_inner();
    client
        .record_outcome(RecordOutcomeRequest {
            quote_id: quote.quote_id.clone(),
            booked: true,
            revenue: quote.price,
            satisfaction: Some(4.0),
            price_complaint: true,
        })
        .await
        .expect("outcome");
    client
        .batch_predict_customer_risk(BatchPredictCustomerRiskRequest {
            customer_ids: vec![customer.into()],
            ..Default::default()
        })
        .await
        .expect("risk batch");
    client
        .batch_predict_demand_surge(BatchPredictDemandSurgeRequest {
            zone_ids: vec![zone.into()],
            ..Default::default()
        })
        .await
        .expect("surge batch");
    let bad = client
        .predict_customer_risk(PredictCustomerRiskRequest::default())
        .await;
    assert!(bad.is_err(), "an empty id is rejected (and counted as an error)");
    // SIGTERM flushes what each process aggregated.
    stack.terminate().await;

    let datagrams = socket.receive_all();
    for datagram in &datagrams {
        let n = datagram.len();
        assert!(n <= 1432, "a {n}-byte datagram exceeds the UDP limit");
    }
    let seen = parse(&datagrams);

    let expected = [
        "api.predict.requests",
        "api.predict.errors",
        "api.predict.latency_ms",
        "api.predict.within_sla",
        "api.predict.feature_fetch_ms",
        "api.predict.inference_ms",
        "model.crai.risk_score",
        "model.crai.risk_multiplier",
        "model.crai.confidence",
        "model.demand.surge_factor",
        "model.versions.loaded",
        "model.predictions.count",
        "model.inference.batch_rows",
        "cache.model_metadata.miss",
        "cache.model_metadata.hit",
        "cache.feast.miss",
        "cache.feast.hit",
        "features.lookups",
        "features.staleness_s",
        "redis.command.latency_ms",
        "business.quotes.count",
        "business.outcomes.count",
        "business.revenue.dynamic_pricing",
        "business.customer_satisfaction.score",
        "business.complaints.count",
        // From start, not only once a breaker first changes: a healthy stack reports closed breakers.
        "circuit_breaker.state",
    ];
    for name in expected {
        let got = seen
            .get(name)
            .unwrap_or_else(|| panic!("{name} was not sent; saw {:?}", seen.keys()));
        let def = by_name(name).unwrap_or_else(|| panic!("{name} is not in the catalog"));
        let letter = match def.kind {
            MetricKind::Count => "c",
            MetricKind::Gauge => "g",
            MetricKind::Distribution => "d",
        };
        assert_eq!(got.types, BTreeSet::from([letter.to_owned()]), "{name} type");
    }
    for (name, got) in &seen {
        let def = by_name(name).unwrap_or_else(|| panic!("{name} was sent but is not in the catalog"));
        let allowed: BTreeSet<&str> = def
            .tags
            .iter()
            .map(|k| k.as_str())
            .chain(["env", "service", "version"])
            .collect();
        for key in &got.tag_keys {
            assert!(
                allowed.contains(key.as_str()),
                "{name} carries tag key {key} outside the catalog"
            );
        }
        for unified in ["env", "service", "version"] {
            assert!(got.tag_keys.contains(unified), "{name} lacks {unified}");
        }
        // The catalog says who sends each metric (the cost model counts their pods).
        for service in &got.services {
            assert!(
                def.sent_by.contains(&service.as_str()),
                "{name} was sent by {service}, not one of {:?}",
                def.sent_by
            );
        }
        for value in &got.tag_values {
            for id in [customer, zone, request_id, quote.quote_id.as_str()] {
                assert!(
                    !value.contains(id),
                    "{name} carries an entity id in a tag: {value}"
                );
            }
        }
    }
    assert!(
        seen["api.predict.errors"].tag_values.contains("client"),
        "the refused request is the caller's fault: {:?}",
        seen["api.predict.errors"].tag_values
    );
    for dependency in ["feature-service", "model-service"] {
        assert!(
            seen["circuit_breaker.state"].tag_values.contains(dependency),
            "no breaker state for {dependency}: {:?}",
            seen["circuit_breaker.state"].tag_values
        );
    }
    // The model-service announces each version it serves (the dashboards' deployment timeline).
    let events: Vec<&str> = datagrams
        .iter()
        .flat_map(|d| d.lines())
        .filter(|l| l.starts_with("_e{"))
        .collect();
    for model in ["customer_risk", "demand_surge"] {
        assert!(
            events.iter().any(|e| e.contains("#event:model_version_loaded,")
                && e.contains(&format!("model:{model},model_version:1"))
                && e.contains("service:model-service")),
            "no model_version_loaded event for {model} in {events:?}"
        );
    }
    let rpcs: BTreeSet<&String> = seen["api.predict.requests"].tag_values.iter().collect();
    for rpc in [
        "PredictCustomerRisk",
        "PredictDemandSurge",
        "QuotePrice",
        "RecordOutcome",
        "BatchPredictCustomerRisk",
        "BatchPredictDemandSurge",
    ] {
        assert!(
            rpcs.contains(&rpc.to_owned()),
            "api.predict.requests has no rpc:{rpc}: {rpcs:?}"
        );
    }
    assert!(
        seen["api.predict.requests"].tag_values.contains("metrics-test"),
        "env tag value"
    );
    // Each request counts under the model its RPC runs, as in the design record's `model:crai` example
    // (QuotePrice runs both).
    let requests: Vec<&str> = datagrams
        .iter()
        .flat_map(|d| d.lines())
        .filter(|l| l.starts_with("api.predict.requests:"))
        .collect();
    for (rpc, models) in [
        ("PredictCustomerRisk", &["customer_risk"][..]),
        ("BatchPredictCustomerRisk", &["customer_risk"]),
        ("PredictDemandSurge", &["demand_surge"]),
        ("BatchPredictDemandSurge", &["demand_surge"]),
        ("QuotePrice", &["customer_risk/demand_surge"]),
        ("RecordOutcome", &[]),
    ] {
        let line = requests
            .iter()
            .find(|l| l.contains(&format!("rpc:{rpc},")) || l.contains(&format!("rpc:{rpc}|")))
            .unwrap_or_else(|| panic!("no api.predict.requests for {rpc}: {requests:?}"));
        let tagged: Vec<&str> = line
            .split(['#', ',', '|'])
            .filter_map(|t| t.strip_prefix("model:"))
            .collect();
        assert_eq!(tagged, models, "{rpc}: {line}");
    }
}

#[tokio::test]
async fn an_open_breaker_shows_on_the_metrics_as_itself() {
    let socket = DogStatsdSocket::bind();
    let env = [
        ("DD_DOGSTATSD_URL", socket.url()),
        ("DD_ENV", "breaker-metrics-test".to_owned()),
        ("DD_TRACE_ENABLED", "false".to_owned()),
        ("BREAKER_FAILURES", "3".to_owned()),
        // Long enough that no probe is let through during the test.
        ("BREAKER_OPEN_MS", "60000".to_owned()),
    ];
    let ProcessStack {
        mut models,
        mut features,
        gateway,
    } = ProcessStack::start(&env).await;
    let mut client =
        proto::inference::v1::inference_service_client::InferenceServiceClient::new(gateway.channel());
    features.kill();
    let requests = 12;
    for i in 0..requests {
        let answer = client
            .predict_customer_risk(PredictCustomerRiskRequest {
                customer_id: format!("C{i:06}"),
                ..Default::default()
            })
            .await
            .expect("answered with the model's defaults");
        assert!(answer.into_inner().metadata.expect("metadata").degraded);
    }
    // The model-service goes too: calls fail, first as the outage they are, then refused by the breaker.
    models.kill();
    for i in 0..requests {
        let refused = client
            .predict_customer_risk(PredictCustomerRiskRequest {
                customer_id: format!("C{i:06}"),
                ..Default::default()
            })
            .await
            .expect_err("the model-service is gone");
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    }
    let (status, _) = gateway.terminate().await;
    assert!(status.success(), "gateway exited with {status}");

    let lines: Vec<String> = socket
        .receive_all()
        .iter()
        .flat_map(|d| d.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let fetches: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("api.predict.feature_fetch_ms:"))
        .collect();
    let samples: usize = fetches
        .iter()
        .map(|l| l.split('|').next().unwrap_or_default().matches(':').count())
        .sum();
    // The calls that failed and opened the breaker (three failed attempts, retries included) were
    // attempts and are timed; the rest, refused at once by the open breaker, were not calls at all.
    assert!(
        (1..=3).contains(&samples),
        "{samples} samples for {requests} requests: {fetches:?}"
    );
}
