//! The three services with mutual TLS between them: every hop (caller → gateway → feature-service and
//! model-service) is TLS and each server requires a client certificate from the deployment's CA. A
//! caller without one is refused at the handshake, at the gateway and at each internal service alike.

use proto::features::v1::feature_service_client::FeatureServiceClient;
use proto::inference::v1::PredictCustomerRiskRequest;
use proto::inference::v1::inference_service_client::InferenceServiceClient;
use server_kit::test_certs::{TestPki, TlsArgs};
use system_tests::processes::ProcessStack;
use testkit::features::online_request;

fn risk(id: &str) -> PredictCustomerRiskRequest {
    PredictCustomerRiskRequest {
        customer_id: id.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn only_callers_with_a_certificate_get_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = TestPki::generate(dir.path()).expect("test PKI");
    let stack = ProcessStack::start_mutual_tls(&[], &pki).await;

    // With a certificate: the whole path works over mutual TLS (the gateway presents its own to the
    // feature-service and the model-service).
    let answer = stack
        .client()
        .predict_customer_risk(risk("C000001"))
        .await
        .expect("a caller with a certificate is served")
        .into_inner();
    let meta = answer.metadata.expect("metadata");
    assert!(meta.unavailable_features.is_empty() && !meta.fallback, "{meta:?}");

    // Trusting the server but presenting no certificate: refused by the gateway...
    let anonymous = pki.client_args(false);
    let status = InferenceServiceClient::new(stack.gateway.channel_with(Some(&anonymous)))
        .predict_customer_risk(risk("C000001"))
        .await
        .expect_err("no client certificate");
    eprintln!("gateway, no certificate: {status:?}");
    assert_ne!(status.code(), tonic::Code::Ok);
    // ... and by an internal service reached directly.
    let status = FeatureServiceClient::new(stack.features.channel_with(Some(&anonymous)))
        .get_online_features(online_request(
            &["customer_profile:account_age_days"],
            &[("customer_id", &["C000001"])],
        ))
        .await
        .expect_err("no client certificate");
    eprintln!("feature-service, no certificate: {status:?}");

    // Plaintext is refused too.
    let status = InferenceServiceClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{}", stack.gateway.addr))
            .expect("url")
            .connect_lazy(),
    )
    .predict_customer_risk(risk("C000001"))
    .await
    .expect_err("plaintext");
    eprintln!("gateway, plaintext: {status:?}");

    // A certificate from another CA is refused as well.
    let other_dir = tempfile::tempdir().expect("temp dir");
    let other = TestPki::generate(other_dir.path()).expect("other PKI");
    let mut stranger = other.client_args(true);
    stranger.downstream_tls_ca_file = Some(pki.ca_cert.clone());
    let status = InferenceServiceClient::new(stack.gateway.channel_with(Some(&stranger)))
        .predict_customer_risk(risk("C000001"))
        .await
        .expect_err("certificate from another CA");
    eprintln!("gateway, certificate from another CA: {status:?}");

    stack.terminate().await;
}
