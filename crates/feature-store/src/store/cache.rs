//! The in-process cache in front of Redis: decoded view rows keyed by entity key + view, fresh for a short
//! TTL and bounded by an approximate byte weight. Hits and misses are counted ([`CacheStats`]), sent by the
//! store as `cache.feast.hit|miss{feature_view}` (tallied per request, see `store::metrics`), and can be
//! observed per lookup ([`CacheObserver`]).
//!
//! A row's status is judged when it is read, not when it was cached, so a cached value turns
//! OUTSIDE_MAX_AGE on time. Absent entities are cached too (their rows say NOT_FOUND): unknown ids do not
//! reach Redis more than once per TTL.
//!
//! Stale-if-error: a row is kept for `ttl + stale_if_error` but is fresh only for `ttl`. A fresh row is a
//! hit and never touches Redis; a stale one is a miss like any other, and stands in only when Redis cannot
//! be read (the store then counts it in `cache.feast.stale_served`). A Redis outage shorter than the window
//! thus costs the entities served recently nothing but freshness.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::row::ViewRow;

/// Cache settings. A zero `ttl` or `max_bytes` turns the cache off (and stale-if-error with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a row read from Redis is served without reading Redis again.
    pub ttl: Duration,
    /// Upper bound of the approximate memory held by cached rows.
    pub max_bytes: u64,
    /// How long past `ttl` a row is kept to stand in while Redis cannot be read (zero: not at all).
    pub stale_if_error: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(5),
            max_bytes: 64 * 1024 * 1024,
            stale_if_error: Duration::from_secs(300),
        }
    }
}

/// Counters since start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    /// Lookups that found no fresh row (stale rows included: they send the read to Redis).
    pub misses: u64,
    /// Rows currently cached, stale ones included (approximate: eviction runs lazily).
    pub entries: u64,
}

/// Told about every cache lookup (one per entity key and view). The store already sends
/// `cache.feast.hit|miss`; this hook is for anything else (tests, other sinks).
pub trait CacheObserver: Send + Sync {
    fn on_lookup(&self, view: &str, hit: bool);
}

/// What the cache holds for an entity key and view.
pub(crate) enum Lookup {
    Fresh(Arc<ViewRow>),
    /// Past the TTL, within the stale-if-error window: only for when Redis fails.
    Stale(Arc<ViewRow>),
    Miss,
}

#[derive(Clone)]
struct Cached {
    row: Arc<ViewRow>,
    stored: Instant,
}

pub(crate) struct FeatureCache {
    rows: moka::sync::Cache<(Bytes, u32), Cached>,
    ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
    observer: Option<Arc<dyn CacheObserver>>,
}

impl FeatureCache {
    /// `None` when the configuration turns the cache off.
    pub fn new(config: CacheConfig, observer: Option<Arc<dyn CacheObserver>>) -> Option<Self> {
        if config.ttl.is_zero() || config.max_bytes == 0 {
            return None;
        }
        let rows = moka::sync::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|key: &(Bytes, u32), cached: &Cached| {
                cached
                    .row
                    .weight()
                    .saturating_add(u32::try_from(key.0.len()).unwrap_or(u32::MAX))
            })
            .time_to_live(config.ttl.saturating_add(config.stale_if_error))
            .build();
        Some(Self {
            rows,
            ttl: config.ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            observer,
        })
    }

    pub fn get(&self, key: &Bytes, view: usize, view_name: &str) -> Lookup {
        let lookup = match self.rows.get(&(key.clone(), view_id(view))) {
            Some(cached) if cached.stored.elapsed() < self.ttl => Lookup::Fresh(cached.row),
            Some(cached) => Lookup::Stale(cached.row),
            None => Lookup::Miss,
        };
        let hit = matches!(lookup, Lookup::Fresh(_));
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(observer) = &self.observer {
            observer.on_lookup(view_name, hit);
        }
        lookup
    }

    pub fn insert(&self, key: Bytes, view: usize, row: Arc<ViewRow>) {
        let cached = Cached {
            row,
            stored: Instant::now(),
        };
        self.rows.insert((key, view_id(view)), cached);
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.rows.entry_count(),
        }
    }
}

/// Registries have a handful of views; an index past `u32::MAX` cannot occur.
fn view_id(view: usize) -> u32 {
    u32::try_from(view).unwrap_or(u32::MAX)
}
