//! The settings every server shares ([`ServerArgs`]) and those of a service calling others over TLS
//! ([`ClientTlsArgs`]). Both are `clap::Args`: a service flattens them into its `Config`, so each flag
//! falls back to the environment variable named in `--help`, like the service's own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use telemetry::Bounds;
use tonic::transport::{ClientTlsConfig, Endpoint, ServerTlsConfig};

use crate::Error;
use crate::tls::{self, PemFile};

/// Default `MAX_CONCURRENT_REQUESTS`.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: u32 = 512;
/// Default `MAX_REQUEST_BYTES`: tonic's own default, made explicit and adjustable.
pub const DEFAULT_MAX_REQUEST_BYTES: u32 = 4 * 1024 * 1024;
/// Default `MAX_RESPONSE_BYTES`: the largest answer a caller with gRPC's default 4 MiB receive limit
/// can decode.
pub const DEFAULT_MAX_RESPONSE_BYTES: u32 = 4 * 1024 * 1024;
/// Default `SHUTDOWN_GRACE_MS`: within Kubernetes' default 30 s termination grace period, leaving
/// room for the drain delay and telemetry's final flush.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 20_000;

const MAX_CONCURRENT_REQUESTS: Bounds = Bounds::new("max-concurrent-requests", 1, 65_536);
/// From 1 KiB to 256 MiB.
const MAX_REQUEST_BYTES: Bounds = Bounds::new("max-request-bytes", 1024, 256 * 1024 * 1024);
/// From 1 KiB to 256 MiB.
const MAX_RESPONSE_BYTES: Bounds = Bounds::new("max-response-bytes", 1024, 256 * 1024 * 1024);
/// Up to 10 minutes, far past any termination grace period Kubernetes is given in practice.
const SHUTDOWN_DRAIN_DELAY_MS: Bounds = Bounds::new("shutdown-drain-delay-ms", 0, 600_000);
const SHUTDOWN_GRACE_MS: Bounds = Bounds::new("shutdown-grace-ms", 0, 600_000);
/// Far past the cores of any node; a runtime with more workers than cores only switches between them.
const WORKER_THREADS: Bounds = Bounds::new("worker-threads", 1, 1024);

/// Parses a service's `Config` from the flags and the environment as [`clap::Parser::parse`] does, then
/// refuses what `check` finds (settings each within range that cannot work together) the same way: a
/// one-line reason and exit code 2.
pub fn parse_checked<C, E>(check: impl FnOnce(&C) -> Result<(), E>) -> C
where
    C: clap::Parser,
    E: std::fmt::Display,
{
    let config = C::parse();
    if let Err(problem) = check(&config) {
        C::command()
            .error(clap::error::ErrorKind::ArgumentConflict, problem)
            .exit();
    }
    config
}

