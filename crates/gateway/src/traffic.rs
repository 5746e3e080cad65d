//! The traffic policy: which model version and experiment arm answers each entity, and which version
//! scores a shadow copy of the traffic.
//!
//! The gateway owns it (it knows the entity, owns the request and stores the quote). Without a policy
//! file every model is answered by its pinned version (`RISK_MODEL_VERSION`, `SURGE_MODEL_VERSION`; empty
//! follows the model-service's default) under the `control` variant. With `TRAFFIC_POLICY_FILE` (a
//! ConfigMap in Kubernetes), each model named in it gets, in YAML or JSON:
//!
//! ```yaml
//! models:
//!   customer_risk:
//!     version: "1"              # the pinned version, variant "control" (or an experiment instead:)
//!     # experiment:
//!     #   name: risk-v2         # salts the hash: a new name reshuffles who lands where
//!     #   arms:
//!     #     - { variant: control, version: "1", weight: 90 }
//!     #     - { variant: treatment, version: "2", weight: 10 }
//!     shadow: "3"               # optional: scores a copy of the traffic, answers no one
//! ```
//!
//! An entity lands in an arm by a sticky hash (xxh3 of the experiment's name and the entity id, in
//! [`BUCKETS`] buckets shared out by weight), so the same customer or zone always gets the same arm of a
//! given experiment, on every replica. The file is re-read every `TRAFFIC_POLICY_RELOAD_SECS`; a changed
//! file is validated ([`TrafficPolicy::parse`], then every version it names is asked of the
//! model-service) and applied whole, or rejected whole with the old policy kept. A request takes one
//! snapshot of the policy, so it finishes on the plan it started on.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Deserialize;
use server_kit::Deadline;
use telemetry::catalog::{
    MODEL_VERSION_PROMOTED, MODEL_VERSION_TRAFFIC_SHARE, TRAFFIC_POLICY_APPLIED, TRAFFIC_POLICY_REJECTED,
};
use telemetry::{EventAlert, Metrics, Tag};
use tonic::Code;

use crate::downstream::{Downstream, ModelRef};
use crate::error::Error;

/// The experiment arm of traffic no experiment splits.
pub const CONTROL_VARIANT: &str = "control";
/// The variant a shadow version's metrics are reported under.
pub const SHADOW_VARIANT: &str = "shadow";
/// Hash buckets an experiment's weights share out: a weight resolves to 0.01% of the traffic.
pub const BUCKETS: u64 = 10_000;
/// Most arms in one experiment: each is a `variant` tag value on every per-model metric.
pub const MAX_ARMS: usize = 8;
/// Longest variant or experiment name.
pub const MAX_NAME_LEN: usize = 40;
/// Largest policy file read (a policy is a few hundred bytes).
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// How long the check of a policy's versions against the model-service may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The policy file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    models: BTreeMap<String, ModelFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    version: Option<String>,
    experiment: Option<ExperimentFile>,
    shadow: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExperimentFile {
    name: String,
    arms: Vec<ArmFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArmFile {
    variant: String,
    version: String,
    weight: f64,
}

/// Why a policy was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("traffic policy {path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("traffic policy {path}: larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("traffic policy: not a valid policy document: {0}")]
    Parse(#[from] serde_yaml_ng::Error),
    #[error("traffic policy: model {model:?} is not one this gateway serves ({known})")]
    UnknownModel { model: String, known: String },
    #[error("traffic policy: model {model}: {reason}")]
    Invalid { model: String, reason: String },
    #[error("traffic policy: model {model} version {version:?}: the model-service refused it: {error}")]
    UnknownVersion {
        model: String,
        version: String,
        error: Error,
    },
}

/// The validated policy: each model's arms and shadow.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficPolicy {
    models: HashMap<String, ModelRoute>,
}

/// How one model's traffic is routed.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRoute {
    /// The experiment's name, salting the hash; `None`: one arm takes everything.
    experiment: Option<String>,
    /// Never empty; with an experiment, `upper` bounds rise to [`BUCKETS`].
    arms: Vec<Arm>,
    shadow: Option<ModelRef>,
}

