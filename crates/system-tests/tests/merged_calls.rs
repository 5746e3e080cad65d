//! Concurrent requests' downstream calls merged into one, through the three services as processes: many
//! quotes and risk predictions sent at once are answered exactly as each was answered alone, and in
//! Datadog's APM test agent each merged request's trace has a `downstream.merged_call` span that links
//! to the request whose trace carries the call, the call's client span under that one's.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use proto::inference::v1::inference_service_client::InferenceServiceClient;
use proto::inference::v1::{PredictCustomerRiskRequest, QuotePriceRequest, QuotePriceResponse};
use system_tests::processes::ProcessStack;
use testkit::agent::TestAgent;
use testkit::otlp::{Span, spans};
use tonic::transport::Channel;

/// Requests sent at once in each round, and rounds.
const AT_ONCE: usize = 48;
const ROUNDS: usize = 4;

/// What a quote answers, less its own ids and times: (price, risk score, risk multiplier, surge factor,
/// risk degraded, surge degraded).
type Priced = (u64, u64, u64, u64, bool, bool);

fn priced(quote: &QuotePriceResponse) -> Priced {
    let risk = quote.risk.as_ref().expect("risk");
    let surge = quote.surge.as_ref().expect("surge");
    let degraded =
        |m: &Option<proto::inference::v1::PredictionMetadata>| m.as_ref().expect("metadata").degraded;
    (
        quote.price.to_bits(),
        risk.risk_score.to_bits(),
        risk.risk_multiplier.to_bits(),
        surge.surge_factor.to_bits(),
        degraded(&risk.metadata),
        degraded(&surge.metadata),
    )
}

fn pair(i: usize) -> (String, String) {
    (format!("C{:06}", 100 + i), format!("Z{:04}", i % 150))
}

async fn quote(mut client: InferenceServiceClient<Channel>, i: usize) -> Priced {
    let (customer_id, zone_id) = pair(i);
    let answer = client
        .quote_price(QuotePriceRequest {
            customer_id,
            zone_id,
            base_price: 20.0 + i as f64,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("quote {i}: {status:?}"));
    priced(answer.get_ref())
}

async fn risk(mut client: InferenceServiceClient<Channel>, i: usize) -> u64 {
    let answer = client
        .predict_customer_risk(PredictCustomerRiskRequest {
            customer_id: pair(i).0,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("risk {i}: {status:?}"));
    answer.get_ref().risk_score.to_bits()
}

#[tokio::test]
async fn requests_sent_at_once_are_answered_as_alone_and_their_traces_link_to_the_merged_call() {
    let agent = TestAgent::start();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", agent.otlp_endpoint()),
        ("DD_ENV", "e2e".to_owned()),
    ];
    // One call in flight per RPC, so that what arrives meanwhile waits and is merged; the CRAI cache off,
    // so that every risk is scored.
    let gateway_env = [
        ("MERGE_CALLS_IN_FLIGHT", "1".to_owned()),
        ("CRAI_CACHE_TTL_MS", "0".to_owned()),
        ("ADAPTIVE_CONCURRENCY", "false".to_owned()),
    ];
    let stack = ProcessStack::start_each(&env, &[], &[], &gateway_env).await;
    let client = stack.client();

    // One at a time: nothing is in flight when a request arrives, so each goes alone.
    let mut alone = Vec::with_capacity(AT_ONCE);
    let mut alone_risk = Vec::with_capacity(AT_ONCE);
    for i in 0..AT_ONCE {
        alone.push(quote(client.clone(), i).await);
        alone_risk.push(risk(client.clone(), i).await);
    }
    for round in 0..ROUNDS {
        // Every request is on its way before any answer is read.
        let quotes: Vec<_> = (0..AT_ONCE)
            .map(|i| tokio::spawn(quote(client.clone(), i)))
            .collect();
        let risks: Vec<_> = (0..AT_ONCE)
            .map(|i| tokio::spawn(risk(client.clone(), i)))
            .collect();
        let mut answered = Vec::with_capacity(AT_ONCE);
        for task in quotes {
            answered.push(task.await.expect("task"));
        }
        let quotes = answered;
        let mut answered = Vec::with_capacity(AT_ONCE);
        for task in risks {
            answered.push(task.await.expect("task"));
        }
        let risks = answered;
        assert_eq!(quotes, alone, "round {round}: quotes answered as when sent alone");
        assert_eq!(
            risks, alone_risk,
            "round {round}: risks answered as when sent alone"
        );
    }
    stack.terminate().await;

    // The spans of every request, once the gateway's export is in.
    let started = Instant::now();
    let all: Vec<Span> = loop {
        let all = spans(&agent.traces());
        let merged = all.iter().filter(|s| s.name == "downstream.merged_call").count();
        if merged > 0 || started.elapsed() > Duration::from_secs(10) {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let merged: Vec<&Span> = all
        .iter()
        .filter(|s| s.name == "downstream.merged_call")
        .collect();
    assert!(
        merged.len() >= 2 * AT_ONCE,
        "most of {} requests sent at once were merged: {} merged-call spans",
        2 * AT_ONCE * ROUNDS,
        merged.len()
    );
    let by_id: HashMap<(u128, u64), &Span> = all.iter().map(|s| ((s.trace_id, s.span_id), s)).collect();
    let children: HashSet<(u128, u64)> = all.iter().map(|s| (s.trace_id, s.parent_span_id)).collect();
    // How many spans link to each span.
    let mut linked_from: HashMap<(u128, u64), usize> = HashMap::new();
    for span in &all {
        for link in &span.links {
            *linked_from.entry(*link).or_default() += 1;
        }
    }
    let mut carriers = 0;
    for span in &merged {
        assert_eq!(span.service, "gateway");
        let dependency = span.attribute("dependency").expect("dependency");
        assert!(
            ["feature-service", "model-service"].contains(&dependency),
            "{dependency}"
        );
        let requests: usize = span
            .attribute("merge.requests")
            .expect("merge.requests")
            .parse()
            .expect("a count");
        assert!(requests >= 2, "a merged call carried {requests} requests");
        // Its parent is the request's own span, in the request's own trace.
        let parent = by_id
            .get(&(span.trace_id, span.parent_span_id))
            .expect("the request's span");
        assert_eq!(parent.service, "gateway");
        if children.contains(&(span.trace_id, span.span_id)) {
            // The carrier: the call is its child, and every other request's span links to it.
            carriers += 1;
            assert!(span.links.is_empty(), "{span:?}");
            assert_eq!(
                linked_from.get(&(span.trace_id, span.span_id)).copied(),
                Some(requests - 1),
                "{span:?}"
            );
            let call = all
                .iter()
                .find(|s| s.trace_id == span.trace_id && s.parent_span_id == span.span_id)
                .expect("the call");
            assert_eq!(call.kind, "SPAN_KIND_CLIENT", "{call:?}");
            assert_eq!(call.attribute("peer.service"), Some(dependency));
        } else {
            // Another request: one link, to the carrier, in another trace.
            assert_eq!(span.links.len(), 1, "{span:?}");
            let carrier = by_id.get(&span.links[0]).expect("the linked span was exported");
            assert_eq!(carrier.name, "downstream.merged_call");
            assert_ne!(carrier.trace_id, span.trace_id);
            assert!(
                children.contains(&span.links[0]),
                "the linked span carries the call"
            );
        }
    }
    assert!(carriers > 0, "no merged call carried in a trace");
}