/// Server settings shared by every service: `#[command(flatten)] pub server: ServerArgs`.
///
/// Holds file paths only, never key material, so the derived `Debug` is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ServerArgs {
    /// Requests this process handles at once (health checks are exempt and not counted). One more is
    /// answered RESOURCE_EXHAUSTED at once instead of queueing, so callers back off or go elsewhere
    /// (1 to 65536).
    #[arg(
        long,
        env = "MAX_CONCURRENT_REQUESTS",
        default_value_t = DEFAULT_MAX_CONCURRENT_REQUESTS,
        value_parser = MAX_CONCURRENT_REQUESTS.parser::<u32>()
    )]
    pub max_concurrent_requests: u32,
    /// Largest request message accepted, in bytes (after decompression); a larger one is refused with
    /// OUT_OF_RANGE (tonic's code for it) before it is decoded (1024 to 268435456: 1 KiB to 256 MiB).
    #[arg(
        long,
        env = "MAX_REQUEST_BYTES",
        default_value_t = DEFAULT_MAX_REQUEST_BYTES,
        value_parser = MAX_REQUEST_BYTES.parser::<u32>()
    )]
    pub max_request_bytes: u32,
    /// Largest response message sent, in bytes: an answer that would be larger is not sent but failed
    /// with OUT_OF_RANGE, so no request can make a server build and ship an unbounded answer (1024 to
    /// 268435456: 1 KiB to 256 MiB).
    #[arg(
        long,
        env = "MAX_RESPONSE_BYTES",
        default_value_t = DEFAULT_MAX_RESPONSE_BYTES,
        value_parser = MAX_RESPONSE_BYTES.parser::<u32>()
    )]
    pub max_response_bytes: u32,
    /// After SIGTERM, milliseconds to keep serving with health already NOT_SERVING, so load balancers
    /// stop routing here before the listener closes. 0 stops accepting at once (0 to 600000: 10 min).
    #[arg(
        long,
        env = "SHUTDOWN_DRAIN_DELAY_MS",
        default_value_t = 0,
        value_parser = SHUTDOWN_DRAIN_DELAY_MS.parser::<u64>()
    )]
    pub shutdown_drain_delay_ms: u64,
    /// Once no longer accepting, milliseconds in-flight requests get to finish; then the server stops
    /// anyway, logging how many were still running (0 to 600000: 10 min).
    #[arg(
        long,
        env = "SHUTDOWN_GRACE_MS",
        default_value_t = DEFAULT_SHUTDOWN_GRACE_MS,
        value_parser = SHUTDOWN_GRACE_MS.parser::<u64>()
    )]
    pub shutdown_grace_ms: u64,
    /// PEM certificate chain of this server. With `--tls-key-file` the server speaks only TLS (rustls).
    #[arg(long, env = "TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `--tls-cert-file`.
    #[arg(long, env = "TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificate(s) for mutual TLS: clients must present a certificate signed by one of them;
    /// others are refused during the TLS handshake, before any request is read.
    #[arg(long, env = "TLS_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Address of a second, plaintext listener that serves only `grpc.health.v1`, for probes that
    /// cannot speak TLS or present a client certificate (Kubernetes' gRPC probes). Unset: health is
    /// served on the main listener only.
    #[arg(long, env = "HEALTH_LISTEN_ADDR")]
    pub health_listen_addr: Option<SocketAddr>,
    /// Threads that run the service's requests (Tokio's runtime workers; 1 to 1024). Unset: one per CPU
    /// the process may use, its container's CPU limit when one is set (rounded down, at least one).
    #[arg(
        long,
        env = "TOKIO_WORKER_THREADS",
        value_parser = WORKER_THREADS.parser::<u32>()
    )]
    pub worker_threads: Option<u32>,
}

impl Default for ServerArgs {
    /// The `--help` defaults: no TLS.
    fn default() -> Self {
        Self {
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            shutdown_drain_delay_ms: 0,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            health_listen_addr: None,
            worker_threads: None,
        }
    }
}

impl ServerArgs {
    /// The range of each numeric setting, as its `--help` states it.
    pub const BOUNDS: &'static [Bounds] = &[
        MAX_CONCURRENT_REQUESTS,
        MAX_REQUEST_BYTES,
        MAX_RESPONSE_BYTES,
        SHUTDOWN_DRAIN_DELAY_MS,
        SHUTDOWN_GRACE_MS,
        WORKER_THREADS,
    ];

    /// For each generated server's `max_decoding_message_size`:
    /// `ModelServiceServer::new(svc).max_decoding_message_size(config.server.max_request_bytes())`.
    pub fn max_request_bytes(&self) -> usize {
        usize::try_from(self.max_request_bytes).unwrap_or(usize::MAX)
    }

    /// For each generated server's `max_encoding_message_size`.
    pub fn max_response_bytes(&self) -> usize {
        usize::try_from(self.max_response_bytes).unwrap_or(usize::MAX)
    }

    pub fn drain_delay(&self) -> Duration {
        Duration::from_millis(self.shutdown_drain_delay_ms)
    }

    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// The server's TLS settings, read from the PEM files; `None` without `TLS_CERT_FILE`/`TLS_KEY_FILE`.
    /// With `TLS_CLIENT_CA_FILE`, a client certificate is required (not optional).
    pub fn server_tls(&self) -> Result<Option<ServerTlsConfig>, Error> {
        let (cert, key) = match (&self.tls_cert_file, &self.tls_key_file) {
            (None, None) => {
                return match self.tls_client_ca_file {
                    None => Ok(None),
                    Some(_) => Err(Error::Incomplete {
                        setting: "TLS_CLIENT_CA_FILE",
                        missing: "TLS_CERT_FILE",
                        why: "mutual TLS needs the server's own certificate and key",
                    }),
                };
            }
            (Some(_), None) => return Err(incomplete("TLS_CERT_FILE", "TLS_KEY_FILE")),
            (None, Some(_)) => return Err(incomplete("TLS_KEY_FILE", "TLS_CERT_FILE")),
            (Some(cert), Some(key)) => (cert, key),
        };
        let cert = PemFile::certificates("TLS_CERT_FILE", cert)?;
        let key = PemFile::private_key("TLS_KEY_FILE", key)?;
        let mut config = ServerTlsConfig::new().identity(tls::identity(&cert, &key));
        if let Some(ca) = &self.tls_client_ca_file {
            let ca = PemFile::certificates("TLS_CLIENT_CA_FILE", ca)?;
            config = config
                .client_ca_root(ca.certificate())
                .client_auth_optional(false);
        }
        Ok(Some(config))
    }
}

