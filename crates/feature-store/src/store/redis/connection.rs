//! Connecting to Redis without ever failing because Redis is away.
//!
//! Opening checks what can be wrong for good — the URL and the TLS files — and fails loudly on those. The
//! connection itself is made in the background: fred's `fail_fast` is off, so the first connection goes
//! through the same reconnect policy as every later one (50 ms doubling to 2 s, forever), and a Redis that
//! is down, restarting or refusing our password delays readiness instead of crash-looping the process.
//! Meanwhile reads fail at once (see `RedisBackend::client`), and the store answers them without Redis.
//!
//! Connection errors (refused, reset, AUTH, TLS handshake) come from fred's error notifications and are
//! logged through the backend's [`Throttle`]; the last one is kept so that "not connected" errors say
//! why. [`ConnectionState::wait_connected`] resolves at the first successful connection (after AUTH).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::EventInterface;
use fred::prelude::{ClientLike, Config, ReconnectPolicy, TcpConfig};
use fred::rustls::pki_types::pem::PemObject;
use fred::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use fred::rustls::{ClientConfig, RootCertStore};
use fred::types::config::{TlsConfig, TlsConnector};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::{RedisConfig, RedisTls};
use crate::Error;
use telemetry::logs::Throttle;

use crate::events::{REDIS_LOG_INTERVAL, RedisConnectionFailed};

/// URL schemes fred understands (without its unix-socket feature).
const SCHEMES: &[&str] = &[
    "redis",
    "rediss",
    "redis-cluster",
    "rediss-cluster",
    "redis-sentinel",
    "rediss-sentinel",
    "valkey",
    "valkeys",
    "valkey-cluster",
    "valkeys-cluster",
    "valkey-sentinel",
    "valkeys-sentinel",
];

/// How long the first-connection watch waits on fred's announcement before looking at the clients again.
const FIRST_CONNECTION_RECHECK: Duration = Duration::from_millis(250);

/// What the backend, its reads and the background tasks share about the connection.
pub(crate) struct ConnectionState {
    /// The URL with its password redacted: the only form logs may show.
    pub url: String,
    /// One limiter for every Redis failure line of this backend (commands and connections).
    pub log: Throttle,
    last_error: Mutex<Option<String>>,
    connected_once: watch::Sender<bool>,
}

impl ConnectionState {
    /// Resolves once a connection has been made (at once if one was).
    pub async fn wait_connected(&self) {
        let mut connected = self.connected_once.subscribe();
        // Cannot fail: `self` holds the sender.
        let _ = connected.wait_for(|connected| *connected).await;
    }

    /// The last connection error since the last successful connection, for "not connected" errors.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = error;
    }
}

/// A pool of fred clients connecting (and reconnecting) in the background. Dropping it stops them.
pub(crate) struct Connection {
    pub pool: Pool,
    pub state: Arc<ConnectionState>,
    tasks: Vec<AbortHandle>,
}

