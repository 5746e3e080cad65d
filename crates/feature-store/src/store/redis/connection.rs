//! [`RedisConnection`]: a pool of Redis clients that never fails because Redis is away, shared by the
//! online store and any other crate that keeps its data in Redis.
//!
//! Opening checks what can be wrong for good — the URL and the TLS files — and fails loudly on those. The
//! connection itself is made in the background: fred's `fail_fast` is off, so the first connection goes
//! through the same reconnect policy as every later one (50 ms doubling to 2 s, forever), and a Redis that
//! is down, restarting or refusing our password delays readiness instead of crash-looping the process.
//! Meanwhile [`RedisConnection::client`] fails at once, and callers answer without Redis.
//!
//! Connection errors (refused, reset, AUTH, TLS handshake) come from fred's error notifications and are
//! logged through the connection's [`Throttle`] ([`RedisConnectionFailed`]); the last one is kept so that
//! "not connected" errors say why. [`RedisConnection::wait_connected`] resolves at the first successful
//! connection (after AUTH).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::EventInterface;
use fred::prelude::{ClientLike, Config, ReconnectPolicy, TcpConfig};
use telemetry::logs::Throttle;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::RedisConfig;
use super::tls::tls_config;
use crate::Error;
use crate::events::{REDIS_LOG_INTERVAL, RedisConnectionFailed};
use crate::redact::redact_url;

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

/// What a connection and its background tasks share.
struct ConnectionState {
    /// The URL with its password redacted: the only form logs may show.
    url: String,
    /// One limiter for every Redis failure line of the connection (its users' failed commands included).
    log: Throttle,
    last_error: Mutex<Option<String>>,
    connected_once: watch::Sender<bool>,
}

impl ConnectionState {
    /// The last connection error since the last successful connection, for "not connected" errors.
    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = error;
    }
}

/// A pool of Redis clients from a [`RedisConfig`] (URL with AUTH, TLS files, pool size, timeouts),
/// connecting and reconnecting in the background. Dropping it stops the background tasks and tells the
/// pool to quit.
pub struct RedisConnection {
    pool: Pool,
    state: Arc<ConnectionState>,
    tasks: Vec<AbortHandle>,
}

impl RedisConnection {
    /// Checks `config` and starts connecting; returns at once, without waiting for Redis. Fails only for
    /// what waiting cannot fix: a malformed URL or unknown scheme ([`Error::InvalidRedisUrl`]), unusable
    /// TLS files ([`Error::InvalidTlsConfig`]), no Tokio runtime to connect on ([`Error::Connect`]).
    pub fn open(config: &RedisConfig) -> Result<Self, Error> {
        let url = redact_url(config.url.expose());
        let scheme = config
            .url
            .expose()
            .split_once("://")
            .map_or("", |(scheme, _)| scheme);
        if !SCHEMES.contains(&scheme) {
            return Err(Error::InvalidRedisUrl {
                url,
                reason: format!("the scheme must be one of {}", SCHEMES.join(", ")),
            });
        }
        let mut fred_config = Config::from_url(config.url.expose()).map_err(|e| Error::InvalidRedisUrl {
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
            // fail fast instead of queueing (see `RedisConnection::client`).
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

    /// A connected client of the pool, or [`Error::Unavailable`] at once, naming the last connection
    /// error: while fred (re)connects, commands would otherwise wait in its queue until their timeout,
    /// turning an outage into slow answers.
    pub fn client(&self) -> Result<&Client, Error> {
        let client = self.pool.next_connected();
        if client.is_connected() {
            return Ok(client);
        }
        let details = match self.state.last_error() {
            Some(last) => format!("not connected to Redis (reconnecting; last error: {last})"),
            None => "not connected to Redis (connecting)".to_owned(),
        };
        Err(Error::Unavailable(FredError::new(ErrorKind::IO, details)))
    }

    /// Whether a client of the pool is connected now.
    pub fn is_connected(&self) -> bool {
        self.pool.clients().iter().any(ClientLike::is_connected)
    }

    /// Resolves once a connection has been made (at once if one was). It does not resolve while Redis
    /// stays unreachable or refuses the credentials: [`RedisConnection::connected_within`] bounds it.
    pub async fn wait_connected(&self) {
        let mut connected = self.state.connected_once.subscribe();
        // Cannot fail: `self.state` holds the sender.
        let _ = connected.wait_for(|connected| *connected).await;
    }

    /// [`RedisConnection::wait_connected`], or after `timeout` an [`Error::Connect`] naming the last
    /// connection error (refused, AUTH, TLS).
    pub async fn connected_within(&self, timeout: Duration) -> Result<(), Error> {
        if tokio::time::timeout(timeout, self.wait_connected()).await.is_ok() {
            return Ok(());
        }
        Err(Error::Connect {
            url: self.state.url.clone(),
            reason: self
                .state
                .last_error()
                .unwrap_or_else(|| format!("no connection within {timeout:?}")),
        })
    }

    /// The URL with its password redacted: the only form for logs and errors.
    pub fn url(&self) -> &str {
        &self.state.url
    }

    /// The limiter of this connection's failure lines, for its users' failed commands to share.
    pub(crate) fn log(&self) -> &Throttle {
        &self.state.log
    }
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("url", &self.state.url)
            .field("pool_size", &self.pool.size())
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl Drop for RedisConnection {
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
