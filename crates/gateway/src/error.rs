//! Every way a gateway request can fail, and the one mapping to a gRPC status a caller can act on.

use server_kit::Blame;
use tonic::{Code, Status};

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A request field is malformed; the message names the field.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// RecordOutcome for a quote that was never issued or has expired.
    #[error("quote {0} not found: it was never issued or has expired")]
    QuoteNotFound(String),
    /// RecordOutcome for a quote that already has a different outcome.
    #[error("quote {0} already has a different outcome recorded")]
    OutcomeConflict(String),
    /// RecordLabel for a prediction id that was never issued or whose record has expired.
    #[error("prediction {0} not found: it was never issued, was a fallback answer, or has expired")]
    PredictionNotFound(String),
    /// RecordLabel for a prediction that already has a different label.
    #[error("prediction {0} already has a different label recorded")]
    LabelConflict(String),
    /// A downstream service answered with an error or could not be reached.
    #[error("{service} failed: {} ({})", telemetry::grpc_code_name(status.code()), status.message())]
    Downstream { service: &'static str, status: Status },
    /// The dependency failed repeatedly and its circuit breaker is open: the call was not attempted.
    #[error(
        "{0} unavailable: failing fast after repeated failures (circuit breaker open; probing again shortly)"
    )]
    CircuitOpen(&'static str),
    /// The request's budget ran out before the answer was ready.
    #[error("deadline exceeded while waiting for {0}")]
    DeadlineExceeded(&'static str),
    /// The quote store could not be reached.
    #[error("quote store unavailable: {0}")]
    QuoteStore(String),
    /// A downstream answer did not have the shape of its contract.
    #[error("{service} returned an invalid response: {reason}")]
    BadResponse { service: &'static str, reason: String },
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The error's kind, bounded and stable: a tag value for metrics and a field for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidArgument { .. } => "invalid_argument",
            Self::QuoteNotFound(_) => "quote_not_found",
            Self::OutcomeConflict(_) => "outcome_conflict",
            Self::PredictionNotFound(_) => "prediction_not_found",
            Self::LabelConflict(_) => "label_conflict",
            Self::Downstream { .. } => "downstream",
            Self::DeadlineExceeded(_) => "deadline_exceeded",
            Self::CircuitOpen(_) => "circuit_open",
            Self::QuoteStore(_) => "quote_store",
            Self::BadResponse { .. } => "bad_response",
        }
    }

    /// The dependency is down, overloaded or too slow (as opposed to answering, even with a rejection):
    /// what a circuit breaker counts and a fallback may stand in for.
    pub fn is_dependency_failure(&self) -> bool {
        match self {
            Self::DeadlineExceeded(_) | Self::CircuitOpen(_) => true,
            Self::Downstream { status, .. } => matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::Internal | Code::DataLoss | Code::ResourceExhausted
            ),
            _ => false,
        }
    }

    /// The dependency answered RESOURCE_EXHAUSTED: it is up, and shedding load.
    pub fn is_shedding(&self) -> bool {
        matches!(self, Self::Downstream { status, .. } if status.code() == Code::ResourceExhausted)
    }

    /// The dependency could not be reached at all (connection refused or reset, shedding before work):
    /// an idempotent read may be retried elsewhere or a moment later.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Downstream { status, .. } if status.code() == Code::Unavailable)
    }

    /// Maps a failed downstream call made within `deadline`: its deadline passing stays
    /// DEADLINE_EXCEEDED, anything else is the dependency being unavailable to us.
    ///
    /// CANCELLED is either: tonic ends a call whose grpc-timeout passed as CANCELLED "Timeout expired",
    /// and hyper ends one whose connection closed before the answer (a dependency that crashed mid-call)
    /// as CANCELLED too. With the deadline spent it is the deadline; before it, the broken connection,
    /// which the gRPC spec makes UNAVAILABLE, so the read is retried and the breaker counts the outage.
    pub fn downstream(service: &'static str, status: Status, deadline: &server_kit::Deadline) -> Self {
        match status.code() {
            Code::DeadlineExceeded => Self::DeadlineExceeded(service),
            Code::Cancelled if deadline.is_spent() => Self::DeadlineExceeded(service),
            Code::Cancelled => Self::Downstream {
                service,
                status: Status::unavailable(format!(
                    "connection lost before the answer ({})",
                    status.message()
                )),
            },
            _ => Self::Downstream { service, status },
        }
    }
}

impl server_kit::Failure for Error {
    fn error_type(&self) -> &'static str {
        self.kind()
    }

    /// Whose fault the failure is, for the one failed-request log line (`server_kit::reject`): the
    /// caller's mistakes each time, an outage (a dependency or the quote store failing) at most once a
    /// second, and a dependency rejecting what the gateway sent, or answering out of contract, as the
    /// gateway's own fault.
    fn blame(&self) -> Blame {
        match self {
            Self::InvalidArgument { .. }
            | Self::QuoteNotFound(_)
            | Self::OutcomeConflict(_)
            | Self::PredictionNotFound(_)
            | Self::LabelConflict(_) => Blame::Caller,
            Self::QuoteStore(_) => Blame::Dependency,
            error if error.is_dependency_failure() => Blame::Dependency,
            Self::Downstream { .. }
            | Self::BadResponse { .. }
            | Self::DeadlineExceeded(_)
            | Self::CircuitOpen(_) => Blame::Server,
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        Self::from(&error)
    }
}

impl From<&Error> for Status {
    /// The status also names the error's kind in the `error-type` header, so `api.predict.errors` and
    /// the `request failed` line share one `error_type` vocabulary (an open breaker and an outage are
    /// both UNAVAILABLE, but not the same trouble).
    fn from(error: &Error) -> Self {
        let mut status = status_of(error);
        status.metadata_mut().insert(
            telemetry::ERROR_TYPE_HEADER,
            tonic::metadata::MetadataValue::from_static(error.kind()),
        );
        status
    }
}

fn status_of(error: &Error) -> Status {
    let message = error.to_string();
    match error {
        Error::InvalidArgument { .. } => Status::invalid_argument(message),
        Error::QuoteNotFound(_) => Status::not_found(message),
        Error::OutcomeConflict(_) | Error::LabelConflict(_) => Status::already_exists(message),
        Error::PredictionNotFound(_) => Status::not_found(message),
        Error::DeadlineExceeded(_) => Status::deadline_exceeded(message),
        Error::Downstream { status, .. } => match status.code() {
            // The callee says it is overloaded: pass that on so callers back off.
            Code::ResourceExhausted => Status::resource_exhausted(message),
            // The callee rejected what the gateway sent (a contract or configuration fault, e.g. a
            // model name the repository does not hold): retrying cannot help, so do not invite it.
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::PermissionDenied
            | Code::Unauthenticated => Status::internal(message),
            _ => Status::unavailable(message),
        },
        Error::QuoteStore(_) | Error::CircuitOpen(_) => Status::unavailable(message),
        Error::BadResponse { .. } => Status::internal(message),
    }
}
