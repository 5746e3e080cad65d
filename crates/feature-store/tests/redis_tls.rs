//! Redis over TLS (`rediss://`) with a private CA: trusted through `RedisTls::ca_file`, features are
//! materialized and read; a server certificate nobody trusts never connects (UNAVAILABLE values, no
//! error); Redis's mutual TLS takes a client certificate; TLS files that cannot be used fail opening.
//!
//! They need a redis-server built with TLS, as Debian's and Ubuntu's `redis-server` packages are (the
//! one `cargo xtask setup` installs). Without one they fail, saying what to install: a skipped test
//! would pass without proving anything.

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use feature_store::{Error, MaterializeOptions, OnlineStore, RedisConfig, RedisTls, StoreConfig};
use proto::features::v1::{FieldStatus, GetOnlineFeaturesRequest};
use testkit::certs::TestPki;
use testkit::redis::{RedisOptions, RedisServer, TlsAuthClients};

/// A fresh CA with server and client certificates, in a directory that lives as long as it.
fn pki() -> (tempfile::TempDir, TestPki) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path()).expect("test certificates");
    (dir, pki)
}

/// Client settings presenting the PKI's client certificate, trusting `ca_file`.
fn client_tls(pki: &TestPki, ca_file: Option<PathBuf>) -> RedisTls {
    RedisTls {
        ca_file,
        client_cert_file: Some(pki.client_cert.clone()),
        client_key_file: Some(pki.client_key.clone()),
    }
}

fn req() -> GetOnlineFeaturesRequest {
    request(&["zone_demand:available_drivers"], &[("zone_id", &["z-1"])])
}

/// A TLS-only redis-server; panics, saying what to install, when redis-server cannot serve TLS.
fn tls_server(pki: &TestPki, auth_clients: TlsAuthClients, password: Option<&str>) -> RedisServer {
    let options = RedisOptions {
        password: password.map(str::to_owned),
        tls: Some(pki.redis_tls(auth_clients, false)),
        ..Default::default()
    };
    RedisServer::start_with(options).unwrap_or_else(|error| {
        panic!(
            "redis-server could not serve TLS: {error}\n\
             These tests need a redis-server built with TLS first on PATH: Debian's or Ubuntu's \
             `redis-server` package (`cargo xtask setup` installs it when redis-server is missing, or \
             `apt-get install redis-server`), or a source build made with `make BUILD_TLS=yes`."
        )
    })
}

fn config(url: &str, tls: RedisTls) -> RedisConfig {
    let mut config = redis_config(url);
    config.tls = tls;
    config.connect_timeout = Duration::from_secs(2);
    config
}

fn trusting(server: &RedisServer) -> RedisTls {
    RedisTls {
        ca_file: server.tls_ca_file(),
        ..RedisTls::default()
    }
}

async fn materialize(config: &RedisConfig) -> Result<feature_store::MaterializeReport, Error> {
    let options = MaterializeOptions {
        rebase_timestamps: true,
        ..Default::default()
    };
    feature_store::materialize(config, &registry(), &tiny_csvs(), &options).await
}

async fn store(config: RedisConfig) -> OnlineStore {
    let mut store_config = StoreConfig::new(registry());
    store_config.redis = Some(config);
    store_config.cache = no_cache();
    OnlineStore::open(store_config).await.expect("store opens")
}

/// The store's first `Redis connection failed` line, once it is written.
async fn first_connection_failure(logs: &common::logs::Logs) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = logs.with_message("Redis connection failed").into_iter().next() {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no connection attempt failed within 10 s:\n{}",
            logs.text()
        );
        // Lets the store's tasks run (the runtime has this one thread).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn features_are_written_and_read_over_tls_with_the_ca_trusted() {
    let (_pki_dir, pki) = pki();
    let server = tls_server(&pki, TlsAuthClients::No, Some("tls-pw"));
    let url = server.url();
    assert!(url.starts_with("rediss://:tls-pw@127.0.0.1:"), "{url}");
    let config = config(&url, trusting(&server));
    let report = materialize(&config).await.expect("materialize over TLS");
    assert!(report.rows > 0);

    let store = store(config).await;
    tokio::time::timeout(Duration::from_secs(10), store.wait_connected())
        .await
        .expect("connected over TLS");
    let response = store.get_online_features(req(), None).await.expect("read");
    assert_eq!(cell(&response, 0, 0), (int64(20), FieldStatus::Present));
}

