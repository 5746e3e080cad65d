//! `manifest.json`: what a model takes, how its raw outputs become the values callers see, and the
//! training baseline for drift. The training script writes it; this module parses and validates it.
//!
//! Unknown fields are ignored so a newer training script can add fields without breaking older servers.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;

/// A parsed `manifest.json`. Construct it with [`Manifest::from_json`], which also validates it.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Model name; must equal the model's folder name.
    pub model: String,
    /// Version; must equal the version's folder name.
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// When the model was trained (RFC 3339), as the training script wrote it.
    #[serde(default)]
    pub created_at: String,
    /// Name of the ONNX input, a float32 `[N, inputs.len()]` tensor.
    pub input_tensor: String,
    /// Inputs in the order of the tensor's columns.
    pub inputs: Vec<InputSpec>,
    /// Outputs read from the model's tensors.
    pub outputs: Vec<OutputSpec>,
    /// Outputs computed from other outputs, in order (one may use an earlier one).
    #[serde(default)]
    pub derived: Vec<DerivedSpec>,
    /// Training metrics (`auc`, `r2`, `training_rows`, ...), kept as written.
    #[serde(default)]
    pub metrics: Option<BTreeMap<String, serde_json::Value>>,
    /// Rows the version must score as recorded before it is served (see [`crate::load`]).
    #[serde(default)]
    pub probes: Vec<Probe>,
}

/// A row a version is tried on before it is served, with the outputs the training script recorded for
/// it (any of them may be left out: only finiteness and range are checked for those).
#[derive(Debug, Clone, Deserialize)]
pub struct Probe {
    /// Input values by name; inputs left out take their default.
    pub features: HashMap<String, f64>,
    /// Expected outputs and derived outputs by name.
    #[serde(default)]
    pub outputs: BTreeMap<String, f64>,
}

/// One column of the input tensor.
#[derive(Debug, Clone, Deserialize)]
pub struct InputSpec {
    /// A feature reference `view:feature`, or a plain name for a value derived from the request.
    pub name: String,
    /// Used when a row does not carry the input or carries a non-finite value.
    pub default: f64,
    /// Training distribution of the input, for drift (PSI).
    #[serde(default)]
    pub baseline: Option<Baseline>,
    /// How the input is watched for drift: by default every report interval, when it has a baseline.
    #[serde(default)]
    pub drift: DriftSpec,
}

/// How one input's or output's drift is watched. One with a baseline is watched unless `unwatched`
/// says why not; a watched baseline must have at least two bins, since a single bin scores PSI 0 whatever
/// the traffic does.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DriftSpec {
    /// Why it is not watched (shown in the model-service's start-up line).
    #[serde(default)]
    pub unwatched: Option<String>,
    /// The shortest window its PSI is measured over, in seconds; 0 (the default) is every report
    /// interval. A value whose distribution follows a cycle (an input derived from the request's time, an
    /// output that depends on one) is compared with its baseline over the whole cycle.
    #[serde(default)]
    pub window_secs: u64,
    /// Why the window is that long.
    #[serde(default)]
    pub why: Option<String>,
}

impl InputSpec {
    /// Whether the input is watched for drift: it has a baseline and no reason not to be.
    pub fn watched(&self) -> bool {
        self.drift.watches(self.baseline.as_ref())
    }

    /// Why the input is not watched (the manifest's reason, or that it has no baseline); `None` when it is.
    pub fn why_unwatched(&self) -> Option<&str> {
        match self.watched() {
            true => None,
            false => Some(self.drift.unwatched.as_deref().unwrap_or("no baseline")),
        }
    }
}

impl OutputSpec {
    /// Whether the output is watched for prediction drift: it has a baseline and no reason not to be.
    pub fn watched(&self) -> bool {
        self.drift.watches(self.baseline.as_ref())
    }
}

/// A histogram of an input's training values: `fractions[i]` of the rows fell in `[edges[i], edges[i+1])`
/// (the last bin is closed).
#[derive(Debug, Clone, Deserialize)]
pub struct Baseline {
    pub edges: Vec<f64>,
    pub fractions: Vec<f64>,
}

/// An output read from column `column` of the model's output tensor `tensor`, then clamped.
#[derive(Debug, Clone, Deserialize)]
pub struct OutputSpec {
    pub name: String,
    pub tensor: String,
    #[serde(default)]
    pub column: usize,
    /// `[lo, hi]`: the value is clamped into this range.
    #[serde(default)]
    pub clamp: Option<[f64; 2]>,
    /// Distribution of the output (after the clamp) over the training rows, for prediction drift
    /// (PSI).
    #[serde(default)]
    pub baseline: Option<Baseline>,
    /// How the output is watched for drift, as for an input.
    #[serde(default)]
    pub drift: DriftSpec,
}

/// An output computed from another by a step function.
#[derive(Debug, Clone, Deserialize)]
pub struct DerivedSpec {
    pub name: String,
    /// The output (or earlier derived output) this one is computed from.
    pub from: String,
    /// Ordered bands; the last has no upper bound.
    pub bands: Vec<Band>,
}

