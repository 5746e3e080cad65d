//! A private PKI for TLS tests, made with rcgen: a CA, a server certificate for `127.0.0.1` and
//! `localhost`, and a client certificate, all signed by the CA.

use std::path::{Path, PathBuf};

use feature_store::RedisTls;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use testkit::redis::{RedisTlsOptions, TlsAuthClients};

pub struct TestPki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl TestPki {
    pub fn new() -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "feature-store test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA");

        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(names).expect("params");
            params
                .distinguished_name
                .push(DnType::CommonName, "feature-store test");
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &ca).expect("signed");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert_pem, server_key_pem) = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert_pem, client_key_pem) = leaf(
            vec!["feature-service".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        Self {
            ca_pem: ca.pem(),
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
        }
    }

    /// What a test redis-server serves (TLS only unless `plain_port`).
    pub fn server_options(&self, auth_clients: TlsAuthClients, plain_port: bool) -> RedisTlsOptions {
        RedisTlsOptions {
            cert_pem: self.server_cert_pem.clone(),
            key_pem: self.server_key_pem.clone(),
            ca_pem: self.ca_pem.clone(),
            auth_clients,
            plain_port,
        }
    }

    /// The client certificate and key written into `dir`, with `ca_file` to trust.
    pub fn client_tls(&self, dir: &Path, ca_file: Option<PathBuf>) -> RedisTls {
        let cert = dir.join("client.crt");
        let key = dir.join("client.key");
        std::fs::write(&cert, &self.client_cert_pem).expect("write client certificate");
        std::fs::write(&key, &self.client_key_pem).expect("write client key");
        RedisTls {
            ca_file,
            client_cert_file: Some(cert),
            client_key_file: Some(key),
        }
    }
}
