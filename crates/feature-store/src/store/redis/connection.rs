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
//!
//! With a cluster URL the pool is fred's cluster client, which stops every command while it reconnects
//! to any one node: a lost primary makes every key unavailable until its replica is promoted and the
//! client has reconnected. The feature store itself reads a cluster through a pool per primary instead
//! (`super::cluster`), built on the same checked settings ([`ClientSettings`]) and shared state (log
//! limiter, last error, first connection: [`ConnectionState`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::EventInterface;
use fred::prelude::{ClientLike, Config, ReconnectPolicy, TcpConfig};
use fred::types::Builder;
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
pub(super) const FIRST_CONNECTION_RECHECK: Duration = Duration::from_millis(250);

/// A [`RedisConfig`] checked and put in fred's terms: what every client of a connection is built from.
pub(super) struct ClientSettings {
    /// fred's reading of the URL (servers, AUTH) with the TLS files applied.
    pub fred: Config,
    /// The URL with its password redacted: the only form logs may show.
    pub url: String,
    pub uses_tls: bool,
    pub pool_size: usize,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// The runtime fred spawns its connection tasks on (ours too).
    pub runtime: tokio::runtime::Handle,
}

impl ClientSettings {
    /// Checks what can be wrong for good: the URL, its scheme, the TLS files; and that there is a Tokio
    /// runtime to connect on.
    pub fn new(config: &RedisConfig) -> Result<Self, Error> {
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
        let mut fred = Config::from_url(config.url.expose()).map_err(|e| Error::InvalidRedisUrl {
            url: url.clone(),
            reason: e.details().to_string(),
        })?;
        // Not connecting yet is not an error: the first connection retries like any reconnection.
        fred.fail_fast = false;
        let uses_tls = fred.tls.is_some();
        if let Some(tls) = tls_config(&config.tls, uses_tls)? {
            fred.tls = Some(tls);
        }
        // fred spawns its connection tasks on the current Tokio runtime; without one it would panic.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::Connect {
            url: url.clone(),
            reason: "the Redis client must be opened inside a Tokio runtime".into(),
        })?;
        Ok(Self {
            fred,
            url,
            uses_tls,
            pool_size: config.pool_size.max(1),
            connect_timeout: config.connect_timeout,
            command_timeout: config.timeout,
            runtime,
        })
    }

    /// Whether the URL names a Redis Cluster (`redis-cluster://`, ...).
    pub fn is_cluster(&self) -> bool {
        self.fred.server.is_clustered()
    }

    /// The longest one connection attempt or internal command (AUTH, CLUSTER SLOTS) may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// A builder of clients of `fred` with the connection's settings: timeouts, no Nagle delay, and
    /// connecting and reconnecting forever in the background, 50 ms doubling up to 2 s. Requests meanwhile
    /// fail fast instead of queueing (see [`RedisConnection::client`]).
    pub fn builder(&self, fred: Config) -> Builder {
        let mut builder = Builder::from_config(fred);
        let connect_timeout = self.connect_timeout;
        builder
            .with_connection_config(|c| {
                c.connection_timeout = connect_timeout;
                c.internal_command_timeout = connect_timeout;
                // Requests are a few small frames: Nagle's delay would dominate them.
                c.tcp = TcpConfig {
                    nodelay: Some(true),
                    ..TcpConfig::default()
                };
            })
            .with_performance_config(|p| p.default_command_timeout = self.command_timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2));
        builder
    }
}

/// What a connection and its background tasks share: the redacted URL, the failure log's limiter, the last
/// connection error, and whether the first connection was made.
pub(super) struct ConnectionState {
    /// The URL with its password redacted: the only form logs may show.
    url: String,
    /// One limiter for every Redis failure line of the connection (its users' failed commands included).
    log: Throttle,
    last_error: Mutex<Option<String>>,
    connected_once: watch::Sender<bool>,
}

