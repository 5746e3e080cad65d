//! The checker on the repository (it passes) and on copies of it with one thing broken: each is refused
//! with a message naming the file, the resource and what is wrong.

use std::path::{Path, PathBuf};

use datadog_resources::check::{Report, check_repository};
use serde_json::{Value, json};
use tempfile::TempDir;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_repository_passes() {
    let (set, report) = check_repository(&repository());
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        set.of_kind(datadog_resources::resources::Kind::Dashboard).count(),
        4
    );
    assert!(report.percentile_metrics.contains("api.predict.latency_ms"));
}

/// A copy of what the checker reads: deploy/datadog, the runbooks and docs/observability.md.
fn copy() -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for folder in ["deploy/datadog", "docs/runbooks"] {
        copy_tree(&repository().join(folder), &dir.path().join(folder));
    }
    std::fs::copy(
        repository().join("docs/observability.md"),
        dir.path().join("docs/observability.md"),
    )
    .expect("copy observability.md");
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// A copy whose docs/observability.md lacks the lines `drop` picks.
fn without_doc_lines(drop: impl Fn(&str) -> bool) -> TempDir {
    let dir = copy();
    let path = dir.path().join("docs/observability.md");
    let doc = std::fs::read_to_string(&path).expect("doc");
    let kept: String = doc
        .lines()
        .filter(|l| !drop(l))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, kept).expect("write");
    dir
}

fn edit(root: &Path, file: &str, change: impl FnOnce(&mut Value)) {
    let path = root.join("deploy/datadog").join(file);
    let mut body: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    change(&mut body);
    std::fs::write(&path, serde_json::to_string_pretty(&body).expect("json")).expect("write");
}

fn check(root: &Path) -> Report {
    check_repository(root).1
}

/// The problems, one per line, and asserts one of them contains every part of `expected`.
#[track_caller]
fn assert_refused(report: &Report, expected: &[&str]) {
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(
        problems
            .iter()
            .any(|p| expected.iter().all(|part| p.contains(part))),
        "no problem mentions all of {expected:?}; problems:\n{}",
        problems.join("\n")
    );
}

/// Breaks `file` with `change` in a fresh copy and asserts the checker refuses it with `expected`.
#[track_caller]
fn refused_after(file: &str, change: impl FnOnce(&mut Value), expected: &[&str]) {
    let dir = copy();
    edit(dir.path(), file, change);
    assert_refused(&check(dir.path()), expected);
}

/// Replaces `from` by `to` in the string at `field` of a file.
fn replace(field: &'static str, from: &'static str, to: &'static str) -> impl FnOnce(&mut Value) {
    move |body: &mut Value| {
        let text = body[field].as_str().expect("a string field").replace(from, to);
        body[field] = json!(text);
    }
}

#[test]
fn a_monitor_querying_an_unknown_metric() {
    refused_after(
        "monitors/api-high-error-rate.json",
        |m| {
            let query = m["query"]
                .as_str()
                .expect("query")
                .replace("api.predict.errors", "api.predict.error");
            m["query"] = json!(query);
        },
        &[
            "deploy/datadog/monitors/api-high-error-rate.json",
            "monitor \"Pricing API error rate above 5% in {{env.name}}\"",
            "unknown metric `api.predict.error`",
        ],
    );
}

#[test]
fn a_tag_the_metric_lacks() {
    refused_after(
        "monitors/high-latency.json",
        |m| {
            m["query"] =
                json!("percentile(last_5m):p95:api.predict.latency_ms{*} by {env,customer_id} > 200");
        },
        &[
            "monitors/high-latency.json",
            "`api.predict.latency_ms` is grouped by `customer_id`, a tag it does not carry",
        ],
    );
    refused_after(
        "dashboards/real-time-operations.json",
        |d| {
            let query = &mut d["widgets"][0]["definition"]["widgets"][0]["definition"]["requests"][0]["queries"]
                [0]["query"];
            *query = json!("sum:api.predict.requests{$env,feature:tenure_days} by {rpc}.as_rate()");
        },
        &[
            "dashboards/real-time-operations.json",
            "widget \"Request rate (requests/s)\"",
            "`api.predict.requests` has no tag `feature`",
        ],
    );
}

#[test]
fn a_tag_value_the_code_never_sends() {
    refused_after(
        "monitors/api-high-error-rate.json",
        |m| {
            let query = m["query"]
                .as_str()
                .expect("query")
                .replace("fault:server", "fault:sever");
            m["query"] = json!(query);
        },
        &["api-high-error-rate.json", "`fault:sever` never occurs"],
    );
}

#[test]
fn a_missing_runbook() {
    let dir = copy();
    std::fs::remove_file(dir.path().join("docs/runbooks/redis-down.md")).expect("remove");
    assert_refused(
        &check(dir.path()),
        &[
            "monitors/redis-down.json",
            "has no runbook: docs/runbooks/redis-down.md is missing",
        ],
    );
}

