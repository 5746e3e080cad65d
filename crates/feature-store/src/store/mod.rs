//! [`OnlineStore`]: answers `GetOnlineFeatures` from Redis (behind the TTL cache) or from the embedded
//! snapshot, both holding Feast's layout and decoded by the same code.
//!
//! Every read reports to the [`Metrics`] sink of its [`StoreConfig`]: cache hits and misses, per-value
//! availability and row staleness per feature view (see `metrics`), and Redis round trips (see `redis`).

mod cache;
mod memory;
mod metrics;
pub(crate) mod redis;
mod row;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use prost_types::Timestamp;
use proto::feast::types::Value;
use proto::features::v1::{FeatureVector, FieldStatus, GetOnlineFeaturesRequest, GetOnlineFeaturesResponse};
use telemetry::Metrics;

pub use cache::{CacheConfig, CacheObserver, CacheStats};
pub use redis::{ReadStrategy, RedisConfig};

use self::cache::FeatureCache;
use self::memory::MemoryBackend;
use self::metrics::{CacheTally, LookupTally};
use self::redis::{Fetched, RedisBackend};
use self::row::ViewRow;
use crate::csv_rows::CsvFile;
use crate::request::Plan;
use crate::{Error, Registry};

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
    /// Connects to Redis when `config.redis` is set (failing if the first connection fails), else loads
    /// the embedded snapshot.
    pub async fn open(config: StoreConfig) -> Result<Self, Error> {
        let project = config
            .project
            .unwrap_or_else(|| config.registry.project().to_owned());
        let (backend, cache) = match &config.redis {
            Some(redis_config) => {
                let redis = RedisBackend::connect(redis_config, config.metrics.clone()).await?;
                let backend = Backend::Redis {
                    redis,
                    timeout: redis_config.timeout,
                    strategy: redis_config.read_strategy,
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

    /// Cache counters (all zero when there is no cache).
    pub fn cache_stats(&self) -> CacheStats {
        self.inner
            .cache
            .as_ref()
            .map(FeatureCache::stats)
            .unwrap_or_default()
    }

    /// Validates `request`, reads every entity key it needs in one round trip (cache misses only), and
    /// returns one vector per feature with a value, status and event time per entity row. The Redis call
    /// is bounded by the configured timeout and by `deadline`, whichever comes first.
    ///
    /// The Redis span is a child of the current OpenTelemetry context; the response's values are
    /// counted in `features.lookups` and their rows' ages in `features.staleness_s`.
    pub async fn get_online_features(
        &self,
        request: &GetOnlineFeaturesRequest,
        deadline: Option<Instant>,
    ) -> Result<GetOnlineFeaturesResponse, Error> {
        let inner = &*self.inner;
        let plan = Plan::new(
            &inner.registry,
            &inner.project,
            &request.features,
            &request.entities,
        )?;
        let views = inner.registry.views();
        let mut rows: Vec<Option<Arc<ViewRow>>> = vec![None; plan.keys.len() * views.len()];
        match &inner.backend {
            Backend::Memory(memory) => {
                for (k, (key, key_views)) in plan.keys.iter().zip(&plan.key_views).enumerate() {
                    let hash = memory.get(key);
                    for &v in key_views {
                        rows[k * views.len() + v] = Some(Arc::new(ViewRow::decode(&hash, &views[v])));
                    }
                }
            }
            Backend::Redis {
                redis,
                timeout,
                strategy,
            } => {
                let timeout = call_timeout(*timeout, deadline)?;
                self.read_redis(redis, *strategy, timeout, &plan, &mut rows)
                    .await?;
            }
        }
        let now = SystemTime::now();
        let mut lookups = LookupTally::new(views.len());
        let response = assemble(
            &inner.registry,
            &plan,
            &rows,
            now,
            &request.features,
            &mut lookups,
        );
        lookups.emit(&inner.metrics, views);
        metrics::record_staleness(&inner.metrics, views, &plan, &rows, now);
        Ok(response)
    }

    /// Fills `rows` from the cache, then reads every key with a miss in one pipeline.
    async fn read_redis(
        &self,
        redis: &RedisBackend,
        strategy: ReadStrategy,
        timeout: Duration,
        plan: &Plan,
        rows: &mut [Option<Arc<ViewRow>>],
    ) -> Result<(), Error> {
        let inner = &*self.inner;
        let views = inner.registry.views();
        let mut missing = Vec::new();
        let mut cache_tally = CacheTally::new(views.len());
        for (k, (key, key_views)) in plan.keys.iter().zip(&plan.key_views).enumerate() {
            let mut miss = false;
            for &v in key_views {
                let Some(cache) = &inner.cache else {
                    miss = true;
                    continue;
                };
                let cached = cache.get(key, v, &views[v].name);
                cache_tally.record(v, cached.is_some());
                match cached {
                    Some(row) => rows[k * views.len() + v] = Some(row),
                    None => miss = true,
                }
            }
            if miss {
                missing.push(k);
            }
        }
        if inner.cache.is_some() {
            cache_tally.emit(&inner.metrics, views);
        }
        if missing.is_empty() {
            return Ok(());
        }
        let keys: Vec<Bytes> = missing.iter().map(|&k| plan.keys[k].clone()).collect();
        let fields = |i: usize| -> Vec<Bytes> {
            let key_views = missing
                .get(i)
                .and_then(|&k| plan.key_views.get(k))
                .map_or(&[][..], Vec::as_slice);
            key_views
                .iter()
                .flat_map(|&v| {
                    let view = &views[v];
                    std::iter::once(view.timestamp_field.clone())
                        .chain(view.features.iter().map(|f| f.field.clone()))
                })
                .collect()
        };
        // One round trip, traced and measured by the backend.
        let fetched = redis.fetch(&keys, fields, timeout).await?;
        for (&k, fetched) in missing.iter().zip(&fetched) {
            let key_views = &plan.key_views[k];
            // HGETALL brought every view stored under the key: cache them all.
            let decode: &[usize] = match (strategy, key_views.first(), &inner.cache) {
                (ReadStrategy::HashGetAll, Some(&first), Some(_)) => inner.registry.views_sharing_keys(first),
                _ => key_views,
            };
            for &v in decode {
                let row = Arc::new(match fetched {
                    Fetched::Hash(hash) => ViewRow::decode(hash, &views[v]),
                    Fetched::NotAHash => ViewRow::invalid(&views[v]),
                });
                if let Some(cache) = &inner.cache {
                    cache.insert(plan.keys[k].clone(), v, row.clone());
                }
                rows[k * views.len() + v] = Some(row);
            }
        }
        Ok(())
    }
}

/// The Redis call's timeout: the configured one, shortened to what is left of the request's deadline.
fn call_timeout(configured: Duration, deadline: Option<Instant>) -> Result<Duration, Error> {
    let Some(deadline) = deadline else {
        return Ok(configured);
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(Error::DeadlineExceeded)
    } else {
        Ok(configured.min(left))
    }
}

/// One vector per requested feature, one entry per entity row, in request order.
fn assemble(
    registry: &Registry,
    plan: &Plan,
    rows: &[Option<Arc<ViewRow>>],
    now: SystemTime,
    names: &[String],
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
                    .and_then(|&k| rows.get(k * views.len() + v))
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
        feature_names: names.to_vec(),
        results,
    }
}
