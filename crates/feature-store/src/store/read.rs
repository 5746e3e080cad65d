//! The Redis read path of [`OnlineStore::get_online_features`]: the cache first, then one pipeline for
//! every miss (one per node in a cluster), and for the keys Redis could not be read for
//! ([`Error::is_outage`]: all of them, or those of a lost cluster node) the stand-ins: stale cached rows,
//! else UNAVAILABLE rows.
//!
//! The Redis call's timeout is the configured one, shortened to what is left of the request's
//! [`Deadline`]. The deadline already keeps the margin for answering (taken once, where the request came
//! in: [`Deadline::for_request`]), so a Redis too slow to answer still leaves time for the degraded answer
//! to reach the caller before its own deadline; no second margin is taken here.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;
use server_kit::Deadline;

use super::cache::Lookup;
use super::metrics::{CacheTally, StaleTally};
use super::redis::{Fetched, ReadStrategy, RedisBackend};
use super::row::ViewRow;
use super::{OnlineStore, Rows};
use crate::Error;
use crate::request::Plan;

impl OnlineStore {
    /// Fills `rows` from the cache, then reads every key with a miss in one pipeline; when Redis cannot be
    /// read, fills the rest with stale cached rows or UNAVAILABLE ones.
    pub(super) async fn read_redis(
        &self,
        read: &RedisRead<'_>,
        plan: &Plan,
        rows: &mut Rows,
    ) -> Result<(), Error> {
        let inner = &*self.inner;
        let views = inner.registry.views();
        let mut missing = Vec::new();
        // Past their TTL: used only if Redis fails.
        let mut stale: Vec<StaleRow> = Vec::new();
        let mut cache_tally = CacheTally::new(views.len());
        for (k, (key, key_views)) in plan.keys.iter().zip(&plan.key_views).enumerate() {
            let mut miss = false;
            for &v in key_views {
                let Some(cache) = &inner.cache else {
                    miss = true;
                    continue;
                };
                match cache.get(key, v, &views[v].name) {
                    Lookup::Fresh(row) => {
                        cache_tally.record(v, true);
                        if let Some(slot) = rows.get_mut(k, v) {
                            *slot = Some(row);
                        }
                    }
                    Lookup::Stale(row) => {
                        cache_tally.record(v, false);
                        stale.push(StaleRow { key: k, view: v, row });
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
        // One round trip (per cluster node), traced, measured and (if it fails) logged by the backend. A key
        // is `None` when its node could not be read (an outage); another failure fails the request.
        let fetched = read.redis.fetch(&keys, fields, timeout).await?;
        let mut unread = Vec::new();
        for (&k, fetched) in missing.iter().zip(&fetched) {
            let Some(fetched) = fetched else {
                unread.push(k);
                continue;
            };
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
                if let Some(slot) = rows.get_mut(k, v) {
                    *slot = Some(row);
                }
            }
        }
        if !unread.is_empty() {
            // Stale rows stand in only for keys that could not be read.
            let mut unread_key = vec![false; plan.keys.len()];
            for &k in &unread {
                unread_key[k] = true;
            }
            stale.retain(|row| unread_key[row.key]);
            self.stand_in(plan, &unread, stale, read.unavailable, rows);
        }
        Ok(())
    }

    /// Redis could not be read for the keys `missing` (all of them, or those of a cluster node that could
    /// not be read): stale cached rows stand in where the cache has them (counted in
    /// `cache.feast.stale_served`), every other row they need is UNAVAILABLE. The current span
    /// (the gRPC server span while serving) is marked degraded: the call succeeds, its Redis span failed,
    /// and a trace should show why the answer lacks values.
    fn stand_in(
        &self,
        plan: &Plan,
        missing: &[usize],
        stale: Vec<StaleRow>,
        unavailable: &[Arc<ViewRow>],
        rows: &mut Rows,
    ) {
        let views = self.inner.registry.views();
        let mut served = StaleTally::new(views.len());
        let stale_rows = stale.len();
        for StaleRow { key, view, row } in stale {
            served.record(view);
            if let Some(slot) = rows.get_mut(key, view) {
                *slot = Some(row);
            }
        }
        let mut unavailable_rows = 0usize;
        for &k in missing {
            for &v in &plan.key_views[k] {
                let Some(slot) = rows.get_mut(k, v) else {
                    continue;
                };
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

/// A cached row past its TTL, standing in for `(key, view)` if Redis cannot be read.
struct StaleRow {
    key: usize,
    view: usize,
    row: Arc<ViewRow>,
}

/// What a Redis read needs besides the request's plan.
pub(super) struct RedisRead<'a> {
    pub redis: &'a RedisBackend,
    pub strategy: ReadStrategy,
    /// The configured timeout of a read.
    pub timeout: Duration,
    /// When the request must be answered by, answering margin already taken.
    pub deadline: Option<Deadline>,
    pub unavailable: &'a [Arc<ViewRow>],
}

/// The Redis call's timeout: the configured one, shortened to what is left of the request's deadline.
/// A deadline already spent calls nothing: [`Error::DeadlineExceeded`].
fn call_timeout(configured: Duration, deadline: Option<Deadline>) -> Result<Duration, Error> {
    let Some(deadline) = deadline else {
        return Ok(configured);
    };
    if deadline.is_spent() {
        return Err(Error::DeadlineExceeded);
    }
    Ok(deadline.limit(configured))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn the_redis_call_is_bounded_by_what_is_left_of_the_deadline() {
        let configured = Duration::from_secs(1);
        // No deadline: the configured timeout.
        assert_eq!(call_timeout(configured, None).ok(), Some(configured));

        // A configured timeout shorter than what is left is kept as it is.
        let far = Deadline::after(Duration::from_secs(10));
        let short = Duration::from_millis(250);
        assert_eq!(call_timeout(short, Some(far)).ok(), Some(short));

        // Otherwise the call gets all that is left: the deadline's own margin is the only one.
        for left in [Duration::from_millis(200), Duration::from_millis(20)] {
            let start = Instant::now();
            let timeout = call_timeout(configured, Some(Deadline::at(start + left))).expect("time left");
            let elapsed = start.elapsed();
            assert!(timeout <= left, "{timeout:?} of {left:?}");
            assert!(
                timeout + elapsed >= left,
                "{timeout:?} of {left:?} after {elapsed:?}"
            );
        }

        // A spent deadline fails before Redis is called.
        for spent in [Deadline::at(Instant::now()), Deadline::after(Duration::ZERO)] {
            assert!(matches!(
                call_timeout(configured, Some(spent)),
                Err(Error::DeadlineExceeded)
            ));
        }
    }
}
