//! The references a benchmark is read against: a chained bare service makes exactly the downstream calls
//! of its shape per QuotePrice, and the OTLP sink takes a real exporter's spans. And what the generator
//! sends: a batch mix sends the batch RPCs, one call per request counted.

use std::time::Duration;

use loadgen::bare::{Bare, Shape};
use loadgen::{Ids, LoadOptions, Mix, run_load};
use proto::inference::v1::QuotePriceRequest;
use proto::inference::v1::inference_service_client::InferenceServiceClient;
use tonic::transport::Endpoint;

async fn serve(service: Bare) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(service.serve(listener));
    format!("http://{addr}")
}

#[tokio::test]
async fn a_chain_makes_the_calls_of_its_shape() {
    for (shape, calls) in [(Shape::Two, 2), (Shape::Four, 4)] {
        let leaf = Bare::default();
        let leaf_url = serve(leaf.clone()).await;
        let channel = Endpoint::from_shared(leaf_url).expect("url").connect_lazy();
        let front = serve(Bare::chained(channel, shape)).await;
        let mut client = InferenceServiceClient::connect(front).await.expect("connect");
        for quotes in 1..=3 {
            client
                .quote_price(QuotePriceRequest::default())
                .await
                .expect("quote");
            assert_eq!(leaf.answered(), calls * quotes, "{shape:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_mix_sends_the_batch_rpcs() {
    for (mix, rpc) in [
        (Mix::BatchRisk, "BatchPredictCustomerRisk"),
        (Mix::BatchSurge, "BatchPredictDemandSurge"),
    ] {
        let bare = Bare::default();
        let url = serve(bare.clone()).await;
        let options = LoadOptions {
            concurrency: 2,
            duration: Duration::from_secs(10),
            max_requests: 20,
            mix,
            ids: Ids::default(),
        };
        let report = run_load(&url, options).await.expect("load");
        assert_eq!(report.rpcs.keys().copied().collect::<Vec<_>>(), [rpc]);
        assert_eq!(report.rpcs[rpc].good_us.len(), 20, "{}", report.render());
        assert_eq!(bare.answered(), 20);
    }
}

#[tokio::test]
async fn the_sink_takes_an_exporters_spans() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let sink = loadgen::sink::Sink::default();
    tokio::spawn(loadgen::sink::serve(sink.clone(), listener));
    let mut client = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let spans = (0..3).map(|_| Span::default()).collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    client.export(request).await.expect("accepted");
    assert_eq!(sink.spans(), 3);
}
