//! The Redis read path of [`OnlineStore::get_online_features`]: the cache first, then one pipeline for
//! every miss, and when Redis cannot be read ([`Error::is_outage`]) the stand-ins: stale cached rows,
//! else UNAVAILABLE rows.
//!
//! The Redis call's timeout is the configured one, shortened to the request's deadline less a reserve for
//! answering without Redis, so that a Redis too slow to answer still leaves time for the degraded answer
//! to reach the caller before its deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;

use super::OnlineStore;
use super::cache::Lookup;
use super::metrics::{CacheTally, StaleTally};
use super::redis::{Fetched, ReadStrategy, RedisBackend};
use super::row::ViewRow;
use crate::Error;
use crate::request::Plan;

impl OnlineStore {
    /// Fills `rows` from the cache, then reads every key with a miss in one pipeline; when Redis cannot be
    /// read, fills the rest with stale cached rows or UNAVAILABLE ones.
    pub(super) async fn read_redis(
        &self,
        read: &RedisRead<'_>,
        plan: &Plan,
        rows: &mut [Option<Arc<ViewRow>>],
    ) -> Result<(), Error> {
        let inner = &*self.inner;
        let views = inner.registry.views();
        let mut missing = Vec::new();
        // Past their TTL: used only if Redis fails. `(slot in rows, row)`.
        let mut stale: Vec<(usize, Arc<ViewRow>)> = Vec::new();
        let mut cache_tally = CacheTally::new(views.len());
        for (k, (key, key_views)) in plan.keys.iter().zip(&plan.key_views).enumerate() {
            let mut miss = false;
            for &v in key_views {
                let Some(cache) = &inner.cache else {
                    miss = true;
                    continue;
                };
                let slot = k * views.len() + v;
                match cache.get(key, v, &views[v].name) {
                    Lookup::Fresh(row) => {
                        cache_tally.record(v, true);
                        rows[slot] = Some(row);
                    }
                    Lookup::Stale(row) => {
                        cache_tally.record(v, false);
                        stale.push((slot, row));
                        miss = true;
                    }
                    Lookup::Miss => {
                        cache_tally.record(v, false);
                        miss = true;
                    }
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
        let timeout = call_timeout(read.timeout, read.deadline)?;
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
        // One round trip, traced, measured and (if it fails) logged by the backend.
        let fetched = match read.redis.fetch(&keys, fields, timeout).await {
            Ok(fetched) => fetched,
            Err(error) if error.is_outage() => {
                self.stand_in(plan, &missing, stale, read.unavailable, rows);
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        for (&k, fetched) in missing.iter().zip(&fetched) {
            let key_views = &plan.key_views[k];
            // HGETALL brought every view stored under the key: cache them all.
            let decode: &[usize] = match (read.strategy, key_views.first(), &inner.cache) {
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

    /// Redis could not be read: stale cached rows stand in where the cache has them (counted in
    /// `cache.feast.stale_served`), every other row the request needs is UNAVAILABLE. The current span
    /// (the gRPC server span while serving) is marked degraded: the call succeeds, its Redis span failed,
    /// and a trace should show why the answer lacks values.
    fn stand_in(
        &self,
        plan: &Plan,
        missing: &[usize],
        stale: Vec<(usize, Arc<ViewRow>)>,
        unavailable: &[Arc<ViewRow>],
        rows: &mut [Option<Arc<ViewRow>>],
    ) {
        let views = self.inner.registry.views();
        let mut served = StaleTally::new(views.len());
        let stale_rows = stale.len();
        for (slot, row) in stale {
            served.record(slot % views.len());
            rows[slot] = Some(row);
        }
        let mut unavailable_rows = 0usize;
        for &k in missing {
            for &v in &plan.key_views[k] {
                let slot = &mut rows[k * views.len() + v];
                if slot.is_none() {
                    *slot = unavailable.get(v).cloned();
                    unavailable_rows += 1;
                }
            }
        }
        served.emit(&self.inner.metrics, views);
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        span.set_attribute(KeyValue::new("features.degraded", true));
        span.set_attribute(KeyValue::new("features.stale_rows", count(stale_rows)));
        span.set_attribute(KeyValue::new(
            "features.unavailable_rows",
            count(unavailable_rows),
        ));
    }
}

/// What a Redis read needs besides the request's plan.
pub(super) struct RedisRead<'a> {
    pub redis: &'a RedisBackend,
    pub strategy: ReadStrategy,
    /// The configured timeout of a read.
    pub timeout: Duration,
    pub deadline: Option<Instant>,
    pub unavailable: &'a [Arc<ViewRow>],
}

/// The most a read keeps of what is left of the request's deadline for answering without Redis (the
/// answer from the cache, then sending it): the Redis call gets the rest.
const ANSWER_RESERVE: Duration = Duration::from_millis(5);

/// The Redis call's timeout: the configured one, shortened to what is left of the request's deadline less
/// a reserve (a tenth of what is left, at most [`ANSWER_RESERVE`]) so that an answer without Redis still
/// makes the deadline.
fn call_timeout(configured: Duration, deadline: Option<Instant>) -> Result<Duration, Error> {
    let Some(deadline) = deadline else {
        return Ok(configured);
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Error::DeadlineExceeded);
    }
    let reserve = (left / 10).min(ANSWER_RESERVE);
    Ok(configured.min(left - reserve))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redis_call_leaves_a_reserve_before_the_deadline() {
        let configured = Duration::from_secs(1);
        assert_eq!(call_timeout(configured, None).ok(), Some(configured));

        let deadline = Instant::now() + Duration::from_millis(200);
        let timeout = call_timeout(configured, Some(deadline)).expect("time left");
        assert!(timeout <= Duration::from_millis(195), "{timeout:?}");
        assert!(timeout > Duration::from_millis(150), "{timeout:?}");

        // Short deadlines keep a tenth.
        let deadline = Instant::now() + Duration::from_millis(20);
        let timeout = call_timeout(configured, Some(deadline)).expect("time left");
        assert!(timeout <= Duration::from_millis(18), "{timeout:?}");

        // A configured timeout shorter than the deadline is kept as it is.
        let deadline = Instant::now() + Duration::from_secs(10);
        let short = Duration::from_millis(250);
        assert_eq!(call_timeout(short, Some(deadline)).ok(), Some(short));

        assert!(matches!(
            call_timeout(configured, Some(Instant::now())),
            Err(Error::DeadlineExceeded)
        ));
    }
}
