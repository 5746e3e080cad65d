//! The feature-service's DogStatsD metrics, read from a real UDP socket while it serves a real Redis:
//! cache misses then hits per feature view, `features.lookups` with every status, row staleness, the
//! Redis round trip's latency, and never an entity id on any datagram.

use crate::common;

use common::*;
use feature_store::{CsvFile, MaterializeOptions, RedisConfig, Registry, layout};
use proto::features::v1::FieldStatus;
use testkit::redis::{RedisServer, Reply};

const FRESH: &str = "cust-fresh-4711";
const STALE: &str = "cust-stale-4712";
const MISSING: &str = "cust-missing-4713";
const DAY: f64 = 86_400.0;

/// `FRESH` now, `STALE` 9 days old (customer_profile's max age is 7 days) with a null cancellation rate.
async fn fill(redis: &RedisServer) {
    let files = vec![CsvFile::new(
        "customer_profile.csv",
        "customer_profile",
        format!(
            "customer_id,event_timestamp,account_age_days,cancellation_rate\n\
             {FRESH},2025-06-10T12:00:00Z,365,0.05\n\
             {STALE},2025-06-01T12:00:00Z,10,\n"
        ),
    )];
    let options = MaterializeOptions {
        rebase_timestamps: true,
        ..MaterializeOptions::default()
    };
    let registry = Registry::bundled().expect("registry");
    feature_store::materialize(&RedisConfig::new(redis.url()), &registry, &files, &options)
        .await
        .expect("materialize");

    // FRESH's cancellation rate becomes bytes that are no `feast.types.Value`: INVALID.
    let entity = layout::serialize_entity_key(&[("customer_id", &string(FRESH))]).expect("key");
    let key = layout::redis_key(&entity, "pricing");
    let view = registry.view("customer_profile").expect("view");
    let field = &view.features[view.feature_index("cancellation_rate").expect("feature")].field;
    let reply = redis
        .command_bytes(&[b"HSET", &key, field, b"\xff\xff\xff"])
        .expect("HSET");
    assert!(matches!(reply, Reply::Integer(_)), "{reply:?}");
}

const PROFILE: &str = "feature_view:customer_profile";

fn lookups(lines: &[String], status: &str) -> Option<String> {
    value_of(
        lines,
        "features.lookups",
        "c",
        &format!("{PROFILE},status:{status}"),
    )
}

/// Per value: FRESH present + invalid, STALE outside_max_age + null, MISSING not_found twice.
fn assert_lookups(lines: &[String]) {
    for (status, n) in [
        ("present", "1"),
        ("invalid", "1"),
        ("outside_max_age", "1"),
        ("null", "1"),
        ("not_found", "2"),
    ] {
        assert_eq!(lookups(lines, status).as_deref(), Some(n), "{status}: {lines:#?}");
    }
}

/// One sample per entity row with a row: FRESH about 0 s old, STALE 9 days; none for MISSING.
fn assert_staleness(lines: &[String]) {
    let mut ages = samples_of(lines, "features.staleness_s", PROFILE);
    ages.sort_by(f64::total_cmp);
    assert_eq!(ages.len(), 2, "{lines:#?}");
    assert!((0.0..60.0).contains(&ages[0]), "{ages:?}");
    assert!((9.0 * DAY..9.0 * DAY + 60.0).contains(&ages[1]), "{ages:?}");
}

fn assert_no_entity_ids(lines: &[String]) {
    for line in lines {
        // `name:value[:value...]|type|#tags`: the values are measurements, which may contain any digits
        // (a latency of 0.614711 ms is no entity id); names and tags must hold none.
        let (name, rest) = line.split_once(':').unwrap_or((line, ""));
        let tags = rest.split_once('|').map_or("", |(_, tags)| tags);
        for id in [FRESH, STALE, MISSING, "4711", "4712", "4713", "customer_id"] {
            assert!(!name.contains(id) && !tags.contains(id), "{id} in {line}");
        }
    }
}

#[tokio::test]
async fn cache_availability_staleness_and_redis_metrics() {
    let redis = RedisServer::start().expect("redis-server");
    fill(&redis).await;
    let agent = StatsdAgent::start(SERVICE);
    let server = Server::start_with_metrics(
        config(Some(&redis.url()), &["--cache-ttl-ms", "60000"]),
        agent.metrics.clone(),
    )
    .await;
    let mut client = server.client.clone();
    let req = request(
        &[
            "customer_profile:account_age_days",
            "customer_profile:cancellation_rate",
        ],
        &[("customer_id", &[FRESH, STALE, MISSING])],
    );

    // First request: every row is read from Redis, in one HGETALL pipeline.
    let response = client
        .get_online_features(req.clone())
        .await
        .expect("call")
        .into_inner();
    let status = |f: usize, r: usize| FieldStatus::try_from(response.results[f].statuses[r]).expect("status");
    assert_eq!(
        [
            status(0, 0),
            status(1, 0),
            status(0, 1),
            status(1, 1),
            status(0, 2)
        ],
        [
            FieldStatus::Present,
            FieldStatus::Invalid,
            FieldStatus::OutsideMaxAge,
            FieldStatus::NullValue,
            FieldStatus::NotFound
        ]
    );
    let first = agent.lines();
    assert_eq!(
        value_of(&first, "cache.feast.miss", "c", PROFILE).as_deref(),
        Some("3"),
        "{first:#?}"
    );
    assert_eq!(
        value_of(&first, "cache.feast.hit", "c", PROFILE),
        None,
        "{first:#?}"
    );
    assert_lookups(&first);
    assert_staleness(&first);
    let latency = samples_of(&first, "redis.command.latency_ms", "command:HGETALL");
    assert_eq!(latency.len(), 1, "one round trip: {first:#?}");
    assert!(latency[0] > 0.0 && latency[0] < 5_000.0, "{latency:?}");
    assert!(
        !first.iter().any(|l| l.starts_with("redis.command.errors")),
        "{first:#?}"
    );
    assert_no_entity_ids(&first);

    // Second request: every row comes from the cache, Redis is not called.
    client.get_online_features(req).await.expect("call");
    let second = agent.lines();
    assert_eq!(
        value_of(&second, "cache.feast.hit", "c", PROFILE).as_deref(),
        Some("3"),
        "{second:#?}"
    );
    assert_eq!(
        value_of(&second, "cache.feast.miss", "c", PROFILE),
        None,
        "{second:#?}"
    );
    assert_lookups(&second);
    assert_staleness(&second);
    assert!(
        !second.iter().any(|l| l.starts_with("redis.command.")),
        "no Redis round trip: {second:#?}"
    );
    assert_no_entity_ids(&second);

    server.stop().await.expect("clean shutdown");
    agent.metrics.shutdown(std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn the_embedded_store_reports_availability_without_cache_or_redis_metrics() {
    let agent = StatsdAgent::start(SERVICE);
    let server = Server::start_with_metrics(config(None, &[]), agent.metrics.clone()).await;
    let mut client = server.client.clone();
    client
        .get_online_features(request(
            &["zone_demand:available_drivers"],
            &[("zone_id", &["zone-nowhere-99"])],
        ))
        .await
        .expect("call");
    let lines = agent.lines();
    assert_eq!(
        value_of(
            &lines,
            "features.lookups",
            "c",
            "feature_view:zone_demand,status:not_found"
        )
        .as_deref(),
        Some("1"),
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("cache.") || l.starts_with("redis.") || l.contains("zone-nowhere")),
        "{lines:#?}"
    );
    server.stop().await.expect("clean shutdown");
}
