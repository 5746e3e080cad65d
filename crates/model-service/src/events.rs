//! The model-service's lifecycle events: small structs whose `emit` writes the log line, the metric and
//! the Datadog event together (the "model version deployments" timeline and the "active model
//! versions" table read them). A version is [loaded](ModelVersionLoaded) (at start or by the reloader)
//! or [rejected](ModelVersionRejected); a model's default moves on when a newer version is loaded or
//! the default's folder goes ([promoted](ModelVersionPromoted)); a version whose folder is gone is
//! [retired](ModelVersionRetired) once idle.

use std::path::Path;

use telemetry::{
    EventAlert, Metrics, Tag,
    catalog::{
        MODEL_VERSION_LOADED, MODEL_VERSION_PROMOTED, MODEL_VERSION_REJECTED, MODEL_VERSION_RETIRED,
        MODEL_VERSIONS_LOADED, MODEL_VERSIONS_REJECTED,
    },
};

/// A model version was loaded, validated by its manifest, and is served.
#[derive(Debug, Clone, Copy)]
pub struct ModelVersionLoaded<'a> {
    pub model: &'a str,
    pub version: &'a str,
    /// Whether requests that name no version get this one.
    pub default: bool,
    pub dir: &'a Path,
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

/// A model version folder did not load or failed its probe rows; it is not served, and the versions
/// already served keep serving.
#[derive(Debug, Clone, Copy)]
pub struct ModelVersionRejected<'a> {
    pub model: &'a str,
    pub version: &'a str,
    pub dir: &'a Path,
    /// A [`model_runtime::LoadError`], or the panic of the task that loaded it.
    pub error: &'a (dyn std::error::Error + 'a),
}

impl ModelVersionRejected<'_> {
    /// `model.versions.rejected` +1, the `model_version_rejected` event (error), and one WARN line.
    pub fn emit(&self, metrics: &Metrics) {
        let tags = [Tag::model(self.model), Tag::model_version(self.version)];
        metrics.incr(&MODEL_VERSIONS_REJECTED, &tags);
        metrics.event(
            &MODEL_VERSION_REJECTED,
            EventAlert::Error,
            &format!("Model version rejected: {} {}", self.model, self.version),
            &format!(
                "{} version {} in {} is not served: {}",
                self.model,
                self.version,
                self.dir.display(),
                self.error
            ),
            &tags,
        );
        tracing::warn!(
            model = self.model,
            model_version = self.version,
            dir = %self.dir.display(),
            error = %self.error,
            "model version rejected"
        );
    }
}

/// A model's default version (what a request naming no version gets) changed.
#[derive(Debug, Clone, Copy)]
pub struct ModelVersionPromoted<'a> {
    pub model: &'a str,
    pub version: &'a str,
    /// The default before.
    pub previous: &'a str,
}

impl ModelVersionPromoted<'_> {
    /// The `model_version_promoted` event (info) and one log line.
    pub fn emit(&self, metrics: &Metrics) {
        let tags = [Tag::model(self.model), Tag::model_version(self.version)];
        metrics.event(
            &MODEL_VERSION_PROMOTED,
            EventAlert::Info,
            &format!("Model version promoted: {} {}", self.model, self.version),
            &format!(
                "{} requests that name no version now get version {} (before: {})",
                self.model, self.version, self.previous
            ),
            &tags,
        );
        tracing::info!(
            model = self.model,
            model_version = self.version,
            previous = self.previous,
            "model version promoted to default"
        );
    }
}

/// A model version whose folder was removed stopped being served, no request having named it for the
/// grace period.
#[derive(Debug, Clone, Copy)]
pub struct ModelVersionRetired<'a> {
    pub model: &'a str,
    pub version: &'a str,
    /// Seconds since a request last named or resolved to it.
    pub idle_secs: u64,
}

impl ModelVersionRetired<'_> {
    /// Stops the `model.versions.loaded` gauge, sends the `model_version_retired` event (info) and one
    /// log line.
    pub fn emit(&self, metrics: &Metrics) {
        let tags = [Tag::model(self.model), Tag::model_version(self.version)];
        metrics.remove_gauge(&MODEL_VERSIONS_LOADED, &tags);
        metrics.event(
            &MODEL_VERSION_RETIRED,
            EventAlert::Info,
            &format!("Model version retired: {} {}", self.model, self.version),
            &format!(
                "{} version {} is no longer served: its folder was removed and no request named it for {} s",
                self.model, self.version, self.idle_secs
            ),
            &tags,
        );
        tracing::info!(
            model = self.model,
            model_version = self.version,
            idle_secs = self.idle_secs,
            "model version retired"
        );
    }
}