/// One arm: the model, version and variant it answers with, and its share of the buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    pub model: ModelRef,
    /// Buckets below this (and at or above the previous arm's) land here.
    upper: u64,
    /// Fraction of the traffic, for the traffic-share gauge.
    pub share: f64,
}

impl TrafficPolicy {
    /// Every model answered by its `(name, pinned version)` under [`CONTROL_VARIANT`]: the policy
    /// without a file.
    pub fn pinned<'a>(models: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let models = models
            .into_iter()
            .map(|(name, version)| (name.to_owned(), ModelRoute::single(name, version)))
            .collect();
        Self { models }
    }

    /// Parses and validates a policy document (YAML, or JSON, which YAML reads too). Models it does not
    /// name keep `fallback`'s route; `fallback`'s models are the only ones it may name.
    pub fn parse(text: &str, fallback: &TrafficPolicy) -> Result<Self, PolicyError> {
        let file: PolicyFile = serde_yaml_ng::from_str(text)?;
        let mut models = fallback.models.clone();
        for (name, spec) in file.models {
            if !fallback.models.contains_key(&name) {
                let mut known: Vec<&str> = fallback.models.keys().map(String::as_str).collect();
                known.sort_unstable();
                return Err(PolicyError::UnknownModel {
                    model: name,
                    known: known.join(", "),
                });
            }
            let route = ModelRoute::from_file(&name, spec).map_err(|reason| PolicyError::Invalid {
                model: name.clone(),
                reason,
            })?;
            models.insert(name, route);
        }
        Ok(Self { models })
    }

    /// The route of `model`: one of the gateway's configured models.
    pub fn route(&self, model: &str) -> Option<&ModelRoute> {
        self.models.get(model)
    }

    /// Models by name order, for logs and gauges.
    fn sorted(&self) -> Vec<(&String, &ModelRoute)> {
        let mut models: Vec<_> = self.models.iter().collect();
        models.sort_by(|a, b| a.0.cmp(b.0));
        models
    }

    /// Every model version the policy routes to or shadows, each once, by name order.
    pub fn named(&self) -> Vec<&ModelRef> {
        let mut named: Vec<&ModelRef> = Vec::new();
        for (_, route) in self.sorted() {
            for model in route
                .arms
                .iter()
                .map(|arm| &arm.model)
                .chain(route.shadow.as_ref())
            {
                if !named
                    .iter()
                    .any(|seen| seen.name == model.name && seen.version == model.version)
                {
                    named.push(model);
                }
            }
        }
        named
    }

    /// Every version the policy names, with the model-service's answer to each: a version it does not
    /// serve refuses the policy. A model-service that cannot be reached does not: the versions cannot be
    /// checked, and the policy is applied with a warning.
    pub async fn check_versions(&self, downstream: &Downstream) -> Result<(), PolicyError> {
        let deadline = Deadline::after(CHECK_TIMEOUT);
        for model in self.named() {
            match downstream.model_spec(model, deadline).await {
                Ok(_) => {}
                Err(error) if refuses(&error) => {
                    return Err(PolicyError::UnknownVersion {
                        model: model.name.clone(),
                        version: model.version.clone(),
                        error,
                    });
                }
                Err(error) => {
                    tracing::warn!(model = %model.name, version = %model.version, %error, "traffic policy: the model-service could not be asked whether it serves this version");
                }
            }
        }
        Ok(())
    }
}

/// The model-service answered, and said no (unknown model or version, or a malformed ask).
fn refuses(error: &Error) -> bool {
    matches!(error, Error::Downstream { status, .. }
        if matches!(status.code(), Code::NotFound | Code::InvalidArgument | Code::FailedPrecondition))
}

impl ModelRoute {
    fn single(model: &str, version: &str) -> Self {
        Self {
            experiment: None,
            arms: vec![Arm {
                model: ModelRef::new(model, version, CONTROL_VARIANT),
                upper: BUCKETS,
                share: 1.0,
            }],
            shadow: None,
        }
    }

