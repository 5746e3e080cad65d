//! A throwaway PKI for TLS tests: a CA, a server certificate for `localhost`, `127.0.0.1` and `::1`, and a
//! client certificate, all signed by that CA and written as PEM files. Generated fresh for each test,
//! never committed, so no private key lives in the repository.
//!
//! ```ignore
//! let dir = tempfile::tempdir()?;
//! let pki = testkit::certs::TestPki::generate(dir.path())?;
//! let redis = RedisServer::start_with(RedisOptions { tls: Some(pki.redis_tls(TlsAuthClients::Yes, false)), .. });
//! ```
//! Services' settings from it: `server_kit::test_certs::TlsArgs` (`pki.server_args(mutual)`,
//! `pki.client_args(with_identity)`).

use std::path::{Path, PathBuf};

use crate::redis::{RedisTlsOptions, TlsAuthClients};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Why the test certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TestPkiError {
    #[error("cannot generate a test certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The PEM files of one test PKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPki {
    /// The CA certificate: the server's `TLS_CLIENT_CA_FILE`, the client's `DOWNSTREAM_TLS_CA_FILE`.
    pub ca_cert: PathBuf,
    /// For `localhost`, `127.0.0.1` and `::1`.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestPki {
    /// Generates a new CA and its server and client certificates into `dir` (`ca.pem`, `server.pem`,
    /// `server.key`, `client.pem`, `client.key`). Two calls make two unrelated CAs.
    pub fn generate(dir: &Path) -> Result<Self, TestPkiError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Named after `dir`, so two test CAs differ by name as well as by key, like real unrelated CAs.
        let folder = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("test CA {folder}"));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let mut server_params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.use_authority_key_identifier_extension = true;
        let server_cert = server_params.signed_by(&server_key, &issuer)?;

        let client_key = KeyPair::generate()?;
        let mut client_params = CertificateParams::new(vec!["test-client".to_owned()])?;
        client_params
            .distinguished_name
            .push(DnType::CommonName, "test-client");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client_params.use_authority_key_identifier_extension = true;
        let client_cert = client_params.signed_by(&client_key, &issuer)?;

        Ok(Self {
            ca_cert: write(dir, "ca.pem", &ca_cert.pem())?,
            server_cert: write(dir, "server.pem", &server_cert.pem())?,
            server_key: write(dir, "server.key", &server_key.serialize_pem())?,
            client_cert: write(dir, "client.pem", &client_cert.pem())?,
            client_key: write(dir, "client.key", &client_key.serialize_pem())?,
        })
    }

    /// The PEM text of one of this PKI's files.
    pub fn pem(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// What a test redis-server serves with this PKI: the server certificate, and client certificates
    /// checked against this CA as `auth_clients` says; `plain_port` also opens a plain-text port.
    pub fn redis_tls(&self, auth_clients: TlsAuthClients, plain_port: bool) -> RedisTlsOptions {
        RedisTlsOptions {
            cert_pem: Self::pem(&self.server_cert),
            key_pem: Self::pem(&self.server_key),
            ca_pem: Self::pem(&self.ca_cert),
            auth_clients,
            plain_port,
        }
    }
}

fn write(dir: &Path, name: &str, pem: &str) -> Result<PathBuf, TestPkiError> {
    let path = dir.join(name);
    std::fs::write(&path, pem).map_err(|source| TestPkiError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
