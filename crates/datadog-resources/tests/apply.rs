//! `apply` against a stand-in for Datadog's API: a first run creates everything, a second changes
//! nothing, a dry run writes nothing, one edited file is one update, Datadog's monitor validation and a
//! wrong key stop the run early, percentiles are turned on without narrowing tags, and the logs index
//! order puts ours first while keeping the organisation's other indexes.

use crate::stand_in;

use datadog_resources::{
    apply::{self, ApplyError, ApplyOptions, Counts, Desired, Summary},
    resources::ResourceSet,
};
use serde_json::{Value, json};
use stand_in::{
    API_KEY, APP_KEY, StandIn,
    fixtures::{BURN_RATE_FILE, ERRORS_FILE, LATENCY, RUNBOOKS, edit, fixtures, load, repo},
};

fn options(stand_in: &StandIn, dry_run: bool) -> ApplyOptions {
    ApplyOptions {
        api_url: stand_in.url().to_owned(),
        api_key: API_KEY.to_owned(),
        app_key: APP_KEY.to_owned(),
        dry_run,
        runbooks_url: RUNBOOKS.to_owned(),
    }
}

/// Runs apply; returns its result and what it printed.
fn run_with(
    options: &ApplyOptions,
    set: &ResourceSet,
    percentiles: &[&str],
) -> (Result<Summary, ApplyError>, String) {
    let desired = Desired {
        set,
        percentile_metrics: percentiles.iter().map(|m| m.to_string()).collect(),
    };
    let mut out = Vec::new();
    let result = apply::run(options, &desired, &mut out);
    (result, String::from_utf8(out).expect("UTF-8 plan"))
}

fn run(stand_in: &StandIn, set: &ResourceSet, dry_run: bool) -> (Summary, String) {
    let (result, out) = run_with(&options(stand_in, dry_run), set, &[LATENCY]);
    match result {
        Ok(summary) => (summary, out),
        Err(error) => panic!("apply failed: {error}\n{out}"),
    }
}

fn named<'a>(objects: &'a [Value], field: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o[field] == name)
        .unwrap_or_else(|| panic!("no object with {field} {name:?} in {objects:#?}"))
}

fn seed_other_team(stand_in: &StandIn) -> Value {
    stand_in.seed_index(json!({"name": "main", "filter": {"query": "*"}}));
    stand_in.seed_monitor(json!({"name": "[search] Error rate high", "type": "query alert",
        "query": "sum(last_5m):sum:search.errors{*}.as_count() > 10", "message": "search team"}))
}

const fn created(n: usize) -> Counts {
    Counts {
        created: n,
        updated: 0,
        unchanged: 0,
    }
}

const fn unchanged(n: usize) -> Counts {
    Counts {
        created: 0,
        updated: 0,
        unchanged: n,
    }
}

#[test]
fn first_run_creates_everything_and_fills_in_placeholders() {
    let stand_in = StandIn::start();
    let other_monitor = seed_other_team(&stand_in);
    let root = repo();
    let (summary, out) = run(&stand_in, &load(root.path()), false);

    assert_eq!(summary.logs_indexes, created(2), "{out}");
    assert_eq!(summary.slos, created(1));
    assert_eq!(summary.monitors, created(2));
    assert_eq!(summary.dashboards, created(1));
    assert!(summary.index_order_changed);
    assert_eq!(
        (summary.percentiles_changed, summary.percentiles_unchanged),
        (1, 0)
    );
    assert!(
        out.contains(
            "+ create monitor deploy/datadog/monitors/error-rate.json \"[pricing] Error rate high\""
        ),
        "{out}"
    );

    let org = stand_in.org();
    let slo_id = named(&org.slos, "name", "Pricing availability")["id"]
        .as_str()
        .expect("SLO id")
        .to_owned();
    assert!(
        slo_id.len() == 32 && slo_id.chars().all(|c| c.is_ascii_hexdigit()),
        "{slo_id}"
    );
    let burn = named(&org.monitors, "name", "[pricing] Availability SLO burning fast");
    assert_eq!(
        burn["query"],
        format!("burn_rate(\"{slo_id}\").over(\"30d\").long_window(\"1h\").short_window(\"5m\") > 14.4")
    );
    assert!(
        burn["message"]
            .as_str()
            .expect("message")
            .contains(&format!("{RUNBOOKS}/availability.md"))
    );
    let errors = named(&org.monitors, "name", "[pricing] Error rate high");
    assert!(
        errors["message"]
            .as_str()
            .expect("message")
            .contains(&format!("{RUNBOOKS}/error-rate.md"))
    );
    assert!(errors["id"].is_u64(), "monitor ids are integers");
    assert_eq!(
        named(&org.monitors, "name", "[search] Error rate high"),
        &other_monitor,
        "other monitor touched"
    );
    assert_eq!(org.monitors.len(), 3);

    let dashboard = named(&org.dashboards, "title", "Pricing overview");
    assert_eq!(dashboard["widgets"][2]["definition"]["slo_id"], slo_id.as_str());
    assert_eq!(
        named(&org.indexes, "name", "main"),
        &json!({"name": "main", "filter": {"query": "*"},
        "is_rate_limited": false, "num_retention_days": 15, "exclusion_filters": []})
    );
    assert_eq!(org.index_order, ["pricing-debug", "pricing", "main"]);
    drop(org);
    let config = stand_in.tag_config(LATENCY).expect("tag configuration created");
    assert_eq!(config["attributes"]["include_percentiles"], true);
}

