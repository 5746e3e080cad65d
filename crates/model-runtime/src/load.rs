//! Loading one model version from its folder: the manifest, then the ONNX graph, checked against each
//! other and optimized once into a plan with a symbolic batch dimension, then tried on the manifest's
//! probe rows. A version is only ever served once it scores every probe as the training script recorded
//! (within [`PROBE_TOLERANCE`]); a manifest without probes is tried on one row of defaults, which must
//! score finite outputs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::dims;
use tract_onnx::tract_hir::internal::{DimLike, Factoid};

use crate::error::LoadError;
use crate::manifest::Manifest;
use crate::model::{ModelVersion, OutputSlot, Row};

pub(crate) const MANIFEST_FILE: &str = "manifest.json";
pub(crate) const MODEL_FILE: &str = "model.onnx";

/// How far a probe's output may be from the recorded one: the recorded outputs come from onnxruntime,
/// and tract's float32 arithmetic differs from it by about 1e-7 on the bundled models.
pub const PROBE_TOLERANCE: f64 = 1e-4;

/// The symbol tract uses for the batch dimension; the training export names it `N` too.
const BATCH_SYMBOL: &str = "N";

/// Loads and checks the version folder `dir` (`<repository>/<model>/<version>`) exactly as the repository
/// does before it serves a version: what a pipeline that publishes models runs before it ships one
/// (`validate-model`).
pub fn load_version_folder(dir: &Path) -> Result<ModelVersion, LoadError> {
    let dir = dir.canonicalize().map_err(|source| LoadError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let name = |path: &Path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .map(str::to_owned)
            .ok_or_else(|| LoadError::NonUtf8Name {
                path: path.to_owned(),
            })
    };
    let version = name(&dir)?;
    let model = name(dir.parent().unwrap_or(&dir))?;
    load_version(&model, &version, &dir)
}

/// Loads `<dir>/manifest.json` and `<dir>/model.onnx` for `model` version `version`.
pub(crate) fn load_version(model: &str, version: &str, dir: &Path) -> Result<ModelVersion, LoadError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = read_manifest(&manifest_path)?;
    for (field, expected, found) in [
        ("model", model, &manifest.model),
        ("version", version, &manifest.version),
    ] {
        if expected != found {
            return Err(LoadError::ManifestMismatch {
                path: manifest_path,
                field,
                expected: expected.to_owned(),
                found: found.clone(),
            });
        }
    }
    let onnx_path = dir.join(MODEL_FILE);
    let (plan, slots) = build_plan(&onnx_path, &manifest)?;
    let version = ModelVersion::new(manifest, plan, slots, dir.to_owned());
    run_probes(&version, &manifest_path)?;
    Ok(version)
}

/// Scores the manifest's probe rows (or one row of defaults) and compares what was recorded.
fn run_probes(version: &ModelVersion, manifest_path: &Path) -> Result<(), LoadError> {
    let probes = &version.manifest().probes;
    let rows: Vec<Row> = match probes.is_empty() {
        true => vec![Row::new()],
        false => probes.iter().map(|probe| probe.features.clone()).collect(),
    };
    // One row at a time, so a failure names its probe (scoring rejects non-finite outputs).
    for (index, row) in rows.iter().enumerate() {
        let prediction = version
            .predict(std::slice::from_ref(row))
            .map_err(|source| LoadError::Probe {
                path: manifest_path.to_owned(),
                index,
                source,
            })?;
        let Some(probe) = probes.get(index) else {
            continue;
        };
        for (output, expected) in &probe.outputs {
            let got = prediction
                .first()
                .and_then(|p| p.outputs.get(output))
                .copied()
                .unwrap_or(f64::NAN);
            // A missing output reads as NaN, which no tolerance accepts.
            let close = (got - expected).abs() <= PROBE_TOLERANCE;
            if !close {
                return Err(LoadError::ProbeMismatch {
                    path: manifest_path.to_owned(),
                    index,
                    output: output.clone(),
                    expected: *expected,
                    got,
                    tolerance: PROBE_TOLERANCE,
                });
            }
        }
    }
    Ok(())
}

fn read_manifest(path: &Path) -> Result<Manifest, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    Manifest::from_json(&bytes).map_err(|source| LoadError::Manifest {
        path: path.to_owned(),
        source,
    })
}