    fn from_file(model: &str, spec: ModelFile) -> Result<Self, String> {
        let ModelFile {
            version,
            experiment,
            shadow,
        } = spec;
        let mut route = match (version, experiment) {
            (Some(_), Some(_)) => {
                return Err(
                    "both `version` and `experiment` are set: an experiment's arms take all of \
                            the model's traffic, so put the control version in an arm"
                        .into(),
                );
            }
            (version, None) => Self::single(model, version.as_deref().unwrap_or_default()),
            (None, Some(experiment)) => Self::experiment(model, experiment)?,
        };
        if let Some(shadow) = shadow {
            if shadow.is_empty() {
                return Err("`shadow` is empty: name the version to score in the shadow".into());
            }
            if route.arms.iter().any(|arm| arm.model.version == shadow) {
                return Err(format!(
                    "shadow version {shadow:?} also answers traffic: a shadow scores a copy only"
                ));
            }
            route.shadow = Some(ModelRef::new(model, &shadow, SHADOW_VARIANT));
        }
        Ok(route)
    }

    fn experiment(model: &str, experiment: ExperimentFile) -> Result<Self, String> {
        let ExperimentFile { name, arms } = experiment;
        check_name("experiment name", &name)?;
        if arms.is_empty() || arms.len() > MAX_ARMS {
            return Err(format!(
                "experiment {name}: {} arms; an experiment has 1 to {MAX_ARMS}",
                arms.len()
            ));
        }
        let mut total = 0.0;
        for (i, arm) in arms.iter().enumerate() {
            check_name("variant", &arm.variant)?;
            if arm.variant == SHADOW_VARIANT {
                return Err(format!(
                    "variant {SHADOW_VARIANT:?} is reserved for the shadow version"
                ));
            }
            if arms[..i].iter().any(|other| other.variant == arm.variant) {
                return Err(format!("variant {:?} is used by two arms", arm.variant));
            }
            if arm.version.is_empty() {
                return Err(format!(
                    "arm {:?} names no version: an experiment's arms are pinned",
                    arm.variant
                ));
            }
            if !(arm.weight.is_finite() && arm.weight >= 0.0) {
                return Err(format!(
                    "arm {:?}: weight {} is not a number ≥ 0",
                    arm.variant, arm.weight
                ));
            }
            total += arm.weight;
        }
        if total <= 0.0 {
            return Err(format!(
                "experiment {name}: the weights add up to 0: no arm would get traffic"
            ));
        }
        let mut cumulative = 0.0;
        let arms = arms
            .into_iter()
            .map(|arm| {
                cumulative += arm.weight;
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // in 0..=BUCKETS
                let upper = ((cumulative / total) * BUCKETS as f64).round() as u64;
                Arm {
                    model: ModelRef::new(model, &arm.version, &arm.variant),
                    upper: upper.min(BUCKETS),
                    share: arm.weight / total,
                }
            })
            .collect::<Vec<_>>();
        Ok(Self {
            experiment: Some(name),
            arms,
            shadow: None,
        })
    }

    /// The arm that answers `entity`: sticky for a given experiment.
    pub fn arm(&self, entity: &str) -> &Arm {
        let Some(experiment) = &self.experiment else {
            return &self.arms[0];
        };
        let bucket = bucket(experiment, entity);
        self.arms
            .iter()
            .find(|arm| bucket < arm.upper)
            .unwrap_or(&self.arms[self.arms.len() - 1])
    }

    pub fn arms(&self) -> &[Arm] {
        &self.arms
    }

    /// The version that scores a copy of the traffic, if any.
    pub fn shadow(&self) -> Option<&ModelRef> {
        self.shadow.as_ref()
    }

    /// The pinned version of a model no experiment splits.
    fn pinned_version(&self) -> Option<&str> {
        match (&self.experiment, self.arms.as_slice()) {
            (None, [arm]) => Some(&arm.model.version),
            _ => None,
        }
    }
}

/// The entity's bucket in `0..BUCKETS` for `experiment`: xxh3, stable across processes, builds and
/// platforms.
pub fn bucket(experiment: &str, entity: &str) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(experiment.as_bytes());
    hasher.update(&[0]);
    hasher.update(entity.as_bytes());
    hasher.digest() % BUCKETS
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?}: use 1 to {MAX_NAME_LEN} of a-z, 0-9, '-' and '_' (it is a tag value)"
        ))
    }
}

