//! Catalog invariants: the design record's names, unique, well-formed, bounded tag keys, none of them
//! identifying a customer, request or quote.

use std::collections::HashSet;

use telemetry::catalog::{self, CATALOG, EVENTS, FORBIDDEN_TAG_KEYS, MAX_TAGS, MetricKind, PLANNED, TagKey};

#[test]
fn names_are_unique_and_well_formed() {
    let mut seen = HashSet::new();
    for metric in CATALOG {
        assert!(seen.insert(metric.name), "duplicate {}", metric.name);
        let valid = metric.name.len() <= 200
            && metric.name.starts_with(|c: char| c.is_ascii_lowercase())
            && metric
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        assert!(valid, "bad metric name {}", metric.name);
        assert!(
            !metric.description.is_empty(),
            "{} has no description",
            metric.name
        );
        assert!(catalog::by_name(metric.name).is_some());
    }
}

#[test]
fn tag_keys_are_bounded_and_never_identify_a_person_or_request() {
    for key in TagKey::ALL {
        assert!(
            !FORBIDDEN_TAG_KEYS.contains(&key.as_str()),
            "{key:?} may not be a tag key"
        );
    }
    for metric in CATALOG {
        assert!(metric.tags.len() <= MAX_TAGS, "{} has too many tags", metric.name);
        let unique: HashSet<_> = metric.tags.iter().collect();
        assert_eq!(
            unique.len(),
            metric.tags.len(),
            "{} repeats a tag key",
            metric.name
        );
        for reserved in ["env", "service", "version", "host"] {
            assert!(
                metric.tags.iter().all(|k| k.as_str() != reserved),
                "{} redefines {reserved}",
                metric.name
            );
        }
    }
}

#[test]
fn the_design_records_metrics_are_all_there_with_their_kinds() {
    use MetricKind::*;
    let required = [
        ("api.predict.requests", Count),
        ("api.predict.errors", Count),
        ("api.predict.within_sla", Count),
        ("api.predict.latency_ms", Distribution),
        ("api.predict.degraded", Count),
        ("api.predict.feature_fetch_ms", Distribution),
        ("api.predict.inference_ms", Distribution),
        ("model.crai.risk_score", Distribution),
        ("model.crai.risk_multiplier", Distribution),
        ("model.crai.confidence", Distribution),
        ("model.demand.surge_factor", Distribution),
        ("model.predictions.count", Count),
        ("model.feature_drift.psi", Gauge),
        ("model.versions.loaded", Gauge),
        ("model.inference.batch_rows", Distribution),
        ("cache.feast.hit", Count),
        ("cache.feast.miss", Count),
        ("cache.feast.stale_served", Count),
        ("cache.model_metadata.hit", Count),
        ("cache.model_metadata.miss", Count),
        ("features.lookups", Count),
        ("features.staleness_s", Distribution),
        ("redis.command.latency_ms", Distribution),
        ("redis.command.errors", Count),
        ("grpc.server.shed", Count),
        ("downstream.retries", Count),
        ("circuit_breaker.state", Gauge),
        ("circuit_breaker.rejected", Count),
        ("business.quotes.count", Count),
        ("business.outcomes.count", Count),
        ("business.revenue.dynamic_pricing", Distribution),
        ("business.booking.conversion_rate", Gauge),
        ("batch_job.runs", Count),
        ("batch_job.status", Gauge),
        ("batch_job.duration_s", Distribution),
        ("batch_job.rows", Count),
        ("telemetry.dropped", Count),
    ];
    for (name, kind) in required {
        let metric = catalog::by_name(name).unwrap_or_else(|| panic!("{name} missing from the catalog"));
        assert_eq!(metric.kind, kind, "{name}");
    }
    assert_eq!(
        CATALOG.len(),
        required.len(),
        "every catalog entry is accounted for here"
    );
}

#[test]
fn latency_and_score_metrics_are_distributions() {
    for metric in CATALOG {
        if metric.name.ends_with("_ms")
            || metric.name.ends_with("_s")
            || metric.name.starts_with("model.crai")
        {
            assert_eq!(metric.kind, MetricKind::Distribution, "{}", metric.name);
        }
    }
}

/// A tag key the catalog does not allow for a metric is a bug at the call site: debug builds stop.
#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "is not allowed on api.predict.requests")]
fn a_tag_key_not_allowed_for_the_metric_is_rejected() {
    use telemetry::{DogStatsdUrl, Metrics, MetricsOptions, ServiceTags, Tag};
    let tags = ServiceTags {
        env: "t".into(),
        service: "s".into(),
        version: "v".into(),
    };
    let target = DogStatsdUrl::Udp {
        host: "127.0.0.1".into(),
        port: 9,
    };
    let metrics = Metrics::start(MetricsOptions::new(target, tags)).expect("start");
    metrics.incr(&catalog::API_PREDICT_REQUESTS, &[Tag::model("risk")]);
}

#[test]
fn planned_metrics_and_events_are_well_formed_and_apart_from_the_catalog() {
    let mut seen: HashSet<&str> = CATALOG.iter().map(|m| m.name).collect();
    for planned in PLANNED {
        let metric = &planned.metric;
        assert!(
            seen.insert(metric.name),
            "{} is both emitted and planned, or planned twice",
            metric.name
        );
        assert!(
            !planned.emitted_by.is_empty(),
            "{} does not say what will emit it",
            metric.name
        );
        assert!(metric.tags.len() <= MAX_TAGS, "{}", metric.name);
        assert!(catalog::by_name(metric.name).is_none() && catalog::planned(metric.name).is_some());
    }
    let mut names = HashSet::new();
    for event in EVENTS {
        assert!(names.insert(event.name), "duplicate event {}", event.name);
        assert!(
            event.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "event names are snake_case tag values: {}",
            event.name
        );
        assert!(
            !event.tags.contains(&TagKey::Event),
            "{} repeats the event tag",
            event.name
        );
    }
}

/// Every tag key that closes its set of values lists exactly what the code sends (checked for `status`
/// and `fault` in the crate's unit tests); the checker of dashboards and monitors relies on it.
#[test]
fn closed_tag_values_are_snake_case() {
    for key in TagKey::ALL {
        for value in key.closed_values().unwrap_or_default() {
            assert!(
                value.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{key:?}: {value}"
            );
        }
    }
}
