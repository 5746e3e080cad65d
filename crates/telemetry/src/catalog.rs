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
//! Names follow the design record (`seed/ADR-datadog-observability.md`); `model.crai.*` is the
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
    FeatureView,
    Command,
    Booked,
    Currency,
    Job,
    Signal,
    Reason,
    Dependency,
}

impl TagKey {
    /// Every key, for catalog checks.
    pub const ALL: [TagKey; 15] = [
        TagKey::Rpc,
        TagKey::Status,
        TagKey::ErrorType,
        TagKey::Model,
        TagKey::ModelVersion,
        TagKey::Variant,
        TagKey::Feature,
        TagKey::FeatureView,
        TagKey::Command,
        TagKey::Booked,
        TagKey::Currency,
        TagKey::Job,
        TagKey::Signal,
        TagKey::Reason,
        TagKey::Dependency,
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
            TagKey::FeatureView => "feature_view",
            TagKey::Command => "command",
            TagKey::Booked => "booked",
            TagKey::Currency => "currency",
            TagKey::Job => "job",
            TagKey::Signal => "signal",
            TagKey::Reason => "reason",
            TagKey::Dependency => "dependency",
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
    pub description: &'static str,
}

impl MetricDef {
    /// Position of `key` among this metric's tags, if allowed.
    #[inline]
    pub fn tag_slot(&self, key: TagKey) -> Option<usize> {
        self.tags.iter().position(|k| *k == key)
    }
}

macro_rules! metrics {
    ($($(#[$doc:meta])* $ident:ident = $name:literal, $kind:ident, $unit:literal, [$($tag:ident),*], $desc:literal;)*) => {
        $(
            $(#[$doc])*
            #[doc = concat!("`", $name, "`: ", $desc)]
            pub static $ident: MetricDef = MetricDef {
                name: $name,
                kind: MetricKind::$kind,
                unit: $unit,
                tags: &[$(TagKey::$tag),*],
                description: $desc,
            };
        )*
        /// Every metric the platform sends.
        pub static CATALOG: &[&MetricDef] = &[$(&$ident),*];
    };
}

metrics! {
    API_PREDICT_REQUESTS = "api.predict.requests", Count, "request", [Rpc, Status],
        "Public API calls by RPC and gRPC status.";
    API_PREDICT_ERRORS = "api.predict.errors", Count, "error", [Rpc, ErrorType],
        "Public API calls that failed, by RPC and error type.";
    API_PREDICT_LATENCY_MS = "api.predict.latency_ms", Distribution, "millisecond", [Rpc, Status],
        "Public API call latency as seen by the gateway.";
    API_PREDICT_DEGRADED = "api.predict.degraded", Count, "prediction", [Rpc, Reason],
        "Predictions answered degraded, by RPC and reason (missing_features, stale_features, features_unavailable, model_fallback).";
    API_PREDICT_FEATURE_FETCH_MS = "api.predict.feature_fetch_ms", Distribution, "millisecond", [Model],
        "Time the gateway spent fetching online features for one prediction.";
    API_PREDICT_INFERENCE_MS = "api.predict.inference_ms", Distribution, "millisecond", [Model, ModelVersion],
        "Time spent scoring one prediction on the model-service.";
    MODEL_CRAI_RISK_SCORE = "model.crai.risk_score", Distribution, "", [Model, ModelVersion, Variant],
        "Customer-risk model score in [0, 1].";
    MODEL_CRAI_RISK_MULTIPLIER = "model.crai.risk_multiplier", Distribution, "", [Model, ModelVersion, Variant],
        "Price multiplier derived from the customer-risk score.";
    MODEL_DEMAND_SURGE_FACTOR = "model.demand.surge_factor", Distribution, "", [Model, ModelVersion, Variant],
        "Demand-surge factor after clamping.";
    MODEL_PREDICTIONS_COUNT = "model.predictions.count", Count, "prediction", [Model, ModelVersion, Variant],
        "Predictions served per model, version and experiment variant.";
    MODEL_FEATURE_DRIFT_PSI = "model.feature_drift.psi", Gauge, "", [Model, ModelVersion, Feature],
        "Population Stability Index of a feature against the manifest baseline (alert above 0.25).";
    MODEL_INFERENCE_BATCH_ROWS = "model.inference.batch_rows", Distribution, "row", [Model],
        "Rows per inference batch on the model-service.";
    CACHE_FEAST_HIT = "cache.feast.hit", Count, "hit", [FeatureView],
        "Feature-service cache hits in front of Redis.";
    CACHE_FEAST_MISS = "cache.feast.miss", Count, "miss", [FeatureView],
        "Feature-service cache misses (read through to Redis).";
    CACHE_FEAST_STALE_SERVED = "cache.feast.stale_served", Count, "row", [FeatureView],
        "Rows served from the cache past their TTL because Redis could not be read.";
    CACHE_MODEL_METADATA_HIT = "cache.model_metadata.hit", Count, "hit", [],
        "Gateway model-metadata cache hits.";
    CACHE_MODEL_METADATA_MISS = "cache.model_metadata.miss", Count, "miss", [],
        "Gateway model-metadata cache misses.";
    FEATURES_LOOKUPS = "features.lookups", Count, "lookup", [FeatureView, Status],
        "Feature values looked up, by view and availability (present, not_found, outside_max_age, null, invalid).";
    FEATURES_STALENESS_S = "features.staleness_s", Distribution, "second", [FeatureView],
        "Age of the feature row served (now - event timestamp).";
    REDIS_COMMAND_LATENCY_MS = "redis.command.latency_ms", Distribution, "millisecond", [Command],
        "Redis command round trip as seen by the client.";
    REDIS_COMMAND_ERRORS = "redis.command.errors", Count, "error", [Command, ErrorType],
        "Redis commands that failed, by error type.";
    GRPC_SERVER_SHED = "grpc.server.shed", Count, "request", [],
        "Requests a service refused at once with RESOURCE_EXHAUSTED because its concurrency limit was reached.";
    DOWNSTREAM_RETRIES = "downstream.retries", Count, "request", [Dependency],
        "Idempotent downstream calls the gateway retried (within its retry budget).";
    CIRCUIT_BREAKER_STATE = "circuit_breaker.state", Gauge, "", [Dependency],
        "The gateway's breaker for a dependency: 0 closed, 0.5 half-open, 1 open (failing fast).";
    CIRCUIT_BREAKER_REJECTED = "circuit_breaker.rejected", Count, "request", [Dependency],
        "Downstream calls the gateway refused at once because the dependency's breaker was open.";
    BUSINESS_QUOTES_COUNT = "business.quotes.count", Count, "quote", [Variant],
        "Price quotes issued, by experiment variant.";
    BUSINESS_OUTCOMES_COUNT = "business.outcomes.count", Count, "outcome", [Variant, Booked],
        "Quote outcomes recorded, by variant and whether the quote was booked.";
    BUSINESS_REVENUE_DYNAMIC_PRICING = "business.revenue.dynamic_pricing", Distribution, "", [Variant, Currency],
        "Revenue of each booked outcome priced dynamically (sum it for revenue, in the currency tagged).";
    BUSINESS_BOOKING_CONVERSION_RATE = "business.booking.conversion_rate", Gauge, "fraction", [Variant],
        "Bookings / outcomes over the process's rolling window, per variant.";
    BATCH_JOB_RUNS = "batch_job.runs", Count, "run", [Job, Status],
        "Batch job runs by job and outcome (success, failed).";
    BATCH_JOB_STATUS = "batch_job.status", Gauge, "", [Job],
        "Last batch job outcome: 1 ok, 0 failed (monitor: batch job failed).";
    BATCH_JOB_DURATION_S = "batch_job.duration_s", Distribution, "second", [Job],
        "Batch job wall time.";
    BATCH_JOB_ROWS = "batch_job.rows", Count, "row", [Job, FeatureView],
        "Rows a batch job wrote, per feature view.";
    TELEMETRY_DROPPED = "telemetry.dropped", Count, "", [Signal, Reason],
        "Telemetry this process dropped instead of blocking (metric, span or log; and why).";
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
    let mut table =
        String::from("| metric | type | unit | tags | what it measures |\n| --- | --- | --- | --- | --- |\n");
    for metric in CATALOG {
        let tags: Vec<&str> = metric.tags.iter().map(|k| k.as_str()).collect();
        let tags = if tags.is_empty() {
            "-".to_owned()
        } else {
            tags.join(", ")
        };
        let unit = if metric.unit.is_empty() { "-" } else { metric.unit };
        table.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            metric.name,
            metric.kind.as_str(),
            unit,
            tags,
            metric.description
        ));
    }
    table
}
