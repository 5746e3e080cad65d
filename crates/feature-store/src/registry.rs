//! The feature registry: which entities and feature views exist, their join keys, max ages and feature
//! types. It is a small JSON file (the bundled default is the crate's `registry.json`); its shape mirrors
//! the parts of a Feast registry the online path needs.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use crate::Error;
use crate::layout;
use crate::value_type::ValueType;

/// The registry bundled with the crate: project `pricing`, entities `customer_id` and `zone_id`, views
/// `customer_profile`, `customer_activity`, `zone_demand`, `zone_weather`.
pub const BUNDLED_REGISTRY: &str = include_str!("../registry.json");

/// The column of a view's source rows (snapshot and materialization CSVs) holding a row's event time,
/// Feast's default `timestamp_field`: no feature may take its name.
pub const EVENT_TIMESTAMP_COLUMN: &str = "event_timestamp";

/// An entity: a join key and the type of its values.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub name: String,
    pub join_key: String,
    pub value_type: ValueType,
}

/// A feature of a view, with the Redis hash field Feast stores it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    pub name: String,
    pub value_type: ValueType,
    /// Murmur3-32 of `"view:feature"`, little endian: the hash field in Redis.
    pub field: Bytes,
}

/// A feature view: features read together, keyed by the same entities, with one event time per row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureView {
    pub name: String,
    /// Join keys in the registry's order.
    pub join_keys: Vec<String>,
    /// Values older than this are reported OUTSIDE_MAX_AGE; `None` (ttl_seconds 0) means no limit, as in Feast.
    pub ttl: Option<Duration>,
    pub features: Vec<Feature>,
    /// `_ts:<view>`: the hash field holding the row's event time.
    pub timestamp_field: Bytes,
    feature_index: HashMap<String, usize>,
}

impl FeatureView {
    pub fn feature_index(&self, feature: &str) -> Option<usize> {
        self.feature_index.get(feature).copied()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    project: String,
    entities: Vec<Entity>,
    feature_views: Vec<ViewFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewFile {
    name: String,
    entities: Vec<String>,
    ttl_seconds: u64,
    features: Vec<FeatureFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureFile {
    name: String,
    value_type: ValueType,
}

/// The parsed and checked registry.
#[derive(Debug, Clone)]
pub struct Registry {
    project: String,
    entities: Vec<Entity>,
    views: Vec<FeatureView>,
    view_index: HashMap<String, usize>,
    /// For each view, the views keyed by the same join keys (itself included): they share Redis hashes.
    siblings: Vec<Vec<usize>>,
}

impl Registry {
    /// The registry bundled with the crate ([`BUNDLED_REGISTRY`]).
    pub fn bundled() -> Result<Self, Error> {
        Self::from_json(BUNDLED_REGISTRY, "(bundled)")
    }

    /// Reads `path`, or the bundled registry when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, Error> {
        match path {
            None => Self::bundled(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                    path: path.display().to_string(),
                    source,
                })?;
                Self::from_json(&text, &path.display().to_string())
            }
        }
    }

    /// Parses and checks a registry; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::Registry {
            origin: origin.to_owned(),
            reason,
        };
        let file: RegistryFile = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if file.project.is_empty() {
            return Err(invalid("project is empty".into()));
        }
        let mut entity_types = HashMap::new();
        for entity in &file.entities {
            if entity.join_key.is_empty() {
                return Err(invalid(format!("entity {:?} has an empty join key", entity.name)));
            }
            if !entity.value_type.is_entity_key_type() {
                return Err(invalid(format!(
                    "entity {:?}: {} cannot be an entity key type",
                    entity.name, entity.value_type
                )));
            }
            if entity_types
                .insert(entity.join_key.clone(), entity.value_type)
                .is_some()
            {
                return Err(invalid(format!(
                    "join key {:?} is declared twice",
                    entity.join_key
                )));
            }
        }
        let mut views = Vec::with_capacity(file.feature_views.len());
        let mut view_index = HashMap::new();
        for view in file.feature_views {
            let view = build_view(view, &entity_types).map_err(invalid)?;
            if view_index.insert(view.name.clone(), views.len()).is_some() {
                return Err(invalid(format!("feature view {:?} is declared twice", view.name)));
            }
            views.push(view);
        }
        check_field_collisions(&views).map_err(invalid)?;
        let sorted_keys = |v: &FeatureView| {
            let mut keys = v.join_keys.clone();
            keys.sort_unstable();
            keys
        };
        let siblings = views
            .iter()
            .map(|view| {
                let keys = sorted_keys(view);
                (0..views.len())
                    .filter(|&i| sorted_keys(&views[i]) == keys)
                    .collect()
            })
            .collect();
        Ok(Self {
            project: file.project,
            entities: file.entities,
            views,
            view_index,
            siblings,
        })
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    pub fn entities(&self) -> &[Entity] {
        &self.entities
    }

    pub fn entity(&self, join_key: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.join_key == join_key)
    }

    pub fn views(&self) -> &[FeatureView] {
        &self.views
    }

    pub fn view_index(&self, name: &str) -> Option<usize> {
        self.view_index.get(name).copied()
    }

    pub fn view(&self, name: &str) -> Option<&FeatureView> {
        self.view_index(name).and_then(|i| self.views.get(i))
    }

    /// The views stored in the same Redis hashes as view `index` (same join keys), itself included.
    pub fn views_sharing_keys(&self, index: usize) -> &[usize] {
        self.siblings.get(index).map_or(&[], Vec::as_slice)
    }
}