/// Parses the ONNX file, pins its input to float32 `[N, inputs]` with `N` symbolic (one plan serves
/// every batch size), keeps only the output tensors the manifest reads, and optimizes.
fn build_plan(
    path: &Path,
    manifest: &Manifest,
) -> Result<(Arc<TypedRunnableModel>, Vec<OutputSlot>), LoadError> {
    let onnx_error = |error: TractError| LoadError::Onnx {
        path: path.to_owned(),
        reason: format!("{error:#}"),
    };
    // Read the file ourselves so a missing file is an I/O error, not a parse error.
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut bytes.as_slice())
        .map_err(onnx_error)?;

    check_input(path, manifest, &model)?;
    let batch = model.sym(BATCH_SYMBOL);
    let input_fact = f32::fact(dims!(batch, manifest.inputs.len()));
    model.set_input_fact(0, input_fact.into()).map_err(onnx_error)?;

    // One model output per distinct tensor, in the manifest's order.
    let mut tensors: Vec<&str> = Vec::new();
    for output in &manifest.outputs {
        if !tensors.contains(&output.tensor.as_str()) {
            if !has_tensor(&model, &output.tensor) {
                return Err(LoadError::MissingOutputTensor {
                    path: path.to_owned(),
                    output: output.name.clone(),
                    tensor: output.tensor.clone(),
                });
            }
            tensors.push(&output.tensor);
        }
    }
    model.select_outputs_by_name(&tensors).map_err(onnx_error)?;
    let model = model.into_optimized().map_err(onnx_error)?;

    // Tensor name -> (position among the plan's outputs, columns).
    let mut layout: HashMap<&str, (usize, usize)> = HashMap::new();
    for (ix, tensor) in tensors.iter().enumerate() {
        let fact = model.output_fact(ix).map_err(onnx_error)?;
        layout.insert(tensor, (ix, output_width(path, tensor, fact, &batch)?));
    }
    let mut slots = Vec::with_capacity(manifest.outputs.len());
    for output in &manifest.outputs {
        let (tensor_index, width) = layout.get(output.tensor.as_str()).copied().unwrap_or_default();
        if output.column >= width {
            return Err(LoadError::OutputColumn {
                path: path.to_owned(),
                output: output.name.clone(),
                tensor: output.tensor.clone(),
                column: output.column,
                width,
            });
        }
        slots.push(OutputSlot {
            tensor_index,
            column: output.column,
            width,
        });
    }
    let plan = model.into_runnable().map_err(onnx_error)?;
    Ok((plan, slots))
}

/// The model must have exactly the one input the manifest names; when the file declares the input's
/// shape, it must be a matrix as wide as the manifest's input list.
fn check_input(path: &Path, manifest: &Manifest, model: &InferenceModel) -> Result<(), LoadError> {
    let names: Vec<String> = model
        .inputs
        .iter()
        .map(|outlet| model.node(outlet.node).name.clone())
        .collect();
    if names.len() != 1 || names[0] != manifest.input_tensor {
        return Err(LoadError::InputTensor {
            path: path.to_owned(),
            expected: manifest.input_tensor.clone(),
            found: names,
        });
    }
    let shape = &model.nodes[model.inputs[0].node].outputs[model.inputs[0].slot]
        .fact
        .shape;
    let shape_error = || LoadError::InputShape {
        path: path.to_owned(),
        tensor: manifest.input_tensor.clone(),
        shape: format!("{shape:?}"),
    };
    if let Some(rank) = shape.rank().concretize()
        && rank != 2
    {
        return Err(shape_error());
    }
    let declared_width = shape
        .dim(1)
        .and_then(|dim| dim.concretize())
        .and_then(|dim| dim.to_usize().ok());
    match declared_width {
        Some(width) if width != manifest.inputs.len() => Err(LoadError::InputWidth {
            path: path.to_owned(),
            tensor: manifest.input_tensor.clone(),
            manifest: manifest.inputs.len(),
            model: width,
        }),
        _ => Ok(()),
    }
}

/// Whether `name` is an ONNX tensor of the graph (tract labels outlets with their tensor names) or a node.
fn has_tensor(model: &InferenceModel, name: &str) -> bool {
    model.find_outlet_label(name).is_some() || model.nodes.iter().any(|node| node.name == name)
}

/// Columns of an output tensor: 1 for `[N]`, `k` for `[N, k]`. The first axis must be the batch, or
/// rows could not be told apart.
fn output_width(path: &Path, tensor: &str, fact: &TypedFact, batch: &Symbol) -> Result<usize, LoadError> {
    let shape_error = || LoadError::OutputShape {
        path: path.to_owned(),
        tensor: tensor.to_owned(),
        shape: format!("{:?}", fact.shape),
        datum_type: format!("{:?}", fact.datum_type),
    };
    if !fact.datum_type.is_float() || fact.shape.rank() == 0 || fact.shape[0] != TDim::Sym(batch.clone()) {
        return Err(shape_error());
    }
    match fact.shape.rank() {
        1 => Ok(1),
        2 => fact.shape[1].to_usize().map_err(|_| shape_error()),
        _ => Err(shape_error()),
    }
}
