//! Metric tags, typed and bounded by construction: one constructor per [`TagKey`], taking an enum for
//! closed value sets and `&'static str` for sets the code defines. Only model, version, variant and
//! feature names (deployment data, bounded by the model repository and the feature registry) are
//! borrowed strings; the series cap in the aggregator bounds them anyway.

use crate::catalog::TagKey;

/// One `key:value` metric tag. Build it with the constructors; there is no free-form `new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    key: TagKey,
    value: &'a str,
}

impl<'a> Tag<'a> {
    pub const fn key(&self) -> TagKey {
        self.key
    }
    pub const fn value(&self) -> &'a str {
        self.value
    }
    /// Model name from the model repository.
    pub const fn model(name: &'a str) -> Self {
        Self {
            key: TagKey::Model,
            value: name,
        }
    }
    /// Model version from the model repository.
    pub const fn model_version(version: &'a str) -> Self {
        Self {
            key: TagKey::ModelVersion,
            value: version,
        }
    }
    /// Experiment variant (A/B arm) from the experiment configuration.
    pub const fn variant(variant: &'a str) -> Self {
        Self {
            key: TagKey::Variant,
            value: variant,
        }
    }
    /// Feature view from the feature registry.
    pub const fn feature_view(view: &'a str) -> Self {
        Self {
            key: TagKey::FeatureView,
            value: view,
        }
    }
    /// Feature name from a model manifest.
    pub const fn feature(feature: &'a str) -> Self {
        Self {
            key: TagKey::Feature,
            value: feature,
        }
    }
    /// Output name from a model manifest.
    pub const fn output(output: &'a str) -> Self {
        Self {
            key: TagKey::Output,
            value: output,
        }
    }
}

impl Tag<'static> {
    /// gRPC method name, e.g. `QuotePrice` (a code-defined set).
    pub const fn rpc(method: &'static str) -> Self {
        Self {
            key: TagKey::Rpc,
            value: method,
        }
    }
    /// Error class, e.g. `deadline_exceeded`, `redis_timeout` (a code-defined set).
    pub const fn error_type(error_type: &'static str) -> Self {
        Self {
            key: TagKey::ErrorType,
            value: error_type,
        }
    }
    /// Redis command, e.g. `HMGET`.
    pub const fn command(command: &'static str) -> Self {
        Self {
            key: TagKey::Command,
            value: command,
        }
    }
    /// A downstream dependency the gateway calls, e.g. `model-service` (a code-defined set).
    pub const fn dependency(dependency: &'static str) -> Self {
        Self {
            key: TagKey::Dependency,
            value: dependency,
        }
    }
    /// Why a prediction was answered degraded.
    pub const fn degraded(reason: DegradedReason) -> Self {
        Self {
            key: TagKey::Reason,
            value: reason.as_str(),
        }
    }
    /// Batch job name, e.g. `materialize`.
    pub const fn job(job: &'static str) -> Self {
        Self {
            key: TagKey::Job,
            value: job,
        }
    }
    /// gRPC status of a call, as `ok`, `deadline_exceeded`...
    pub fn grpc_status(code: tonic::Code) -> Self {
        Self {
            key: TagKey::Status,
            value: grpc_code_name(code),
        }
    }
    /// Whose fault a failed call is: `server` (the platform failed: unavailable, internal, deadline
    /// exceeded, overloaded...) or `client` (the request was refused: invalid argument, not found...).
    pub fn fault(code: tonic::Code) -> Self {
        Self {
            key: TagKey::Fault,
            value: grpc_fault(code),
        }
    }
    /// Availability of a looked-up feature value.
    pub const fn lookup_status(status: LookupStatus) -> Self {
        Self {
            key: TagKey::Status,
            value: status.as_str(),
        }
    }
    /// Outcome of a batch job run.
    pub const fn job_status(status: JobStatus) -> Self {
        Self {
            key: TagKey::Status,
            value: status.as_str(),
        }
    }
    /// Whether a quote was booked.
    pub const fn booked(booked: bool) -> Self {
        Self {
            key: TagKey::Booked,
            value: if booked { "true" } else { "false" },
        }
    }
    /// ISO 4217 currency code; anything that is not three ASCII letters becomes `invalid`, so a
    /// caller's free text can never become a tag.
    pub fn currency(code: &str) -> Self {
        const KNOWN: &[&str] = &[
            "EUR", "USD", "GBP", "CHF", "JPY", "CAD", "AUD", "SEK", "NOK", "DKK", "PLN",
        ];
        let value = KNOWN
            .iter()
            .find(|known| known.eq_ignore_ascii_case(code))
            .copied()
            .unwrap_or(
                if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
                    "other"
                } else {
                    "invalid"
                },
            );
        Self {
            key: TagKey::Currency,
            value,
        }
    }
    /// Which telemetry signal was dropped.
    pub const fn signal(signal: Signal) -> Self {
        Self {
            key: TagKey::Signal,
            value: signal.as_str(),
        }
    }
    /// Why telemetry was dropped.
    pub const fn reason(reason: DropReason) -> Self {
        Self {
            key: TagKey::Reason,
            value: reason.as_str(),
        }
    }
}