fn incomplete(setting: &'static str, missing: &'static str) -> Error {
    Error::Incomplete {
        setting,
        missing,
        why: "a certificate and its key go together: set both or neither",
    }
}

/// TLS for calls to other services (the gateway's downstream channels).
///
/// Setting `DOWNSTREAM_TLS_CA_FILE` turns TLS on, and then every downstream URL must be `https://`:
/// tonic 0.14 wraps a connection in TLS only when the URL's scheme is `https` and silently speaks
/// plaintext to an `http://` URL even with a TLS config ([`ClientTlsArgs::configure`] refuses that
/// mismatch). The server name checked against the certificate is the URL's host unless
/// `DOWNSTREAM_TLS_DOMAIN` overrides it (e.g. dialing an IP address or a headless-service pod name).
///
/// Holds file paths only; note that tonic's own `ClientTlsConfig` `Debug` prints the client key, so
/// never log what [`ClientTlsArgs::client_tls`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ClientTlsArgs {
    /// PEM CA certificate(s) downstream servers' certificates must chain to. Set: downstream calls use
    /// TLS and their URLs must be `https://`. There are no built-in trust roots.
    #[arg(long, env = "DOWNSTREAM_TLS_CA_FILE")]
    pub downstream_tls_ca_file: Option<PathBuf>,
    /// PEM client certificate presented to downstream servers that require mutual TLS.
    #[arg(long, env = "DOWNSTREAM_TLS_CERT_FILE", requires = "downstream_tls_key_file")]
    pub downstream_tls_cert_file: Option<PathBuf>,
    /// PEM private key of `--downstream-tls-cert-file`.
    #[arg(long, env = "DOWNSTREAM_TLS_KEY_FILE", requires = "downstream_tls_cert_file")]
    pub downstream_tls_key_file: Option<PathBuf>,
    /// Server name to verify downstream certificates against, instead of each URL's host.
    #[arg(long, env = "DOWNSTREAM_TLS_DOMAIN")]
    pub downstream_tls_domain: Option<String>,
}

impl ClientTlsArgs {
    /// Whether downstream calls use TLS.
    pub fn enabled(&self) -> bool {
        self.downstream_tls_ca_file.is_some()
    }

