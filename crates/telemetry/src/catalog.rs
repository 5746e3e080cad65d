//! The metric catalog: every metric the platform sends, with its DogStatsD name, kind, unit, allowed
//! tag keys and description, in ONE place. Call sites pass these statics to [`crate::Metrics`]; no
//! metric name is ever typed anywhere else. Dashboards and monitors are checked against [`CATALOG`].
//!
//! Tag values are built by [`Tag`]'s constructors: closed sets (gRPC status, lookup status, job status,
//! booked, drop signal/reason) are enums; code-defined sets (rpc, error type, Redis command, job) must
//! be `&'static str`, so a request's data cannot become a tag by accident. Model, version, variant and
//! feature names come from the deployment's model repository and feature registry. There is no tag key
//! for customers, requests or quotes: those belong in logs and spans, never on metrics.
//!
//! Names follow the observability design record (mapped in `docs/observability.md`); `model.crai.*` is the
//! customer-risk model's prefix there. Every datagram also carries `env`, `service` and `version`.

/// DogStatsD metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// `|c`: summed in process between flushes.
    Count,
    /// `|g`: last value wins; re-sent every flush while the process lives.
    Gauge,
    /// `|d`: every sample is sent (packed), so Datadog computes global percentiles.
    Distribution,
}

impl MetricKind {
    /// The DogStatsD type suffix.
    pub const fn suffix(self) -> &'static str {
        match self {
            MetricKind::Count => "c",
            MetricKind::Gauge => "g",
            MetricKind::Distribution => "d",
        }
    }
}

/// Tag keys a metric may carry. The closed list is the point: adding one is a reviewed change here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagKey {
    Rpc,
    Status,
    ErrorType,
    Model,
    ModelVersion,
    Variant,
    Feature,
    Output,
    FeatureView,
    Command,
    Booked,
    Currency,
    Job,
    Signal,
    Reason,
    Dependency,
    Fault,
    Event,
}

impl TagKey {
    /// Every key, for catalog checks.
    pub const ALL: [TagKey; 18] = [
        TagKey::Rpc,
        TagKey::Status,
        TagKey::ErrorType,
        TagKey::Model,
        TagKey::ModelVersion,
        TagKey::Variant,
        TagKey::Feature,
        TagKey::Output,
        TagKey::FeatureView,
        TagKey::Command,
        TagKey::Booked,
        TagKey::Currency,
        TagKey::Job,
        TagKey::Signal,
        TagKey::Reason,
        TagKey::Dependency,
        TagKey::Fault,
        TagKey::Event,
    ];

    /// The tag key as sent.
    pub const fn as_str(self) -> &'static str {
        match self {
            TagKey::Rpc => "rpc",
            TagKey::Status => "status",
            TagKey::ErrorType => "error_type",
            TagKey::Model => "model",
            TagKey::ModelVersion => "model_version",
            TagKey::Variant => "variant",
            TagKey::Feature => "feature",
            TagKey::Output => "output",
            TagKey::FeatureView => "feature_view",
            TagKey::Command => "command",
            TagKey::Booked => "booked",
            TagKey::Currency => "currency",
            TagKey::Job => "job",
            TagKey::Signal => "signal",
            TagKey::Reason => "reason",
            TagKey::Dependency => "dependency",
            TagKey::Fault => "fault",
            TagKey::Event => "event",
        }
    }
}

/// Keys that must never be metric tags (unbounded, or personal data). Checked by tests.
pub const FORBIDDEN_TAG_KEYS: &[&str] = &[
    "customer_id",
    "request_id",
    "quote_id",
    "trace_id",
    "span_id",
    "user_id",
    "zone_id",
    "price",
];

/// Most tag keys any metric allows (the hot path keeps tags in a fixed-size array).
pub const MAX_TAGS: usize = 4;

