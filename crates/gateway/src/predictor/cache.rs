//! The CRAI cache: customer-risk predictions kept briefly per customer, model version and experiment
//! arm, so a customer quoted again within `CRAI_CACHE_TTL_MS` is answered without a feature fetch or a
//! model call.
//!
//! - Only full-information answers are kept: nothing degraded, nothing from a fallback.
//! - The key is the customer with the *resolved* version and the arm, so an answer never crosses a
//!   version or policy change: a customer moved to another arm or version misses. (A version folder
//!   replaced under the same name is the one case the key cannot see; the TTL bounds it.)
//! - Bounded: at most `CRAI_CACHE_CAPACITY` entries, least recently used out first; keys are 128-bit
//!   hashes, so a lookup allocates nothing.
//! - `cache.crai.hit` / `cache.crai.miss` count every lookup, by model.

use std::time::Duration;

use telemetry::catalog::{CACHE_CRAI_HIT, CACHE_CRAI_MISS};
use telemetry::{Metrics, Tag};

use super::{RISK_MULTIPLIER, RISK_SCORE, Scored};

/// A cached risk prediction: the two outputs an answer needs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cached {
    risk_score: f64,
    risk_multiplier: f64,
}

pub struct RiskCache {
    entries: Option<moka::sync::Cache<u128, Cached>>,
    metrics: Metrics,
}

impl RiskCache {
    /// A cache of `capacity` entries kept `ttl`; a zero `ttl` or `capacity` turns it off.
    pub fn new(ttl: Duration, capacity: u64, metrics: Metrics) -> Self {
        let entries = (!ttl.is_zero() && capacity > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build()
        });
        Self { entries, metrics }
    }

    pub fn is_enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The cached prediction of `customer` by `model` `version` in arm `variant`, counted as a hit or a
    /// miss; `None` when off (and then not counted).
    pub fn get(&self, model: &str, version: &str, variant: &str, customer: &str) -> Option<Scored> {
        let entries = self.entries.as_ref()?;
        let found = entries.get(&key(model, version, variant, customer));
        let counter = if found.is_some() {
            &CACHE_CRAI_HIT
        } else {
            &CACHE_CRAI_MISS
        };
        self.metrics.incr(counter, &[Tag::model(model)]);
        found.map(|cached| Scored {
            outputs: [
                (RISK_SCORE.to_owned(), cached.risk_score),
                (RISK_MULTIPLIER.to_owned(), cached.risk_multiplier),
            ]
            .into(),
            model: model.to_owned(),
            version: version.to_owned(),
            variant: variant.to_owned(),
            missing: Vec::new(),
            stale: Vec::new(),
            unavailable: Vec::new(),
            fallback: false,
        })
    }

    /// Keeps `scored`, the model's answer for `customer`, unless it is degraded or incomplete.
    pub fn put(&self, customer: &str, scored: &Scored) {
        let Some(entries) = &self.entries else { return };
        if scored.degraded() {
            return;
        }
        let (Some(&risk_score), Some(&risk_multiplier)) = (
            scored.outputs.get(RISK_SCORE),
            scored.outputs.get(RISK_MULTIPLIER),
        ) else {
            return;
        };
        let key = key(&scored.model, &scored.version, &scored.variant, customer);
        entries.insert(
            key,
            Cached {
                risk_score,
                risk_multiplier,
            },
        );
    }
}

/// xxh3-128 of the four parts, each ended by a 0 byte so no two splits of one string collide.
fn key(model: &str, version: &str, variant: &str, customer: &str) -> u128 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for part in [model, version, variant, customer] {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    hasher.digest128()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn scored(version: &str, variant: &str) -> Scored {
        Scored {
            outputs: HashMap::from([(RISK_SCORE.to_owned(), 0.3), (RISK_MULTIPLIER.to_owned(), 1.15)]),
            model: "customer_risk".into(),
            version: version.into(),
            variant: variant.into(),
            missing: Vec::new(),
            stale: Vec::new(),
            unavailable: Vec::new(),
            fallback: false,
        }
    }

    #[test]
    fn an_answer_is_served_again_for_its_version_and_arm_only() {
        let cache = RiskCache::new(Duration::from_secs(60), 100, Metrics::disabled());
        cache.put("C1", &scored("1", "control"));
        let hit = cache.get("customer_risk", "1", "control", "C1").expect("a hit");
        assert_eq!(hit.output(RISK_MULTIPLIER).expect("multiplier"), 1.15);
        assert_eq!((hit.version.as_str(), hit.variant.as_str()), ("1", "control"));
        assert!(!hit.degraded());
        for (version, variant, customer) in [
            ("2", "control", "C1"),
            ("1", "treatment", "C1"),
            ("1", "control", "C2"),
        ] {
            assert!(
                cache.get("customer_risk", version, variant, customer).is_none(),
                "{version} {variant} {customer}"
            );
        }
    }

    #[test]
    fn degraded_answers_are_not_kept_and_a_zero_ttl_turns_it_off() {
        let cache = RiskCache::new(Duration::from_secs(60), 100, Metrics::disabled());
        let mut degraded = scored("1", "control");
        degraded.missing.push("customer_profile:tenure_days".into());
        cache.put("C1", &degraded);
        assert!(cache.get("customer_risk", "1", "control", "C1").is_none());
        let off = RiskCache::new(Duration::ZERO, 100, Metrics::disabled());
        assert!(!off.is_enabled());
        off.put("C1", &scored("1", "control"));
        assert!(off.get("customer_risk", "1", "control", "C1").is_none());
    }

    #[test]
    fn keys_do_not_collide_across_splits() {
        assert_ne!(key("a", "b", "c", "d"), key("a", "bc", "", "d"));
        assert_eq!(key("a", "b", "c", "d"), key("a", "b", "c", "d"));
    }
}