/// A value maps to the first band whose `upper` is `None` or greater than the value.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Band {
    pub upper: Option<f64>,
    pub value: f64,
}

/// Why a manifest is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("not valid manifest JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("`{field}` is empty")]
    Empty { field: &'static str },
    #[error("name `{name}` appears more than once in `{field}`")]
    Duplicate { field: &'static str, name: String },
    #[error("input `{name}` has a non-finite default")]
    NonFiniteDefault { name: String },
    #[error("input `{name}` has an invalid baseline: {reason}")]
    Baseline { name: String, reason: &'static str },
    #[error("input `{name}` has an invalid `drift`: {reason}")]
    Drift { name: String, reason: &'static str },
    #[error("output `{name}` has an invalid baseline: {reason}")]
    OutputBaseline { name: String, reason: &'static str },
    #[error("output `{name}` has an invalid `drift`: {reason}")]
    OutputDrift { name: String, reason: &'static str },
    #[error("output `{name}` has clamp [{lo}, {hi}]; it needs finite bounds with lo <= hi")]
    Clamp { name: String, lo: f64, hi: f64 },
    #[error("derived output `{name}` reads `{from}`, which is not an output or an earlier derived output")]
    UnknownSource { name: String, from: String },
    #[error("derived output `{name}` has invalid bands: {reason}")]
    Bands { name: String, reason: &'static str },
    #[error("probe {index} {reason}: `{name}`")]
    Probe {
        index: usize,
        name: String,
        reason: &'static str,
    },
}

impl Manifest {
    /// Parses and validates a manifest.
    pub fn from_json(json: &[u8]) -> Result<Self, ManifestError> {
        let manifest: Manifest = serde_json::from_slice(json)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks everything the runtime relies on when it scores rows, so scoring never has to.
    pub fn validate(&self) -> Result<(), ManifestError> {
        for (field, value) in [
            ("model", &self.model),
            ("version", &self.version),
            ("input_tensor", &self.input_tensor),
        ] {
            if value.is_empty() {
                return Err(ManifestError::Empty { field });
            }
        }
        if self.inputs.is_empty() {
            return Err(ManifestError::Empty { field: "inputs" });
        }
        if self.outputs.is_empty() {
            return Err(ManifestError::Empty { field: "outputs" });
        }
        unique("inputs", self.inputs.iter().map(|i| i.name.as_str()))?;
        for input in &self.inputs {
            if input.name.is_empty() {
                return Err(ManifestError::Empty {
                    field: "inputs[].name",
                });
            }
            if !input.default.is_finite() {
                return Err(ManifestError::NonFiniteDefault {
                    name: input.name.clone(),
                });
            }
            input.drift.validate(input.baseline.as_ref()).map_err(|invalid| {
                let name = input.name.clone();
                match invalid {
                    Invalid::Baseline(reason) => ManifestError::Baseline { name, reason },
                    Invalid::Drift(reason) => ManifestError::Drift { name, reason },
                }
            })?;
        }
        // Outputs and derived outputs share one namespace: a prediction is one map of them all.
        unique(
            "outputs and derived",
            self.outputs
                .iter()
                .map(|o| o.name.as_str())
                .chain(self.derived.iter().map(|d| d.name.as_str())),
        )?;
        for output in &self.outputs {
            if output.name.is_empty() {
                return Err(ManifestError::Empty {
                    field: "outputs[].name",
                });
            }
            if output.tensor.is_empty() {
                return Err(ManifestError::Empty {
                    field: "outputs[].tensor",
                });
            }
            if let Some([lo, hi]) = output.clamp
                && !(lo.is_finite() && hi.is_finite() && lo <= hi)
            {
                return Err(ManifestError::Clamp {
                    name: output.name.clone(),
                    lo,
                    hi,
                });
            }
            output
                .drift
                .validate(output.baseline.as_ref())
                .map_err(|invalid| {
                    let name = output.name.clone();
                    match invalid {
                        Invalid::Baseline(reason) => ManifestError::OutputBaseline { name, reason },
                        Invalid::Drift(reason) => ManifestError::OutputDrift { name, reason },
                    }
                })?;
        }
        let mut known: HashSet<&str> = self.outputs.iter().map(|o| o.name.as_str()).collect();
        for derived in &self.derived {
            if derived.name.is_empty() {
                return Err(ManifestError::Empty {
                    field: "derived[].name",
                });
            }
            if !known.contains(derived.from.as_str()) {
                return Err(ManifestError::UnknownSource {
                    name: derived.name.clone(),
                    from: derived.from.clone(),
                });
            }
            validate_bands(&derived.bands).map_err(|reason| ManifestError::Bands {
                name: derived.name.clone(),
                reason,
            })?;
            known.insert(&derived.name);
        }
        let inputs: HashSet<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
        for (index, probe) in self.probes.iter().enumerate() {
            let fault = |name: &str, reason| ManifestError::Probe {
                index,
                name: name.to_owned(),
                reason,
            };
            for (name, value) in &probe.features {
                if !inputs.contains(name.as_str()) {
                    return Err(fault(name, "names no input"));
                }
                if !value.is_finite() {
                    return Err(fault(name, "has a non-finite input"));
                }
            }
            for (name, value) in &probe.outputs {
                if !known.contains(name.as_str()) {
                    return Err(fault(name, "names no output"));
                }
                if !value.is_finite() {
                    return Err(fault(name, "expects a non-finite output"));
                }
            }
        }
        Ok(())
    }

    /// Names of every output a prediction carries: the read outputs, then the derived ones.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.outputs
            .iter()
            .map(|o| o.name.as_str())
            .chain(self.derived.iter().map(|d| d.name.as_str()))
    }
}

impl OutputSpec {
    /// The served value for a raw model value: clamped into `clamp` when there is one.
    pub fn apply(&self, raw: f64) -> f64 {
        match self.clamp {
            // Not `f64::clamp`, which panics on bounds a hand-built (unvalidated) spec could hold.
            Some([lo, hi]) => raw.max(lo).min(hi),
            None => raw,
        }
    }
}

impl DerivedSpec {
    /// The value of the first band whose `upper` is null or above `value`. A validated manifest always
    /// ends with an unbounded band, so the last band's value is also the answer when nothing matched.
    pub fn apply(&self, value: f64) -> f64 {
        self.bands
            .iter()
            .find(|band| band.upper.is_none_or(|upper| value < upper))
            .or(self.bands.last())
            .map_or(f64::NAN, |band| band.value)
    }
}

/// What is wrong with a value's drift watch: its baseline, or its `drift` settings.
enum Invalid {
    Baseline(&'static str),
    Drift(&'static str),
}

impl DriftSpec {
    /// Whether a value with `baseline` is watched.
    fn watches(&self, baseline: Option<&Baseline>) -> bool {
        baseline.is_some() && self.unwatched.is_none()
    }

    /// `baseline` itself, then the rules of the type's docs for a value with it.
    fn validate(&self, baseline: Option<&Baseline>) -> Result<(), Invalid> {
        if let Some(baseline) = baseline {
            baseline.validate().map_err(Invalid::Baseline)?;
        }
        self.validate_watch(baseline).map_err(Invalid::Drift)
    }

    fn validate_watch(&self, baseline: Option<&Baseline>) -> Result<(), &'static str> {
        if let Some(why) = &self.unwatched {
            if why.trim().is_empty() {
                return Err("`unwatched` must say why it is not watched");
            }
            if self.window_secs > 0 {
                return Err("an unwatched value has no window (`window_secs`)");
            }
            return Ok(());
        }
        if baseline.is_some_and(|b| b.edges.len() < 3) {
            return Err(
                "a single-bin baseline can never show a shift: give it at least two bins, or say why it is \
                 unwatched (`unwatched`)",
            );
        }
        if self.window_secs > 0 && baseline.is_none() {
            return Err("`window_secs` is for a watched value, and this one has no baseline");
        }
        Ok(())
    }
}

impl Baseline {
    fn validate(&self) -> Result<(), &'static str> {
        if self.edges.len() < 2 {
            return Err("it needs at least two edges");
        }
        if self.fractions.len() + 1 != self.edges.len() {
            return Err("it needs exactly one fraction per bin (edges - 1)");
        }
        if self.edges.iter().any(|e| !e.is_finite()) || self.edges.windows(2).any(|w| w[0] >= w[1]) {
            return Err("edges must be finite and strictly increasing");
        }
        if self.fractions.iter().any(|f| !(0.0..=1.0).contains(f)) {
            return Err("fractions must be in [0, 1]");
        }
        // The training script rounds fractions; allow for that, not for a wrong histogram.
        if (self.fractions.iter().sum::<f64>() - 1.0).abs() > 1e-3 {
            return Err("fractions must sum to 1");
        }
        Ok(())
    }
}

fn validate_bands(bands: &[Band]) -> Result<(), &'static str> {
    let Some((last, bounded)) = bands.split_last() else {
        return Err("there are none");
    };
    if last.upper.is_some() {
        return Err("the last band must have `upper: null`");
    }
    if bounded.iter().any(|b| b.upper.is_none()) {
        return Err("only the last band may have `upper: null`");
    }
    if bounded.iter().any(|b| b.upper.is_some_and(|u| !u.is_finite())) {
        return Err("upper bounds must be finite");
    }
    if bounded.windows(2).any(|w| w[0].upper >= w[1].upper) {
        return Err("upper bounds must be strictly increasing");
    }
    if bands.iter().any(|b| !b.value.is_finite()) {
        return Err("band values must be finite");
    }
    Ok(())
}

fn unique<'a>(field: &'static str, names: impl Iterator<Item = &'a str>) -> Result<(), ManifestError> {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(ManifestError::Duplicate {
                field,
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