#[test]
fn a_critical_monitor_routed_only_to_slack() {
    refused_after(
        "monitors/api-down.json",
        replace("message", "@pagerduty-pricing-inference", "@slack-ops-alerts"),
        &["monitors/api-down.json", "a critical monitor must page PagerDuty"],
    );
}

#[test]
fn a_warning_that_pages() {
    refused_after(
        "monitors/feature-drift.json",
        |m| {
            m["message"] = json!(format!(
                "{} @pagerduty-pricing-inference",
                m["message"].as_str().expect("message")
            ));
        },
        &["monitors/feature-drift.json", "a warning must not page"],
    );
}

#[test]
fn a_malformed_dashboard() {
    // A key Datadog's API does not document (a typo) ...
    refused_after(
        "dashboards/business-impact.json",
        |d| {
            d["layout_typ"] = d["layout_type"].take();
        },
        &["dashboards/business-impact.json", "unknown field `layout_typ`"],
    );
    // ... a widget type that does not exist ...
    refused_after(
        "dashboards/business-impact.json",
        |d| {
            d["widgets"][0]["definition"]["widgets"][0]["definition"]["type"] = json!("timeseriez");
        },
        &[
            "dashboards/business-impact.json",
            "is not a valid dashboard body",
            "timeseriez",
        ],
    );
    // ... a computed field ...
    refused_after(
        "dashboards/infrastructure.json",
        |d| {
            d["id"] = json!("abc-def-ghi");
        },
        &["dashboards/infrastructure.json", "unknown field `id`"],
    );
    // ... and a formula over a query the request does not define.
    refused_after(
        "dashboards/real-time-operations.json",
        |d| {
            let formula = &mut d["widgets"][0]["definition"]["widgets"][2]["definition"]["requests"][0]["formulas"]
                [0]["formula"];
            *formula = json!("100 * server / request");
        },
        &[
            "widget \"Error rate (%)\"",
            "uses `request`, which no query of the request is named",
        ],
    );
}

#[test]
fn a_monitor_option_with_a_typo() {
    refused_after(
        "monitors/api-down.json",
        |m| {
            m["options"]["renotify_intreval"] = json!(30);
        },
        &[
            "monitors/api-down.json",
            "at `options.renotify_intreval`: unknown field `renotify_intreval`, expected one of",
        ],
    );
}

#[test]
fn an_anomaly_monitor_without_threshold_windows() {
    refused_after(
        "monitors/latency-spike.json",
        |m| {
            m["options"]
                .as_object_mut()
                .expect("options")
                .remove("threshold_windows");
        },
        &["monitors/latency-spike.json", "needs `options.threshold_windows`"],
    );
}

#[test]
fn a_monitor_that_is_not_a_multi_alert_by_env() {
    refused_after(
        "monitors/high-latency.json",
        |m| {
            m["query"] = json!("percentile(last_5m):p95:api.predict.latency_ms{*} > 200");
        },
        &["monitors/high-latency.json", "multi-alert by `env`"],
    );
}

#[test]
fn a_design_record_item_without_its_row_or_its_widget() {
    assert_refused(
        &check(without_doc_lines(|l| l.contains("| Top 5 slowest endpoints |")).path()),
        &[
            "docs/observability.md",
            "Top 5 slowest endpoints",
            "has no row mapping it to a file",
        ],
    );

    refused_after(
        "dashboards/model-performance.json",
        |d| {
            d["widgets"][1]["definition"]["title"] = json!("Risk scores");
        },
        &[
            "dashboards/model-performance.json",
            "Risk score distribution",
            "no widget titled",
        ],
    );
}

#[test]
fn a_tag_without_a_documented_bound() {
    assert_refused(
        &check(without_doc_lines(|l| l.starts_with("| `variant` |")).path()),
        &[
            "docs/observability.md",
            "metric model.crai.risk_score",
            "tag `variant` has no documented bound",
        ],
    );
}

#[test]
fn a_stale_cost_section() {
    refused_after(
        "cost-model.json",
        |m| {
            m["monitored_hosts"] = json!(5);
        },
        &["docs/observability.md", "cost section", "is out of step"],
    );
}

#[test]
fn duplicate_names_and_unknown_placeholders() {
    let dir = copy();
    edit(dir.path(), "monitors/latency-spike.json", |m| {
        m["name"] = json!("Pricing API down: no requests in {{env.name}}");
        m["message"] = json!(format!(
            "{} ${{runbook}}",
            m["message"].as_str().expect("message")
        ));
    });
    let report = check(dir.path());
    assert_refused(&report, &["monitors/latency-spike.json", "has the same name as"]);
    assert_refused(&report, &["monitors/latency-spike.json", "`${runbook}`"]);
}
