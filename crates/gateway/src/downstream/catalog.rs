//! The model catalog: what each model takes as input, as the model-service describes it, cached, and
//! refreshed by one request at a time per model ([`Catalog::get_or_fetch`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use proto::models::v1::GetModelMetadataResponse;
use server_kit::Deadline;

use super::MODEL_SERVICE;
use crate::error::Error;

/// What the gateway needs to know of a model version to build its input rows.
#[derive(Debug)]
pub struct ModelSpec {
    pub model: String,
    pub version: String,
    /// Every input, in the model's order: a row's values by position follow it.
    pub inputs: Vec<String>,
    /// Inputs fetched from the feature-service ("view:feature"), in the model's order; shared with the
    /// feature requests that list them ([`super::FeatureFetch`]).
    pub feature_refs: Arc<[String]>,
    /// The position among `inputs` of each of `feature_refs`.
    pub feature_columns: Vec<usize>,
    /// Inputs the gateway derives from the request itself (e.g. "hour_of_day"), each with its position
    /// among `inputs`.
    pub request_inputs: Vec<(usize, String)>,
    /// Whether the model-service takes rows by position; if not, rows go by name.
    pub positional: bool,
    /// The offline quality the version's manifest records (`auc`, `r2`, ...).
    pub metrics: HashMap<String, f64>,
}

impl ModelSpec {
    /// The spec of `model` at `version`, which takes `inputs` in this order.
    pub fn new(model: String, version: String, inputs: Vec<String>, metrics: HashMap<String, f64>) -> Self {
        let mut feature_refs = Vec::new();
        let mut feature_columns = Vec::new();
        let mut request_inputs = Vec::new();
        for (column, name) in inputs.iter().enumerate() {
            if name.contains(':') {
                feature_refs.push(name.clone());
                feature_columns.push(column);
            } else {
                request_inputs.push((column, name.clone()));
            }
        }
        Self {
            model,
            version,
            inputs,
            feature_refs: feature_refs.into(),
            feature_columns,
            request_inputs,
            positional: false,
            metrics,
        }
    }
}

impl From<GetModelMetadataResponse> for ModelSpec {
    fn from(metadata: GetModelMetadataResponse) -> Self {
        let inputs = metadata.inputs.into_iter().map(|input| input.name).collect();
        Self {
            positional: metadata.takes_positional_rows,
            ..Self::new(metadata.model, metadata.version, inputs, metadata.metrics)
        }
    }
}

/// A model as configured on the gateway: its name, pinned version (empty: the default version) and the
/// experiment arm its predictions are reported under.
#[derive(Debug, Clone, PartialEq)]
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

/// Model specs by model reference, each with when it was fetched, and refreshed one fetch at a time per
/// model: while one request refreshes a stale spec the others serve the stale one, and a model with no
/// spec yet is fetched once for all the requests that arrive while that fetch is in flight.
pub struct Catalog {
    models: RwLock<HashMap<String, Arc<Slot>>>,
    ttl: Duration,
}

/// One model's spec and the right to fetch it.
#[derive(Default)]
struct Slot {
    spec: RwLock<Option<(Instant, Arc<ModelSpec>)>>,
    /// Held for the length of a fetch. A request whose future is dropped mid-fetch (its caller went away)
    /// releases it with the future, so a cancelled refresh never blocks the next one.
    fetching: tokio::sync::Mutex<()>,
}

/// How a catalog lookup was answered.
#[derive(Debug)]
pub enum Lookup {
    /// From the catalog without a fetch: fresh, or stale while another request refreshes it.
    Cached(Arc<ModelSpec>),
    /// Fetched from the model-service, by this request or by the one it waited for.
    Fetched(Arc<ModelSpec>),
    /// This request's refresh failed: the stale spec is served rather than failing the request.
    Stale { spec: Arc<ModelSpec>, error: Error },
}

impl Catalog {
    pub fn new(ttl: Duration) -> Self {
        Self {
            models: RwLock::default(),
            ttl,
        }
    }

    /// The model's spec, fetched with `fetch` (not polled unless this request is the one to fetch) when
    /// the catalog's is missing or stale.
    ///
    /// With no spec at all, requests wait (until `deadline`) for the fetch in flight rather than each
    /// starting one. If that fetch fails, the next waiter fetches in turn, within its own deadline: the
    /// failed one may have been bounded by a shorter deadline than the waiters', so its error is not
    /// handed on (and while the model-service is down its breaker makes each turn fail fast).
    pub async fn get_or_fetch(
        &self,
        model: &ModelRef,
        deadline: Deadline,
        fetch: impl Future<Output = Result<ModelSpec, Error>>,
    ) -> Result<Lookup, Error> {
        let slot = self.slot(model);
        if let Some((fetched, spec)) = slot.current() {
            if fetched.elapsed() < self.ttl {
                return Ok(Lookup::Cached(spec));
            }
            // Stale: refresh it unless another request already is, and serve it meanwhile.
            let Ok(_fetching) = slot.fetching.try_lock() else {
                return Ok(Lookup::Cached(spec));
            };
            // A refresh may have completed between the read and the lock.
            if let Some((fetched, spec)) = slot.current()
                && fetched.elapsed() < self.ttl
            {
                return Ok(Lookup::Cached(spec));
            }
            return Ok(match fetch.await {
                Ok(fetched) => Lookup::Fetched(slot.store(fetched)),
                Err(error) => Lookup::Stale { spec, error },
            });
        }
        let _fetching = tokio::time::timeout(deadline.remaining(), slot.fetching.lock())
            .await
            .map_err(|_| Error::DeadlineExceeded(MODEL_SERVICE))?;
        // The fetch this request waited for succeeded.
        if let Some((_, spec)) = slot.current() {
            return Ok(Lookup::Fetched(spec));
        }
        Ok(Lookup::Fetched(slot.store(fetch.await?)))
    }

    fn slot(&self, model: &ModelRef) -> Arc<Slot> {
        if let Some(slot) = read(&self.models).get(&model.key) {
            return slot.clone();
        }
        // Keys are the gateway's configured models, never request input: this map stays small.
        write(&self.models).entry(model.key.clone()).or_default().clone()
    }
}

impl Slot {
    fn current(&self) -> Option<(Instant, Arc<ModelSpec>)> {
        read(&self.spec).clone()
    }

    fn store(&self, spec: ModelSpec) -> Arc<ModelSpec> {
        let spec = Arc::new(spec);
        *write(&self.spec) = Some((Instant::now(), spec.clone()));
        spec
    }
}

// Every write under these locks is one whole-value assignment or insert, so a lock poisoned by a panic
// elsewhere still guards a consistent value.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
