//! Model runtime: loads a model repository of ONNX models with their manifests and scores rows of
//! features with [tract](https://github.com/sonos/tract). It is the only crate that knows tract.
//!
//! - [`ModelRepository::load`] reads `<root>/<model>/<version>/{model.onnx, manifest.json}`, validates
//!   each [`Manifest`] against its graph and optimizes every version once into a plan whose batch
//!   dimension is symbolic, so a call of any size is a single run.
//! - [`ModelRepository::get`] finds a [`ModelVersion`] (default: the newest that is not retiring,
//!   ordered by [`compare_versions`]); [`ModelVersion::predict`] turns rows, by name ([`Row`]) or by
//!   position (`Vec<f64>` in [`ModelVersion::inputs`] order), into [`Prediction`]s,
//!   filling absent or non-finite inputs with the manifest defaults and applying clamps and derived
//!   bands.
//! - A server that follows the folder while it runs [`ModelRepository::scan`]s it for
//!   [`VersionFolder`]s, loads only those whose [`Fingerprint`] changed ([`VersionFolder::load`], with
//!   every check of the first load), and builds the next repository from the [`LoadedVersion`]s it keeps
//!   ([`ModelRepository::from_versions`]); a version whose folder is gone may be kept as retiring.
//! - [`drift`]: the manifest baselines' bins and the Population Stability Index;
//!   [`ModelVersion::predict_tallied`] counts, per call, the values each watched input was fed.
//!
//! Errors name what is at fault: [`LoadError`] the file, [`LookupError`] the model or version with
//! what exists instead, [`PredictError`] the row and input.
#![forbid(unsafe_code)]
// No request may reach a panic: failures are values, mapped to a status.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod drift;
mod error;
mod load;
pub mod manifest;
mod model;
mod repository;
mod version;

#[cfg(test)]
mod testutil;

pub use drift::{DriftProfile, DriftTally, Watched};
pub use error::{LoadError, LookupError, PredictError};
pub use load::{PROBE_TOLERANCE, load_version_folder};
pub use manifest::{DriftSpec, Manifest, ManifestError, Probe};
pub use model::{AsRowInputs, Inputs, ModelVersion, Prediction, Row, RowInputs};
pub use repository::{Fingerprint, LoadedVersion, Model, ModelRepository, SkippedVersion, VersionFolder};
pub use version::compare_versions;
