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
async fn the_sink_counts_an_exporters_spans_and_refuses_what_is_not_otlp() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let sink = loadgen::sink::Sink::default();
    tokio::spawn(loadgen::sink::serve(sink.clone(), listener));
    let mut client = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let attribute = KeyValue {
        key: "service.name".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue("gateway".into())),
        }),
        ..Default::default()
    };
    // Every field around the spans set, so that counting them skips each kind of field.
    let span = |id: u8| Span {
        trace_id: vec![id; 16],
        span_id: vec![id; 8],
        name: "pricing.v1.Pricing/QuotePrice".into(),
        kind: 2,
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        flags: 0x100,
        attributes: vec![attribute.clone()],
        ..Default::default()
    };
    let scope = |spans: Vec<Span>| ScopeSpans {
        scope: Some(InstrumentationScope {
            name: "telemetry".into(),
            version: "1".into(),
            ..Default::default()
        }),
        spans,
        schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
    };
    let resource = |scopes: Vec<ScopeSpans>| ResourceSpans {
        resource: Some(Resource {
            attributes: vec![attribute.clone()],
            ..Default::default()
        }),
        scope_spans: scopes,
        schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![
            resource(vec![scope(vec![span(1), span(2), span(3)]), scope(vec![span(4)])]),
            resource(vec![scope(Vec::new()), scope(vec![span(5)])]),
        ],
    };
    client.export(request).await.expect("accepted");
    assert_eq!(sink.spans(), 5);

    // Bytes that are not an OTLP request: refused as gRPC servers refuse what they cannot decode
    // (INTERNAL, as the agent's Go server does too), nothing counted.
    let mut raw = tonic::client::Grpc::new(
        tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("url")
            .connect()
            .await
            .expect("connect"),
    );
    raw.ready().await.expect("ready");
    let status = raw
        .unary(
            tonic::Request::new(vec![0x0a, 0x05, 0x12]),
            http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            ),
            VecCodec,
        )
        .await
        .expect_err("a field longer than its message");
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(status.message().contains("decode"), "{status:?}");
    assert_eq!(sink.spans(), 5);
}

/// Sends raw bytes; reads nothing back.
#[derive(Debug, Clone, Copy)]
struct VecCodec;

impl tonic::codec::Codec for VecCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        *self
    }

    fn decoder(&mut self) -> Self {
        *self
    }
}

impl tonic::codec::Encoder for VecCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for VecCodec {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, _src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        Ok(Some(()))
    }
}
