//! PEM files to tonic TLS settings, checked when read so that a bad file is reported naming itself.
//! tonic parses the same bytes again later, but its errors ("CertificateParseError") name no file.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Identity};

use crate::Error;

/// The bytes of a PEM file and where they came from. Its `Debug` names the file only: key material
/// must never reach a log line.
pub(crate) struct PemFile {
    setting: &'static str,
    path: PathBuf,
    bytes: Vec<u8>,
}

impl fmt::Debug for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemFile")
            .field("setting", &self.setting)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl PemFile {
    fn read(setting: &'static str, path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            setting,
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            setting,
            path: path.to_owned(),
            bytes,
        })
    }

    fn problem(&self, problem: impl Into<String>) -> Error {
        Error::Pem {
            setting: self.setting,
            path: self.path.clone(),
            problem: problem.into(),
        }
    }

    /// Reads one or more PEM certificates (a chain, or a bundle of CAs).
    pub(crate) fn certificates(setting: &'static str, path: &Path) -> Result<Self, Error> {
        let file = Self::read(setting, path)?;
        let count = CertificateDer::pem_slice_iter(&file.bytes)
            .try_fold(0_usize, |n, cert| cert.map(|_| n + 1))
            .map_err(|error| file.problem(format!("not a valid PEM file: {error}")))?;
        if count == 0 {
            return Err(file.problem("holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
        }
        Ok(file)
    }

    /// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub(crate) fn private_key(setting: &'static str, path: &Path) -> Result<Self, Error> {
        let file = Self::read(setting, path)?;
        match PrivateKeyDer::from_pem_slice(&file.bytes) {
            Ok(_) => Ok(file),
            Err(rustls_pki_types::pem::Error::NoItemsFound) => {
                Err(file
                    .problem("holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC PRIVATE KEY)"))
            }
            Err(error) => Err(file.problem(format!("not a valid PEM file: {error}"))),
        }
    }

    pub(crate) fn certificate(&self) -> Certificate {
        Certificate::from_pem(&self.bytes)
    }
}

/// A certificate chain and its private key, checked to be PEM.
pub(crate) fn identity(cert: &PemFile, key: &PemFile) -> Identity {
    Identity::from_pem(&cert.bytes, &key.bytes)
}