    /// The TLS settings for [`Endpoint::tls_config`], read from the PEM files; `None` when no CA is set.
    pub fn client_tls(&self) -> Result<Option<ClientTlsConfig>, Error> {
        let Some(ca) = &self.downstream_tls_ca_file else {
            let set = [
                (
                    self.downstream_tls_cert_file.is_some(),
                    "DOWNSTREAM_TLS_CERT_FILE",
                ),
                (self.downstream_tls_key_file.is_some(), "DOWNSTREAM_TLS_KEY_FILE"),
                (self.downstream_tls_domain.is_some(), "DOWNSTREAM_TLS_DOMAIN"),
            ];
            return match set.iter().find(|(is_set, _)| *is_set) {
                None => Ok(None),
                Some((_, setting)) => Err(Error::Incomplete {
                    setting,
                    missing: "DOWNSTREAM_TLS_CA_FILE",
                    why: "downstream TLS needs the CA to trust (there are no built-in roots)",
                }),
            };
        };
        let ca = PemFile::certificates("DOWNSTREAM_TLS_CA_FILE", ca)?;
        let mut config = ClientTlsConfig::new().ca_certificate(ca.certificate());
        match (&self.downstream_tls_cert_file, &self.downstream_tls_key_file) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(incomplete("DOWNSTREAM_TLS_CERT_FILE", "DOWNSTREAM_TLS_KEY_FILE"));
            }
            (None, Some(_)) => {
                return Err(incomplete("DOWNSTREAM_TLS_KEY_FILE", "DOWNSTREAM_TLS_CERT_FILE"));
            }
            (Some(cert), Some(key)) => {
                let cert = PemFile::certificates("DOWNSTREAM_TLS_CERT_FILE", cert)?;
                let key = PemFile::private_key("DOWNSTREAM_TLS_KEY_FILE", key)?;
                config = config.identity(tls::identity(&cert, &key));
            }
        }
        if let Some(domain) = &self.downstream_tls_domain {
            config = config.domain_name(domain.clone());
        }
        Ok(Some(config))
    }

    /// Applies [`ClientTlsArgs::client_tls`] to `endpoint`, refusing an `http://` URL with TLS on (tonic
    /// would silently skip TLS) and an `https://` one with TLS off (no trust roots: every handshake
    /// would fail).
    pub fn configure(&self, endpoint: Endpoint) -> Result<Endpoint, Error> {
        let url = endpoint.uri().to_string();
        let https = endpoint.uri().scheme_str() == Some("https");
        let Some(config) = self.client_tls()? else {
            if https {
                return Err(Error::Scheme {
                    url,
                    problem: "an https:// URL needs DOWNSTREAM_TLS_CA_FILE (the CA to trust)",
                });
            }
            return Ok(endpoint);
        };
        if !https {
            return Err(Error::Scheme {
                url,
                problem: "DOWNSTREAM_TLS_CA_FILE is set, so the URL must be https:// (tonic sends \
                          plaintext to http:// URLs)",
            });
        }
        endpoint.tls_config(config).map_err(|error| Error::Tls {
            cert: self.downstream_tls_cert_file.clone().unwrap_or_default(),
            key: self.downstream_tls_key_file.clone().unwrap_or_default(),
            reason: crate::error::chain(&error),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Config {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        downstream: ClientTlsArgs,
    }

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("service").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let config = parse(&[]).expect("defaults parse");
        assert_eq!(config.server, ServerArgs::default());
        assert_eq!(config.server.max_concurrent_requests, 512);
        assert_eq!(config.server.max_request_bytes(), 4 * 1024 * 1024);
        assert_eq!(config.server.drain_delay(), Duration::ZERO);
        assert_eq!(config.server.grace(), Duration::from_secs(20));
        assert_eq!(config.downstream, ClientTlsArgs::default());
        assert!(config.server.server_tls().expect("no TLS").is_none());
        assert!(config.downstream.client_tls().expect("no TLS").is_none());
    }

    #[test]
    fn a_certificate_needs_its_key_and_the_reverse() {
        for args in [
            &["--tls-cert-file", "c.pem"][..],
            &["--tls-key-file", "k.pem"],
            &["--tls-client-ca-file", "ca.pem"],
            &["--downstream-tls-cert-file", "c.pem"],
            &["--downstream-tls-key-file", "k.pem"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
        let config = parse(&["--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"]).expect("a pair parses");
        assert_eq!(config.server.tls_cert_file, Some(PathBuf::from("c.pem")));
    }

    #[test]
    fn limits_must_be_positive() {
        for flag in ["--max-concurrent-requests", "--max-request-bytes"] {
            assert!(parse(&[flag, "0"]).is_err(), "{flag}");
        }
    }

    #[test]
    fn incomplete_settings_built_in_code_are_refused_naming_the_missing_one() {
        let server = ServerArgs {
            tls_client_ca_file: Some("ca.pem".into()),
            ..ServerArgs::default()
        };
        let error = server.server_tls().expect_err("CA without a certificate");
        assert!(error.to_string().contains("TLS_CERT_FILE"), "{error}");
        let client = ClientTlsArgs {
            downstream_tls_domain: Some("models".into()),
            ..ClientTlsArgs::default()
        };
        let error = client.client_tls().expect_err("a domain without a CA");
        assert!(error.to_string().contains("DOWNSTREAM_TLS_CA_FILE"), "{error}");
    }

    #[test]
    fn unreadable_and_non_pem_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pem");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").expect("write");
        let server = ServerArgs {
            tls_cert_file: Some(missing.clone()),
            tls_key_file: Some(junk.clone()),
            ..ServerArgs::default()
        };
        let error = server.server_tls().expect_err("missing file").to_string();
        assert!(
            error.contains("TLS_CERT_FILE") && error.contains("missing.pem"),
            "{error}"
        );
        let server = ServerArgs {
            tls_cert_file: Some(junk.clone()),
            ..server
        };
        let error = server.server_tls().expect_err("no certificate").to_string();
        assert!(
            error.contains("TLS_CERT_FILE")
                && error.contains("junk.pem")
                && error.contains("no PEM certificate"),
            "{error}"
        );
        let client = ClientTlsArgs {
            downstream_tls_ca_file: Some(junk),
            ..ClientTlsArgs::default()
        };
        let error = client.client_tls().expect_err("no CA").to_string();
        assert!(error.contains("DOWNSTREAM_TLS_CA_FILE"), "{error}");
    }

    #[test]
    fn the_url_scheme_must_match_the_tls_setting() {
        let plain = ClientTlsArgs::default();
        let http = Endpoint::from_static("http://127.0.0.1:50053");
        assert!(plain.configure(http).is_ok());
        let error = plain
            .configure(Endpoint::from_static("https://models:50053"))
            .expect_err("https without a CA");
        assert!(error.to_string().contains("DOWNSTREAM_TLS_CA_FILE"), "{error}");
    }
}