/// The policy in force, swapped whole by the reloader.
pub struct Traffic {
    current: ArcSwap<TrafficPolicy>,
    /// The policy without a file: what a file's unnamed models keep.
    pinned: TrafficPolicy,
    file: Option<PathBuf>,
    metrics: Metrics,
    /// The traffic-share gauges last set, to remove those a new policy drops.
    shares: std::sync::Mutex<Vec<ShareGauge>>,
}

#[derive(Debug, Clone, PartialEq)]
struct ShareGauge {
    model: String,
    version: String,
    variant: String,
    share: f64,
}

impl Traffic {
    /// The pinned policy, or the file's when `file` is given: unreadable or invalid, it refuses start-up.
    /// Its versions are checked against the model-service (when it can be reached) by
    /// [`Traffic::check_started`].
    pub fn new(pinned: TrafficPolicy, file: Option<&Path>, metrics: Metrics) -> Result<Self, PolicyError> {
        let current = match file {
            Some(path) => TrafficPolicy::parse(&read(path)?, &pinned)?,
            None => pinned.clone(),
        };
        Ok(Self {
            current: ArcSwap::from_pointee(current),
            pinned,
            file: file.map(Path::to_owned),
            metrics,
            shares: std::sync::Mutex::default(),
        })
    }

    /// The policy for one request.
    pub fn load(&self) -> arc_swap::Guard<Arc<TrafficPolicy>> {
        self.current.load()
    }

    /// At start-up: the file's versions against the model-service (a version it refuses stops start-up),
    /// then the traffic-share gauges.
    pub async fn check_started(&self, downstream: &Downstream) -> Result<(), PolicyError> {
        let policy = self.current.load_full();
        if self.file.is_some() {
            policy.check_versions(downstream).await?;
            log_policy("traffic policy applied", &policy);
        }
        self.publish_shares(&policy);
        Ok(())
    }

    /// Re-reads the file every `interval` until the returned guard is dropped; a changed file is
    /// validated and applied, or rejected with the old policy kept (once per distinct content).
    pub fn spawn_reloader(
        self: &Arc<Self>,
        downstream: Downstream,
        interval: Duration,
    ) -> Option<ReloadGuard> {
        let path = self.file.clone()?;
        let traffic = Arc::clone(self);
        let task = tokio::spawn(async move {
            let mut last = read(&path).ok();
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let text = match read(&path) {
                    Ok(text) => text,
                    Err(error) => {
                        // A ConfigMap volume swaps its files by symlink: a read between two steps can
                        // fail. Reported once; the next readable content is compared as usual.
                        if last.is_some() {
                            traffic.rejected(&error);
                            last = None;
                        }
                        continue;
                    }
                };
                if last.as_deref() == Some(text.as_str()) {
                    continue;
                }
                last = Some(text.clone());
                traffic.apply(&text, &downstream).await;
            }
        });
        Some(ReloadGuard(task))
    }

    /// Validates `text` and swaps it in, or rejects it and keeps the policy in force.
    pub async fn apply(&self, text: &str, downstream: &Downstream) -> bool {
        let policy = match TrafficPolicy::parse(text, &self.pinned) {
            Ok(policy) => policy,
            Err(error) => {
                self.rejected(&error);
                return false;
            }
        };
        if let Err(error) = policy.check_versions(downstream).await {
            self.rejected(&error);
            return false;
        }
        let old = self.current.swap(Arc::new(policy));
        let new = self.current.load_full();
        for (model, route) in new.sorted() {
            let before = old.route(model).and_then(ModelRoute::pinned_version);
            if let Some(version) = route.pinned_version()
                && before != Some(version)
            {
                let tags = [Tag::model(model), Tag::model_version(version)];
                self.metrics.event(
                    &MODEL_VERSION_PROMOTED,
                    EventAlert::Info,
                    &format!("Model version promoted: {model} {version}"),
                    &format!("The gateway's traffic policy now answers every {model} prediction with version {version:?}."),
                    &tags,
                );
                tracing::info!(model = %model, model_version = %version, "model version promoted by the traffic policy");
            }
        }
        self.metrics.event(
            &TRAFFIC_POLICY_APPLIED,
            EventAlert::Info,
            "Traffic policy applied",
            &describe(&new),
            &[],
        );
        log_policy("traffic policy applied", &new);
        self.publish_shares(&new);
        true
    }

    fn rejected(&self, error: &PolicyError) {
        tracing::error!(%error, "traffic policy rejected: the policy in force is kept");
        self.metrics.event(
            &TRAFFIC_POLICY_REJECTED,
            EventAlert::Error,
            "Traffic policy rejected",
            &format!("{error}. The policy in force is kept."),
            &[],
        );
    }

    /// `model.version.traffic_share` for every arm and shadow of `policy`; those of the policy before
    /// that it no longer has are removed.
    fn publish_shares(&self, policy: &TrafficPolicy) {
        let mut gauges = Vec::new();
        for (model, route) in policy.sorted() {
            for arm in &route.arms {
                gauges.push(ShareGauge {
                    model: model.clone(),
                    version: version_tag(&arm.model.version),
                    variant: arm.model.variant.clone(),
                    share: arm.share,
                });
            }
            if let Some(shadow) = &route.shadow {
                gauges.push(ShareGauge {
                    model: model.clone(),
                    version: shadow.version.clone(),
                    variant: SHADOW_VARIANT.to_owned(),
                    share: 0.0,
                });
            }
        }
        let mut published = self
            .shares
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for old in published.iter() {
            if !gauges
                .iter()
                .any(|g| (&g.model, &g.version, &g.variant) == (&old.model, &old.version, &old.variant))
            {
                self.metrics
                    .remove_gauge(&MODEL_VERSION_TRAFFIC_SHARE, &old.tags());
            }
        }
        for gauge in &gauges {
            self.metrics
                .gauge(&MODEL_VERSION_TRAFFIC_SHARE, gauge.share, &gauge.tags());
        }
        *published = gauges;
    }
}

