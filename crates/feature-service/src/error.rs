//! The service's errors, and the one place they become gRPC statuses.

use feature_store::RequestError;
use server_kit::Blame;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] crate::config::SettingsError),
    #[error(transparent)]
    Store(#[from] feature_store::Error),
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error(transparent)]
    Server(#[from] server_kit::Error),
}

/// Every error a caller can see, with a code it can act on: fix the request (INVALID_ARGUMENT,
/// NOT_FOUND), retry later (UNAVAILABLE), or give the call more time (DEADLINE_EXCEEDED). A Redis outage
/// is none of these: the store answers it with UNAVAILABLE values in an OK response.
impl From<Error> for Status {
    fn from(error: Error) -> Self {
        use feature_store::Error as Store;
        let code = match &error {
            Error::Store(Store::Request(request)) => match request {
                RequestError::UnknownFeatureView { .. } | RequestError::UnknownFeature { .. } => {
                    Code::NotFound
                }
                RequestError::NoFeatures
                | RequestError::TooManyFeatureRefs { .. }
                | RequestError::MalformedFeatureRef { .. }
                | RequestError::EntityColumnLengths { .. }
                | RequestError::MissingJoinKey { .. }
                | RequestError::TooManyEntityRows { .. }
                | RequestError::TooManyValues { .. }
                | RequestError::EmptyEntityId { .. }
                | RequestError::InvalidEntityValue { .. } => Code::InvalidArgument,
            },
            // Outages are answered by the store; what still arrives here is a Redis error reply it cannot
            // serve around (the request may succeed elsewhere or later).
            Error::Store(Store::Unavailable(_) | Store::Redis(_)) => Code::Unavailable,
            Error::Store(Store::Timeout(_) | Store::DeadlineExceeded) => Code::DeadlineExceeded,
            // Start-up errors: never produced while serving.
            Error::Store(
                Store::InvalidRedisUrl { .. }
                | Store::InvalidTlsConfig { .. }
                | Store::Connect { .. }
                | Store::Registry { .. }
                | Store::Csv { .. }
                | Store::Io { .. },
            )
            | Error::Settings(_)
            | Error::Serve(_)
            | Error::Server(_) => Code::Internal,
        };
        let message = match &error {
            Error::Store(Store::Request(request)) => request.to_string(),
            other => format!("feature store: {other}"),
        };
        Status::new(code, message)
    }
}

impl server_kit::Failure for Error {
    fn error_type(&self) -> &'static str {
        match self {
            Error::Store(store) => store.error_type(),
            Error::Settings(_) => "settings",
            Error::Serve(_) => "serve",
            Error::Server(_) => "server",
        }
    }

    fn blame(&self) -> Blame {
        use feature_store::Error as Store;
        match self {
            Error::Store(Store::Request(_)) => Blame::Caller,
            // Redis round trips that failed: the store has logged them (rate-limited) already.
            Error::Store(Store::Unavailable(_) | Store::Timeout(_) | Store::Redis(_)) => Blame::Reported,
            Error::Store(Store::DeadlineExceeded) => Blame::Load,
            _ => Blame::Server,
        }
    }
}

#[cfg(test)]
mod tests {
    use feature_store::{MAX_ENTITY_ROWS, MAX_FEATURE_REFS, MAX_VALUES, RequestError};
    use tonic::{Code, Status};

    use super::Error;

    #[test]
    fn requests_over_a_cap_are_invalid_arguments_naming_the_field_and_the_cap() {
        let cases = [
            (
                RequestError::TooManyFeatureRefs {
                    refs: MAX_FEATURE_REFS + 1,
                    max: MAX_FEATURE_REFS,
                },
                "features: ",
                MAX_FEATURE_REFS,
            ),
            (
                RequestError::TooManyEntityRows {
                    rows: MAX_ENTITY_ROWS + 1,
                    max: MAX_ENTITY_ROWS,
                },
                "entities: ",
                MAX_ENTITY_ROWS,
            ),
            (
                RequestError::TooManyValues {
                    refs: 200,
                    rows: MAX_ENTITY_ROWS,
                    max: MAX_VALUES,
                },
                "features × entities: ",
                MAX_VALUES,
            ),
        ];
        for (request, field, cap) in cases {
            let status = Status::from(Error::Store(request.into()));
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(status.message().starts_with(field), "{status:?}");
            assert!(
                status.message().contains(&format!("limit of {cap} ")),
                "{status:?}"
            );
        }
    }
}
