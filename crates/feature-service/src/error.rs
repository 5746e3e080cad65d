//! The service's errors, and the one place they become gRPC statuses.

use feature_store::RequestError;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] feature_store::Error),
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Every error a caller can see, with a code it can act on: fix the request (INVALID_ARGUMENT,
/// NOT_FOUND), retry later (UNAVAILABLE), or give the call more time (DEADLINE_EXCEEDED).
impl From<Error> for Status {
    fn from(error: Error) -> Self {
        use feature_store::Error as Store;
        let code = match &error {
            Error::Store(Store::Request(request)) => match request {
                RequestError::UnknownFeatureView { .. } | RequestError::UnknownFeature { .. } => {
                    Code::NotFound
                }
                RequestError::NoFeatures
                | RequestError::MalformedFeatureRef { .. }
                | RequestError::EntityColumnLengths { .. }
                | RequestError::MissingJoinKey { .. }
                | RequestError::TooManyEntityRows { .. }
                | RequestError::EmptyEntityId { .. }
                | RequestError::InvalidEntityValue { .. } => Code::InvalidArgument,
            },
            // Redis answering with an error (LOADING, BUSY, MASTERDOWN...) is a passing server state too.
            Error::Store(Store::Unavailable(_) | Store::Redis(_)) => Code::Unavailable,
            Error::Store(Store::Timeout(_) | Store::DeadlineExceeded) => Code::DeadlineExceeded,
            // Start-up errors: never produced while serving.
            Error::Store(
                Store::InvalidRedisUrl { .. }
                | Store::Connect { .. }
                | Store::Registry { .. }
                | Store::Csv { .. }
                | Store::Io { .. },
            )
            | Error::Serve(_) => Code::Internal,
        };
        let message = match &error {
            Error::Store(Store::Request(request)) => request.to_string(),
            other => format!("feature store: {other}"),
        };
        Status::new(code, message)
    }
}