impl TagKey {
    /// The values the code can send under this key when they form a closed set (enums), so checkers
    /// can refuse a query that filters on a value that never occurs; `None` where the values come from
    /// the deployment (models, features) or from code-defined names.
    pub const fn closed_values(self) -> Option<&'static [&'static str]> {
        match self {
            TagKey::Status => Some(STATUS_VALUES),
            TagKey::Fault => Some(&["server", "client"]),
            TagKey::Booked => Some(&["true", "false"]),
            TagKey::Signal => Some(&["metric", "span", "log"]),
            _ => None,
        }
    }
}

/// `status`: a gRPC code name, a feature lookup status or a batch job outcome.
const STATUS_VALUES: &[&str] = &[
    "ok",
    "cancelled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
    "present",
    "outside_max_age",
    "null",
    "invalid",
    "success",
    "failed",
];

/// Availability of a feature value, in the spirit of Feast's serving statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupStatus {
    Present,
    NotFound,
    OutsideMaxAge,
    Null,
    Invalid,
    /// The store could not be read (Redis down) and no cached row stood in.
    Unavailable,
}

impl LookupStatus {
    pub const ALL: [LookupStatus; 6] = [
        LookupStatus::Present,
        LookupStatus::NotFound,
        LookupStatus::OutsideMaxAge,
        LookupStatus::Null,
        LookupStatus::Invalid,
        LookupStatus::Unavailable,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            LookupStatus::Present => "present",
            LookupStatus::NotFound => "not_found",
            LookupStatus::OutsideMaxAge => "outside_max_age",
            LookupStatus::Null => "null",
            LookupStatus::Invalid => "invalid",
            LookupStatus::Unavailable => "unavailable",
        }
    }
}

/// Why a prediction was degraded, for `api.predict.degraded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DegradedReason {
    /// Some features had no value stored (or a null or undecodable one); the model's defaults stood in.
    MissingFeatures,
    /// Some feature values were older than their view's max age; the model's defaults stood in.
    StaleFeatures,
    /// The feature store or the feature-service could not be read; the model's defaults stood in.
    FeaturesUnavailable,
    /// The model-service could not score; the configured fallback answered.
    ModelFallback,
}

impl DegradedReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            DegradedReason::MissingFeatures => "missing_features",
            DegradedReason::StaleFeatures => "stale_features",
            DegradedReason::FeaturesUnavailable => "features_unavailable",
            DegradedReason::ModelFallback => "model_fallback",
        }
    }
}

/// Outcome of a batch job run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Success,
    Failed,
}

impl JobStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            JobStatus::Success => "success",
            JobStatus::Failed => "failed",
        }
    }
}

/// A telemetry signal, for `telemetry.dropped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Metric,
    Span,
    Log,
}

impl Signal {
    pub const fn as_str(self) -> &'static str {
        match self {
            Signal::Metric => "metric",
            Signal::Span => "span",
            Signal::Log => "log",
        }
    }
}

/// Why telemetry was dropped, for `telemetry.dropped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The aggregator already holds the maximum number of distinct series.
    SeriesLimit,
    /// The aggregator already buffers the maximum number of distribution samples.
    SampleLimit,
    /// A tag key the catalog does not allow for that metric (a bug at the call site).
    TagNotAllowed,
    /// NaN or infinite value, or a metric recorded with the wrong kind.
    InvalidValue,
    /// No agent to send to (UDS socket missing, host unresolvable).
    AgentUnavailable,
    /// The datagram could not be written (socket buffer full, agent gone).
    SendFailed,
    /// The export queue was full.
    QueueFull,
    /// The exporter failed (agent down or refusing).
    ExportFailed,
}