#[test]
fn second_run_changes_nothing() {
    let stand_in = StandIn::start();
    seed_other_team(&stand_in);
    let root = repo();
    let set = load(root.path());
    run(&stand_in, &set, false);
    stand_in.clear_requests();

    let (summary, out) = run(&stand_in, &set, false);
    assert_eq!(summary.logs_indexes, unchanged(2), "{out}");
    assert_eq!(summary.slos, unchanged(1), "{out}");
    assert_eq!(summary.monitors, unchanged(2), "{out}");
    assert_eq!(summary.dashboards, unchanged(1), "{out}");
    assert!(!summary.index_order_changed);
    assert_eq!(
        (summary.percentiles_changed, summary.percentiles_unchanged),
        (0, 1)
    );
    assert_eq!(summary.changes(), 0);
    assert_eq!(stand_in.writes(), Vec::<String>::new(), "{out}");
    let validations = stand_in
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/validate") && r.method == "POST")
        .count();
    assert_eq!(
        validations, 2,
        "existing monitors are validated through /api/v1/monitor/{{id}}/validate"
    );
    assert!(!out.contains("~ update") && !out.contains("+ create"), "{out}");
}

#[test]
fn dry_run_on_an_empty_organisation_writes_nothing_and_shows_the_plan() {
    let stand_in = StandIn::start();
    let root = repo();
    let (summary, out) = run(&stand_in, &load(root.path()), true);

    for request in stand_in.requests() {
        let validation = request.method == "POST" && request.path == "/api/v1/monitor/validate";
        assert!(
            request.method == "GET" || validation,
            "dry run sent {}",
            request.line()
        );
    }
    let org = stand_in.org();
    assert!(
        org.slos.is_empty() && org.monitors.is_empty() && org.dashboards.is_empty() && org.indexes.is_empty()
    );
    drop(org);
    assert!(stand_in.tag_config(LATENCY).is_none());

    assert_eq!(summary.monitors, created(2));
    assert!(summary.dry_run && summary.index_order_changed);
    assert!(
        out.contains("+ create SLO deploy/datadog/slos/availability.json \"Pricing availability\""),
        "{out}"
    );
    assert!(
        out.contains("+ create dashboard deploy/datadog/dashboards/overview.json \"Pricing overview\""),
        "{out}"
    );
    assert!(
        out.contains("+++ deploy/datadog/monitors/error-rate.json"),
        "{out}"
    );
    assert!(out.contains(&format!("{RUNBOOKS}/error-rate.md")), "{out}");
    assert!(
        out.contains("<id of slos/availability.json once created>"),
        "{out}"
    );
    assert!(
        out.contains(&format!("({BURN_RATE_FILE}) is not validated")),
        "{out}"
    );
    assert!(
        out.contains("+ create metric tag configuration pricing.request.duration"),
        "{out}"
    );
    assert!(out.contains("Dry run, nothing written: 6 to create"), "{out}");
    // The burn-rate monitor cannot be validated before its SLO exists; the other one is.
    let validated: Vec<_> = stand_in
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(validated.len(), 1);
    assert_eq!(validated[0].body["name"], "[pricing] Error rate high");
}

