//! Every service answers grpc.health.v1; the gateway offers server reflection for its public API (and only
//! what it serves), so grpcurl-style tools and other languages' clients work from the proto alone.

use system_tests::services::Stack;
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test]
async fn health_on_every_service_and_reflection_on_the_gateway() {
    let stack = Stack::start(None).await;
    for (service, name) in [
        (&stack.gateway, "inference.v1.InferenceService"),
        (&stack.features, "features.v1.FeatureService"),
        (&stack.models, "models.v1.ModelService"),
    ] {
        let mut health = HealthClient::new(service.channel());
        for asked in ["", name] {
            let status = health
                .check(HealthCheckRequest {
                    service: asked.into(),
                })
                .await
                .unwrap_or_else(|e| panic!("{} health {asked:?}: {e}", service.name))
                .into_inner()
                .status;
            assert_eq!(
                status,
                ServingStatus::Serving as i32,
                "{} {asked:?}",
                service.name
            );
        }
    }

    let mut reflection = ServerReflectionClient::new(stack.gateway.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection stream")
        .into_inner();
    let response = responses.next().await.expect("one response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response {response:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    // Exactly what the gateway serves: not the internal feature and model services, whose types the
    // public API shares, since their calls would fail here.
    assert_eq!(
        names,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "inference.v1.InferenceService"
        ],
    );

    let file = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "inference.v1.InferenceService".into(),
        )),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([file]))
        .await
        .expect("stream")
        .into_inner();
    let response = responses.next().await.expect("one response").expect("ok");
    assert!(
        matches!(response.message_response, Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
        "{response:?}"
    );
    stack.stop().await.expect("clean stop");
}