impl DropReason {
    pub const ALL: [DropReason; 8] = [
        DropReason::SeriesLimit,
        DropReason::SampleLimit,
        DropReason::TagNotAllowed,
        DropReason::InvalidValue,
        DropReason::AgentUnavailable,
        DropReason::SendFailed,
        DropReason::QueueFull,
        DropReason::ExportFailed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::SeriesLimit => "series_limit",
            DropReason::SampleLimit => "sample_limit",
            DropReason::TagNotAllowed => "tag_not_allowed",
            DropReason::InvalidValue => "invalid_value",
            DropReason::AgentUnavailable => "agent_unavailable",
            DropReason::SendFailed => "send_failed",
            DropReason::QueueFull => "queue_full",
            DropReason::ExportFailed => "export_failed",
        }
    }
}

/// The response header a server names a failed call's kind in, when it knows more than the gRPC code
/// (an open circuit breaker and a dependency outage are both UNAVAILABLE).
pub const ERROR_TYPE_HEADER: &str = "error-type";

/// The error kinds a server may name in [`ERROR_TYPE_HEADER`]: with the gRPC code names, the one bounded
/// vocabulary of `error_type`, the same on `api.predict.errors` as in the `request failed` log lines.
pub const ERROR_KINDS: &[&str] = &[
    "invalid_argument",
    "quote_not_found",
    "outcome_conflict",
    "prediction_not_found",
    "label_conflict",
    "downstream",
    "deadline_exceeded",
    "circuit_open",
    "quote_store",
    "bad_response",
];

/// A failed call's `error_type`: the kind its server named in [`ERROR_TYPE_HEADER`] if that is one of
/// [`ERROR_KINDS`] (anything else is ignored, so the tag stays bounded), else the gRPC code's name.
pub fn error_type_of(headers: &http::HeaderMap, code: tonic::Code) -> &'static str {
    headers
        .get(ERROR_TYPE_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|named| ERROR_KINDS.iter().copied().find(|kind| *kind == named))
        .unwrap_or_else(|| grpc_code_name(code))
}

/// The snake_case name of a gRPC code, as used in metric tags and `error_type`.
pub fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// Whose fault a non-OK gRPC status is, for the `fault` tag: `server` for the codes that say the
/// platform failed the caller (what error-rate alerts and the availability SLO count), `client` for
/// those that say the request itself was wrong or gave up.
pub fn grpc_fault(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Unknown
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Unimplemented
        | Code::Internal
        | Code::Unavailable
        | Code::DataLoss => "server",
        Code::Ok
        | Code::Cancelled
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unauthenticated => "client",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_status_values_cover_every_status_the_code_sends() {
        let values = TagKey::Status.closed_values().unwrap_or_default();
        for code in (0..=16).map(tonic::Code::from) {
            assert!(values.contains(&grpc_code_name(code)), "{code:?}");
        }
        for status in LookupStatus::ALL {
            assert!(values.contains(&status.as_str()), "{status:?}");
        }
        for status in [JobStatus::Success, JobStatus::Failed] {
            assert!(values.contains(&status.as_str()), "{status:?}");
        }
        let faults = TagKey::Fault.closed_values().unwrap_or_default();
        for code in (1..=16).map(tonic::Code::from) {
            assert!(faults.contains(&grpc_fault(code)), "{code:?}");
        }
    }
}

#[cfg(test)]
mod error_type_tests {
    use super::{ERROR_TYPE_HEADER, error_type_of};

    #[test]
    fn a_named_kind_is_used_only_from_the_bounded_vocabulary() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(error_type_of(&headers, tonic::Code::Unavailable), "unavailable");
        headers.insert(ERROR_TYPE_HEADER, "circuit_open".parse().expect("ascii"));
        assert_eq!(error_type_of(&headers, tonic::Code::Unavailable), "circuit_open");
        headers.insert(
            ERROR_TYPE_HEADER,
            "anything-a-caller-made-up".parse().expect("ascii"),
        );
        assert_eq!(error_type_of(&headers, tonic::Code::Unavailable), "unavailable");
    }
}
