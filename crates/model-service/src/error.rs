//! Every way the model-service fails, and the one mapping of those failures to gRPC statuses.

use model_runtime::{LoadError, LookupError, PredictError};
use tonic::Status;

/// A start-up failure or a failed request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repository did not load; the service does not start.
    #[error("cannot load the model repository: {0}")]
    Repository(#[from] LoadError),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A task on tokio's blocking pool panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("`model` is empty: name the model to use")]
    EmptyModel,
    #[error("`rows` is empty: send at least one row to score")]
    NoRows,
    #[error("`rows` has {rows} rows; at most {max} are allowed per call")]
    TooManyRows { rows: usize, max: usize },
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error(transparent)]
    Predict(#[from] PredictError),
    #[error("the service is shutting down")]
    ShuttingDown,
}

impl From<Error> for Status {
    /// Exhaustive on purpose, down to the runtime's variants: a new failure mode must choose its code.
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::EmptyModel | Error::NoRows | Error::TooManyRows { .. } => {
                Status::invalid_argument(message)
            }
            Error::Lookup(LookupError::UnknownModel { .. } | LookupError::UnknownVersion { .. }) => {
                Status::not_found(message)
            }
            Error::Predict(PredictError::UnknownInput { row, name }) => Status::invalid_argument(format!(
                "rows[{row}].features has unknown input {name:?}; GetModelMetadata lists the model's inputs"
            )),
            Error::Predict(PredictError::Inference { .. } | PredictError::NonFiniteOutput { .. }) => {
                Status::internal(message)
            }
            Error::ShuttingDown | Error::Transport(_) => Status::unavailable(message),
            Error::Repository(_) | Error::Task(_) => Status::internal(message),
        }
    }
}

impl Error {
    /// A bounded class of the failure, for the `error_type` log field and the span's `error.type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Repository(_) => "repository",
            Error::Transport(_) => "transport",
            Error::Task(_) => "task_failed",
            Error::EmptyModel => "empty_model",
            Error::NoRows => "no_rows",
            Error::TooManyRows { .. } => "too_many_rows",
            Error::Lookup(LookupError::UnknownModel { .. }) => "unknown_model",
            Error::Lookup(LookupError::UnknownVersion { .. }) => "unknown_version",
            Error::Predict(PredictError::UnknownInput { .. }) => "unknown_input",
            Error::Predict(PredictError::Inference { .. }) => "inference_failed",
            Error::Predict(PredictError::NonFiniteOutput { .. }) => "non_finite_output",
            Error::ShuttingDown => "shutting_down",
        }
    }

    /// Whether the caller sent something wrong (logged quietly) rather than the service failing.
    pub fn is_client_error(&self) -> bool {
        match self {
            Error::EmptyModel
            | Error::NoRows
            | Error::TooManyRows { .. }
            | Error::Lookup(_)
            | Error::Predict(PredictError::UnknownInput { .. }) => true,
            Error::Predict(PredictError::Inference { .. } | PredictError::NonFiniteOutput { .. })
            | Error::Repository(_)
            | Error::Transport(_)
            | Error::Task(_)
            | Error::ShuttingDown => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn codes() {
        let cases = [
            (Error::EmptyModel, Code::InvalidArgument),
            (Error::NoRows, Code::InvalidArgument),
            (Error::TooManyRows { rows: 2, max: 1 }, Code::InvalidArgument),
            (
                Error::Lookup(LookupError::UnknownModel {
                    model: "x".into(),
                    known: vec!["a".into()],
                }),
                Code::NotFound,
            ),
            (
                Error::Lookup(LookupError::UnknownVersion {
                    model: "a".into(),
                    version: "9".into(),
                    available: vec!["1".into()],
                }),
                Code::NotFound,
            ),
            (
                Error::Predict(PredictError::UnknownInput {
                    row: 3,
                    name: "x".into(),
                }),
                Code::InvalidArgument,
            ),
            (
                Error::Predict(PredictError::Inference {
                    model: "a".into(),
                    version: "1".into(),
                    reason: "boom".into(),
                }),
                Code::Internal,
            ),
            (Error::ShuttingDown, Code::Unavailable),
        ];
        for (error, code) in cases {
            let error_type = error.error_type();
            assert!(
                !error_type.is_empty() && error_type.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{error_type}"
            );
            let client = error.is_client_error();
            let status = Status::from(error);
            assert_eq!(status.code(), code, "{status:?}");
            assert_eq!(client, matches!(code, Code::InvalidArgument | Code::NotFound));
        }
    }

    #[test]
    fn unknown_input_names_the_field() {
        let status = Status::from(Error::Predict(PredictError::UnknownInput {
            row: 3,
            name: "x:y".into(),
        }));
        assert!(
            status
                .message()
                .starts_with("rows[3].features has unknown input \"x:y\""),
            "{status:?}"
        );
    }
}
