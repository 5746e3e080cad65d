//! Reading (and, for materialization, writing) Feast hashes in Redis with fred: standalone (`redis://`),
//! TLS (`rediss://`), cluster (`redis-cluster://`, `rediss-cluster://`, fred's `?node=host:port` list) and
//! sentinel URLs, with AUTH from the URL's user info and TLS trust (and client certificates) from
//! [`RedisTls`]. Connecting happens in the background and never fails for Redis being away (see
//! [`RedisConnection`]).
//!
//! Every request is one pipeline: one command per distinct entity key (keys differ per entity, and in a
//! cluster they live in different slots, so no multi-key command can replace it). In a cluster it is one
//! pipeline per primary the keys live on, sent side by side ([`ClusterNodes`]): a primary that cannot be
//! read costs the keys it serves, and the others are answered.
//!
//! Each pipeline is one round trip, and one `redis.query` span in APM (`db.system=redis`, the command as
//! `db.operation`/`db.statement`, the number of keys as `redis.pipeline_length`; never a key or a value),
//! child of the current OpenTelemetry context (the gRPC server span while serving). It records
//! `redis.command.latency_ms{command}` and, when it fails, `redis.command.errors{command,error_type}`, the
//! span's error status and an error log naming the redacted URL ([`crate::events::RedisCommandFailed`],
//! at most one line a second however many requests fail).
//!
//! HGETALL or HMGET? Measured by what is now `cargo bench -p feature-store --bench read_strategy` (fred
//! 10.1, redis-server 7.0.15 on loopback, release build, 2 cores shared with other builds, concurrency 1,
//! 5,000 requests after 500 warm-up; a request asks for the 9 customer features of `customer_profile` +
//! `customer_activity`, so HMGET names 11 fields; medians of two rounds, p99 in brackets):
//!
//! | per request                       | 1 entity row      | 20 entity rows     |
//! |-----------------------------------|-------------------|--------------------|
//! | `OnlineStore`, HGETALL            | 32.6 µs (65-75)   | 325-334 µs         |
//! | `OnlineStore`, HMGET of 11 fields | 34.5 µs (67-94)   | 351-352 µs         |
//! | fred pipeline alone, HGETALL      | 25.5-26.4 µs      | 274 µs (371)       |
//! | fred pipeline alone, HMGET (11)   | 26.0-26.6 µs      | 277-278 µs (379)   |
//!
//! (A colleague measured HMGET of 20 fields at ~60 µs vs HGETALL ~23 µs, also with fred.) HGETALL is as
//! fast or slightly faster here: no field list to build and send, and these hashes are small listpacks
//! Redis returns whole. It also returns every view stored under the entity, which fills the cache for
//! views the request did not ask for. So HGETALL is the default; HMGET stays available
//! ([`ReadStrategy::HashGetFields`]) for hashes that grow large (many views on one entity).

mod cluster;
mod connection;
pub(crate) mod scan;
mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::clients::Client;
use fred::error::ErrorKind;
use fred::prelude::HashesInterface;
use fred::types::{Key, Value};
use futures::future::join_all;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use telemetry::catalog::REDIS_COMMAND_LATENCY_MS;
use telemetry::trace::spans;
use telemetry::{Metrics, Tag};

pub use connection::RedisConnection;
pub use scan::ProjectKeys;

use self::cluster::{ClusterNodes, Route};
use self::connection::ClientSettings;
use crate::Error;
use crate::events::RedisCommandFailed;

/// Command names, as spans and the `command` metric tag carry them.
pub(crate) const HGETALL: &str = "HGETALL";
pub(crate) const HMGET: &str = "HMGET";
pub(crate) const HSET: &str = "HSET";

/// One Redis hash as read: field bytes → value bytes.
pub(crate) type Hash = HashMap<Bytes, Bytes>;

/// One Redis hash to write: its key and its field/value pairs.
pub(crate) type HashWrite = (Bytes, Vec<(Bytes, Bytes)>);

/// How a request's hashes are read. See the module documentation for the measurements behind the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadStrategy {
    /// `HGETALL key`: every field of the entity's hash.
    #[default]
    HashGetAll,
    /// `HMGET key f1 f2 ...`: the fields of the views asked for, and their `_ts:` fields.
    HashGetFields,
}

impl ReadStrategy {
    /// The Redis command each key is read with.
    pub const fn command(self) -> &'static str {
        match self {
            Self::HashGetAll => HGETALL,
            Self::HashGetFields => HMGET,
        }
    }
}

