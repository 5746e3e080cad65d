//! TLS and mutual TLS with certificates made at test time: a client trusting the CA talks to a TLS
//! server; with `TLS_CLIENT_CA_FILE` set only clients presenting a certificate from that CA get in;
//! a client trusting another CA does not.

use crate::common;

use std::time::Duration;

use common::{TestServer, health_check, quick_call};
use server_kit::test_certs::{TestPki, TlsArgs};
use server_kit::{ClientTlsArgs, Server, ServerArgs};
use telemetry::Metrics;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;

/// A channel to `server` at `https://localhost:<port>` with `tls`, connected on first use.
fn tls_channel(server: &TestServer, tls: &ClientTlsArgs) -> Channel {
    let endpoint = Endpoint::from_shared(format!("https://localhost:{}", server.addr.port()))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    tls.configure(endpoint)
        .expect("client TLS settings")
        .connect_lazy()
}

/// The call's failure and its source chain, printed so the test log shows what a refused client sees.
async fn refused(channel: &Channel, who: &str) -> (Status, String) {
    let status = quick_call(channel).await.expect_err(who);
    let mut chain = String::new();
    let mut source = std::error::Error::source(&status);
    while let Some(cause) = source {
        chain.push_str(&format!(" / {cause}"));
        source = cause.source();
    }
    println!("{who}: {:?} {:?}{chain}", status.code(), status.message());
    (status, chain)
}

#[tokio::test]
async fn a_client_trusting_the_ca_talks_to_a_tls_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path()).expect("test certificates");
    let mut server = TestServer::start(&pki.server_args(false), Metrics::disabled()).await;
    assert_eq!(server.server.security(), "TLS");

    let channel = tls_channel(&server, &pki.client_args(false));
    quick_call(&channel).await.expect("a call over TLS");
    assert_eq!(
        health_check(&channel).await.expect("health over TLS"),
        ServingStatus::Serving
    );
    // The IP address is in the certificate too.
    let by_ip = Endpoint::from_shared(format!("https://{}", server.addr)).expect("endpoint");
    let by_ip = pki
        .client_args(false)
        .configure(by_ip)
        .expect("TLS")
        .connect_lazy();
    quick_call(&by_ip).await.expect("a call over TLS by IP address");

    // Plaintext is not spoken.
    let plain = Endpoint::from_shared(format!("http://{}", server.addr))
        .expect("endpoint")
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    refused(&plain, "plaintext client to a TLS server").await;

    server.shut_down();
    server.task.await.expect("server task").expect("clean stop");
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_a_certificate_from_it_get_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path()).expect("test certificates");
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = TestPki::generate(other_dir.path()).expect("another CA");
    let mut server = TestServer::start(&pki.server_args(true), Metrics::disabled()).await;
    assert_eq!(server.server.security(), "mutual TLS");

    let with_cert = tls_channel(&server, &pki.client_args(true));
    quick_call(&with_cert).await.expect("a client with a certificate");

    let without_cert = tls_channel(&server, &pki.client_args(false));
    // TLS 1.3: the client's side of the handshake completes before the server checks its certificate,
    // so the refusal arrives as the server's alert on the first read: UNKNOWN "transport error".
    let (status, chain) = refused(&without_cert, "client without a certificate").await;
    assert_eq!(status.code(), tonic::Code::Unknown, "{status:?}");
    assert!(chain.contains("CertificateRequired"), "{chain}");
    // Health checks too: the refusal is at the handshake, before any request.
    assert!(health_check(&without_cert).await.is_err());

    // A certificate from another CA: trusted by nobody here.
    let foreign = ClientTlsArgs {
        downstream_tls_cert_file: Some(other.client_cert.clone()),
        downstream_tls_key_file: Some(other.client_key.clone()),
        ..pki.client_args(false)
    };
    let (status, chain) = refused(
        &tls_channel(&server, &foreign),
        "client certificate from another CA",
    )
    .await;
    assert_eq!(status.code(), tonic::Code::Unknown, "{status:?}");
    assert!(chain.contains("alert"), "{chain}");

    // The refusals did not disturb the server.
    quick_call(&with_cert).await.expect("still serving");
    server.shut_down();
    server.task.await.expect("server task").expect("clean stop");
}

#[tokio::test]
async fn a_client_trusting_another_ca_refuses_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path()).expect("test certificates");
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = TestPki::generate(other_dir.path()).expect("another CA");
    let mut server = TestServer::start(&pki.server_args(false), Metrics::disabled()).await;

    // The client checks the server's certificate during its handshake: UNAVAILABLE, naming why.
    let (status, _) = refused(
        &tls_channel(&server, &other.client_args(false)),
        "client trusting another CA",
    )
    .await;
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("invalid peer certificate"),
        "{status:?}"
    );

    // An http:// URL with TLS configured would silently skip TLS: refused up front.
    let plain = Endpoint::from_shared(format!("http://{}", server.addr)).expect("endpoint");
    let error = pki
        .client_args(false)
        .configure(plain)
        .expect_err("http:// with TLS on");
    assert!(error.to_string().contains("https://"), "{error}");

    server.shut_down();
    server.task.await.expect("server task").expect("clean stop");
}

#[tokio::test]
async fn mismatched_or_misplaced_tls_files_stop_start_up_naming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path()).expect("test certificates");
    // Certificate and key swapped.
    let swapped = ServerArgs {
        tls_cert_file: Some(pki.server_key.clone()),
        tls_key_file: Some(pki.server_cert.clone()),
        ..ServerArgs::default()
    };
    let error = Server::new(&swapped, Metrics::disabled())
        .expect_err("swapped files")
        .to_string();
    assert!(
        error.contains("TLS_CERT_FILE") && error.contains("server.key"),
        "{error}"
    );
    // A key that is not the certificate's.
    let mismatched = ServerArgs {
        tls_key_file: Some(pki.client_key.clone()),
        ..pki.server_args(false)
    };
    let error = Server::new(&mismatched, Metrics::disabled())
        .expect_err("key of another certificate")
        .to_string();
    assert!(
        error.contains("server.pem") && error.contains("client.key"),
        "{error}"
    );
    // A client CA file that holds a key instead.
    let bad_ca = ServerArgs {
        tls_client_ca_file: Some(pki.client_key.clone()),
        ..pki.server_args(true)
    };
    let error = Server::new(&bad_ca, Metrics::disabled())
        .expect_err("no CA")
        .to_string();
    assert!(
        error.contains("TLS_CLIENT_CA_FILE") && error.contains("client.key"),
        "{error}"
    );
}

#[test]
fn debug_output_never_holds_key_material() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path()).expect("test certificates");
    let key = std::fs::read_to_string(&pki.server_key).expect("key");
    let body: String = key.lines().filter(|line| !line.starts_with("-----")).collect();
    let server = Server::new(&pki.server_args(true), Metrics::disabled()).expect("server");
    for debug in [
        format!("{server:?}"),
        format!("{:?}", pki.server_args(true)),
        format!("{:?}", pki.client_args(true)),
    ] {
        assert!(!debug.contains(&body[..32]), "{debug}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    }
}
