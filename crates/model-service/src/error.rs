//! Every way the model-service fails, and the one mapping of those failures to gRPC statuses.

use model_runtime::{LoadError, LookupError, PredictError};
use server_kit::Blame;
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
    /// `form` names what was counted: `features`, `values`, or both forms together.
    #[error("rows[{row}] has {count} {form}; at most {max} are allowed per row")]
    TooManyFeatures {
        row: usize,
        count: usize,
        form: &'static str,
        max: usize,
    },
    #[error("rows[{row}] has both `features` and `values`: send its inputs by name or by position")]
    BothForms { row: usize },
    #[error(
        "rows[{row}].values needs `version`: values are by position, and positions are one version's \
         inputs (GetModelMetadata lists them)"
    )]
    ValuesWithoutVersion { row: usize },
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error(transparent)]
    Predict(#[from] PredictError),
    #[error("`requests` is empty: send at least one model's rows")]
    NoRequests,
    #[error("`requests` has {requests} requests; at most {max} are allowed per call")]
    TooManyRequests { requests: usize, max: usize },
    /// One request of a PredictMany call failed.
    #[error("requests[{index}]: {source}")]
    InRequest {
        index: usize,
        #[source]
        source: Box<Error>,
    },
    #[error("the service is shutting down")]
    ShuttingDown,
    /// Server settings (TLS files, limits) that keep the service from starting.
    #[error(transparent)]
    Server(#[from] server_kit::Error),
    /// A large batch did not get a blocking-pool slot and finish within the limit.
    #[error(
        "{model} version {version}: {rows} rows were not scored within {limit_ms} ms ({bound}); \
         the service is busy: retry later or with fewer rows"
    )]
    InferenceTimeout {
        model: String,
        version: String,
        rows: usize,
        limit_ms: u64,
        /// Which limit applied: `INFERENCE_TIMEOUT_MS` or the caller's deadline.
        bound: &'static str,
    },
}

impl From<Error> for Status {
    /// Exhaustive on purpose, down to the runtime's variants: a new failure mode must choose its code.
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::EmptyModel
            | Error::NoRows
            | Error::TooManyRows { .. }
            | Error::TooManyFeatures { .. }
            | Error::BothForms { .. }
            | Error::ValuesWithoutVersion { .. }
            | Error::NoRequests
            | Error::TooManyRequests { .. } => Status::invalid_argument(message),
            Error::InRequest { index, source } => {
                let inner = Status::from(*source);
                Status::new(inner.code(), format!("requests[{index}]: {}", inner.message()))
            }
            Error::Lookup(LookupError::UnknownModel { .. } | LookupError::UnknownVersion { .. }) => {
                Status::not_found(message)
            }
            Error::Predict(PredictError::UnknownInput { row, name }) => Status::invalid_argument(format!(
                "rows[{row}].features has unknown input {name:?}; GetModelMetadata lists the model's inputs"
            )),
            Error::Predict(PredictError::InputCount { row, values, inputs }) => {
                Status::invalid_argument(format!(
                    "rows[{row}].values has {values} values; the version takes {inputs} inputs, one value \
                     each in the order GetModelMetadata lists them"
                ))
            }
            // Non-finite inputs were already replaced by defaults, so a non-finite output comes from a
            // finite input far outside anything the model was trained on (3.4e38 as a demand/supply
            // ratio): the caller's to fix, not a fault here, so no INTERNAL that error-rate monitors count.
            Error::Predict(PredictError::NonFiniteOutput {
                model,
                version,
                output,
                row,
            }) => Status::invalid_argument(format!(
                "rows[{row}] drove {model} version {version} to a non-finite {output:?}: an input is \
                 far outside the range the model was trained on"
            )),
            Error::Predict(PredictError::Inference { .. }) => Status::internal(message),
            Error::InferenceTimeout { .. } => Status::deadline_exceeded(message),
            Error::ShuttingDown | Error::Transport(_) => Status::unavailable(message),
            Error::Repository(_) | Error::Task(_) | Error::Server(_) => Status::internal(message),
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
            Error::NoRequests => "no_requests",
            Error::TooManyRequests { .. } => "too_many_requests",
            Error::InRequest { source, .. } => source.error_type(),
            Error::NoRows => "no_rows",
            Error::TooManyRows { .. } => "too_many_rows",
            Error::TooManyFeatures { .. } => "too_many_features",
            Error::BothForms { .. } => "both_input_forms",
            Error::ValuesWithoutVersion { .. } => "values_without_version",
            Error::Lookup(LookupError::UnknownModel { .. }) => "unknown_model",
            Error::Lookup(LookupError::UnknownVersion { .. }) => "unknown_version",
            Error::Predict(PredictError::UnknownInput { .. }) => "unknown_input",
            Error::Predict(PredictError::InputCount { .. }) => "input_count",
            Error::Predict(PredictError::Inference { .. }) => "inference_failed",
            Error::Predict(PredictError::NonFiniteOutput { .. }) => "non_finite_output",
            Error::ShuttingDown => "shutting_down",
            Error::Server(_) => "server_settings",
            Error::InferenceTimeout { .. } => "inference_timeout",
        }
    }

    /// Whether the caller sent something wrong (logged quietly) rather than the service failing.
    pub fn is_client_error(&self) -> bool {
        match self {
            Error::InRequest { source, .. } => source.is_client_error(),
            Error::EmptyModel
            | Error::NoRows
            | Error::TooManyRows { .. }
            | Error::TooManyFeatures { .. }
            | Error::BothForms { .. }
            | Error::ValuesWithoutVersion { .. }
            | Error::NoRequests
            | Error::TooManyRequests { .. }
            | Error::Lookup(_)
            | Error::Predict(
                PredictError::UnknownInput { .. }
                | PredictError::InputCount { .. }
                | PredictError::NonFiniteOutput { .. },
            ) => true,
            Error::Predict(PredictError::Inference { .. })
            | Error::Repository(_)
            | Error::Transport(_)
            | Error::Task(_)
            | Error::ShuttingDown
            | Error::Server(_)
            | Error::InferenceTimeout { .. } => false,
        }
    }
}

