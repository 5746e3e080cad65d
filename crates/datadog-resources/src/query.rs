//! Datadog metric queries taken apart: each `<aggregator>:<metric>{<scope>} by {<groups>}` reference in
//! a widget, monitor or SLO query, with the tag keys its scope filters on and the keys it groups by,
//! so the checker can hold them against the metric catalog.
//!
//! Scopes use either syntax Datadog accepts: `{env:prod,!status:ok}` or
//! `{env:prod AND status IN (a, b) AND NOT fault:client}`; `$var` and `key:$var.value` are dashboard
//! template variables. Service-check monitors (`"redis.can_connect".over(...).by("a","b")`) are read
//! too.

use std::sync::LazyLock;

use regex::Regex;

/// One metric reference in a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricRef {
    /// `sum`, `avg`, `p95`, `histogram`...
    pub aggregator: String,
    pub metric: String,
    /// Tag filters of the scope, in order.
    pub filters: Vec<Filter>,
    /// Keys of `by {...}`.
    pub group_by: Vec<String>,
    /// Whether `.as_count()` follows.
    pub as_count: bool,
}

impl MetricRef {
    /// `p50`...`p99.9`: needs percentiles enabled on a distribution.
    pub fn is_percentile(&self) -> bool {
        percentile_aggregator(&self.aggregator)
    }
}

pub fn percentile_aggregator(aggregator: &str) -> bool {
    aggregator
        .strip_prefix('p')
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// One term of a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `*`: everything.
    All,
    /// `key:value` (or `!key:value`, `key IN (...)`); `values` are literal values, empty when the value
    /// is a template variable or a wildcard.
    Tag { key: String, values: Vec<String> },
    /// `$env`: the dashboard template variable of that name.
    Variable(String),
    /// A bare word without a key (`prod`): Datadog allows it, the checker does not.
    Bare(String),
}

static METRIC: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // a constant pattern, covered by the tests
    Regex::new(
        r"(?x)
        (?P<agg>[a-z][a-z0-9_.]*) : (?P<metric>[A-Za-z][A-Za-z0-9_.]*)
        \{ (?P<scope>[^}]*) \}
        (?: \s* by \s* \{ (?P<by>[^}]*) \} )?
        (?P<count> \.as_count\(\) )?",
    )
    .expect("metric pattern")
});

static SERVICE_CHECK: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // a constant pattern, covered by the tests
    Regex::new(r#"^\s*"(?P<check>[^"]+)"\.over\((?P<over>[^)]*)\)(?P<rest>.*)$"#).expect("check pattern")
});

/// Every metric reference in `query`.
pub fn metric_refs(query: &str) -> Vec<MetricRef> {
    METRIC
        .captures_iter(query)
        .map(|c| MetricRef {
            aggregator: c["agg"].to_owned(),
            metric: c["metric"].to_owned(),
            filters: parse_scope(&c["scope"]),
            group_by: c.name("by").map(|by| split_keys(by.as_str())).unwrap_or_default(),
            as_count: c.name("count").is_some(),
        })
        .collect()
}

fn split_keys(list: &str) -> Vec<String> {
    list.split(',')
        .map(|k| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty())
        .collect()
}

/// The terms of a scope in either syntax.
pub fn parse_scope(scope: &str) -> Vec<Filter> {
    let mut filters = Vec::new();
    for term in split_terms(scope) {
        let term = term.trim();
        let term = term.strip_prefix("NOT ").unwrap_or(term).trim();
        let term = term.strip_prefix('!').unwrap_or(term).trim();
        if term.is_empty() {
            continue;
        }
        if term == "*" {
            filters.push(Filter::All);
        } else if let Some(variable) = term.strip_prefix('$') {
            filters.push(Filter::Variable(variable.trim_end_matches(".value").to_owned()));
        } else if let Some((key, list)) = in_list(term) {
            filters.push(Filter::Tag { key, values: list });
        } else if let Some((key, value)) = term.split_once(':') {
            let literal = !value.contains('$') && !value.contains('*');
            filters.push(Filter::Tag {
                key: key.trim().to_owned(),
                values: if literal {
                    vec![value.trim().to_owned()]
                } else {
                    Vec::new()
                },
            });
        } else {
            filters.push(Filter::Bare(term.to_owned()));
        }
    }
    filters
}

