//! `validate-model DIR...`: checks model version folders (`<repository>/<model>/<version>`) exactly as the
//! model-service does before it serves a version (the manifest, the ONNX graph against it, every probe
//! row scored as the training script recorded), and prints what each holds. Exits non-zero when any is
//! not servable: the check a pipeline runs before it publishes a model.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use model_runtime::{ModelVersion, PROBE_TOLERANCE, Watched, load_version_folder};

#[derive(Parser)]
#[command(
    version,
    about = "Checks model version folders as the model-service does before serving them"
)]
struct Cli {
    /// Version folders: `<repository>/<model>/<version>`, holding manifest.json and model.onnx.
    #[arg(required = true)]
    folders: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let mut failed = false;
    for folder in Cli::parse().folders {
        match load_version_folder(&folder) {
            Ok(version) => print!("{}", summary(&version)),
            Err(error) => {
                eprintln!("{}: not servable: {error}", folder.display());
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What a servable version holds, a few lines.
fn summary(version: &ModelVersion) -> String {
    let manifest = version.manifest();
    let mut out = format!("{} {}: servable\n", manifest.model, manifest.version);
    out.push_str(&format!(
        "  trained {}: {}\n",
        manifest.created_at, manifest.description
    ));
    if let Some(metrics) = &manifest.metrics {
        let metrics: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!("  offline quality: {}\n", metrics.join(", ")));
    }
    let profile = version.drift_profile();
    let watched = |kind| {
        let features = profile.features().iter().filter(move |f| f.kind() == kind);
        features.map(|f| match f.window().as_secs() {
            0 => f.name().to_owned(),
            secs => format!("{} (over {secs} s)", f.name()),
        })
    };
    let inputs: Vec<String> = watched(Watched::Input).collect();
    out.push_str(&format!(
        "  inputs: {}, {} watched for drift: {}\n",
        manifest.inputs.len(),
        inputs.len(),
        inputs.join(", ")
    ));
    for input in &manifest.inputs {
        if let Some(why) = input.why_unwatched() {
            out.push_str(&format!("    unwatched: {} ({why})\n", input.name));
        }
    }
    let outputs: Vec<String> = manifest
        .outputs
        .iter()
        .map(|o| match o.clamp {
            Some([lo, hi]) => format!("{} in [{lo}, {hi}]", o.name),
            None => o.name.clone(),
        })
        .chain(
            manifest
                .derived
                .iter()
                .map(|d| format!("{} from {}", d.name, d.from)),
        )
        .collect();
    out.push_str(&format!("  outputs: {}\n", outputs.join(", ")));
    let predictions: Vec<String> = watched(Watched::Output).collect();
    out.push_str(&format!(
        "  prediction drift watched: {}\n",
        predictions.join(", ")
    ));
    out.push_str(&match manifest.probes.len() {
        0 => "  probes: none; a row of defaults scored finite\n".to_owned(),
        n => format!("  probes: {n}, each scored as recorded (within {PROBE_TOLERANCE})\n"),
    });
    out
}
