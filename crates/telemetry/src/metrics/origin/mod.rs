//! Origin detection: what the Datadog agent needs to tag this process's metrics and events with its
//! pod's and container's tags (`kube_deployment`, `pod_name`, `image_tag`...), found once at start-up.
//!
//! Over the agent's Unix socket the agent can read the sender's credentials; over UDP it knows only
//! what the datagram says. DogStatsD protocol 1.2+ carries it in fields after the tags, on every
//! metric and event line (Datadog's "Datagram Format" page; datadog-go `statsd/format.go`):
//!
//! ```text
//! api.predict.requests:1|c|#rpc:QuotePrice,env:prod,service:gateway,version:3|c:<container>|e:<external data>
//! ```
//!
//! - `c:` (protocol 1.2, agent 7.35+; `in-<inode>` since 7.51): this container's id, or the inode of
//!   its cgroup node where cgroup v2 hides the id (`cgroup.rs` says how it is found).
//! - `e:` (protocol 1.5, agent 7.57+): `DD_EXTERNAL_ENV`, which the Datadog Admission Controller injects
//!   into each pod (`it-false,cn-<container name>,pu-<pod uid>`), for when the container id cannot
//!   be read.
//! - `DD_ENTITY_ID` (the pod UID from the downward API, the older mechanism) travels as the tag
//!   `dd.internal.entity_id:<uid>`.
//!
//! `DD_ORIGIN_DETECTION_ENABLED=false` sends neither field; `DD_ENTITY_ID`, being set on purpose, is
//! still sent (as datadog-go does). The agent uses the fields only with
//! `dogstatsd_origin_detection_client: true`.

mod cgroup;

use self::cgroup::ProcPaths;
use super::aggregator::push_sanitized;
use crate::TelemetryConfig;

/// Longest `e:` value sent. The Admission Controller's value is about 110 bytes; anything much longer
/// is not one, and would eat into every datagram's room for values.
const MAX_EXTERNAL_DATA: usize = 256;
/// Longest `c:` value sent (container ids are 64 characters).
const MAX_CONTAINER: usize = 128;
/// The tag carrying `DD_ENTITY_ID`, which the agent reads and removes.
const ENTITY_ID_TAG: &str = "dd.internal.entity_id";

/// Where this process's metrics come from, for the agent's origin detection. [`crate::init`] detects
/// it; [`MetricsOrigin::default`] sends nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsOrigin {
    /// The `c:` field: a container id, or `in-<inode>` of this process's cgroup node.
    pub container: Option<String>,
    /// The `e:` field: `DD_EXTERNAL_ENV`.
    pub external_data: Option<String>,
    /// `DD_ENTITY_ID`, sent as the tag `dd.internal.entity_id:<uid>`.
    pub entity_id: Option<String>,
}

impl MetricsOrigin {
    /// Reads the configuration and, unless origin detection is off, `/proc/self/cgroup` (and
    /// `/proc/self/mountinfo`, `/sys/fs/cgroup`). Never fails: what cannot be read is left out.
    pub fn detect(config: &TelemetryConfig) -> Self {
        Self::detect_with(config, &ProcPaths::default())
    }

    fn detect_with(config: &TelemetryConfig, paths: &ProcPaths) -> Self {
        let entity_id = non_empty(config.entity_id.as_deref());
        if !config.origin_detection_enabled {
            return Self {
                entity_id,
                ..Self::default()
            };
        }
        Self {
            container: cgroup::detect(paths),
            external_data: non_empty(config.external_env.as_deref()),
            entity_id,
        }
    }

    /// The fields every line ends with, `|c:<container>|e:<external data>` (either, both or none),
    /// cleaned so they cannot break the datagram's framing.
    pub(crate) fn fields(&self) -> String {
        let mut fields = String::new();
        let container = self.container.as_deref().map(|c| {
            c.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect::<String>()
        });
        if let Some(container) = container.filter(|c| !c.is_empty() && c.len() <= MAX_CONTAINER) {
            fields.push_str("|c:");
            fields.push_str(&container);
        }
        // As datadog-go: printable characters except the field separator.
        let external = self.external_data.as_deref().map(|e| {
            e.chars()
                .filter(|&c| c == ' ' || !(c.is_control() || c.is_whitespace() || c == '|'))
                .collect::<String>()
        });
        if let Some(external) = external.filter(|e| !e.is_empty() && e.len() <= MAX_EXTERNAL_DATA) {
            fields.push_str("|e:");
            fields.push_str(&external);
        }
        fields
    }