/// One metric's definition.
#[derive(Debug, PartialEq, Eq)]
pub struct MetricDef {
    /// DogStatsD name, exactly as dashboards and monitors query it.
    pub name: &'static str,
    pub kind: MetricKind,
    /// Datadog unit name (`millisecond`, `second`, `request`...); empty when unitless.
    pub unit: &'static str,
    /// Allowed tag keys, in the order they are sent.
    pub tags: &'static [TagKey],
    /// The binaries that send it (their `service` tag by default).
    pub sent_by: &'static [&'static str],
    pub description: &'static str,
}

impl MetricDef {
    /// Position of `key` among this metric's tags, if allowed.
    #[inline]
    pub fn tag_slot(&self, key: TagKey) -> Option<usize> {
        self.tags.iter().position(|k| *k == key)
    }
}

/// One [`MetricDef`], as both the emitted and the planned tables write it.
macro_rules! metric_def {
    ($name:literal, $kind:ident, $unit:literal, [$($tag:ident),*], [$($sender:literal),*], $desc:literal) => {
        MetricDef {
            name: $name,
            kind: MetricKind::$kind,
            unit: $unit,
            tags: &[$(TagKey::$tag),*],
            sent_by: &[$($sender),*],
            description: $desc,
        }
    };
}

macro_rules! metrics {
    ($($(#[$doc:meta])* $ident:ident = $name:literal, $kind:ident, $unit:literal, [$($tag:ident),*], from [$($sender:literal),*], $desc:literal;)*) => {
        $(
            $(#[$doc])*
            #[doc = concat!("`", $name, "`: ", $desc)]
            pub static $ident: MetricDef =
                metric_def!($name, $kind, $unit, [$($tag),*], [$($sender),*], $desc);
        )*
        /// Every metric the platform sends.
        pub static CATALOG: &[&MetricDef] = &[$(&$ident),*];
    };
}

metrics! {
    API_PREDICT_REQUESTS = "api.predict.requests", Count, "request", [Rpc, Status, Model], from ["gateway"],
        "Public API calls by RPC and gRPC status, tagged with the model the RPC runs (QuotePrice: both, joined by /; RecordOutcome: none).";
    API_PREDICT_ERRORS = "api.predict.errors", Count, "error", [Rpc, ErrorType, Fault], from ["gateway"],
        "Public API calls that failed, by RPC, error type and whose fault (server: the platform failed; client: the request was refused).";
    API_PREDICT_LATENCY_MS = "api.predict.latency_ms", Distribution, "millisecond", [Rpc, Status], from ["gateway"],
        "Public API call latency as seen by the gateway.";
    API_PREDICT_WITHIN_SLA = "api.predict.within_sla", Count, "request", [Rpc], from ["gateway"],
        "Public API calls answered OK within the 120 ms latency SLA (the latency SLO's good events).";
    API_PREDICT_DEGRADED = "api.predict.degraded", Count, "prediction", [Rpc, Reason], from ["gateway"],
        "Predictions answered degraded, by RPC and reason (missing_features, stale_features, features_unavailable, model_fallback).";
    API_PREDICT_FEATURE_FETCH_MS = "api.predict.feature_fetch_ms", Distribution, "millisecond", [Model], from ["gateway"],
        "Time the gateway spent fetching online features for one prediction, with any wait for a merged call.";
    API_PREDICT_INFERENCE_MS = "api.predict.inference_ms", Distribution, "millisecond", [Model, ModelVersion], from ["gateway"],
        "Time spent scoring one prediction on the model-service, with any wait for a merged call.";
    MODEL_CRAI_RISK_SCORE = "model.crai.risk_score", Distribution, "", [Model, ModelVersion, Variant], from ["gateway"],
        "Customer-risk model score in [0, 1].";
    MODEL_CRAI_RISK_MULTIPLIER = "model.crai.risk_multiplier", Distribution, "", [Model, ModelVersion, Variant], from ["gateway"],
        "Price multiplier derived from the customer-risk score.";
    MODEL_CRAI_CONFIDENCE = "model.crai.confidence", Distribution, "", [Model, ModelVersion, Variant], from ["gateway"],
        "Customer-risk prediction confidence: the probability of the class predicted, max(score, 1 - score), in [0.5, 1].";
    MODEL_DEMAND_SURGE_FACTOR = "model.demand.surge_factor", Distribution, "", [Model, ModelVersion, Variant], from ["gateway"],
        "Demand-surge factor after clamping.";
    MODEL_PREDICTIONS_COUNT = "model.predictions.count", Count, "prediction", [Model, ModelVersion, Variant], from ["gateway"],
        "Predictions served per model, version and experiment variant.";
    MODEL_FEATURE_DRIFT_PSI = "model.feature_drift.psi", Gauge, "", [Model, ModelVersion, Feature], from ["model-service"],
        "Population Stability Index of a feature against the manifest baseline (alert above 0.25).";
    MODEL_PREDICTION_DRIFT_PSI = "model.prediction_drift.psi", Gauge, "", [Model, ModelVersion, Output], from ["model-service"],
        "Population Stability Index of a model output (risk score, surge factor) against the distribution of the training rows' predictions in the manifest (alert above 0.25).";
    MODEL_VERSIONS_LOADED = "model.versions.loaded", Gauge, "", [Model, ModelVersion], from ["model-service"],
        "1 for each model version the model-service has loaded and serves.";
    MODEL_VERSIONS_REJECTED = "model.versions.rejected", Count, "version", [Model, ModelVersion], from ["model-service"],
        "Model version folders the model-service refused to serve: they did not load, or failed the validation of their manifest's probe rows.";
    MODEL_VERSION_TRAFFIC_SHARE = "model.version.traffic_share", Gauge, "fraction", [Model, ModelVersion, Variant], from ["gateway"],
        "Share of a model's predictions the gateway's traffic policy routes to a version and experiment arm (0 to 1; a shadow version reports 0: it answers no one).";
    MODEL_SHADOW_SKIPPED = "model.shadow.skipped", Count, "prediction", [Model], from ["gateway"],
        "Shadow scorings not run because the gateway already had its limit of them in flight (responses are never held for a shadow).";
    MODEL_ACCURACY = "model.accuracy", Gauge, "fraction", [Model, ModelVersion, Variant], from ["gateway"],
        "Rolling online quality of a model version and arm over its latest labelled predictions (RecordLabel), on the scale of the offline metric its manifest records (AUC for customer risk, R² for demand surge); each gateway pod reports its own window, averaged across pods.";
    MODEL_ACCURACY_BASELINE = "model.accuracy.baseline", Gauge, "fraction", [Model, ModelVersion], from ["gateway"],
        "The offline quality the model version's manifest records (its `metrics`: AUC or R²), which online quality is held to.";
    MODEL_PREDICTION_ERROR = "model.prediction_error", Distribution, "", [Model, ModelVersion, Variant], from ["gateway"],
        "Per labelled prediction: the squared error of the risk score against the customer's outcome (its average is the Brier score), or the absolute error of the surge factor against the realised one (its average is the MAE; its count is the labels joined); exact over any number of pods.";
    MODEL_PREDICTION_RECORDS_DROPPED = "model.prediction_records.dropped", Count, "prediction", [Model], from ["gateway"],
        "Predictions answered whose record for later labels could not be stored (write queue full, or the store failed); a label for one is answered NOT_FOUND.";
    MODEL_INFERENCE_BATCH_ROWS = "model.inference.batch_rows", Distribution, "row", [Model], from ["model-service"],
        "Rows per inference batch on the model-service.";
    CACHE_FEAST_HIT = "cache.feast.hit", Count, "hit", [FeatureView], from ["feature-service"],
        "Feature-service cache hits in front of Redis.";
    CACHE_FEAST_MISS = "cache.feast.miss", Count, "miss", [FeatureView], from ["feature-service"],
        "Feature-service cache misses (read through to Redis).";
    CACHE_FEAST_STALE_SERVED = "cache.feast.stale_served", Count, "row", [FeatureView], from ["feature-service"],
        "Rows served from the cache past their TTL because Redis could not be read.";
    CACHE_CRAI_HIT = "cache.crai.hit", Count, "hit", [Model], from ["gateway"],
        "Customer-risk predictions answered from the gateway's CRAI cache (same customer, model version and arm within CRAI_CACHE_TTL_MS).";
    CACHE_CRAI_MISS = "cache.crai.miss", Count, "miss", [Model], from ["gateway"],
        "Customer-risk predictions the CRAI cache did not hold (scored on the model-service).";
    CACHE_MODEL_METADATA_HIT = "cache.model_metadata.hit", Count, "hit", [], from ["gateway"],
        "Gateway model-metadata cache hits.";
    CACHE_MODEL_METADATA_MISS = "cache.model_metadata.miss", Count, "miss", [], from ["gateway"],
        "Gateway model-metadata cache misses.";
    FEATURES_LOOKUPS = "features.lookups", Count, "lookup", [FeatureView, Status], from ["feature-service"],
        "Feature values looked up, by view and availability (present, not_found, outside_max_age, null, invalid, unavailable).";
    FEATURES_STALENESS_S = "features.staleness_s", Distribution, "second", [FeatureView], from ["feature-service"],
        "Age of the feature row served (now - event timestamp).";
    FEATURES_PROJECT_KEYS_FOUND = "features.project_keys_found", Gauge, "", [], from ["feature-service"],
        "Whether Redis held a key of FEAST_PROJECT when the feature-service started: 1 yes, 0 none (every feature is NOT_FOUND: check FEAST_PROJECT).";
    REDIS_COMMAND_LATENCY_MS = "redis.command.latency_ms", Distribution, "millisecond", [Command], from ["feature-service", "materialize"],
        "Redis command round trip as seen by the client.";
    REDIS_COMMAND_ERRORS = "redis.command.errors", Count, "error", [Command, ErrorType], from ["feature-service", "materialize"],
        "Redis commands that failed, by error type.";
    GRPC_SERVER_SHED = "grpc.server.shed", Count, "request", [], from ["gateway", "feature-service", "model-service"],
        "Requests a service refused at once with RESOURCE_EXHAUSTED because its concurrency limit was reached.";
    GRPC_SERVER_CONCURRENCY_LIMIT = "grpc.server.concurrency_limit", Gauge, "request", [], from ["gateway", "feature-service", "model-service"],
        "Requests a service lets run at once: MAX_CONCURRENT_REQUESTS, or the adaptive limit below it that keeps the gateway's median latency near its no-queue level or within a tenth of its budget.";
    DOWNSTREAM_RETRIES = "downstream.retries", Count, "request", [Dependency], from ["gateway"],
        "Idempotent downstream calls the gateway retried (within its retry budget).";
    DOWNSTREAM_MERGED_REQUESTS = "downstream.merged_requests", Distribution, "request", [Dependency], from ["gateway"],
        "Requests one downstream call carried: 1 for a call of its own, more when concurrent requests' calls were merged (MERGE_CALLS_IN_FLIGHT).";
    CIRCUIT_BREAKER_STATE = "circuit_breaker.state", Gauge, "", [Dependency], from ["gateway"],
        "The gateway's breaker for a dependency: 0 closed, 0.5 half-open, 1 open (failing fast).";
    CIRCUIT_BREAKER_REJECTED = "circuit_breaker.rejected", Count, "request", [Dependency], from ["gateway"],
        "Downstream calls the gateway refused at once because the dependency's breaker was open.";
    BUSINESS_QUOTES_COUNT = "business.quotes.count", Count, "quote", [Variant], from ["gateway"],
        "Price quotes issued, by experiment variant.";
    BUSINESS_OUTCOMES_COUNT = "business.outcomes.count", Count, "outcome", [Variant, Booked], from ["gateway"],
        "Quote outcomes recorded, by variant and whether the quote was booked.";
    BUSINESS_REVENUE_DYNAMIC_PRICING = "business.revenue.dynamic_pricing", Distribution, "", [Variant, Currency], from ["gateway"],
        "Revenue of each booked outcome priced dynamically (sum it for revenue, in the currency tagged).";
    BUSINESS_CUSTOMER_SATISFACTION_SCORE = "business.customer_satisfaction.score", Distribution, "", [Variant], from ["gateway"],
        "The satisfaction score (1 to 5) an outcome reported, by the experiment variant that priced the quote.";
    BUSINESS_COMPLAINTS_COUNT = "business.complaints.count", Count, "complaint", [Variant], from ["gateway"],
        "Outcomes that reported a complaint about the price, by the experiment variant that priced the quote.";
    BATCH_JOB_RUNS = "batch_job.runs", Count, "run", [Job, Status], from ["materialize"],
        "Batch job runs by job and outcome (success, failed).";
    BATCH_JOB_STATUS = "batch_job.status", Gauge, "", [Job], from ["materialize"],
        "Last batch job outcome: 1 ok, 0 failed (monitor: batch job failed).";
    BATCH_JOB_DURATION_S = "batch_job.duration_s", Distribution, "second", [Job], from ["materialize"],
        "Batch job wall time.";
    BATCH_JOB_ROWS = "batch_job.rows", Count, "row", [Job, FeatureView], from ["materialize"],
        "Rows a batch job wrote, per feature view.";
    TELEMETRY_DROPPED = "telemetry.dropped", Count, "", [Signal, Reason], from ["gateway", "feature-service", "model-service", "materialize"],
        "Telemetry this process dropped instead of blocking (metric, span or log; and why).";
}

/// The latency SLA of the design record: a public API call answered OK within it counts in
/// `api.predict.within_sla`, the good events of the latency SLO.
pub const LATENCY_SLA_MS: f64 = 120.0;

/// A metric the dashboards and monitors already query but no code emits yet, with the work that will
/// emit it. It moves into [`CATALOG`] (with its call site) when that work lands; until then its panels
/// show no data rather than a wrong number.
#[derive(Debug, PartialEq, Eq)]
pub struct PlannedMetric {
    pub metric: MetricDef,
    /// The work that emits it.
    pub emitted_by: &'static str,
}

macro_rules! planned {
    ($($name:literal, $kind:ident, $unit:literal, [$($tag:ident),*], from [$($sender:literal),*], $desc:literal, by $by:literal;)*) => {
        /// Metrics queried before they are emitted (see [`PlannedMetric`]).
        pub static PLANNED: &[PlannedMetric] = &[$(PlannedMetric {
            metric: metric_def!($name, $kind, $unit, [$($tag),*], [$($sender),*], $desc),
            emitted_by: $by,
        }),*];
    };
}

planned! {}

/// A DogStatsD event the platform sends (rare lifecycle moments, for dashboards' event timelines).
/// Each is tagged `event:<name>` plus its tag keys and the unified service tags.
#[derive(Debug, PartialEq, Eq)]
pub struct EventDef {
    /// The `event:` tag value and aggregation key, as event queries filter on it.
    pub name: &'static str,
    /// Tag keys the event carries besides `event`, `env`, `service` and `version`.
    pub tags: &'static [TagKey],
    pub description: &'static str,
}

/// A model version was loaded and is servable.
pub static MODEL_VERSION_LOADED: EventDef = EventDef {
    name: "model_version_loaded",
    tags: &[TagKey::Model, TagKey::ModelVersion],
    description: "The model-service loaded a model version and serves it.",
};

/// A feature's PSI crossed the drift alert threshold (0.25).
pub static FEATURE_DRIFT_ALERT: EventDef = EventDef {
    name: "feature_drift_alert",
    tags: &[TagKey::Model, TagKey::ModelVersion, TagKey::Feature],
    description: "A model input's PSI went above 0.25 (it was not above it in the window before).",
};

/// A model output's PSI crossed the drift alert threshold (0.25).
pub static PREDICTION_DRIFT_ALERT: EventDef = EventDef {
    name: "prediction_drift_alert",
    tags: &[TagKey::Model, TagKey::ModelVersion, TagKey::Output],
    description: "A model output's PSI went above 0.25 (it was not above it in the window before).",
};

/// A model version folder did not load or failed validation, and is not served.
pub static MODEL_VERSION_REJECTED: EventDef = EventDef {
    name: "model_version_rejected",
    tags: &[TagKey::Model, TagKey::ModelVersion],
    description: "The model-service refused a model version folder (it did not load, or its probe rows failed); the versions already served stay.",
};

/// A model version stopped being served.
pub static MODEL_VERSION_RETIRED: EventDef = EventDef {
    name: "model_version_retired",
    tags: &[TagKey::Model, TagKey::ModelVersion],
    description: "The model-service stopped serving a model version whose folder was removed, once no request had asked for it for the retirement grace period.",
};

/// A model version became the one a model's traffic gets by default.
pub static MODEL_VERSION_PROMOTED: EventDef = EventDef {
    name: "model_version_promoted",
    tags: &[TagKey::Model, TagKey::ModelVersion],
    description: "A model version became its model's default: the newest loaded version on the model-service, or the version the gateway's traffic policy pins.",
};

/// The gateway applied a new traffic policy.
pub static TRAFFIC_POLICY_APPLIED: EventDef = EventDef {
    name: "traffic_policy_applied",
    tags: &[],
    description: "The gateway applied a traffic policy file (default versions, A/B splits, shadows).",
};

/// The gateway refused a traffic policy file and kept the one it had.
pub static TRAFFIC_POLICY_REJECTED: EventDef = EventDef {
    name: "traffic_policy_rejected",
    tags: &[],
    description: "The gateway refused a changed traffic policy file (unreadable, invalid, or naming a version the model-service does not serve) and kept the policy it had.",
};

/// Every event the platform sends.
pub static EVENTS: &[&EventDef] = &[
    &MODEL_VERSION_LOADED,
    &MODEL_VERSION_REJECTED,
    &MODEL_VERSION_RETIRED,
    &MODEL_VERSION_PROMOTED,
    &TRAFFIC_POLICY_APPLIED,
    &TRAFFIC_POLICY_REJECTED,
    &FEATURE_DRIFT_ALERT,
    &PREDICTION_DRIFT_ALERT,
];

/// Looks a planned metric up by name.
pub fn planned(name: &str) -> Option<&'static PlannedMetric> {
    PLANNED.iter().find(|p| p.metric.name == name)
}

/// Looks a metric up by name (for tools that check dashboards and monitors against the catalog).
pub fn by_name(name: &str) -> Option<&'static MetricDef> {
    CATALOG.iter().copied().find(|m| m.name == name)
}

impl MetricKind {
    /// The DogStatsD type as people name it.
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricKind::Count => "count",
            MetricKind::Gauge => "gauge",
            MetricKind::Distribution => "distribution",
        }
    }
}

