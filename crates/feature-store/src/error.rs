//! The crate's errors: [`RequestError`] for a request a caller must fix, [`Error`] for everything else.

use std::time::Duration;

use crate::value_type::ValueType;

/// A `GetOnlineFeatures` request that cannot be served as asked. Every message names the request field
/// at fault, so a caller can act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("features: at least one feature reference (\"feature_view:feature\") is required")]
    NoFeatures,
    #[error("features: {refs} feature references is more than the limit of {max} per request")]
    TooManyFeatureRefs { refs: usize, max: usize },
    #[error(
        "features[{index}]: malformed feature reference {reference:?}: expected \"feature_view:feature\""
    )]
    MalformedFeatureRef { index: usize, reference: String },
    #[error(
        "features[{index}]: unknown feature view {view:?} (NOT_FOUND: no such view in the feature registry)"
    )]
    UnknownFeatureView { index: usize, view: String },
    #[error(
        "features[{index}]: unknown feature {feature:?} in feature view {view:?} \
         (NOT_FOUND: the view has no such feature)"
    )]
    UnknownFeature {
        index: usize,
        view: String,
        feature: String,
    },
    #[error(
        "entities: every entity column must have the same length, but {join_key:?} has {len} values \
         and {other_join_key:?} has {other_len}"
    )]
    EntityColumnLengths {
        join_key: String,
        len: usize,
        other_join_key: String,
        other_len: usize,
    },
    #[error("entities: missing join key {join_key:?}, needed by feature view {view:?}")]
    MissingJoinKey { view: String, join_key: String },
    #[error("entities: {rows} entity rows is more than the limit of {max} per request")]
    TooManyEntityRows { rows: usize, max: usize },
    /// The answer would hold `refs × rows` values: each count within its own limit, the two together not.
    #[error(
        "features × entities: {refs} feature references × {rows} entity rows is {values} values, more than \
         the limit of {max} per request; split the entity rows over several requests",
        values = .refs * .rows
    )]
    TooManyValues { refs: usize, rows: usize, max: usize },
    #[error("entities[{join_key:?}][{row}]: empty entity id")]
    EmptyEntityId { join_key: String, row: usize },
    #[error("entities[{join_key:?}][{row}]: expected a {expected} value, got {got}")]
    InvalidEntityValue {
        join_key: String,
        row: usize,
        expected: ValueType,
        got: &'static str,
    },
}

impl RequestError {
    /// True when the request names something the registry does not have (a gRPC NOT_FOUND), false when it
    /// is malformed (INVALID_ARGUMENT).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::UnknownFeatureView { .. } | Self::UnknownFeature { .. }
        )
    }
}

/// Error replies of a server that is up but cannot serve for a while (loading its data set, running a long
/// script, a replica cut off from its primary, a cluster resharding).
const TRANSIENT_REPLIES: &[&str] = &["LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN"];

