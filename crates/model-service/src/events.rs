//! The model-service's lifecycle events: small structs whose `emit` writes the log line, the metric and
//! the Datadog event together (the "model version deployments" timeline and the "active model
//! versions" table read them).

use telemetry::{
    EventAlert, Metrics, Tag,
    catalog::{MODEL_VERSION_LOADED, MODEL_VERSIONS_LOADED},
};

/// A model version was loaded, validated by its manifest, and is served.
#[derive(Debug, Clone, Copy)]
pub struct ModelVersionLoaded<'a> {
    pub model: &'a str,
    pub version: &'a str,
    /// Whether requests that name no version get this one.
    pub default: bool,
    pub dir: &'a std::path::Path,
}

impl ModelVersionLoaded<'_> {
    /// `model.versions.loaded` = 1 (re-sent every flush while the process serves it), the
    /// `model_version_loaded` event, and one log line.
    pub fn emit(&self, metrics: &Metrics) {
        let tags = [Tag::model(self.model), Tag::model_version(self.version)];
        metrics.gauge(&MODEL_VERSIONS_LOADED, 1.0, &tags);
        let role = if self.default { "default" } else { "also served" };
        metrics.event(
            &MODEL_VERSION_LOADED,
            EventAlert::Info,
            &format!("Model version loaded: {} {}", self.model, self.version),
            &format!(
                "{} version {} ({role}) loaded from {}",
                self.model,
                self.version,
                self.dir.display()
            ),
            &tags,
        );
        tracing::info!(
            model = self.model,
            model_version = self.version,
            default = self.default,
            dir = %self.dir.display(),
            "model version loaded"
        );
    }
}