/// Connection settings for Redis. `Debug` shows the URL without its password.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://`, `rediss://`, `redis-cluster://`, ... (see the module documentation); a secret, since
    /// it carries the password.
    pub url: telemetry::Secret,
    /// The longest a read may take (the request's own deadline shortens it further).
    pub timeout: Duration,
    /// The longest one connection attempt (TCP, TLS, AUTH, cluster discovery) may take; failed attempts
    /// are retried in the background. Materialization waits at most this long for a first connection.
    pub connect_timeout: Duration,
    /// Connections (per node) to spread requests over.
    pub pool_size: usize,
    pub read_strategy: ReadStrategy,
    /// Whom to trust and who to be over TLS (used with `rediss://` URLs only).
    pub tls: RedisTls,
}

/// TLS files for `rediss://` URLs, all PEM. Without any, the system's roots are trusted and no client
/// certificate is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// The CA certificates that sign the server's certificate, trusted instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (chain) to present, for servers with `tls-auth-clients yes`.
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's private key.
    pub client_key_file: Option<PathBuf>,
}

impl RedisTls {
    /// No file given: the URL's scheme alone decides (fred's defaults).
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.client_cert_file.is_none() && self.client_key_file.is_none()
    }
}

impl RedisConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: telemetry::Secret::from(url.into()),
            timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(5),
            pool_size: 2,
            read_strategy: ReadStrategy::default(),
            tls: RedisTls::default(),
        }
    }
}

/// What one pipelined read returned for a key.
#[derive(Debug)]
pub(crate) enum Fetched {
    Hash(Hash),
    /// The key holds something other than a hash (WRONGTYPE): its features are reported INVALID.
    NotAHash,
}

/// Feast reads and writes over a [`RedisConnection`] (standalone, TLS, sentinel) or, for a cluster, a
/// pool per primary ([`ClusterNodes`]), traced and measured.
pub(crate) struct RedisBackend {
    redis: Redis,
    strategy: ReadStrategy,
    metrics: Metrics,
}

enum Redis {
    Connection(RedisConnection),
    Cluster(ClusterNodes),
}

impl RedisBackend {
    /// Checks the URL and TLS files and starts connecting; returns at once without waiting for Redis.
    pub fn connect(config: &RedisConfig, metrics: Metrics) -> Result<Self, Error> {
        let settings = ClientSettings::new(config)?;
        let redis = if settings.is_cluster() {
            Redis::Cluster(ClusterNodes::open(settings))
        } else {
            Redis::Connection(RedisConnection::with_settings(settings)?)
        };
        Ok(Self {
            redis,
            strategy: config.read_strategy,
            metrics,
        })
    }

    /// Whether a connection is up now (for a cluster: one to every primary).
    pub fn is_connected(&self) -> bool {
        match &self.redis {
            Redis::Connection(connection) => connection.is_connected(),
            Redis::Cluster(nodes) => nodes.is_connected(),
        }
    }

    /// Resolves once the first connection has been made (for a cluster: to every primary).
    pub async fn wait_connected(&self) {
        match &self.redis {
            Redis::Connection(connection) => connection.wait_connected().await,
            Redis::Cluster(nodes) => nodes.wait_connected().await,
        }
    }

    /// [`RedisBackend::wait_connected`], or a `Connect` error saying why not after `timeout`.
    pub async fn connected_within(&self, timeout: Duration) -> Result<(), Error> {
        match &self.redis {
            Redis::Connection(connection) => connection.connected_within(timeout).await,
            Redis::Cluster(nodes) => nodes.connected_within(timeout).await,
        }
    }

    /// Whether Redis holds a key of `project` (a bounded `SCAN`, see `scan`), each call answered within
    /// `timeout`; in a cluster, every primary is walked in turn until one holds such a key.
    pub async fn project_keys(&self, project: &str, timeout: Duration) -> Result<ProjectKeys, Error> {
        let clients = match &self.redis {
            Redis::Connection(connection) => vec![connection.connected_client().cloned()],
            Redis::Cluster(nodes) => nodes.primary_clients(),
        };
        let mut keys = ProjectKeys::Missing;
        for client in clients {
            let client = client.map_err(Error::Unavailable)?;
            keys = keys.merge(scan::project_keys(&client, project, timeout).await?);
            if keys == ProjectKeys::Found {
                break;
            }
        }
        Ok(keys)
    }