/// Splits on `,`, ` AND ` and ` OR ` outside parentheses.
fn split_terms(scope: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for piece in scope.split_inclusive([' ', ',', '(', ')']) {
        let word = piece.trim_end_matches([' ', ',', '(', ')']);
        let separator = &piece[word.len()..];
        if depth == 0 && (word == "AND" || word == "OR") && separator.starts_with(' ') {
            terms.push(std::mem::take(&mut current));
            continue;
        }
        current.push_str(word);
        for c in separator.chars() {
            match c {
                '(' => {
                    depth += 1;
                    current.push(c);
                }
                ')' => {
                    depth = depth.saturating_sub(1);
                    current.push(c);
                }
                ',' if depth == 0 => terms.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
    }
    terms.push(current);
    terms
}

/// `key IN (a, b)` / `key NOT IN (a, b)`.
fn in_list(term: &str) -> Option<(String, Vec<String>)> {
    let (key, rest) = term.split_once(" IN ")?;
    let key = key.trim().strip_suffix(" NOT").unwrap_or(key.trim()).trim();
    let list = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some((key.to_owned(), split_keys(list)))
}

/// A service-check monitor query: the check, the tag keys of `over(...)` and of `by(...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRef {
    pub check: String,
    pub filters: Vec<Filter>,
    pub group_by: Vec<String>,
    /// `last(N)`.
    pub last: Option<u32>,
}

pub fn service_check(query: &str) -> Option<CheckRef> {
    let c = SERVICE_CHECK.captures(query)?;
    let over: Vec<String> = split_keys(&c["over"]);
    let rest = &c["rest"];
    let group_by = rest
        .split_once(".by(")
        .and_then(|(_, after)| after.split_once(')'))
        .map(|(list, _)| split_keys(list))
        .unwrap_or_default();
    let last = rest
        .split_once(".last(")
        .and_then(|(_, after)| after.split_once(')'))
        .and_then(|(n, _)| n.trim().parse().ok());
    Some(CheckRef {
        check: c["check"].to_owned(),
        filters: over.iter().flat_map(|o| parse_scope(o)).collect(),
        group_by,
        last,
    })
}

/// The parts of a threshold monitor query: `<time_aggr>(<window>):<expression> <comparator> <number>`.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorQuery {
    /// `avg`, `sum`, `percentile`, `min`, `max`, `change`...
    pub time_aggregation: String,
    /// `last_5m`.
    pub window: String,
    pub comparator: String,
    pub threshold: f64,
}

pub fn monitor_query(query: &str) -> Option<MonitorQuery> {
    static SHAPE: LazyLock<Regex> = LazyLock::new(|| {
        #[allow(clippy::expect_used)] // a constant pattern, covered by the tests
        Regex::new(r"^\s*(?P<aggr>[a-z_]+)\((?P<window>[a-z0-9_]+)\):(?s:.*?)\s*(?P<cmp>>=|<=|==|!=|>|<)\s*(?P<threshold>-?[0-9.]+)\s*$")
            .expect("monitor pattern")
    });
    let c = SHAPE.captures(query)?;
    Some(MonitorQuery {
        time_aggregation: c["aggr"].to_owned(),
        window: c["window"].to_owned(),
        comparator: c["cmp"].to_owned(),
        threshold: c["threshold"].parse().ok()?,
    })
}

/// The `key='value'` arguments of an `anomalies(...)` call (`alert_window`, `seasonality`...).
pub fn anomaly_arguments(query: &str) -> Option<Vec<(String, String)>> {
    let start = query.find("anomalies(")?;
    let args = &query[start..];
    Some(
        args.split(',')
            .filter_map(|part| part.split_once('='))
            .map(|(k, v)| {
                let value = v.trim().split(')').next().unwrap_or_default();
                (k.trim().to_owned(), value.trim().trim_matches('\'').to_owned())
            })
            .collect(),
    )
}

/// A burn-rate or error-budget SLO alert: the SLO reference (a `${slo.<stem>}` placeholder in files)
/// and its windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SloAlertRef {
    pub slo: String,
    pub long_window: Option<String>,
    pub short_window: Option<String>,
}

