//! [`OnlineStore`]: answers `GetOnlineFeatures` from Redis (behind the TTL cache) or from the embedded
//! snapshot, both holding Feast's layout and decoded by the same code.
//!
//! A Redis outage degrades answers instead of failing them. When Redis cannot be read (not connected yet,
//! reconnecting, an IO error, no answer within the call's timeout or the request's deadline, a server
//! LOADING or BUSY: [`Error::is_outage`]), the request is still answered: rows the cache holds stand in,
//! fresh or stale (within the stale-if-error window, see `cache`), and every other value is UNAVAILABLE.
//! The caller decides what a missing value means, as it does for NOT_FOUND; failing the whole request
//! would throw away the values the cache could give and make every caller handle one more error.
//! Errors that are not outages keep failing (a bad request) or stay per value (WRONGTYPE: INVALID).
//!
//! Every read reports to the [`Metrics`] sink of its [`StoreConfig`]: cache hits, misses and stale rows
//! served, per-value availability and row staleness per feature view (see `metrics`), and Redis round
//! trips (see `redis`). The Redis read path, stand-ins included, is `read`.

mod cache;
mod grid;
mod memory;
mod metrics;
mod read;
pub(crate) mod redis;
mod row;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prost_types::Timestamp;
use proto::feast::types::Value;
use proto::features::v1::{FeatureVector, FieldStatus, GetOnlineFeaturesRequest, GetOnlineFeaturesResponse};
use server_kit::Deadline;
use telemetry::Metrics;

pub use cache::{CacheConfig, CacheObserver, CacheStats};
pub use redis::{ProjectKeys, ReadStrategy, RedisConfig, RedisConnection, RedisTls};

use self::cache::FeatureCache;
use self::grid::Grid;
use self::memory::MemoryBackend;
use self::metrics::LookupTally;
use self::read::RedisRead;
use self::redis::RedisBackend;
use self::row::ViewRow;
use crate::csv_rows::CsvFile;
use crate::events::ProjectKeysChecked;
use crate::request::Plan;
use crate::{Error, Registry};

/// A request's rows: per distinct entity key and feature view, the row read (`None`: not asked for, or
/// not read yet).
type Rows = Grid<Option<Arc<ViewRow>>>;

/// How to open an [`OnlineStore`].
#[derive(Clone)]
pub struct StoreConfig {
    pub registry: Registry,
    /// The Feast project in every Redis key; defaults to the registry's.
    pub project: Option<String>,
    /// Redis to read; `None` serves the embedded snapshot instead.
    pub redis: Option<RedisConfig>,
    /// The cache in front of Redis (the embedded store needs none).
    pub cache: CacheConfig,
    /// The embedded store's files; `None` is the bundled snapshot ([`CsvFile::bundled`]).
    pub snapshot: Option<Vec<CsvFile>>,
    pub cache_observer: Option<Arc<dyn CacheObserver>>,
    /// Where cache, lookup, staleness and Redis metrics go.
    pub metrics: Metrics,
}

impl StoreConfig {
    /// Embedded snapshot, registry's project, default cache, the process's metrics sink
    /// ([`telemetry::metrics`]: call it after `telemetry::init`).
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            project: None,
            redis: None,
            cache: CacheConfig::default(),
            snapshot: None,
            cache_observer: None,
            metrics: telemetry::metrics().clone(),
        }
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("project", &self.project)
            .field("redis", &self.redis)
            .field("cache", &self.cache)
            .field("snapshot_files", &self.snapshot.as_ref().map(Vec::len))
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

/// Where an [`OnlineStore`] reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Redis,
    Embedded,
}

enum Backend {
    Redis {
        redis: RedisBackend,
        timeout: Duration,
        strategy: ReadStrategy,
        /// Per view, the row that stands in when Redis cannot be read and the cache has nothing.
        unavailable: Box<[Arc<ViewRow>]>,
    },
    Memory(MemoryBackend),
}

struct Inner {
    registry: Registry,
    project: String,
    backend: Backend,
    cache: Option<FeatureCache>,
    metrics: Metrics,
}