impl ShareGauge {
    fn tags(&self) -> [Tag<'_>; 3] {
        [
            Tag::model(&self.model),
            Tag::model_version(&self.version),
            Tag::variant(&self.variant),
        ]
    }
}

/// The `model_version` tag of an arm that follows the model-service's default version.
pub const DEFAULT_VERSION_TAG: &str = "default";

fn version_tag(version: &str) -> String {
    if version.is_empty() {
        DEFAULT_VERSION_TAG.to_owned()
    } else {
        version.to_owned()
    }
}

/// Stops the reloader when dropped.
pub struct ReloadGuard(tokio::task::JoinHandle<()>);

impl Drop for ReloadGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn read(path: &Path) -> Result<String, PolicyError> {
    let error = |source| PolicyError::Read {
        path: path.to_owned(),
        source,
    };
    let length = std::fs::metadata(path).map_err(error)?.len();
    if length > MAX_FILE_BYTES {
        return Err(PolicyError::TooLarge {
            path: path.to_owned(),
        });
    }
    std::fs::read_to_string(path).map_err(error)
}

/// One line per model: `customer_risk: control=1 90%, treatment=2 10%; shadow 3`.
fn describe(policy: &TrafficPolicy) -> String {
    policy
        .sorted()
        .into_iter()
        .map(|(model, route)| {
            let arms = route
                .arms
                .iter()
                .map(|arm| {
                    format!(
                        "{}={} {:.2}%",
                        arm.model.variant,
                        version_tag(&arm.model.version),
                        arm.share * 100.0
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let experiment = route
                .experiment
                .as_deref()
                .map(|name| format!(" (experiment {name})"))
                .unwrap_or_default();
            let shadow = route
                .shadow
                .as_ref()
                .map(|s| format!("; shadow {}", s.version))
                .unwrap_or_default();
            format!("{model}: {arms}{experiment}{shadow}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn log_policy(message: &'static str, policy: &TrafficPolicy) {
    for line in describe(policy).lines() {
        tracing::info!(policy = line, "{message}");
    }
}

#[cfg(test)]
mod tests;