pub fn slo_alert(query: &str) -> Option<SloAlertRef> {
    static SHAPE: LazyLock<Regex> = LazyLock::new(|| {
        #[allow(clippy::expect_used)] // a constant pattern, covered by the tests
        Regex::new(r#"^\s*(burn_rate|error_budget)\("(?P<slo>[^"]+)"\)\.over\("[0-9]+d"\)(?:\.long_window\("(?P<long>[^"]+)"\)\.short_window\("(?P<short>[^"]+)"\))?"#)
            .expect("slo alert pattern")
    });
    let c = SHAPE.captures(query)?;
    Some(SloAlertRef {
        slo: c["slo"].to_owned(),
        long_window: c.name("long").map(|m| m.as_str().to_owned()),
        short_window: c.name("short").map(|m| m.as_str().to_owned()),
    })
}

/// The number after the last comparator of a monitor query (`... > 14.4` gives 14.4).
pub fn monitor_threshold(query: &str) -> Option<f64> {
    let position = query.rfind(['>', '<', '='])?;
    query[position + 1..].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, values: &[&str]) -> Filter {
        Filter::Tag {
            key: key.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn reads_monitor_arithmetic() {
        let q = "sum(last_2m):sum:api.predict.errors{fault:server} by {env}.as_count() / sum:api.predict.requests{*} by {env}.as_count() * 100 > 5";
        let refs = metric_refs(q);
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].metric, "api.predict.errors");
        assert_eq!(refs[0].filters, [tag("fault", &["server"])]);
        assert_eq!(refs[0].group_by, ["env"]);
        assert!(refs[0].as_count);
        assert_eq!(refs[1].filters, [Filter::All]);
        let shape = monitor_query(q).expect("shape");
        assert_eq!(
            (
                shape.time_aggregation.as_str(),
                shape.window.as_str(),
                shape.comparator.as_str()
            ),
            ("sum", "last_2m", ">")
        );
        assert_eq!(shape.threshold, 5.0);
    }

    #[test]
    fn reads_both_scope_syntaxes_and_template_variables() {
        let refs = metric_refs("p95:api.predict.latency_ms{$env,$service,!status:ok} by {rpc, status}");
        assert!(refs[0].is_percentile());
        assert_eq!(
            refs[0].filters,
            [
                Filter::Variable("env".into()),
                Filter::Variable("service".into()),
                tag("status", &["ok"])
            ]
        );
        assert_eq!(refs[0].group_by, ["rpc", "status"]);
        let refs = metric_refs("sum:x.y{env:prod AND status IN (ok, not_found) AND NOT fault:client}");
        assert_eq!(
            refs[0].filters,
            [
                tag("env", &["prod"]),
                tag("status", &["ok", "not_found"]),
                tag("fault", &["client"])
            ]
        );
        let refs = metric_refs("avg:system.cpu.idle{environment:$env.value,databricks_cluster_name:*}");
        assert_eq!(
            refs[0].filters,
            [tag("environment", &[]), tag("databricks_cluster_name", &[])]
        );
    }

    #[test]
    fn reads_anomaly_and_service_check_and_slo_alerts() {
        let q = "avg(last_4h):anomalies(avg:model.crai.risk_score{*} by {env}, 'agile', 3, direction='both', interval=60, alert_window='last_15m', count_default_zero='true', seasonality='weekly') >= 1";
        assert_eq!(metric_refs(q)[0].metric, "model.crai.risk_score");
        let args = anomaly_arguments(q).expect("args");
        assert!(args.contains(&("alert_window".into(), "last_15m".into())));
        assert_eq!(monitor_query(q).expect("shape").window, "last_4h");

        let check = service_check(
            r#""redis.can_connect".over("*").by("env","redis_host","redis_port").last(2).count_by_status()"#,
        )
        .expect("check");
        assert_eq!(check.check, "redis.can_connect");
        assert_eq!(check.group_by, ["env", "redis_host", "redis_port"]);
        assert_eq!(check.last, Some(2));

        let slo = slo_alert(
            r#"burn_rate("${slo.availability}").over("30d").long_window("1h").short_window("5m") > 14.4"#,
        )
        .expect("slo");
        assert_eq!(slo.slo, "${slo.availability}");
        assert_eq!(slo.long_window.as_deref(), Some("1h"));
    }

    #[test]
    fn finds_histogram_and_slo_queries() {
        let refs = metric_refs("histogram:model.crai.risk_score{$env,$version}");
        assert_eq!(refs[0].aggregator, "histogram");
        let refs = metric_refs(
            "sum:api.predict.requests{env:prod}.as_count() - sum:api.predict.errors{env:prod,fault:server}.as_count()",
        );
        assert_eq!(refs.len(), 2);
        assert!(refs.iter().all(|r| r.as_count && r.aggregator == "sum"));
    }
}