/// Online feature reads in Feast's serving shape. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct OnlineStore {
    inner: Arc<Inner>,
}

impl OnlineStore {
    /// Starts connecting to Redis when `config.redis` is set, else loads the embedded snapshot.
    ///
    /// Opening does not wait for Redis, and Redis being down, slow or refusing the credentials is no
    /// error: the connection is made (and remade) in the background, and reads answer UNAVAILABLE values
    /// until it is up ([`OnlineStore::wait_connected`] waits for it). Only what cannot get better by
    /// waiting fails: a malformed URL ([`Error::InvalidRedisUrl`]), unusable TLS files
    /// ([`Error::InvalidTlsConfig`]), a snapshot that does not load.
    pub async fn open(config: StoreConfig) -> Result<Self, Error> {
        let project = config
            .project
            .unwrap_or_else(|| config.registry.project().to_owned());
        let (backend, cache) = match &config.redis {
            Some(redis_config) => {
                let redis = RedisBackend::connect(redis_config, config.metrics.clone())?;
                let backend = Backend::Redis {
                    redis,
                    timeout: redis_config.timeout,
                    strategy: redis_config.read_strategy,
                    unavailable: config
                        .registry
                        .views()
                        .iter()
                        .map(|view| Arc::new(ViewRow::unavailable(view)))
                        .collect(),
                };
                (backend, FeatureCache::new(config.cache, config.cache_observer))
            }
            None => {
                let files = config.snapshot.unwrap_or_else(CsvFile::bundled);
                let memory = MemoryBackend::load(&config.registry, &project, &files, SystemTime::now())?;
                if memory.len() == 0 {
                    tracing::warn!("embedded feature store is empty: every feature will be NOT_FOUND");
                }
                (Backend::Memory(memory), None)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                registry: config.registry,
                project,
                backend,
                cache,
                metrics: config.metrics,
            }),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn project(&self) -> &str {
        &self.inner.project
    }

    pub fn backend(&self) -> BackendKind {
        match self.inner.backend {
            Backend::Redis { .. } => BackendKind::Redis,
            Backend::Memory(_) => BackendKind::Embedded,
        }
    }

    /// Whether the store can read now: always for the embedded store, while a Redis connection is up for
    /// Redis.
    pub fn is_connected(&self) -> bool {
        match &self.inner.backend {
            Backend::Redis { redis, .. } => redis.is_connected(),
            Backend::Memory(_) => true,
        }
    }

    /// Resolves once the store has been able to read: at once for the embedded store, at the first
    /// successful connection (AUTH and TLS included) for Redis. It does not resolve while Redis stays
    /// unreachable or refuses the credentials; bound it with a timeout where that matters.
    pub async fn wait_connected(&self) {
        if let Backend::Redis { redis, .. } = &self.inner.backend {
            redis.wait_connected().await;
        }
    }

    /// Whether Redis holds any key of the store's project, found by a bounded `SCAN` (every primary of a
    /// cluster) and reported once: `features.project_keys_found` 1 or 0, and a warning naming the project
    /// when there is none, since every feature would be NOT_FOUND. Call it once connected; it never
    /// changes what reads answer. The embedded store answers from its snapshot and reports nothing (an
    /// empty one is warned about when it loads). Fails only when Redis cannot be read.
    pub async fn check_project_keys(&self) -> Result<ProjectKeys, Error> {
        let inner = &*self.inner;
        let keys = match &inner.backend {
            Backend::Memory(memory) if memory.len() == 0 => return Ok(ProjectKeys::Missing),
            Backend::Memory(_) => return Ok(ProjectKeys::Found),
            Backend::Redis { redis, timeout, .. } => redis.project_keys(&inner.project, *timeout).await?,
        };
        ProjectKeysChecked {
            project: &inner.project,
            keys,
        }
        .emit(&inner.metrics);
        Ok(keys)
    }

    /// Cache counters (all zero when there is no cache).
    pub fn cache_stats(&self) -> CacheStats {
        self.inner
            .cache
            .as_ref()
            .map(FeatureCache::stats)
            .unwrap_or_default()
    }

    /// Validates `request`, reads every entity key it needs in one round trip (cache misses only; in a
    /// cluster, one per primary the keys live on, side by side), and returns one vector per feature with
    /// a value, status and event time per entity row. The Redis call
    /// is bounded by the configured timeout and by `deadline`, whichever comes first. `deadline` is when
    /// the answer is due, its answering margin already taken ([`Deadline::for_request`]): the store adds
    /// none of its own.
    ///
    /// When Redis cannot be read ([`Error::is_outage`]) the answer is still `Ok`: cached rows (stale ones
    /// too) stand in, the other values are UNAVAILABLE. In a cluster this holds per primary: a lost
    /// primary costs the keys in its slots, until its replica is promoted. Errors are a request that does not validate
    /// ([`Error::Request`]), a `deadline` already spent when Redis would be called
    /// ([`Error::DeadlineExceeded`]), and Redis errors that are not outages.
    ///
    /// The Redis span is a child of the current OpenTelemetry context; the response's values are
    /// counted in `features.lookups` and their rows' ages in `features.staleness_s`.
    ///
    /// The request is taken by value: its feature names become the answer's `feature_names`, as Feast
    /// echoes them, without a copy of each.
    pub async fn get_online_features(
        &self,
        request: GetOnlineFeaturesRequest,
        deadline: Option<Deadline>,
    ) -> Result<GetOnlineFeaturesResponse, Error> {
        let inner = &*self.inner;
        let plan = Plan::new(
            &inner.registry,
            &inner.project,
            &request.features,
            &request.entities,
        )?;
        let views = inner.registry.views();
        let mut rows = Rows::new(plan.keys.len(), views.len());
        match &inner.backend {
            Backend::Memory(memory) => {
                for (k, (key, key_views)) in plan.keys.iter().zip(&plan.key_views).enumerate() {
                    let hash = memory.get(key);
                    for &v in key_views {
                        if let Some(slot) = rows.get_mut(k, v) {
                            *slot = Some(Arc::new(ViewRow::decode(&hash, &views[v])));
                        }
                    }
                }
            }
            Backend::Redis {
                redis,
                timeout,
                strategy,
                unavailable,
            } => {
                let read = RedisRead {
                    redis,
                    strategy: *strategy,
                    timeout: *timeout,
                    deadline,
                    unavailable,
                };
                self.read_redis(&read, &plan, &mut rows).await?;
            }
        }
        let now = SystemTime::now();
        let mut lookups = LookupTally::new(views.len());
        let response = assemble(&inner.registry, &plan, &rows, now, request.features, &mut lookups);
        lookups.emit(&inner.metrics, views);
        metrics::record_staleness(&inner.metrics, views, &plan, &rows, now);
        Ok(response)
    }
}

/// One vector per requested feature, one entry per entity row, in request order.
fn assemble(
    registry: &Registry,
    plan: &Plan,
    rows: &Rows,
    now: SystemTime,
    names: Vec<String>,
    lookups: &mut LookupTally,
) -> GetOnlineFeaturesResponse {
    let views = registry.views();
    let results = plan
        .refs
        .iter()
        .map(|&(v, f)| {
            let view = &views[v];
            let row_keys = plan
                .row_keys
                .get(v)
                .and_then(Option::as_deref)
                .unwrap_or_default();
            let mut vector = FeatureVector {
                values: Vec::with_capacity(plan.rows),
                statuses: Vec::with_capacity(plan.rows),
                event_timestamps: Vec::with_capacity(plan.rows),
            };
            for row in 0..plan.rows {
                let stored = row_keys
                    .get(row)
                    .and_then(|&k| rows.get(k, v))
                    .and_then(Option::as_ref);
                let (value, status, timestamp) = match stored {
                    Some(stored) => stored.field(f, view.ttl, now),
                    None => (Value::default(), FieldStatus::NotFound, Timestamp::default()),
                };
                lookups.record(v, status);
                vector.values.push(value);
                vector.statuses.push(status as i32);
                vector.event_timestamps.push(timestamp);
            }
            vector
        })
        .collect();
    GetOnlineFeaturesResponse {
        feature_names: names,
        results,
    }
}