#[tokio::test]
async fn a_certificate_nobody_trusts_never_connects() {
    let (_pki_dir, pki) = pki();
    let (logs, _guard) = common::logs::capture();
    let server = tls_server(&pki, TlsAuthClients::No, None);
    // The system's roots do not know the test CA.
    let store = store(config(&server.url(), RedisTls::default())).await;
    // The store tried, and the certificate is why it failed: its log line says so.
    let refused = first_connection_failure(&logs).await;
    let reason = refused["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(reason.contains("certificate"), "{refused}");
    assert!(!store.is_connected(), "connected to an untrusted server");
    let response = store.get_online_features(req(), None).await.expect("answered");
    assert_eq!(cell(&response, 0, 0).1, FieldStatus::Unavailable);

    let error = materialize(&config(&server.url(), RedisTls::default()))
        .await
        .expect_err("untrusted certificate");
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
}

#[tokio::test]
async fn mutual_tls_takes_a_client_certificate() {
    let (_pki_dir, pki) = pki();
    let server = tls_server(&pki, TlsAuthClients::Yes, None);
    let with_client_cert = config(&server.url(), client_tls(&pki, server.tls_ca_file()));
    materialize(&with_client_cert)
        .await
        .expect("materialize with a client certificate");
    let store = store(with_client_cert).await;
    tokio::time::timeout(Duration::from_secs(10), store.wait_connected())
        .await
        .expect("connected with a client certificate");
    let response = store.get_online_features(req(), None).await.expect("read");
    assert_eq!(cell(&response, 0, 0).1, FieldStatus::Present);

    // Without one, the server hangs up during the handshake.
    let error = materialize(&config(&server.url(), trusting(&server)))
        .await
        .expect_err("no client certificate");
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
}

#[tokio::test]
async fn tls_files_that_cannot_be_used_fail_opening() {
    let (_pki_dir, pki) = pki();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = pki.ca_cert.clone();
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let client = client_tls(&pki, Some(ca.clone()));

    let cases: Vec<(&str, RedisTls)> = vec![
        // TLS files for a URL without TLS: the URL is the mistake, and silence would be plain text.
        (
            "redis://127.0.0.1:6379",
            RedisTls {
                ca_file: Some(ca.clone()),
                ..RedisTls::default()
            },
        ),
        (
            "rediss://127.0.0.1:6379",
            RedisTls {
                ca_file: Some(PathBuf::from("/nonexistent/ca.crt")),
                ..RedisTls::default()
            },
        ),
        (
            "rediss://127.0.0.1:6379",
            RedisTls {
                ca_file: Some(garbage),
                ..RedisTls::default()
            },
        ),
        (
            "rediss://127.0.0.1:6379",
            RedisTls {
                client_key_file: None,
                ..client.clone()
            },
        ),
        (
            "rediss://127.0.0.1:6379",
            RedisTls {
                client_key_file: client.client_cert_file.clone(),
                ..client
            },
        ),
    ];
    for (url, tls) in cases {
        let mut store_config = StoreConfig::new(registry());
        store_config.redis = Some(config(url, tls.clone()));
        let error = OnlineStore::open(store_config)
            .await
            .err()
            .unwrap_or_else(|| panic!("{url} with {tls:?} opened"));
        assert!(matches!(error, Error::InvalidTlsConfig { .. }), "{error:?}");
    }
}
