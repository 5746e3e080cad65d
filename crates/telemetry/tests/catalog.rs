//! Catalog invariants: names unique and well-formed, bounded tag keys, none of them identifying a
//! customer, request or quote; and every metric the design record requires
//! (`tests/fixtures/design_record_metrics.txt`, copied from it) sent or listed here as planned, with why.

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

/// The design record's metric list, copied from the record (the file's header says from where).
const RECORD: &str = include_str!("fixtures/design_record_metrics.txt");

/// Record metrics no code emits yet, each with why. An entry leaves this list when its metric joins the
/// catalog (a test below fails until it does).
const PLANNED_FROM_RECORD: &[(&str, &str)] = &[];

/// Names in the record's alert conditions that are no metric this platform sends, and what each is.
const NOT_SENT_BY_THE_PLATFORM: &[(&str, &str)] = &[
    (
        "redis.can_connect",
        "the Datadog agent's Redis integration service check",
    ),
    (
        "feature_drift.psi",
        "the record's short form of model.feature_drift.psi, which its metric list names",
    ),
    (
        "cache.hit_rate",
        "a ratio the monitor computes from the cache.*.hit and cache.*.miss counts",
    ),
    (
        "business.booking.conversion_rate",
        "a ratio Datadog computes from business.outcomes.count{booked:true} and business.quotes.count, \
         summed over every replica (a gauge per process would average wrongly across them)",
    ),
];

/// Record metrics the catalog sends as another kind than the record's type maps to, and why.
const KIND_CHANGED: &[(&str, MetricKind, &str)] = &[
    (
        "business.revenue.dynamic_pricing",
        MetricKind::Distribution,
        "each booked outcome's revenue is one sample, summed across replicas; a gauge would keep one \
         process's last value",
    ),
    (
        "business.customer_satisfaction.score",
        MetricKind::Distribution,
        "each score is one sample, averaged across replicas; a gauge would keep one process's last score",
    ),
];

/// One line of the record's list.
struct RecordMetric {
    name: &'static str,
    /// counter, timing, histogram, gauge, or `-` when the record gives none.
    record_type: &'static str,
    /// Where the record names it.
    source: String,
}

fn record() -> Vec<RecordMetric> {
    RECORD
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next().unwrap_or_default();
            let record_type = fields.next().unwrap_or_else(|| panic!("no type: {line}"));
            let source = fields.collect::<Vec<_>>().join(" ");
            assert!(!source.is_empty(), "no source: {line}");
            RecordMetric {
                name,
                record_type,
                source,
            }
        })
        .collect()
}

/// The catalog kind for the type the record gives. Its timings and histograms are distributions here,
/// so that Datadog computes percentiles across every replica (`|ms` and `|h` are summarised per agent).
fn catalog_kind(record_type: &str) -> Option<MetricKind> {
    match record_type {
        "counter" => Some(MetricKind::Count),
        "gauge" => Some(MetricKind::Gauge),
        "timing" | "histogram" => Some(MetricKind::Distribution),
        "-" => None,
        other => panic!("unknown type {other} in the record's list"),
    }
}

fn listed<'a>(list: &'a [(&str, &str)], name: &str) -> Option<&'a str> {
    list.iter().find(|(n, _)| *n == name).map(|(_, why)| *why)
}

#[test]
fn every_metric_of_the_design_record_is_in_the_catalog_or_planned() {
    let record = record();
    assert!(record.len() >= 20, "the record's list was cut short");
    let mut names = HashSet::new();
    let (mut missing, mut wrong_kind, mut still_planned) = (Vec::new(), Vec::new(), Vec::new());
    for metric in &record {
        assert!(names.insert(metric.name), "{} listed twice", metric.name);
        let planned = listed(PLANNED_FROM_RECORD, metric.name);
        let not_ours = listed(NOT_SENT_BY_THE_PLATFORM, metric.name);
        assert!(
            planned.is_none() || not_ours.is_none(),
            "{} is both planned and not ours",
            metric.name
        );
        match catalog::by_name(metric.name) {
            Some(def) => {
                let expected = KIND_CHANGED
                    .iter()
                    .find(|(name, _, _)| *name == metric.name)
                    .map(|(_, kind, _)| *kind)
                    .or_else(|| catalog_kind(metric.record_type));
                if let Some(expected) = expected.filter(|kind| *kind != def.kind) {
                    wrong_kind.push(format!(
                        "{}: the catalog sends a {}, expected a {} (the record says {})",
                        metric.name,
                        def.kind.as_str(),
                        expected.as_str(),
                        metric.record_type,
                    ));
                }
            }
            None if planned.is_some() || not_ours.is_some() => {
                if let Some(why) = planned {
                    still_planned.push((metric, why));
                }
            }
            None => missing.push(format!("{} ({})", metric.name, metric.source)),
        }
    }
    println!(
        "design record metrics still planned, {} of {}:",
        still_planned.len(),
        record.len()
    );
    for (metric, why) in &still_planned {
        match catalog::planned(metric.name) {
            Some(p) => println!("  {}: {why} (catalog::PLANNED: {})", metric.name, p.emitted_by),
            None => println!("  {}: {why} (not in catalog::PLANNED)", metric.name),
        }
    }
    assert!(
        missing.is_empty(),
        "the design record requires metrics that are neither in telemetry::catalog nor listed as \
         planned here: {missing:#?}"
    );
    assert!(wrong_kind.is_empty(), "{wrong_kind:#?}");
}

/// The lists above only shrink: an entry the catalog now sends, or that the record no longer names, is
/// an error until it is removed.
#[test]
fn the_planned_and_not_ours_lists_name_only_record_metrics_the_catalog_lacks() {
    let record = record();
    let in_record = |name: &str| record.iter().any(|m| m.name == name);
    let mut seen = HashSet::new();
    for (name, why) in PLANNED_FROM_RECORD.iter().chain(NOT_SENT_BY_THE_PLATFORM) {
        assert!(seen.insert(*name), "{name} listed twice");
        assert!(!why.is_empty(), "{name} says not why");
        assert!(in_record(name), "{name} is not in the design record's list");
        assert!(
            catalog::by_name(name).is_none(),
            "{name} is in the catalog now: remove it from the list"
        );
    }
    for (name, kind, why) in KIND_CHANGED {
        assert!(!why.is_empty(), "{name} says not why");
        assert_eq!(
            catalog::by_name(name).map(|def| def.kind),
            Some(*kind),
            "{name}: the catalog does not send it as KIND_CHANGED says"
        );
        let metric = record
            .iter()
            .find(|m| m.name == *name)
            .unwrap_or_else(|| panic!("{name} is not in the design record's list"));
        assert_ne!(
            catalog_kind(metric.record_type),
            Some(*kind),
            "{name}: the catalog's kind is the record's now: remove it from KIND_CHANGED"
        );
    }
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
    metrics.incr(&catalog::API_PREDICT_REQUESTS, &[Tag::feature("risk_score")]);
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
