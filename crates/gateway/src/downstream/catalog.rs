//! The model catalog: what each model takes as input, as the model-service describes it, cached.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use proto::models::v1::GetModelMetadataResponse;

/// What the gateway needs to know of a model version to build its input rows.
#[derive(Debug)]
pub struct ModelSpec {
    pub model: String,
    pub version: String,
    /// Inputs fetched from the feature-service ("view:feature"), in the model's order.
    pub feature_refs: Vec<String>,
    /// Inputs the gateway derives from the request itself (e.g. "hour_of_day").
    pub request_inputs: Vec<String>,
}

impl From<GetModelMetadataResponse> for ModelSpec {
    fn from(metadata: GetModelMetadataResponse) -> Self {
        let (feature_refs, request_inputs) = metadata
            .inputs
            .into_iter()
            .map(|input| input.name)
            .partition(|name| name.contains(':'));
        Self {
            model: metadata.model,
            version: metadata.version,
            feature_refs,
            request_inputs,
        }
    }
}

/// A model as configured on the gateway: its name, pinned version (empty: the default version) and the
/// experiment arm its predictions are reported under.
#[derive(Debug, Clone)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
    pub variant: String,
    /// `name@version`, the catalog's key, built once rather than on every request.
    key: String,
}

impl ModelRef {
    pub fn new(name: &str, version: &str, variant: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            variant: variant.to_owned(),
            key: format!("{name}@{version}"),
        }
    }
}

/// Model specs by model reference, each with when it was fetched.
pub struct Catalog {
    entries: RwLock<HashMap<String, (Instant, Arc<ModelSpec>)>>,
    ttl: Duration,
}

/// A catalog lookup.
pub enum Cached {
    /// Fetched within the TTL: use it.
    Fresh(Arc<ModelSpec>),
    /// Older: refresh it, but serve it if the refresh fails.
    Stale(Arc<ModelSpec>),
    Absent,
}

impl Catalog {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: RwLock::default(),
            ttl,
        }
    }

    pub fn get(&self, model: &ModelRef) -> Cached {
        let entry = self
            .entries
            .read()
            .ok()
            .and_then(|entries| entries.get(&model.key).cloned());
        match entry {
            Some((fetched, spec)) if fetched.elapsed() < self.ttl => Cached::Fresh(spec),
            Some((_, spec)) => Cached::Stale(spec),
            None => Cached::Absent,
        }
    }

    pub fn insert(&self, model: &ModelRef, spec: Arc<ModelSpec>) {
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(model.key.clone(), (Instant::now(), spec));
        }
    }
}
