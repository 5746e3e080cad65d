//! Every way a gateway request can fail, and the one mapping to a gRPC status a caller can act on.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
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
    /// A downstream service answered with an error or could not be reached.
    #[error("{service} failed: {status}")]
    Downstream { service: &'static str, status: Status },
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
            Self::Downstream { .. } => "downstream",
            Self::DeadlineExceeded(_) => "deadline_exceeded",
            Self::QuoteStore(_) => "quote_store",
            Self::BadResponse { .. } => "bad_response",
        }
    }

    /// Maps a failed downstream call: its deadline passing stays DEADLINE_EXCEEDED, anything else is the
    /// dependency being unavailable to us.
    pub fn downstream(service: &'static str, status: Status) -> Self {
        if status.code() == Code::DeadlineExceeded || status.code() == Code::Cancelled {
            Self::DeadlineExceeded(service)
        } else {
            Self::Downstream { service, status }
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidArgument { .. } => Status::invalid_argument(message),
            Error::QuoteNotFound(_) => Status::not_found(message),
            Error::OutcomeConflict(_) => Status::already_exists(message),
            Error::DeadlineExceeded(_) => Status::deadline_exceeded(message),
            Error::Downstream { status, service } => match status.code() {
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
                | Code::Unauthenticated => {
                    tracing::error!(service, code = ?status.code(), "downstream rejected the gateway's call");
                    Status::internal(message)
                }
                _ => Status::unavailable(message),
            },
            Error::QuoteStore(_) => Status::unavailable(message),
            Error::BadResponse { .. } => Status::internal(message),
        }
    }
}
