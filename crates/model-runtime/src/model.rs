//! A loaded model version and scoring: rows of features (by name or by position) in, post-processed
//! outputs out, every row of a call in one run of the optimized plan.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::drift::{DriftProfile, DriftTally};
use crate::error::PredictError;
use crate::manifest::{InputSpec, Manifest};

/// Input values of one row, by input name.
pub type Row = HashMap<String, f64>;

/// One row of inputs as scoring reads it: by name, or by position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RowInputs<'a> {
    /// By input name: a name the model does not take is refused.
    Named(&'a Row),
    /// One value per input, in [`ModelVersion::inputs`] order: another count is refused. Names are
    /// neither sent nor looked up, so this is the cheaper form for a caller that knows the version.
    Positional(&'a [f64]),
}

/// A row [`ModelVersion::predict`] scores: a [`Row`] (by name), a `Vec<f64>` (by position), or either
/// ([`Inputs`]).
pub trait AsRowInputs {
    fn row_inputs(&self) -> RowInputs<'_>;
}

impl AsRowInputs for Row {
    fn row_inputs(&self) -> RowInputs<'_> {
        RowInputs::Named(self)
    }
}

impl AsRowInputs for Vec<f64> {
    fn row_inputs(&self) -> RowInputs<'_> {
        RowInputs::Positional(self)
    }
}

/// An owned row of either form, for callers whose rows come both ways.
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    Named(Row),
    Positional(Vec<f64>),
}

impl AsRowInputs for Inputs {
    fn row_inputs(&self) -> RowInputs<'_> {
        match self {
            Self::Named(row) => RowInputs::Named(row),
            Self::Positional(values) => RowInputs::Positional(values),
        }
    }
}

/// One model version, ready to score. Cheap to share: hold it in an `Arc` and call
/// [`ModelVersion::predict`] from any thread, concurrently.
pub struct ModelVersion {
    manifest: Manifest,
    plan: Arc<TypedRunnableModel>,
    /// Where each manifest output is read, parallel to `manifest.outputs`.
    slots: Vec<OutputSlot>,
    input_names: HashSet<String>,
    drift: DriftProfile,
    dir: PathBuf,
}

/// Where a manifest output lives among the plan's outputs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputSlot {
    pub tensor_index: usize,
    pub column: usize,
    pub width: usize,
}

/// The result for one row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prediction {
    /// Post-processed outputs and derived outputs, by name.
    pub outputs: HashMap<String, f64>,
    /// Inputs the row lacked or carried as a non-finite value, which took the manifest default; in
    /// input order.
    pub defaulted_inputs: Vec<String>,
}

