//! The gateway keeps quotes in a Redis that speaks TLS with a private CA and verifies its clients, through
//! the same connection setup as the feature store: given the CA and a client certificate
//! (`QUOTE_REDIS_TLS_*`) QuotePrice and RecordOutcome work and the quote is in Redis; without the client
//! certificate the store never connects, and QuotePrice answers UNAVAILABLE at once, storing nothing.

use proto::inference::v1::inference_service_client::InferenceServiceClient;
use proto::inference::v1::{QuotePriceRequest, RecordOutcomeRequest};
use system_tests::services::{feature_service, gateway, model_service};
use testkit::certs::TestPki;
use testkit::redis::{RedisOptions, RedisServer, Reply, TlsAuthClients};
use tonic::Code;

fn quote() -> QuotePriceRequest {
    QuotePriceRequest {
        customer_id: "C000001".into(),
        zone_id: "Z001".into(),
        base_price: 20.0,
        currency: "USD".into(),
        ..Default::default()
    }
}

fn quote_keys(redis: &RedisServer) -> usize {
    match redis.command(&["KEYS", "quote:*"]).expect("KEYS") {
        Reply::Array(Some(keys)) => keys.len(),
        other => panic!("KEYS answered {other:?}"),
    }
}

#[tokio::test]
async fn quotes_are_kept_in_redis_over_mutual_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path()).expect("test certificates");
    // Debian's redis-server (what `cargo xtask setup` installs) is built with TLS. The plain port is
    // for this test's own look at the keys.
    let redis = RedisServer::start_with(RedisOptions {
        tls: Some(pki.redis_tls(TlsAuthClients::Yes, true)),
        ..Default::default()
    })
    .expect("redis-server with TLS");
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let ca = redis.tls_ca_file().expect("a TLS server has a CA");
    let (ca, cert, key) = (
        ca.to_string_lossy().into_owned(),
        pki.client_cert.to_string_lossy().into_owned(),
        pki.client_key.to_string_lossy().into_owned(),
    );
    let models = model_service(&[]).await;
    let features = feature_service(None, &[]).await;

    let trusted = gateway(
        &features,
        &models,
        &[
            "--quote-redis-url",
            &url,
            "--quote-redis-tls-ca-file",
            &ca,
            "--quote-redis-tls-cert-file",
            &cert,
            "--quote-redis-tls-key-file",
            &key,
        ],
    )
    .await;
    let mut client = InferenceServiceClient::new(trusted.channel());
    let quoted = client
        .quote_price(quote())
        .await
        .expect("quoted over mutual TLS")
        .into_inner();
    assert_eq!(quote_keys(&redis), 1, "the quote is in Redis");
    let recorded = client
        .record_outcome(RecordOutcomeRequest {
            quote_id: quoted.quote_id.clone(),
            booked: true,
            revenue: quoted.price,
            ..Default::default()
        })
        .await
        .expect("outcome recorded over mutual TLS")
        .into_inner();
    assert!(!recorded.duplicate);

    // The CA alone is not enough for a server that verifies clients: the handshake fails, the store
    // keeps retrying in the background, and quotes fail fast without storing anything.
    let untrusted = gateway(
        &features,
        &models,
        &["--quote-redis-url", &url, "--quote-redis-tls-ca-file", &ca],
    )
    .await;
    let mut client = InferenceServiceClient::new(untrusted.channel());
    let refused = client
        .quote_price(quote())
        .await
        .expect_err("no client certificate");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("not connected to Redis"),
        "{}",
        refused.message()
    );
    assert_eq!(quote_keys(&redis), 1, "nothing more was stored");

    untrusted.stop().await.expect("clean stop");
    trusted.stop().await.expect("clean stop");
    features.stop().await.expect("clean stop");
    models.stop().await.expect("clean stop");
}