/// Everything that can go wrong in the feature store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is invalid; nothing was read.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Redis cannot be reached now (disconnected, reconnecting, connection refused, cluster down).
    #[error("Redis is unavailable: {0}")]
    Unavailable(#[source] fred::error::Error),
    /// Redis did not answer within the call's timeout (the configured one or the request's deadline).
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The request's deadline had passed before Redis was called.
    #[error("the request's deadline has already passed")]
    DeadlineExceeded,
    /// Redis answered with an error the store cannot serve around.
    #[error("Redis error: {0}")]
    Redis(#[source] fred::error::Error),
    /// The Redis URL does not parse (the URL in the message has its password redacted).
    #[error("invalid Redis URL {url}: {reason}")]
    InvalidRedisUrl { url: String, reason: String },
    /// The Redis TLS settings cannot be used (a file that does not read or parse, TLS files for a URL
    /// without TLS, a client certificate without its key).
    #[error("Redis TLS configuration: {reason}")]
    InvalidTlsConfig { reason: String },
    /// No connection to Redis could be made in time (materialization,
    /// [`RedisConnection::connected_within`](crate::RedisConnection::connected_within); the URL in the
    /// message has its password redacted), or no Tokio runtime to connect on. The online store does not
    /// fail for Redis being away: it keeps connecting in the background.
    #[error("cannot connect to Redis at {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The feature registry does not parse or is inconsistent.
    #[error("feature registry {origin}: {reason}")]
    Registry { origin: String, reason: String },
    /// A CSV file (snapshot or materialization input) is malformed.
    #[error("{file}:{line}: {reason}")]
    Csv { file: String, line: u64, reason: String },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A bounded class of the error, for the `error_type` metric tag, span `error.type` and log field.
    pub fn error_type(&self) -> &'static str {
        use fred::error::ErrorKind;
        match self {
            Self::Request(request) if request.is_not_found() => "not_found",
            Self::Request(_) => "invalid_request",
            Self::Unavailable(_) => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Redis(error) => match error.kind() {
                ErrorKind::Protocol | ErrorKind::Parse => "protocol",
                // An error reply (ERR, LOADING, BUSY, MASTERDOWN, ...).
                _ => "reply",
            },
            Self::InvalidRedisUrl { .. } => "invalid_url",
            Self::InvalidTlsConfig { .. } => "tls_config",
            Self::Connect { .. } => "connect",
            Self::Registry { .. } => "registry",
            Self::Csv { .. } => "csv",
            Self::Io { .. } => "io",
        }
    }

    /// True when Redis could not be read for a passing reason: not connected or reconnecting, an IO or
    /// cluster error, no answer in time (the request's deadline included), or a reply saying the server
    /// cannot serve right now (LOADING, BUSY, MASTERDOWN, TRYAGAIN). Reads then answer from what the cache
    /// holds, the rest UNAVAILABLE, instead of failing the request.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Timeout(_) => true,
            Self::Redis(error) => {
                let code = error.details().split_whitespace().next().unwrap_or_default();
                TRANSIENT_REPLIES.contains(&code)
            }
            _ => false,
        }
    }

    /// The class [`Error::error_type`] gives a failed Redis command's fred error: `timeout`,
    /// `unavailable`, `protocol` or `reply`. For the other clients of Redis (the gateway's quote store),
    /// so that their spans class failures as the feature store's do.
    pub fn redis_error_type(error: &fred::error::Error) -> &'static str {
        Self::from_redis(error.clone(), Duration::ZERO).error_type()
    }

    /// Classifies a fred error: transport trouble is `Unavailable`, a timeout is `Timeout`, the rest is
    /// a Redis error.
    pub(crate) fn from_redis(error: fred::error::Error, timeout: Duration) -> Self {
        use fred::error::ErrorKind;
        match error.kind() {
            ErrorKind::Timeout => Self::Timeout(timeout),
            ErrorKind::IO
            | ErrorKind::Canceled
            | ErrorKind::Cluster
            | ErrorKind::Backpressure
            | ErrorKind::Auth
            | ErrorKind::Tls
            | ErrorKind::Routing => Self::Unavailable(error),
            _ => Self::Redis(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fred::error::{Error as FredError, ErrorKind};

    use super::Error;

    fn classify(kind: ErrorKind, details: &'static str) -> Error {
        Error::from_redis(FredError::new(kind, details), Duration::from_millis(5))
    }

    #[test]
    fn a_fred_error_is_classed_as_the_store_classes_it() {
        for (kind, details, class) in [
            (ErrorKind::Timeout, "timed out", "timeout"),
            (ErrorKind::IO, "connection refused", "unavailable"),
            (
                ErrorKind::Cluster,
                "CLUSTERDOWN the cluster is down",
                "unavailable",
            ),
            (ErrorKind::Parse, "bad frame", "protocol"),
            (ErrorKind::Unknown, "ERR unknown command", "reply"),
        ] {
            let error = FredError::new(kind, details);
            assert_eq!(Error::redis_error_type(&error), class, "{details}");
        }
    }

    #[test]
    fn outages_are_told_from_errors_that_are_not() {
        let outages = [
            classify(ErrorKind::IO, "connection refused"),
            classify(ErrorKind::Timeout, "timed out"),
            classify(ErrorKind::Canceled, "connection closed"),
            classify(ErrorKind::Cluster, "CLUSTERDOWN the cluster is down"),
            classify(
                ErrorKind::Unknown,
                "LOADING Redis is loading the dataset in memory",
            ),
            classify(ErrorKind::Unknown, "BUSY Redis is busy running a script"),
            classify(ErrorKind::Unknown, "MASTERDOWN Link with MASTER is down"),
        ];
        for error in &outages {
            assert!(error.is_outage(), "{error:?}");
        }
        let not_outages = [
            classify(ErrorKind::Unknown, "ERR unknown command"),
            classify(ErrorKind::Unknown, "NOPERM this user has no permissions"),
            classify(ErrorKind::Protocol, "bad frame"),
            classify(ErrorKind::Unknown, "LOADINGS is not a code"),
            Error::DeadlineExceeded,
        ];
        for error in &not_outages {
            assert!(!error.is_outage(), "{error:?}");
        }
    }
}