    /// `dd.internal.entity_id:<uid>` when `DD_ENTITY_ID` is set.
    pub(crate) fn entity_tag(&self) -> Option<String> {
        let uid = self.entity_id.as_deref()?;
        let mut tag = format!("{ENTITY_ID_TAG}:");
        push_sanitized(&mut tag, uid);
        Some(tag)
    }
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD_UID: &str = "75a2b6d5-3949-4afb-ad0d-92ff0674e759";
    const EXTERNAL: &str = "it-false,cn-gateway,pu-75a2b6d5-3949-4afb-ad0d-92ff0674e759";

    fn config(enabled: bool) -> TelemetryConfig {
        let mut config = TelemetryConfig::for_service("gateway");
        config.origin_detection_enabled = enabled;
        config.external_env = Some(EXTERNAL.into());
        config.entity_id = Some(POD_UID.into());
        config
    }

    fn in_container(dir: &std::path::Path) -> ProcPaths {
        let paths = ProcPaths {
            cgroup: dir.join("cgroup"),
            mountinfo: dir.join("mountinfo"),
            cgroup_namespace: dir.join("ns"),
            cgroup_mount: dir.join("sys-fs-cgroup"),
        };
        let id = "3e74d3fd9db4c9dd921ae05c2502fb984d0cde1b36e581b13f79c639da4518a1";
        let cgroup =
            format!("11:perf_event:/kubepods/besteffort/pod3d274242-8ee0-11e9-a8a6-1e68d864ef1a/{id}\n");
        std::fs::write(&paths.cgroup, cgroup).expect("write cgroup");
        paths
    }

    #[test]
    fn reads_the_config_and_the_container() {
        let dir = tempfile::tempdir().expect("temp dir");
        let origin = MetricsOrigin::detect_with(&config(true), &in_container(dir.path()));
        assert_eq!(
            origin.fields(),
            format!("|c:3e74d3fd9db4c9dd921ae05c2502fb984d0cde1b36e581b13f79c639da4518a1|e:{EXTERNAL}")
        );
        assert_eq!(
            origin.entity_tag().as_deref(),
            Some("dd.internal.entity_id:75a2b6d5-3949-4afb-ad0d-92ff0674e759")
        );
    }

    #[test]
    fn the_opt_out_sends_no_fields_but_keeps_the_entity_id() {
        let dir = tempfile::tempdir().expect("temp dir");
        let origin = MetricsOrigin::detect_with(&config(false), &in_container(dir.path()));
        assert_eq!(origin.fields(), "");
        assert_eq!(origin.container, None);
        assert!(origin.entity_tag().is_some());
    }

    #[test]
    fn unset_or_empty_values_send_nothing() {
        let mut config = TelemetryConfig::for_service("gateway");
        config.external_env = Some("  ".into());
        config.entity_id = Some(String::new());
        let dir = tempfile::tempdir().expect("temp dir");
        let nowhere = ProcPaths {
            cgroup: dir.path().join("absent"),
            mountinfo: dir.path().join("absent"),
            cgroup_namespace: dir.path().join("absent"),
            cgroup_mount: dir.path().join("absent"),
        };
        let origin = MetricsOrigin::detect_with(&config, &nowhere);
        assert_eq!(origin, MetricsOrigin::default());
        assert_eq!(origin.fields(), "");
        assert_eq!(origin.entity_tag(), None);
    }

    #[test]
    fn values_cannot_break_the_framing() {
        let origin = MetricsOrigin {
            container: Some("abc|#x\n".into()),
            external_data: Some("it-false,cn-a|b\n,pu-1".into()),
            entity_id: Some("uid|x,y".into()),
        };
        assert_eq!(origin.fields(), "|c:abcx|e:it-false,cn-ab,pu-1");
        assert_eq!(
            origin.entity_tag().as_deref(),
            Some("dd.internal.entity_id:uid_x_y")
        );
        let oversized = MetricsOrigin {
            external_data: Some("x".repeat(MAX_EXTERNAL_DATA + 1)),
            ..MetricsOrigin::default()
        };
        assert_eq!(oversized.fields(), "", "an oversized value is left out, not cut");
    }
}