    fn url(&self) -> &str {
        match &self.redis {
            Redis::Connection(connection) => connection.url(),
            Redis::Cluster(nodes) => nodes.url(),
        }
    }

    fn log(&self) -> &telemetry::logs::Throttle {
        match &self.redis {
            Redis::Connection(connection) => connection.log(),
            Redis::Cluster(nodes) => nodes.log(),
        }
    }

    /// Where each of `keys` is sent: the one connection, or the pool of the primary serving its slot.
    fn route(&self, keys: &[Bytes]) -> Vec<Route> {
        match &self.redis {
            Redis::Connection(connection) => vec![Route {
                keys: (0..keys.len()).collect(),
                client: connection.connected_client().cloned(),
            }],
            Redis::Cluster(nodes) => nodes.route(keys),
        }
    }

    /// Reads the hashes of `keys`, one pipeline per node (one in all but a cluster); `fields[i]` lists
    /// what HMGET asks of `keys[i]`. A key is `None` when its node could not be read for a passing reason
    /// ([`Error::is_outage`]; counted and logged here); any other failure fails the whole read.
    pub async fn fetch(
        &self,
        keys: &[Bytes],
        fields: impl Fn(usize) -> Vec<Bytes>,
        timeout: Duration,
    ) -> Result<Vec<Option<Fetched>>, Error> {
        let routes = self.route(keys);
        let reads = routes.iter().map(|route| async {
            let route_keys: Vec<Bytes> = route.keys.iter().map(|&k| keys[k].clone()).collect();
            let route_fields = |i: usize| route.keys.get(i).map_or_else(Vec::new, |&k| fields(k));
            self.round_trip(
                self.strategy.command(),
                route_keys.len(),
                &route.client,
                |client| self.fetch_on(client, &route_keys, route_fields, timeout),
            )
            .await
        });
        let results = join_all(reads).await;
        let mut fetched: Vec<Option<Fetched>> = keys.iter().map(|_| None).collect();
        for (route, result) in routes.iter().zip(results) {
            match result {
                Ok(hashes) => {
                    for (&k, hash) in route.keys.iter().zip(hashes) {
                        fetched[k] = Some(hash);
                    }
                }
                Err(error) if error.is_outage() => self.refresh_soon(),
                Err(error) => return Err(error),
            }
        }
        Ok(fetched)
    }

    /// A node could not be read: in a cluster it may have been replaced, so the slot map is asked for.
    fn refresh_soon(&self) {
        if let Redis::Cluster(nodes) = &self.redis {
            nodes.refresh_soon();
        }
    }

