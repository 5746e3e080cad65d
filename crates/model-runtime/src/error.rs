//! Errors, by when they happen: loading the repository ([`LoadError`], always naming the file or folder
//! at fault), finding a model ([`LookupError`]) and scoring rows ([`PredictError`]).

use std::path::PathBuf;

use crate::manifest::ManifestError;

/// Why a repository, a model or a model version could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: folder name is not UTF-8", path.display())]
    NonUtf8Name { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: ManifestError,
    },
    #[error("{}: `{field}` is {found:?} but the folder says {expected:?}", path.display())]
    ManifestMismatch {
        path: PathBuf,
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("{}: tract cannot load or optimize the model: {reason}", path.display())]
    Onnx { path: PathBuf, reason: String },
    #[error(
        "{}: the manifest's input_tensor is {expected:?} but the model's inputs are {found:?} \
         (exactly one float32 [N, inputs] input is supported)",
        path.display()
    )]
    InputTensor {
        path: PathBuf,
        expected: String,
        found: Vec<String>,
    },
    #[error("{}: input {tensor:?} has shape {shape}; a [N, inputs] matrix is expected", path.display())]
    InputShape {
        path: PathBuf,
        tensor: String,
        shape: String,
    },
    #[error(
        "{}: the manifest lists {manifest} inputs but the model's input {tensor:?} has {model} columns",
        path.display()
    )]
    InputWidth {
        path: PathBuf,
        tensor: String,
        manifest: usize,
        model: usize,
    },
    #[error("{}: output {output:?} reads tensor {tensor:?}, which the model does not have", path.display())]
    MissingOutputTensor {
        path: PathBuf,
        output: String,
        tensor: String,
    },
    #[error("{}: output tensor {tensor:?} has shape {shape} and type {datum_type}; a float [N] or [N, k] tensor is expected", path.display())]
    OutputShape {
        path: PathBuf,
        tensor: String,
        shape: String,
        datum_type: String,
    },
    #[error(
        "{}: output {output:?} reads column {column} of tensor {tensor:?}, which has {width} columns",
        path.display()
    )]
    OutputColumn {
        path: PathBuf,
        output: String,
        tensor: String,
        column: usize,
        width: usize,
    },
    #[error("{}: probe {index} does not score: {source}", path.display())]
    Probe {
        path: PathBuf,
        index: usize,
        #[source]
        source: PredictError,
    },
    #[error(
        "{}: probe {index} scores {output:?} as {got}, where the manifest records {expected} (within {tolerance})",
        path.display()
    )]
    ProbeMismatch {
        path: PathBuf,
        index: usize,
        output: String,
        expected: f64,
        got: f64,
        tolerance: f64,
    },
    #[error("{}: model {model:?} has no loadable version: {source}", path.display())]
    NoLoadableVersion {
        path: PathBuf,
        model: String,
        #[source]
        source: Box<LoadError>,
    },
    #[error(
        "{}: no models found (expected <model>/<version>/manifest.json and model.onnx)",
        path.display()
    )]
    EmptyRepository { path: PathBuf },
}

/// A request named a model or version the repository does not hold.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LookupError {
    #[error("unknown model {model:?}; known models: {}", known.join(", "))]
    UnknownModel { model: String, known: Vec<String> },
    #[error("model {model:?} has no version {version:?}; available versions: {}", available.join(", "))]
    UnknownVersion {
        model: String,
        version: String,
        available: Vec<String>,
    },
}

/// Rows could not be scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PredictError {
    #[error("row {row} has unknown input {name:?}; the model's inputs are listed by GetModelMetadata")]
    UnknownInput { row: usize, name: String },
    #[error(
        "row {row} has {values} input values; the model takes {inputs}, in the order GetModelMetadata lists them"
    )]
    InputCount {
        row: usize,
        values: usize,
        inputs: usize,
    },
    #[error("model {model:?} version {version:?} failed to run: {reason}")]
    Inference {
        model: String,
        version: String,
        reason: String,
    },
    #[error("model {model:?} version {version:?} produced a non-finite {output:?} for row {row}")]
    NonFiniteOutput {
        model: String,
        version: String,
        output: String,
        row: usize,
    },
}