#[test]
fn editing_one_file_updates_exactly_that_resource() {
    let stand_in = StandIn::start();
    let root = repo();
    run(&stand_in, &load(root.path()), false);
    edit(root.path(), ERRORS_FILE, |monitor| {
        let thresholds = monitor["options"]["thresholds"]
            .as_object_mut()
            .expect("thresholds");
        thresholds.remove("warning");
    });
    stand_in.clear_requests();

    let (dry, plan) = run(&stand_in, &load(root.path()), true);
    assert_eq!(
        dry.monitors,
        Counts {
            created: 0,
            updated: 1,
            unchanged: 1
        },
        "{plan}"
    );
    assert!(
        plan.contains("-      \"warning\": 20"),
        "the removed threshold shows in the diff:\n{plan}"
    );
    assert_eq!(stand_in.writes(), Vec::<String>::new());

    let (summary, out) = run(&stand_in, &load(root.path()), false);
    assert_eq!(
        summary.monitors,
        Counts {
            created: 0,
            updated: 1,
            unchanged: 1
        },
        "{out}"
    );
    assert_eq!(summary.changes(), 1, "{out}");
    assert!(out.contains(&format!("~ update monitor {ERRORS_FILE}")), "{out}");
    let org = stand_in.org();
    let monitor = named(&org.monitors, "name", "[pricing] Error rate high");
    assert_eq!(
        stand_in_writes(&org.requests),
        [format!("PUT /api/v1/monitor/{}", monitor["id"])]
    );
    assert_eq!(monitor["options"]["thresholds"], json!({"critical": 50.0}));
}

fn stand_in_writes(requests: &[stand_in::Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.is_write())
        .map(stand_in::Request::line)
        .collect()
}

