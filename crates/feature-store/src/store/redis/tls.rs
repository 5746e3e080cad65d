//! TLS for `rediss://` URLs from the files of [`RedisTls`]: whom to trust and which client certificate to
//! present. A file that does not read or parse is an [`Error::InvalidTlsConfig`] naming it, found when the
//! connection is opened rather than at every failed handshake.

use std::path::Path;
use std::sync::Arc;

use fred::rustls::pki_types::pem::PemObject;
use fred::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use fred::rustls::{ClientConfig, RootCertStore};
use fred::types::config::{TlsConfig, TlsConnector};

use super::RedisTls;
use crate::Error;

/// The TLS settings for a URL, when files are given (`None`: fred's default for the URL, which trusts the
/// system's roots for `rediss://` and uses no TLS for `redis://`).
pub(super) fn tls_config(tls: &RedisTls, url_uses_tls: bool) -> Result<Option<TlsConfig>, Error> {
    if tls.is_empty() {
        return Ok(None);
    }
    let invalid = |reason: String| Error::InvalidTlsConfig { reason };
    if !url_uses_tls {
        return Err(invalid(
            "TLS files are given but the Redis URL does not use TLS (use rediss://, rediss-cluster://, ...)"
                .into(),
        ));
    }
    // Explicitly ring: the provider this workspace builds rustls with, whatever else enables.
    let provider = Arc::new(fred::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            for cert in read_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            // fred's own default: the system's roots, skipping any that do not parse.
            let native = fred::rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let builder = builder.with_root_certificates(roots);
    let config = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(|e| invalid(format!("client certificate {}: {e}", cert.display())))?,
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(invalid(
                "a client certificate needs its private key and a key its certificate".into(),
            ));
        }
    };
    Ok(Some(TlsConfig::from(TlsConnector::from(config))))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let invalid = |reason: String| Error::InvalidTlsConfig {
        reason: format!("{}: {reason}", path.display()),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| Error::InvalidTlsConfig {
        reason: format!("{}: {e}", path.display()),
    })
}
