//! A throwaway PKI for TLS tests (feature `test-certs`): a CA, a server certificate for `localhost`,
//! `127.0.0.1` and `::1`, and a client certificate, all signed by that CA and written as PEM files, plus
//! the [`ServerArgs`] and [`ClientTlsArgs`] that use them.
//!
//! ```ignore
//! let dir = tempfile::tempdir()?;
//! let pki = server_kit::test_certs::TestPki::generate(dir.path())?;
//! let server = server_kit::Server::new(&pki.server_args(true), Metrics::disabled())?; // mutual TLS
//! let endpoint = pki.client_args(true).configure(Endpoint::from_shared(format!("https://{addr}"))?)?;
//! ```
//!
//! Generated fresh for each test run, never committed, so no private key lives in the repository.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::{ClientTlsArgs, ServerArgs};

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
            .push(DnType::CommonName, format!("server-kit test CA {folder}"));
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

    /// Server settings speaking TLS with the server certificate; `mutual` also requires clients to
    /// present a certificate from this CA.
    pub fn server_args(&self, mutual: bool) -> ServerArgs {
        ServerArgs {
            tls_cert_file: Some(self.server_cert.clone()),
            tls_key_file: Some(self.server_key.clone()),
            tls_client_ca_file: mutual.then(|| self.ca_cert.clone()),
            ..ServerArgs::default()
        }
    }

    /// Client settings trusting this CA; `with_identity` also presents the client certificate.
    pub fn client_args(&self, with_identity: bool) -> ClientTlsArgs {
        ClientTlsArgs {
            downstream_tls_ca_file: Some(self.ca_cert.clone()),
            downstream_tls_cert_file: with_identity.then(|| self.client_cert.clone()),
            downstream_tls_key_file: with_identity.then(|| self.client_key.clone()),
            downstream_tls_domain: None,
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
