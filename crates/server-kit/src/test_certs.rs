//! Server and client TLS settings from the test kit's throwaway PKI (feature `test-certs`):
//!
//! ```ignore
//! let dir = tempfile::tempdir()?;
//! let pki = TestPki::generate(dir.path())?;
//! let server = server_kit::Server::new(&pki.server_args(true), Metrics::disabled())?; // mutual TLS
//! let endpoint = pki.client_args(true).configure(Endpoint::from_shared(format!("https://{addr}"))?)?;
//! ```

pub use testkit::certs::{TestPki, TestPkiError};

use crate::{ClientTlsArgs, ServerArgs};

/// This crate's settings for a [`TestPki`].
pub trait TlsArgs {
    /// Server settings speaking TLS with the server certificate; `mutual` also requires clients to
    /// present a certificate from this CA.
    fn server_args(&self, mutual: bool) -> ServerArgs;
    /// Client settings trusting this CA; `with_identity` also presents the client certificate.
    fn client_args(&self, with_identity: bool) -> ClientTlsArgs;
}

impl TlsArgs for TestPki {
    fn server_args(&self, mutual: bool) -> ServerArgs {
        ServerArgs {
            tls_cert_file: Some(self.server_cert.clone()),
            tls_key_file: Some(self.server_key.clone()),
            tls_client_ca_file: mutual.then(|| self.ca_cert.clone()),
            ..ServerArgs::default()
        }
    }

    fn client_args(&self, with_identity: bool) -> ClientTlsArgs {
        ClientTlsArgs {
            downstream_tls_ca_file: Some(self.ca_cert.clone()),
            downstream_tls_cert_file: with_identity.then(|| self.client_cert.clone()),
            downstream_tls_key_file: with_identity.then(|| self.client_key.clone()),
            downstream_tls_domain: None,
        }
    }
}