impl ConnectionState {
    pub fn new(url: String) -> Self {
        let (connected_once, _) = watch::channel(false);
        Self {
            url,
            log: Throttle::new(REDIS_LOG_INTERVAL),
            last_error: Mutex::new(None),
            connected_once,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn log(&self) -> &Throttle {
        &self.log
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

    /// Logs a connection failure (throttled) and keeps it as the last error.
    pub fn connection_failed(&self, error: &FredError, server: Option<&str>) {
        self.set_last_error(Some(error.to_string()));
        RedisConnectionFailed {
            error_type: connection_error_type(error),
            url: &self.url,
            server,
            error,
        }
        .emit(&self.log);
    }

    /// Records that the first connection has been made.
    pub fn mark_connected(&self) {
        self.connected_once.send_replace(true);
    }

    /// Resolves once the first connection has been made (at once if it was).
    pub async fn wait_connected(&self) {
        let mut connected = self.connected_once.subscribe();
        // Cannot fail: `self` holds the sender.
        let _ = connected.wait_for(|connected| *connected).await;
    }

    /// [`ConnectionState::wait_connected`], or after `timeout` an [`Error::Connect`] naming the last
    /// connection error (refused, AUTH, TLS).
    pub async fn connected_within(&self, timeout: Duration) -> Result<(), Error> {
        if tokio::time::timeout(timeout, self.wait_connected()).await.is_ok() {
            return Ok(());
        }
        Err(Error::Connect {
            url: self.url.clone(),
            reason: self
                .last_error()
                .unwrap_or_else(|| format!("no connection within {timeout:?}")),
        })
    }

    /// Follows `client`'s connection errors and connections (logging them) until it quits. Called before
    /// the client connects, so that no notification of the first attempt is missed.
    pub fn follow(self: &Arc<Self>, runtime: &tokio::runtime::Handle, client: &Client) -> [AbortHandle; 2] {
        [
            runtime
                .spawn(log_errors(client.error_rx(), self.clone()))
                .abort_handle(),
            runtime
                .spawn(log_connections(client.reconnect_rx(), self.clone()))
                .abort_handle(),
        ]
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
        Self::with_settings(ClientSettings::new(config)?)
    }

    /// [`RedisConnection::open`] with the settings already checked.
    pub(super) fn with_settings(settings: ClientSettings) -> Result<Self, Error> {
        let pool = settings
            .builder(settings.fred.clone())
            .build_pool(settings.pool_size)
            .map_err(|e| Error::InvalidRedisUrl {
                url: settings.url.clone(),
                reason: e.details().to_string(),
            })?;
        let state = Arc::new(ConnectionState::new(settings.url.clone()));
        let runtime = &settings.runtime;
        // Listening before connecting, so that no notification of the first attempt is missed.
        let mut tasks = Vec::with_capacity(2 * pool.size() + 1);
        for client in pool.clients() {
            tasks.extend(state.follow(runtime, client));
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
            tls = settings.uses_tls,
            "connecting to Redis"
        );
        Ok(Self { pool, state, tasks })
    }

    /// A connected client of the pool, or [`Error::Unavailable`] at once, naming the last connection
    /// error: while fred (re)connects, commands would otherwise wait in its queue until their timeout,
    /// turning an outage into slow answers.
    pub fn client(&self) -> Result<&Client, Error> {
        self.connected_client().map_err(Error::Unavailable)
    }

    /// [`RedisConnection::client`], failing with why there is none.
    pub(super) fn connected_client(&self) -> Result<&Client, FredError> {
        let client = self.pool.next_connected();
        if client.is_connected() {
            return Ok(client);
        }
        let details = match self.state.last_error() {
            Some(last) => format!("not connected to Redis (reconnecting; last error: {last})"),
            None => "not connected to Redis (connecting)".to_owned(),
        };
        Err(FredError::new(ErrorKind::IO, details))
    }

    /// Whether a client of the pool is connected now.
    pub fn is_connected(&self) -> bool {
        self.pool.clients().iter().any(ClientLike::is_connected)
    }

    /// Resolves once a connection has been made (at once if one was). It does not resolve while Redis
    /// stays unreachable or refuses the credentials: [`RedisConnection::connected_within`] bounds it.
    pub async fn wait_connected(&self) {
        self.state.wait_connected().await;
    }

    /// [`RedisConnection::wait_connected`], or after `timeout` an [`Error::Connect`] naming the last
    /// connection error (refused, AUTH, TLS).
    pub async fn connected_within(&self, timeout: Duration) -> Result<(), Error> {
        self.state.connected_within(timeout).await
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
            state.mark_connected();
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
                let server = server.map(|s| s.to_string());
                state.connection_failed(&error, server.as_deref());
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
