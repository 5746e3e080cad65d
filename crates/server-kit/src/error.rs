//! What can go wrong setting up or running a server: each TLS error names the setting and the file.

use std::path::PathBuf;

/// A bad server or client setting, or the gRPC server failing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {setting} {}: {source}", path.display())]
    Read {
        setting: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not PEM, or holds no section of the kind the setting needs.
    #[error("{setting} {}: {problem}", path.display())]
    Pem {
        setting: &'static str,
        path: PathBuf,
        problem: String,
    },
    /// A setting that only works together with another.
    #[error("{setting} is set but {missing} is not: {why}")]
    Incomplete {
        setting: &'static str,
        missing: &'static str,
        why: &'static str,
    },
    /// The files parse, but rustls refuses them together (e.g. the key is not the certificate's).
    #[error("TLS with {} and {} rejected: {reason}", cert.display(), key.display())]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    /// Downstream TLS is configured but a downstream URL would not use it, or the reverse.
    #[error("{url}: {problem}")]
    Scheme { url: String, problem: &'static str },
    #[error("cannot listen on {setting} {addr}: {source}")]
    Bind {
        setting: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server: {}", chain(.0))]
    Transport(#[from] tonic::transport::Error),
}

/// An error and its sources on one line: tonic's transport errors say little more than "transport
/// error" at the top.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