/// The catalog as the Markdown table `docs/observability.md` carries (a test keeps the two equal).
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| metric | type | unit | tags | sent by | what it measures |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for metric in CATALOG {
        table.push_str(&row(metric, &metric.sent_by.join(", "), metric.description));
    }
    table
}

/// The planned metrics as the Markdown table `docs/observability.md` carries.
pub fn planned_markdown_table() -> String {
    let mut table = String::from(
        "| metric | type | unit | tags | what it will measure | emitted by |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for planned in PLANNED {
        table.push_str(&row(
            &planned.metric,
            planned.metric.description,
            planned.emitted_by,
        ));
    }
    table
}

/// `| name | kind | unit | tags | fifth | sixth |`.
fn row(metric: &MetricDef, fifth: &str, sixth: &str) -> String {
    let unit = if metric.unit.is_empty() { "-" } else { metric.unit };
    format!(
        "| `{}` | {} | {unit} | {} | {fifth} | {sixth} |\n",
        metric.name,
        metric.kind.as_str(),
        tag_list(metric.tags),
    )
}

/// The events as the Markdown table `docs/observability.md` carries.
pub fn events_markdown_table() -> String {
    let mut table = String::from("| event (`event:` tag) | tags | when |\n| --- | --- | --- |\n");
    for event in EVENTS {
        table.push_str(&format!(
            "| `{}` | {} | {} |\n",
            event.name,
            tag_list(event.tags),
            event.description
        ));
    }
    table
}

fn tag_list(tags: &[TagKey]) -> String {
    match tags.is_empty() {
        true => "-".to_owned(),
        false => tags.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
    }
}