#[test]
fn a_monitor_datadog_rejects_stops_the_run_before_anything_is_written() {
    let stand_in = StandIn::start();
    let root = repo();
    edit(root.path(), ERRORS_FILE, |monitor| monitor["query"] = json!(""));
    let (result, out) = run_with(&options(&stand_in, false), &load(root.path()), &[]);

    let error = result.expect_err("an empty query is invalid");
    assert!(matches!(error, ApplyError::InvalidMonitor { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(ERRORS_FILE) && message.contains("[pricing] Error rate high"),
        "{message}"
    );
    assert!(
        message.contains("POST /api/v1/monitor/validate returned 400"),
        "{message}"
    );
    assert!(
        message.contains("The value provided for parameter 'query' is invalid"),
        "{message}"
    );
    assert_eq!(stand_in.writes(), Vec::<String>::new(), "{out}");
}

#[test]
fn a_rejected_monitor_that_needs_a_new_slo_stops_before_any_monitor_is_written() {
    let stand_in = StandIn::start();
    let root = repo();
    edit(root.path(), BURN_RATE_FILE, |monitor| {
        monitor["type"] = json!("slo burn alert")
    });
    let (result, _) = run_with(&options(&stand_in, false), &load(root.path()), &[]);

    let message = result.expect_err("not a monitor type").to_string();
    assert!(
        message.contains(BURN_RATE_FILE) && message.contains("Invalid monitor type"),
        "{message}"
    );
    // The SLO had to be created to validate the monitor that uses its id; no monitor was written.
    assert_eq!(stand_in.org().slos.len(), 1);
    assert!(
        stand_in.writes().iter().all(|w| !w.contains("/api/v1/monitor")),
        "{:?}",
        stand_in.writes()
    );
    assert!(stand_in.org().monitors.is_empty());
}

#[test]
fn a_wrong_api_key_fails_at_validate_with_a_clear_message() {
    let stand_in = StandIn::start();
    let root = repo();
    let options = ApplyOptions {
        api_key: "not-the-key".into(),
        ..options(&stand_in, false)
    };
    let (result, _) = run_with(&options, &load(root.path()), &[]);

    let error = result.expect_err("wrong key");
    assert!(
        matches!(error, ApplyError::ApiKey { status: 403, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("DD_API_KEY") && message.contains(stand_in.url()),
        "{message}"
    );
    assert!(
        message.contains("GET /api/v1/validate returned 403 (Forbidden)"),
        "{message}"
    );
    let lines: Vec<String> = stand_in.requests().iter().map(stand_in::Request::line).collect();
    assert_eq!(lines, ["GET /api/v1/validate"]);
}

#[test]
fn percentiles_are_created_patched_or_left_alone_and_tags_never_narrowed() {
    let stand_in = StandIn::start();
    stand_in.seed_tag_config(
        "pricing.feature.lookup",
        json!({"metric_type": "distribution",
        "include_percentiles": false, "tags": ["env", "service"], "exclude_tags_mode": false}),
    );
    stand_in.seed_tag_config(
        "pricing.model.latency",
        json!({"metric_type": "distribution",
        "include_percentiles": true, "tags": ["env"]}),
    );
    let before_on = stand_in.tag_config("pricing.model.latency");
    let set = ResourceSet::default();
    let metrics = [LATENCY, "pricing.feature.lookup", "pricing.model.latency"];
    let (result, out) = run_with(&options(&stand_in, false), &set, &metrics);
    let summary = result.expect("apply");

    assert_eq!(
        (summary.percentiles_changed, summary.percentiles_unchanged),
        (2, 1),
        "{out}"
    );
    let created = stand_in.tag_config(LATENCY).expect("created");
    assert_eq!(created["attributes"]["include_percentiles"], true);
    // Excluding no tag keeps every tag queryable.
    assert_eq!(created["attributes"]["exclude_tags_mode"], true);
    assert_eq!(created["attributes"]["tags"], json!([]));
    let patched = stand_in.tag_config("pricing.feature.lookup").expect("patched");
    assert_eq!(patched["attributes"]["include_percentiles"], true);
    assert_eq!(patched["attributes"]["tags"], json!(["env", "service"]));
    assert_eq!(patched["attributes"]["exclude_tags_mode"], false);
    assert_eq!(stand_in.tag_config("pricing.model.latency"), before_on);

    let patch = stand_in
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .expect("a PATCH");
    assert_eq!(
        patch.body["data"]["attributes"],
        json!({"include_percentiles": true}),
        "only percentiles change"
    );
    assert_eq!(
        stand_in.writes(),
        [
            "POST /api/v2/metrics/pricing.request.duration/tags",
            "PATCH /api/v2/metrics/pricing.feature.lookup/tags"
        ]
    );

    stand_in.clear_requests();
    let (again, _) = run_with(&options(&stand_in, false), &set, &metrics);
    assert_eq!(again.expect("apply").percentiles_unchanged, 3);
    assert_eq!(stand_in.writes(), Vec::<String>::new());
}

#[test]
fn index_order_puts_ours_first_and_keeps_the_others_after_them() {
    let stand_in = StandIn::start();
    stand_in.seed_index(json!({"name": "main", "filter": {"query": "*"}}));
    stand_in.seed_index(
        json!({"name": "pricing", "filter": {"query": "service:pricing"}, "num_retention_days": 15,
        "daily_limit": 50000000}),
    );
    stand_in.seed_index(json!({"name": "audit", "filter": {"query": "source:audit"}}));
    let root = repo();
    let (summary, out) = run(&stand_in, &load(root.path()), false);

    assert_eq!(
        summary.logs_indexes,
        Counts {
            created: 1,
            updated: 0,
            unchanged: 1
        },
        "{out}"
    );
    assert!(
        out.contains("~ update logs index order deploy/datadog/logs-index-order.json"),
        "{out}"
    );
    let org = stand_in.org();
    assert_eq!(org.index_order, ["pricing-debug", "pricing", "main", "audit"]);
    let put = org
        .requests
        .iter()
        .find(|r| r.path == "/api/v1/logs/config/index-order" && r.method == "PUT");
    assert_eq!(
        put.expect("order written").body,
        json!({"index_names": ["pricing-debug", "pricing", "main", "audit"]})
    );
    assert_eq!(org.indexes.len(), 4);
}

#[test]
fn a_logs_index_update_sends_the_file_without_its_name() {
    let stand_in = StandIn::start();
    let root = repo();
    run(&stand_in, &load(root.path()), false);
    edit(root.path(), "deploy/datadog/logs-indexes/pricing.json", |index| {
        index["num_retention_days"] = json!(30)
    });
    stand_in.clear_requests();

    let (summary, out) = run(&stand_in, &load(root.path()), false);
    assert_eq!(
        summary.logs_indexes,
        Counts {
            created: 0,
            updated: 1,
            unchanged: 1
        },
        "{out}"
    );
    let put = stand_in
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .expect("an update");
    assert_eq!(put.path, "/api/v1/logs/config/indexes/pricing");
    assert_eq!(
        put.body,
        json!({"filter": {"query": "service:pricing"}, "num_retention_days": 30, "daily_limit": 50000000})
    );
    assert_eq!(
        named(&stand_in.org().indexes, "name", "pricing")["num_retention_days"],
        30
    );
}

#[test]
fn two_slos_with_the_same_name_are_an_error_naming_both() {
    let stand_in = StandIn::start();
    let root = repo();
    let slo = fixtures()
        .into_iter()
        .find(|(f, _)| *f == "slos/availability.json")
        .expect("SLO fixture")
        .1;
    let first = stand_in.seed_slo(slo.clone())["data"][0]["id"].clone();
    let second = stand_in.seed_slo(slo)["data"][0]["id"].clone();
    let (result, _) = run_with(&options(&stand_in, false), &load(root.path()), &[]);

    let message = result.expect_err("duplicate").to_string();
    assert!(
        message.contains("deploy/datadog/slos/availability.json"),
        "{message}"
    );
    for id in [first, second] {
        assert!(message.contains(id.as_str().expect("id")), "{message}");
    }
    assert_eq!(stand_in.writes(), Vec::<String>::new());
}

#[test]
fn a_rate_limited_call_is_retried_once_after_the_reset() {
    let stand_in = StandIn::start();
    stand_in.org().rate_limit_once.push("/api/v1/validate".into());
    let (result, out) = run_with(&options(&stand_in, false), &ResourceSet::default(), &[]);
    result.unwrap_or_else(|e| panic!("{e}\n{out}"));
    let lines: Vec<String> = stand_in.requests().iter().map(stand_in::Request::line).collect();
    assert_eq!(lines, ["GET /api/v1/validate", "GET /api/v1/validate"]);
}

#[test]
fn a_placeholder_without_a_value_is_an_error_naming_the_file() {
    let stand_in = StandIn::start();
    let root = repo();
    edit(root.path(), ERRORS_FILE, |monitor| {
        monitor["message"] = json!("Latency: ${slo.latency}")
    });
    let (result, _) = run_with(&options(&stand_in, false), &load(root.path()), &[]);

    let message = result.expect_err("no such SLO file").to_string();
    assert!(
        message.contains(ERRORS_FILE) && message.contains("[pricing] Error rate high"),
        "{message}"
    );
    assert!(
        message.contains("${slo.latency}") && message.contains("slos/latency.json"),
        "{message}"
    );
    assert_eq!(stand_in.writes(), Vec::<String>::new());
}

#[test]
fn monitors_and_dashboards_are_found_by_exact_name_across_pages() {
    let stand_in = StandIn::start();
    // The name filter is a substring match: all of these come back for "[pricing] Error rate high".
    for region in 0..150 {
        stand_in.seed_monitor(
            json!({"name": format!("[pricing] Error rate high in region {region}"),
            "type": "query alert", "query": "sum(last_5m):sum:pricing.errors{*}.as_count() > 1"}),
        );
    }
    for n in 0..120 {
        stand_in.seed_dashboard(
            json!({"title": format!("Team dashboard {n}"), "layout_type": "ordered",
            "widgets": []}),
        );
    }
    let root = repo();
    let set = load(root.path());
    let (first, out) = run(&stand_in, &set, false);
    assert_eq!(
        (first.monitors, first.dashboards),
        (created(2), created(1)),
        "{out}"
    );
    stand_in.clear_requests();

    let (second, out) = run(&stand_in, &set, false);
    assert_eq!(
        (second.monitors, second.dashboards),
        (unchanged(2), unchanged(1)),
        "{out}"
    );
    assert_eq!(stand_in.writes(), Vec::<String>::new());
    let asked = |path: &str, key: &str, value: &str| {
        stand_in
            .requests()
            .iter()
            .any(|r| r.path == path && r.query.iter().any(|(k, v)| k == key && v == value))
    };
    assert!(
        asked("/api/v1/monitor", "page", "1"),
        "the second page of monitors was read"
    );
    assert!(
        asked("/api/v1/dashboard", "start", "100"),
        "the second page of dashboards was read"
    );
    assert_eq!(stand_in.org().monitors.len(), 152);
}

#[test]
fn an_unreachable_api_is_reported_with_the_call_that_failed() {
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let options = ApplyOptions {
        api_url: format!("http://{address}"),
        api_key: API_KEY.into(),
        app_key: APP_KEY.into(),
        dry_run: true,
        runbooks_url: RUNBOOKS.into(),
    };
    let (result, _) = run_with(&options, &ResourceSet::default(), &[]);
    let error = result.expect_err("nothing listens there");
    assert!(matches!(error, ApplyError::Transport { .. }), "{error:?}");
    assert!(error.to_string().contains("GET /api/v1/validate"), "{error}");
}

/// The repository's own files, as the checker passes them: a dry run on an empty organisation writes
/// nothing, the first run creates every resource (each monitor accepted by the validate endpoint), and a
/// second run changes nothing.
#[test]
fn the_repository_applies_and_a_second_run_changes_nothing() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (set, report) = datadog_resources::check::check_repository(&root);
    assert!(report.is_ok(), "{:#?}", report.problems);
    let percentiles: Vec<&str> = report.percentile_metrics.iter().map(String::as_str).collect();
    let stand_in = StandIn::start();
    let count = |kind| set.of_kind(kind).count();
    use datadog_resources::resources::Kind;

    let (dry, out) = run_with(&options(&stand_in, true), &set, &percentiles);
    let dry = dry.unwrap_or_else(|e| panic!("dry run failed: {e}\n{out}"));
    assert_eq!(stand_in.writes(), Vec::<String>::new(), "{out}");
    assert_eq!(dry.dashboards.created, count(Kind::Dashboard), "{out}");

    let (first, out) = run_with(&options(&stand_in, false), &set, &percentiles);
    let first = first.unwrap_or_else(|e| panic!("first run failed: {e}\n{out}"));
    for kind in Kind::ALL {
        assert_eq!(first.counts(kind).created, count(kind), "{kind}: {out}");
    }
    assert_eq!(stand_in.org().monitors.len(), count(Kind::Monitor));
    let burn = named(
        &stand_in.org().monitors,
        "name",
        "Availability SLO fast burn (prod): 14.4x over 1h",
    )
    .clone();
    let availability = named(&stand_in.org().slos, "name", "Pricing API availability (prod)").clone();
    let slo_id = availability["id"].as_str().expect("SLO id");
    assert!(
        burn["query"].as_str().is_some_and(|q| q.contains(slo_id)),
        "{burn}"
    );
    for metric in &percentiles {
        assert!(stand_in.tag_config(metric).is_some(), "percentiles on {metric}");
    }
    stand_in.clear_requests();

    let (second, out) = run_with(&options(&stand_in, false), &set, &percentiles);
    let second = second.unwrap_or_else(|e| panic!("second run failed: {e}\n{out}"));
    assert_eq!(second.changes(), 0, "{out}");
    assert_eq!(stand_in.writes(), Vec::<String>::new(), "{out}");
}

/// Before the services first send a distribution, Datadog has no metric to configure: the run goes on
/// and says so, and a later run turns the percentiles on.
#[test]
fn a_metric_never_submitted_waits_for_a_later_run() {
    let stand_in = StandIn::start();
    stand_in.org().unknown_metrics.push(LATENCY.to_owned());
    let root = repo();
    let set = load(root.path());
    let (summary, out) = run(&stand_in, &set, false);
    assert_eq!(
        (summary.percentiles_changed, summary.percentiles_pending),
        (0, 1),
        "{out}"
    );
    assert!(out.contains("does not know"), "{out}");
    assert_eq!(summary.monitors.created, 2, "the rest was applied: {out}");

    stand_in.org().unknown_metrics.clear();
    let (summary, out) = run(&stand_in, &set, false);
    assert_eq!(
        (summary.percentiles_changed, summary.percentiles_pending),
        (1, 0),
        "{out}"
    );
    assert!(stand_in.tag_config(LATENCY).is_some());
}