impl Connection {
    /// Checks `config` and starts connecting; returns at once. Fails only for configuration errors.
    pub fn open(config: &RedisConfig) -> Result<Self, Error> {
        let url = crate::redact_url(&config.url);
        let scheme = config.url.split_once("://").map_or("", |(scheme, _)| scheme);
        if !SCHEMES.contains(&scheme) {
            return Err(Error::InvalidRedisUrl {
                url,
                reason: format!("the scheme must be one of {}", SCHEMES.join(", ")),
            });
        }
        let mut fred_config = Config::from_url(&config.url).map_err(|e| Error::InvalidRedisUrl {
            url: url.clone(),
            reason: e.details().to_string(),
        })?;
        // Not connecting yet is not an error: the first connection retries like any reconnection.
        fred_config.fail_fast = false;
        let uses_tls = fred_config.tls.is_some();
        if let Some(tls) = tls_config(&config.tls, uses_tls)? {
            fred_config.tls = Some(tls);
        }
        // fred spawns its connection tasks on the current Tokio runtime; without one it would panic.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::Connect {
            url: url.clone(),
            reason: "the Redis client must be opened inside a Tokio runtime".into(),
        })?;
        let connect_timeout = config.connect_timeout;
        let pool = fred::types::Builder::from_config(fred_config)
            .with_connection_config(|c| {
                c.connection_timeout = connect_timeout;
                c.internal_command_timeout = connect_timeout;
                // Requests are a few small frames: Nagle's delay would dominate them.
                c.tcp = TcpConfig {
                    nodelay: Some(true),
                    ..TcpConfig::default()
                };
            })
            .with_performance_config(|p| p.default_command_timeout = config.timeout)
            // Connect and reconnect forever in the background, 50 ms doubling up to 2 s; requests meanwhile
            // fail fast instead of queueing (see `RedisBackend::client`).
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .build_pool(config.pool_size.max(1))
            .map_err(|e| Error::InvalidRedisUrl {
                url: url.clone(),
                reason: e.details().to_string(),
            })?;
        let (connected_once, _) = watch::channel(false);
        let state = Arc::new(ConnectionState {
            url,
            log: Throttle::new(REDIS_LOG_INTERVAL),
            last_error: Mutex::new(None),
            connected_once,
        });
        // Listening before connecting, so that no notification of the first attempt is missed.
        let mut tasks = Vec::with_capacity(2 * pool.size() + 1);
        for client in pool.clients() {
            tasks.push(
                runtime
                    .spawn(log_errors(client.error_rx(), state.clone()))
                    .abort_handle(),
            );
            tasks.push(
                runtime
                    .spawn(log_connections(client.reconnect_rx(), state.clone()))
                    .abort_handle(),
            );
        }
        let _connection_tasks = pool.connect();
        tasks.push(
            runtime
                .spawn(watch_first_connection(pool.clients().to_vec(), state.clone()))
                .abort_handle(),
        );
        tracing::info!(
            redis.url = %state.url,
            pool_size = pool.size(),
            tls = uses_tls,
            "connecting to Redis"
        );
        Ok(Self { pool, state, tasks })
    }

    /// Whether a client of the pool is connected now.
    pub fn is_connected(&self) -> bool {
        self.pool.clients().iter().any(ClientLike::is_connected)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // fred's connection tasks live (and reconnect) until told to quit.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            runtime.spawn(async move {
                let _ = pool.quit().await;
            });
        }
    }
}

/// Marks the state connected at the first connection of any client, then ends.
async fn watch_first_connection(clients: Vec<Client>, state: Arc<ConnectionState>) {
    if clients.is_empty() {
        return;
    }
    loop {
        if clients.iter().any(ClientLike::is_connected) {
            state.connected_once.send_replace(true);
            return;
        }
        // fred announces each connection; the recheck covers one made between the look above and the
        // subscription `wait_for_connect` makes.
        let waits = clients.iter().map(|client| Box::pin(client.wait_for_connect()));
        let waited = tokio::time::timeout(FIRST_CONNECTION_RECHECK, futures::future::select_all(waits)).await;
        if let Ok((Err(_), _, _)) = waited {
            // An announcement channel that closed or lagged answers at once: do not spin on it.
            tokio::time::sleep(FIRST_CONNECTION_RECHECK).await;
        }
    }
}

async fn log_errors(
    mut errors: tokio::sync::broadcast::Receiver<(FredError, Option<fred::types::config::Server>)>,
    state: Arc<ConnectionState>,
) {
    loop {
        match errors.recv().await {
            Ok((error, server)) => {
                state.set_last_error(Some(error.to_string()));
                let server = server.map(|s| s.to_string());
                RedisConnectionFailed {
                    error_type: connection_error_type(&error),
                    url: &state.url,
                    server: server.as_deref(),
                    error: &error,
                }
                .emit(&state.log);
            }
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

async fn log_connections(
    mut connections: tokio::sync::broadcast::Receiver<fred::types::config::Server>,
    state: Arc<ConnectionState>,
) {
    loop {
        match connections.recv().await {
            Ok(server) => {
                state.set_last_error(None);
                tracing::info!(redis.url = %state.url, redis.server = %server, "connected to Redis");
            }
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// A bounded class of a connection error, for the log's `error_type`.
fn connection_error_type(error: &FredError) -> &'static str {
    match error.kind() {
        ErrorKind::Auth => "auth",
        ErrorKind::Tls => "tls",
        ErrorKind::IO | ErrorKind::Canceled => "io",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Config | ErrorKind::Url => "config",
        _ => "connect",
    }
}

/// The TLS settings for a URL, when files are given (`None`: fred's default for the URL, which trusts the
/// system's roots for `rediss://` and uses no TLS for `redis://`).
fn tls_config(tls: &RedisTls, url_uses_tls: bool) -> Result<Option<TlsConfig>, Error> {
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