impl std::fmt::Debug for ModelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelVersion")
            .field("model", &self.manifest.model)
            .field("version", &self.manifest.version)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ModelVersion {
    pub(crate) fn new(
        manifest: Manifest,
        plan: Arc<TypedRunnableModel>,
        slots: Vec<OutputSlot>,
        dir: PathBuf,
    ) -> Self {
        let input_names = manifest.inputs.iter().map(|input| input.name.clone()).collect();
        let drift = DriftProfile::from_manifest(&manifest);
        Self {
            manifest,
            plan,
            slots,
            input_names,
            drift,
            dir,
        }
    }

    pub fn model(&self) -> &str {
        &self.manifest.model
    }

    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Inputs in the order the model takes them, with their defaults.
    pub fn inputs(&self) -> &[InputSpec] {
        &self.manifest.inputs
    }

    /// Names of the outputs every prediction carries.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.manifest.output_names()
    }

    /// The version's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The inputs watched for drift and their baseline bins.
    pub fn drift_profile(&self) -> &DriftProfile {
        &self.drift
    }

    /// Scores `rows` in a single run of the plan. CPU-bound and synchronous: see the service for when
    /// it runs on a blocking thread.
    ///
    /// An input that is absent, not finite, or outside float32's range takes the manifest default and
    /// is listed in the row's `defaulted_inputs`. A name that is not one of the model's inputs is an
    /// error rather than ignored: it is almost always a misspelt feature that would silently default.
    pub fn predict<R: AsRowInputs>(&self, rows: &[R]) -> Result<Vec<Prediction>, PredictError> {
        self.score(rows, None)
    }

    /// [`ModelVersion::predict`], also counting per watched input the value each row fed the model
    /// (see [`DriftProfile`]). The count is taken while the input tensor is built, so it costs a bin
    /// search per watched input and row, not another lookup of the row's features: ~30-40 ns per row
    /// on the bundled models, against ~1 µs of inference (`benches/predict.rs`, `drift_observe`).
    pub fn predict_tallied<R: AsRowInputs>(
        &self,
        rows: &[R],
    ) -> Result<(Vec<Prediction>, DriftTally), PredictError> {
        let mut tally = self.drift.tally();
        let predictions = self.score(rows, Some(&mut tally))?;
        Ok((predictions, tally))
    }

    fn score<R: AsRowInputs>(
        &self,
        rows: &[R],
        mut tally: Option<&mut DriftTally>,
    ) -> Result<Vec<Prediction>, PredictError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let (input, defaulted) = self.input_tensor(rows, tally.as_deref_mut())?;
        let outputs = self
            .plan
            .run(tvec!(input.into_tvalue()))
            .map_err(|error| self.inference_error(error))?;
        let tensors = outputs
            .iter()
            .map(|tensor| tensor.cast_to::<f64>())
            .collect::<TractResult<Vec<Cow<'_, Tensor>>>>()
            .map_err(|error| self.inference_error(error))?;
        // Load-time checks make every output's first axis the batch; a mismatch would misattribute rows.
        if let Some(tensor) = tensors
            .iter()
            .find(|tensor| tensor.shape().first() != Some(&rows.len()))
        {
            return Err(PredictError::Inference {
                model: self.manifest.model.clone(),
                version: self.manifest.version.clone(),
                reason: format!(
                    "an output has shape {:?} for {} input rows",
                    tensor.shape(),
                    rows.len()
                ),
            });
        }
        let columns = tensors
            .iter()
            .map(|tensor| tensor.try_as_plain_ram().and_then(|view| view.as_slice::<f64>()))
            .collect::<TractResult<Vec<&[f64]>>>()
            .map_err(|error| self.inference_error(error))?;

        defaulted
            .into_iter()
            .enumerate()
            .map(|(row, defaulted_inputs)| {
                let outputs = self.row_outputs(&columns, row, tally.as_deref_mut())?;
                Ok(Prediction {
                    outputs,
                    defaulted_inputs,
                })
            })
            .collect()
    }

    /// The `[rows, inputs]` float32 matrix, and per row the inputs that took their default.
    fn input_tensor<R: AsRowInputs>(
        &self,
        rows: &[R],
        mut tally: Option<&mut DriftTally>,
    ) -> Result<(Tensor, Vec<Vec<String>>), PredictError> {
        let width = self.manifest.inputs.len();
        let mut data = Vec::with_capacity(rows.len() * width);
        let mut defaulted = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            let row = row.row_inputs();
            match row {
                RowInputs::Named(named) => {
                    // The smallest unknown name, so the error does not depend on hash order.
                    if let Some(name) = named
                        .keys()
                        .filter(|name| !self.input_names.contains(*name))
                        .min()
                    {
                        return Err(PredictError::UnknownInput {
                            row: index,
                            name: name.clone(),
                        });
                    }
                }
                RowInputs::Positional(values) if values.len() != width => {
                    return Err(PredictError::InputCount {
                        row: index,
                        values: values.len(),
                        inputs: width,
                    });
                }
                RowInputs::Positional(_) => {}
            }
            let mut row_defaulted = Vec::new();
            for (column, input) in self.manifest.inputs.iter().enumerate() {
                let value = match row {
                    RowInputs::Named(named) => named.get(&input.name).copied(),
                    RowInputs::Positional(values) => values.get(column).copied(),
                };
                // Narrowing to f32 can overflow to infinity; such a value is as unusable as NaN.
                let value = value.filter(|value| (*value as f32).is_finite());
                match value {
                    Some(value) => data.push(value as f32),
                    None => {
                        data.push(input.default as f32);
                        row_defaulted.push(input.name.clone());
                    }
                }
                // Binned as f64, like the training data the baseline edges come from: the f32 of an
                // edge value can fall just below the edge (0.0645, the cancellation-rate median, is an
                // edge) and would land in the wrong bin.
                if let Some(tally) = tally.as_deref_mut() {
                    self.drift.observe(tally, column, value);
                }
            }
            defaulted.push(row_defaulted);
        }
        let tensor =
            Tensor::from_shape(&[rows.len(), width], &data).map_err(|error| self.inference_error(error))?;
        Ok((tensor, defaulted))
    }

    /// Reads, clamps and derives the outputs of row `row`, counting each watched output's value in
    /// `tally` when there is one.
    fn row_outputs(
        &self,
        columns: &[&[f64]],
        row: usize,
        mut tally: Option<&mut DriftTally>,
    ) -> Result<HashMap<String, f64>, PredictError> {
        let mut outputs = HashMap::with_capacity(self.manifest.outputs.len() + self.manifest.derived.len());
        for (index, (spec, slot)) in self.manifest.outputs.iter().zip(&self.slots).enumerate() {
            let raw = columns
                .get(slot.tensor_index)
                .and_then(|column| column.get(row * slot.width + slot.column))
                .copied()
                .ok_or_else(|| PredictError::Inference {
                    model: self.manifest.model.clone(),
                    version: self.manifest.version.clone(),
                    reason: format!("output tensor {:?} is smaller than its shape says", spec.tensor),
                })?;
            if !raw.is_finite() {
                return Err(PredictError::NonFiniteOutput {
                    model: self.manifest.model.clone(),
                    version: self.manifest.version.clone(),
                    output: spec.name.clone(),
                    row,
                });
            }
            let value = spec.apply(raw);
            if let Some(tally) = tally.as_deref_mut() {
                self.drift.observe_output(tally, index, value);
            }
            outputs.insert(spec.name.clone(), value);
        }
        for derived in &self.manifest.derived {
            // Validation guarantees `from` names an earlier output; NaN would still pick the top band.
            let source = outputs.get(&derived.from).copied().unwrap_or(f64::NAN);
            outputs.insert(derived.name.clone(), derived.apply(source));
        }
        Ok(outputs)
    }

    fn inference_error(&self, error: TractError) -> PredictError {
        PredictError::Inference {
            model: self.manifest.model.clone(),
            version: self.manifest.version.clone(),
            reason: format!("{error:#}"),
        }
    }
}

#[cfg(test)]
mod tests;