impl server_kit::Failure for Error {
    fn error_type(&self) -> &'static str {
        Error::error_type(self)
    }

    fn blame(&self) -> Blame {
        match self {
            Error::InRequest { source, .. } => source.blame(),
            // Load, not a fault: WARN, so a busy spell does not page through the error log.
            Error::InferenceTimeout { .. } => Blame::Load,
            // A non-finite output: the caller's input, most likely; but a model that breaks on plausible
            // inputs must show too, so it is logged each time like any rejected call.
            Error::Predict(PredictError::NonFiniteOutput { .. }) => Blame::Caller,
            error if error.is_client_error() => Blame::Caller,
            _ => Blame::Server,
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
            (Error::NoRequests, Code::InvalidArgument),
            (
                Error::TooManyRequests {
                    requests: 17,
                    max: 16,
                },
                Code::InvalidArgument,
            ),
            (
                Error::InRequest {
                    index: 1,
                    source: Box::new(Error::ShuttingDown),
                },
                Code::Unavailable,
            ),
            (Error::TooManyRows { rows: 2, max: 1 }, Code::InvalidArgument),
            (
                Error::TooManyFeatures {
                    row: 0,
                    count: 2,
                    form: "features",
                    max: 1,
                },
                Code::InvalidArgument,
            ),
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
            (Error::BothForms { row: 0 }, Code::InvalidArgument),
            (Error::ValuesWithoutVersion { row: 1 }, Code::InvalidArgument),
            (
                Error::Predict(PredictError::InputCount {
                    row: 0,
                    values: 3,
                    inputs: 9,
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
            (
                Error::Predict(PredictError::NonFiniteOutput {
                    model: "a".into(),
                    version: "1".into(),
                    output: "score".into(),
                    row: 2,
                }),
                Code::InvalidArgument,
            ),
            (Error::ShuttingDown, Code::Unavailable),
            (
                Error::InferenceTimeout {
                    model: "a".into(),
                    version: "1".into(),
                    rows: 500,
                    limit_ms: 50,
                    bound: "INFERENCE_TIMEOUT_MS",
                },
                Code::DeadlineExceeded,
            ),
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