fn build_view(view: ViewFile, entity_types: &HashMap<String, ValueType>) -> Result<FeatureView, String> {
    if view.name.is_empty() || view.name.contains(':') {
        return Err(format!(
            "feature view name {:?} must be non-empty and without ':'",
            view.name
        ));
    }
    if view.entities.is_empty() {
        return Err(format!("feature view {:?} has no entities", view.name));
    }
    let mut seen = HashSet::new();
    for join_key in &view.entities {
        if !entity_types.contains_key(join_key) {
            return Err(format!(
                "feature view {:?}: unknown entity join key {join_key:?}",
                view.name
            ));
        }
        if !seen.insert(join_key) {
            return Err(format!(
                "feature view {:?}: join key {join_key:?} listed twice",
                view.name
            ));
        }
    }
    let mut features = Vec::with_capacity(view.features.len());
    let mut feature_index = HashMap::new();
    for feature in view.features {
        if feature.name.is_empty() || feature.name.contains(':') {
            return Err(format!(
                "feature view {:?}: bad feature name {:?}",
                view.name, feature.name
            ));
        }
        if entity_types.contains_key(&feature.name) || feature.name == EVENT_TIMESTAMP_COLUMN {
            return Err(format!(
                "feature view {:?}: feature {:?} shadows a column",
                view.name, feature.name
            ));
        }
        let field = layout::field_hash(&view.name, &feature.name)
            .map_err(|e| format!("cannot hash {}:{}: {e}", view.name, feature.name))?;
        if feature_index
            .insert(feature.name.clone(), features.len())
            .is_some()
        {
            return Err(format!(
                "feature view {:?}: feature {:?} declared twice",
                view.name, feature.name
            ));
        }
        features.push(Feature {
            name: feature.name,
            value_type: feature.value_type,
            field,
        });
    }
    Ok(FeatureView {
        timestamp_field: layout::timestamp_field(&view.name),
        ttl: (view.ttl_seconds > 0).then(|| Duration::from_secs(view.ttl_seconds)),
        join_keys: view.entities,
        features,
        feature_index,
        name: view.name,
    })
}

/// Views with the same join keys share one Redis hash per entity, so their hash fields must not collide
/// (two `view:feature` strings with the same Murmur3, or a hash equal to some `_ts:` field).
fn check_field_collisions(views: &[FeatureView]) -> Result<(), String> {
    let mut by_keys: HashMap<Vec<&str>, HashMap<&Bytes, String>> = HashMap::new();
    for view in views {
        let mut keys: Vec<&str> = view.join_keys.iter().map(String::as_str).collect();
        keys.sort_unstable();
        let fields = by_keys.entry(keys).or_default();
        let ts = std::iter::once((&view.timestamp_field, format!("_ts:{}", view.name)));
        let feats = view
            .features
            .iter()
            .map(|f| (&f.field, format!("{}:{}", view.name, f.name)));
        for (field, name) in ts.chain(feats) {
            if let Some(other) = fields.insert(field, name.clone()) {
                return Err(format!("hash fields of {other:?} and {name:?} collide"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_registry_is_the_pricing_schema() {
        let registry = Registry::bundled().expect("bundled registry");
        assert_eq!(registry.project(), "pricing");
        let summary: Vec<(String, u64, usize)> = registry
            .views()
            .iter()
            .map(|v| (v.name.clone(), v.ttl.map_or(0, |t| t.as_secs()), v.features.len()))
            .collect();
        assert_eq!(
            summary,
            [
                ("customer_profile", 604_800, 6),
                ("customer_activity", 86_400, 3),
                ("zone_demand", 3_600, 5),
                ("zone_weather", 10_800, 2)
            ]
            .map(|(n, t, f)| (n.to_owned(), t, f))
        );
        assert_eq!(registry.views_sharing_keys(0), &[0, 1]);
        assert_eq!(registry.views_sharing_keys(3), &[2, 3]);
    }

    fn with(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Registry, Error> {
        let mut json: serde_json::Value = serde_json::from_str(BUNDLED_REGISTRY).expect("JSON");
        edit(&mut json);
        Registry::from_json(&json.to_string(), "test")
    }

    #[test]
    fn inconsistent_registries_are_rejected() {
        type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|j| j["feature_views"][0]["entities"][0] = "driver_id".into()),
                "unknown entity join key",
            ),
            (
                Box::new(|j| j["feature_views"][1]["name"] = "customer_profile".into()),
                "declared twice",
            ),
            (
                Box::new(|j| j["feature_views"][0]["features"][1]["name"] = "account_age_days".into()),
                "declared twice",
            ),
            (
                Box::new(|j| j["feature_views"][0]["features"][0]["value_type"] = "INT128".into()),
                "unknown variant",
            ),
            (
                Box::new(|j| j["entities"][0]["value_type"] = "DOUBLE".into()),
                "cannot be an entity key type",
            ),
            (
                Box::new(|j| j["feature_views"][0]["name"] = "a:b".into()),
                "without ':'",
            ),
            (Box::new(|j| j["surprise"] = 1.into()), "unknown field"),
        ];
        for (edit, needle) in cases {
            let error = with(edit).expect_err("rejected");
            assert!(error.to_string().contains(needle), "{error}");
        }
    }
}
