//! With `TLS_CERT_FILE`, `TLS_KEY_FILE` and `TLS_CLIENT_CA_FILE` the service speaks mutual TLS: a client
//! with a certificate from the CA scores rows, one without is refused at the handshake.

use crate::common;

use common::{request, row};
use proto::models::v1::model_service_client::ModelServiceClient;
use server_kit::test_certs::{TestPki, TlsArgs};
use tokio::net::TcpListener;
use tonic::transport::Endpoint;

#[tokio::test]
async fn mutual_tls_lets_in_only_clients_with_a_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path()).expect("test certificates");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let mut config = common::config(listener.local_addr().expect("address"));
    config.server = pki.server_args(true);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(model_service::run(config, listener, async {
        let _ = stopped.await;
    }));

    let endpoint = || Endpoint::from_shared(format!("https://localhost:{port}")).expect("endpoint");
    let with_cert = pki.client_args(true).configure(endpoint()).expect("client TLS");
    let mut client = ModelServiceClient::new(with_cert.connect_lazy());
    let response = client
        .predict(request("customer_risk", "", vec![row(&[])]))
        .await
        .expect("scored over mutual TLS");
    assert_eq!(response.into_inner().predictions.len(), 1);

    let without_cert = pki.client_args(false).configure(endpoint()).expect("client TLS");
    let mut refused = ModelServiceClient::new(without_cert.connect_lazy());
    refused
        .predict(request("customer_risk", "", vec![row(&[])]))
        .await
        .expect_err("no client certificate");

    let _ = stop.send(());
    task.await.expect("server task").expect("clean stop");
}