    async fn fetch_on(
        &self,
        client: &Client,
        keys: &[Bytes],
        fields: impl Fn(usize) -> Vec<Bytes>,
        timeout: Duration,
    ) -> Result<Vec<Fetched>, Error> {
        let pipeline = client.pipeline();
        let mut asked: Vec<Vec<Bytes>> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let key = Key::from(key.clone());
            let queued: Result<(), fred::error::Error> = match self.strategy {
                ReadStrategy::HashGetAll => pipeline.hgetall(key).await,
                ReadStrategy::HashGetFields => {
                    let names = fields(i);
                    let args: Vec<Key> = names.iter().cloned().map(Key::from).collect();
                    asked.push(names);
                    pipeline.hmget(key, args).await
                }
            };
            queued.map_err(|e| Error::from_redis(e, timeout))?;
        }
        let replies = tokio::time::timeout(timeout, pipeline.try_all::<Value>())
            .await
            .map_err(|_| Error::Timeout(timeout))?;
        if replies.len() != keys.len() {
            // A failure of the whole pipeline comes back as a single error.
            let error = replies.into_iter().find_map(Result::err);
            return Err(error.map_or(Error::Timeout(timeout), |e| Error::from_redis(e, timeout)));
        }
        replies
            .into_iter()
            .enumerate()
            .map(|(i, reply)| match reply {
                Ok(value) => Ok(Fetched::Hash(match self.strategy {
                    ReadStrategy::HashGetAll => hash_from_hgetall(value),
                    ReadStrategy::HashGetFields => {
                        hash_from_hmget(value, asked.get(i).map_or(&[][..], |a| a))
                    }
                })),
                Err(e) if *e.kind() == ErrorKind::InvalidArgument => Ok(Fetched::NotAHash),
                Err(e) => Err(Error::from_redis(e, timeout)),
            })
            .collect()
    }

    /// Writes `HSET key field value ...` commands in one pipeline per node (materialization); fails if any
    /// node could not be written.
    pub async fn write(&self, rows: Vec<HashWrite>, timeout: Duration) -> Result<(), Error> {
        let keys: Vec<Bytes> = rows.iter().map(|(key, _)| key.clone()).collect();
        let routes = self.route(&keys);
        let mut rows: Vec<Option<HashWrite>> = rows.into_iter().map(Some).collect();
        let writes = routes.iter().map(|route| {
            let batch: Vec<_> = route.keys.iter().filter_map(|&k| rows[k].take()).collect();
            self.round_trip(HSET, batch.len(), &route.client, move |client| {
                Self::write_on(client, batch, timeout)
            })
        });
        for result in join_all(writes).await {
            result.inspect_err(|error| {
                if error.is_outage() {
                    self.refresh_soon();
                }
            })?;
        }
        Ok(())
    }

    async fn write_on(client: &Client, rows: Vec<HashWrite>, timeout: Duration) -> Result<(), Error> {
        let pipeline = client.pipeline();
        for (key, fields) in rows {
            let map: Vec<(Key, Value)> = fields
                .into_iter()
                .map(|(f, v)| (Key::from(f), Value::Bytes(v)))
                .collect();
            let queued: Result<(), fred::error::Error> = pipeline.hset(Key::from(key), map).await;
            queued.map_err(|e| Error::from_redis(e, timeout))?;
        }
        tokio::time::timeout(timeout, pipeline.all::<Value>())
            .await
            .map_err(|_| Error::Timeout(timeout))?
            .map(drop)
            .map_err(|e| Error::from_redis(e, timeout))
    }

    /// One pipeline of `keys` `command`s on `client`, traced and measured. The latency is recorded only
    /// for pipelines that were sent: while a node is not connected, calls fail at once and would only drag
    /// the percentiles down (they are counted in `redis.command.errors` instead).
    async fn round_trip<'a, T, F>(
        &'a self,
        command: &'static str,
        keys: usize,
        client: &'a Result<Client, fred::error::Error>,
        call: impl FnOnce(&'a Client) -> F,
    ) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>>,
    {
        let cx = spans::redis_span(&Context::current(), command, None);
        cx.span().set_attribute(KeyValue::new(
            "redis.pipeline_length",
            i64::try_from(keys).unwrap_or(i64::MAX),
        ));
        let result = match client {
            Ok(client) => {
                let started = Instant::now();
                let result = call(client).await;
                let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                self.metrics
                    .distribution(&REDIS_COMMAND_LATENCY_MS, elapsed_ms, &[Tag::command(command)]);
                result
            }
            // Not connected: as UNAVAILABLE as a refused connection.
            Err(error) => Err(Error::Unavailable(error.clone())),
        };
        if let Err(error) = &result {
            let error_type = error.error_type();
            spans::record_error(&cx, error_type, error.to_string());
            RedisCommandFailed {
                command,
                error_type,
                keys,
                url: self.url(),
                error,
            }
            .emit(&self.metrics, self.log());
        }
        spans::end(&cx);
        result
    }
}

fn bytes_of(value: Value) -> Option<Bytes> {
    match value {
        Value::Bytes(b) => Some(b),
        Value::String(s) => Some(s.into_inner()),
        _ => None,
    }
}

/// HGETALL answers a map (RESP3) or a flat field/value array (RESP2, and always inside pipelines).
fn hash_from_hgetall(value: Value) -> Hash {
    match value {
        Value::Map(map) => map
            .inner()
            .into_iter()
            .filter_map(|(k, v)| Some((k.into_bytes(), bytes_of(v)?)))
            .collect(),
        Value::Array(items) => {
            let mut hash = Hash::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                if let (Some(k), Some(v)) = (bytes_of(k), bytes_of(v)) {
                    hash.insert(k, v);
                }
            }
            hash
        }
        _ => Hash::new(),
    }
}

/// HMGET answers one value (or nil) per field asked, in order.
fn hash_from_hmget(value: Value, fields: &[Bytes]) -> Hash {
    let values = match value {
        Value::Array(values) => values,
        single => vec![single],
    };
    fields
        .iter()
        .zip(values)
        .filter_map(|(f, v)| Some((f.clone(), bytes_of(v)?)))
        .collect()
}
