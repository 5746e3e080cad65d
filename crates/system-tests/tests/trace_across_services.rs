//! One QuotePrice, sent by a caller traced by another Datadog tracer (Datadog headers only), makes one
//! trace in Datadog's APM test agent: the gateway's server span under the caller's span (with the time
//! of the quote's write), its client spans, the feature-service's server span with its Redis span, the
//! model-service's server and inference spans, each correctly parented and tagged with its service, env
//! and version. The quote's RecordOutcome has the Redis span of its script.

use std::time::{Duration, Instant};

use proto::inference::v1::{QuotePriceRequest, RecordOutcomeRequest};
use system_tests::materialize_snapshot;
use system_tests::processes::ProcessStack;
use testkit::agent::TestAgent;
use testkit::otlp::{Span, spans};
use testkit::redis::RedisServer;

/// The caller's ids, as a Datadog tracer in another service would send them.
const CALLER_TRACE_ID: u64 = 7_214_662_510_349_231_901;
const CALLER_SPAN_ID: u64 = 3_344_556_677_889_900_112;

fn one<'a>(spans: &'a [Span], what: &str, pred: impl Fn(&Span) -> bool) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| pred(s)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {what}, found {}: {spans:#?}",
        found.len()
    );
    found[0]
}

#[tokio::test]
async fn quote_price_is_one_trace_across_the_three_services() {
    let agent = TestAgent::start();
    let redis = RedisServer::start().expect("redis-server");
    materialize_snapshot(&redis.url()).await;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", agent.otlp_endpoint()),
        ("DD_ENV", "e2e".to_owned()),
        ("DD_VERSION", "9.9.9".to_owned()),
        ("REDIS_URL", redis.url()),
        ("QUOTE_REDIS_URL", redis.url()),
    ];
    let stack = ProcessStack::start(&env).await;

    let mut request = tonic::Request::new(QuotePriceRequest {
        customer_id: "C000010".into(),
        zone_id: "Z0010".into(),
        base_price: 30.0,
        ..Default::default()
    });
    let headers = request.metadata_mut();
    headers.insert(
        "x-datadog-trace-id",
        CALLER_TRACE_ID.to_string().parse().expect("ascii"),
    );
    headers.insert(
        "x-datadog-parent-id",
        CALLER_SPAN_ID.to_string().parse().expect("ascii"),
    );
    headers.insert("x-datadog-sampling-priority", "1".parse().expect("ascii"));
    let quote = stack
        .client()
        .quote_price(request)
        .await
        .expect("quote")
        .into_inner();
    // Its outcome, in a trace of its own.
    stack
        .client()
        .record_outcome(RecordOutcomeRequest {
            quote_id: quote.quote_id,
            booked: true,
            revenue: quote.price,
            ..Default::default()
        })
        .await
        .expect("outcome");
    // Exiting flushes every process's span exporter.
    stack.terminate().await;

    let wanted = ["gateway", "feature-service", "model-service"];
    let started = Instant::now();
    let (trace, others): (Vec<Span>, Vec<Span>) = loop {
        let (trace, others): (Vec<Span>, Vec<Span>) = spans(&agent.traces())
            .into_iter()
            .partition(|s| s.trace_id as u64 == CALLER_TRACE_ID);
        // The other traces hold the gateway's start (its model metadata fetches) as well: wait for the
        // outcome's server span and its script's span themselves.
        let outcome_in = others.iter().any(|s| s.name.ends_with("/RecordOutcome"))
            && others.iter().any(|s| s.attribute("db.system") == Some("redis"));
        if (wanted.iter().all(|w| trace.iter().any(|s| s.service == *w)) && outcome_in)
            || started.elapsed() > Duration::from_secs(10)
        {
            break (trace, others);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for span in &trace {
        assert!(
            wanted.contains(&span.service.as_str()),
            "unexpected service {span:?}"
        );
        assert_eq!(span.env, "e2e", "{span:?}");
        assert_eq!(span.version, "9.9.9", "{span:?}");
    }

    let server = |service: &'static str, method: &'static str| {
        move |s: &Span| s.service == service && s.kind.ends_with("SERVER") && s.name.ends_with(method)
    };
    let client = |method: &'static str| {
        move |s: &Span| s.service == "gateway" && s.kind.ends_with("CLIENT") && s.name.ends_with(method)
    };
    let root = one(
        &trace,
        "gateway QuotePrice server span",
        server("gateway", "/QuotePrice"),
    );
    assert_eq!(
        root.parent_span_id, CALLER_SPAN_ID,
        "the gateway joins the caller's span"
    );
    assert_eq!(root.attribute("rpc.system"), Some("grpc"));
    assert_eq!(
        root.attribute("rpc.service"),
        Some("inference.v1.InferenceService")
    );
    assert_eq!(root.attribute("rpc.method"), Some("QuotePrice"));

    // The quote's write to the quote store, timed on the request's span.
    let write_ms: f64 = root
        .attribute("quote_store.write_ms")
        .expect("quote_store.write_ms")
        .parse()
        .expect("milliseconds");
    assert!(write_ms > 0.0, "{root:?}");

    // The outcome's script on the quote store: a Redis span under the RecordOutcome span.
    let outcome = one(
        &others,
        "gateway RecordOutcome server span",
        server("gateway", "/RecordOutcome"),
    );
    let script = one(&others, "the outcome's script", |s| {
        s.service == "gateway" && s.attribute("db.system") == Some("redis")
    });
    assert_eq!(script.parent_span_id, outcome.span_id, "{script:?}");
    assert_eq!(
        (script.trace_id, script.name.as_str()),
        (outcome.trace_id, "EVAL")
    );
    assert_eq!(script.kind, "SPAN_KIND_CLIENT");
    assert_eq!(script.attribute("peer.service"), Some("redis"));
    assert_eq!(
        script.attribute("db.statement"),
        Some("EVAL record_outcome"),
        "no key or value: {script:?}"
    );

    // Two hops: one feature fetch for the customer and the zone, one model-service call for both models.
    assert!(
        !trace.iter().any(client("/Predict")),
        "no per-model Predict call: {trace:#?}"
    );
    for (method, callee) in [
        ("/GetOnlineFeatures", "feature-service"),
        ("/PredictMany", "model-service"),
    ] {
        let call = one(&trace, method, client(method));
        assert_eq!(
            call.parent_span_id, root.span_id,
            "{method} client span under the request"
        );
        let callee_span = one(&trace, "callee server span", |s| {
            s.service == callee && s.kind.ends_with("SERVER") && s.parent_span_id == call.span_id
        });
        assert!(callee_span.name.ends_with(method), "{callee_span:?}");
        let children: Vec<&Span> = trace
            .iter()
            .filter(|s| s.parent_span_id == callee_span.span_id)
            .collect();
        if callee == "feature-service" {
            assert!(
                children.iter().any(|s| s.attribute("db.system") == Some("redis")),
                "a Redis span under the feature-service span: {children:#?}"
            );
        } else {
            let mut models: Vec<&str> = children
                .iter()
                .filter(|s| s.name == "model.inference")
                .map(|s| {
                    assert_eq!(s.attribute("model_version"), Some("1"), "{s:?}");
                    assert_eq!(s.attribute("variant"), Some("control"), "{s:?}");
                    s.attribute("model").unwrap_or_default()
                })
                .collect();
            models.sort_unstable();
            assert_eq!(
                models,
                ["customer_risk", "demand_surge"],
                "one inference span per model under PredictMany: {children:#?}"
            );
        }
    }
}
