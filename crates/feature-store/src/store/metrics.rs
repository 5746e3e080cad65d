//! What a `GetOnlineFeatures` read tells the metrics, all tagged by `feature_view` only (never an entity):
//!
//! - `cache.feast.hit` / `cache.feast.miss`: one per cache lookup, i.e. per distinct entity key and view
//!   of the request (a hit skips Redis for that view's row).
//! - `cache.feast.stale_served`: one per entity key and view whose row came from the cache past its TTL
//!   because Redis could not be read (stale-if-error, see `cache`).
//! - `features.lookups{status}`: one per value served, i.e. per requested feature and entity row, with
//!   its status (`present`, `not_found`, `outside_max_age`, `null`, `invalid`, `unavailable`):
//!   availability dashboards divide `status:present` by the total, and a view with many features weighs
//!   as much as it is used.
//! - `features.staleness_s`: one sample per entity row and view whose row has an event time (the age
//!   of what was served, whether or not it is past the view's max age).
//!
//! Counts are tallied in the request and recorded once per view and outcome, so the metrics cost of a
//! request is a handful of aggregator calls (about 40 ns each) whatever its number of values; only the
//! staleness samples grow with the entity rows, since a distribution needs every sample.

use std::time::SystemTime;

use prost_types::Timestamp;
use proto::features::v1::FieldStatus;
use telemetry::catalog::{
    CACHE_FEAST_HIT, CACHE_FEAST_MISS, CACHE_FEAST_STALE_SERVED, FEATURES_LOOKUPS, FEATURES_STALENESS_S,
};
use telemetry::{LookupStatus, Metrics, Tag};

use super::Rows;
use crate::csv_rows::timestamp_nanos;
use crate::registry::FeatureView;
use crate::request::Plan;

/// Cache hits and misses per view (index in the registry) of one request.
pub(crate) struct CacheTally {
    /// `[hits, misses]` per view.
    views: Vec<[u64; 2]>,
}

impl CacheTally {
    pub fn new(views: usize) -> Self {
        Self {
            views: vec![[0; 2]; views],
        }
    }

    #[inline]
    pub fn record(&mut self, view: usize, hit: bool) {
        if let Some(tally) = self.views.get_mut(view) {
            tally[usize::from(!hit)] += 1;
        }
    }

    pub fn emit(&self, metrics: &Metrics, views: &[FeatureView]) {
        for (view, [hits, misses]) in views.iter().zip(&self.views) {
            let tags = [Tag::feature_view(&view.name)];
            if *hits > 0 {
                metrics.count(&CACHE_FEAST_HIT, *hits, &tags);
            }
            if *misses > 0 {
                metrics.count(&CACHE_FEAST_MISS, *misses, &tags);
            }
        }
    }
}

/// Rows served stale per view (index in the registry) of one request.
pub(crate) struct StaleTally {
    views: Vec<u64>,
}

impl StaleTally {
    pub fn new(views: usize) -> Self {
        Self {
            views: vec![0; views],
        }
    }

    #[inline]
    pub fn record(&mut self, view: usize) {
        if let Some(count) = self.views.get_mut(view) {
            *count += 1;
        }
    }

    pub fn emit(&self, metrics: &Metrics, views: &[FeatureView]) {
        for (view, &n) in views.iter().zip(&self.views) {
            if n > 0 {
                metrics.count(&CACHE_FEAST_STALE_SERVED, n, &[Tag::feature_view(&view.name)]);
            }
        }
    }
}

/// The statuses `features.lookups` counts, in tally order.
const STATUSES: [LookupStatus; 6] = [
    LookupStatus::Present,
    LookupStatus::NotFound,
    LookupStatus::OutsideMaxAge,
    LookupStatus::Null,
    LookupStatus::Invalid,
    LookupStatus::Unavailable,
];

/// Values served per view and status in one response.
pub(crate) struct LookupTally {
    views: Vec<[u64; STATUSES.len()]>,
}

impl LookupTally {
    pub fn new(views: usize) -> Self {
        Self {
            views: vec![[0; STATUSES.len()]; views],
        }
    }

    #[inline]
    pub fn record(&mut self, view: usize, status: FieldStatus) {
        let slot = match status {
            FieldStatus::Present => 0,
            FieldStatus::NotFound => 1,
            FieldStatus::OutsideMaxAge => 2,
            FieldStatus::NullValue => 3,
            // Never produced by the store: counted as invalid rather than lost.
            FieldStatus::Invalid | FieldStatus::Unspecified => 4,
            FieldStatus::Unavailable => 5,
        };
        if let Some(tally) = self.views.get_mut(view) {
            tally[slot] += 1;
        }
    }

    pub fn emit(&self, metrics: &Metrics, views: &[FeatureView]) {
        for (view, counts) in views.iter().zip(&self.views) {
            for (status, &n) in STATUSES.iter().zip(counts) {
                if n > 0 {
                    metrics.count(
                        &FEATURES_LOOKUPS,
                        n,
                        &[Tag::feature_view(&view.name), Tag::lookup_status(*status)],
                    );
                }
            }
        }
    }
}

/// `features.staleness_s`: for each requested view and entity row whose row has an event time, its age at
/// `now` in seconds (0 for event times in the future: clock skew between writer and reader).
pub(super) fn record_staleness(
    metrics: &Metrics,
    views: &[FeatureView],
    plan: &Plan,
    rows: &Rows,
    now: SystemTime,
) {
    let now = timestamp_nanos(&Timestamp::from(now));
    for (v, row_keys) in plan.row_keys.iter().enumerate() {
        let (Some(row_keys), Some(view)) = (row_keys, views.get(v)) else {
            continue;
        };
        let tags = [Tag::feature_view(&view.name)];
        for &k in row_keys.iter() {
            let event = rows
                .get(k, v)
                .and_then(Option::as_deref)
                .and_then(|row| row.event_timestamp.as_ref());
            if let Some(event) = event {
                let age_ns = (now - timestamp_nanos(event)).max(0);
                metrics.distribution(&FEATURES_STALENESS_S, age_ns as f64 / 1e9, &tags);
            }
        }
    }
}
