//! Metrics and service checks the Datadog agent's own integrations send (not ours): the names
//! dashboards and monitors may use besides the telemetry catalog, with the tags each carries and where
//! that is documented. `docs/observability.md` carries this list as a table (a test keeps them equal).

/// What a name is in Datadog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrationKind {
    Gauge,
    Rate,
    ServiceCheck,
}

impl IntegrationKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            IntegrationKind::Gauge => "gauge",
            IntegrationKind::Rate => "rate",
            IntegrationKind::ServiceCheck => "service check",
        }
    }
}

#[derive(Debug)]
pub struct IntegrationMetric {
    pub name: &'static str,
    pub kind: IntegrationKind,
    /// The agent check that sends it.
    pub integration: &'static str,
    /// Tag keys it carries (including those the agent adds: `host`, and the unified service tags where
    /// the monitored pod or check instance carries them).
    pub tags: &'static [&'static str],
    pub description: &'static str,
    /// Where the name, type and tags are documented.
    pub source: &'static str,
}

/// `redisdb` check: instance tags plus the Redis pod's unified service tags (the agent values set
/// `env` on the check instance).
const REDIS: &[&str] = &[
    "env",
    "service",
    "host",
    "redis_host",
    "redis_port",
    "redis_role",
    "kube_namespace",
];
const REDIS_SOURCE: &str = "https://github.com/DataDog/integrations-core/blob/master/redisdb/metadata.csv";
/// Kubelet check: pod and container tags at low cardinality plus `pod_name` (orchestrator
/// cardinality, which the agent's kubelet metrics carry), and the pods' `tags.datadoghq.com/*` labels.
const KUBELET: &[&str] = &[
    "env",
    "service",
    "version",
    "host",
    "pod_name",
    "kube_deployment",
    "kube_namespace",
    "kube_container_name",
    "kube_cluster_name",
    "short_image",
];
const KUBELET_SOURCE: &str = "https://github.com/DataDog/integrations-core/blob/master/kubelet/metadata.csv";
/// Hosts of a Databricks cluster running the agent (Datadog's init script sets these host tags).
const DATABRICKS_HOST: &[&str] = &[
    "host",
    "environment",
    "databricks_cluster_id",
    "databricks_cluster_name",
    "databricks_is_job_cluster",
    "spark_node",
];
const DATABRICKS_SOURCE: &str =
    "https://github.com/DataDog/integrations-core/blob/master/databricks/README.md";
const SPARK: &[&str] = &[
    "host",
    "environment",
    "databricks_cluster_id",
    "databricks_cluster_name",
    "spark_node",
    "spark_cluster",
    "cluster_name",
    "app_name",
];

/// Every agent-integration name in use.
pub static INTEGRATION_METRICS: &[IntegrationMetric] = &[
    IntegrationMetric {
        name: "redis.mem.used",
        kind: IntegrationKind::Gauge,
        integration: "redisdb",
        tags: REDIS,
        description: "Bytes Redis has allocated (INFO used_memory).",
        source: REDIS_SOURCE,
    },
    IntegrationMetric {
        name: "redis.mem.maxmemory",
        kind: IntegrationKind::Gauge,
        integration: "redisdb",
        tags: REDIS,
        description: "Redis maxmemory in bytes (0 when unlimited).",
        source: REDIS_SOURCE,
    },
    IntegrationMetric {
        name: "redis.net.instantaneous_ops_per_sec",
        kind: IntegrationKind::Gauge,
        integration: "redisdb",
        tags: REDIS,
        description: "Commands Redis processes per second (INFO instantaneous_ops_per_sec).",
        source: "https://github.com/DataDog/integrations-core/blob/master/redisdb/datadog_checks/redisdb/redisdb.py",
    },
    IntegrationMetric {
        name: "redis.net.clients",
        kind: IntegrationKind::Gauge,
        integration: "redisdb",
        tags: REDIS,
        description: "Connected clients, replicas excluded.",
        source: REDIS_SOURCE,
    },
    IntegrationMetric {
        name: "redis.can_connect",
        kind: IntegrationKind::ServiceCheck,
        integration: "redisdb",
        tags: &["env", "host", "redis_host", "redis_port"],
        description: "OK when the agent can connect to the Redis instance, CRITICAL otherwise.",
        source: "https://github.com/DataDog/integrations-core/blob/master/redisdb/assets/service_checks.json",
    },
    IntegrationMetric {
        name: "kubernetes.cpu.usage.total",
        kind: IntegrationKind::Rate,
        integration: "kubelet",
        tags: KUBELET,
        description: "Container CPU in nanocores.",
        source: KUBELET_SOURCE,
    },
    IntegrationMetric {
        name: "kubernetes.cpu.limits",
        kind: IntegrationKind::Gauge,
        integration: "kubelet",
        tags: KUBELET,
        description: "Container CPU limit in cores.",
        source: KUBELET_SOURCE,
    },
    IntegrationMetric {
        name: "kubernetes.memory.working_set",
        kind: IntegrationKind::Gauge,
        integration: "kubelet",
        tags: KUBELET,
        description: "Container working set in bytes (what the OOM killer weighs).",
        source: KUBELET_SOURCE,
    },
    IntegrationMetric {
        name: "kubernetes.memory.limits",
        kind: IntegrationKind::Gauge,
        integration: "kubelet",
        tags: KUBELET,
        description: "Container memory limit in bytes.",
        source: KUBELET_SOURCE,
    },
    IntegrationMetric {
        name: "kubernetes.containers.restarts",
        kind: IntegrationKind::Gauge,
        integration: "kubelet",
        tags: KUBELET,
        description: "Restarts of the container so far (its restartCount).",
        source: "https://github.com/DataDog/integrations-core/blob/master/kubelet/datadog_checks/kubelet/kubelet.py",
    },
    IntegrationMetric {
        name: "system.cpu.idle",
        kind: IntegrationKind::Gauge,
        integration: "system (Databricks cluster hosts)",
        tags: DATABRICKS_HOST,
        description: "Percent of CPU time idle.",
        source: DATABRICKS_SOURCE,
    },
    IntegrationMetric {
        name: "system.mem.used",
        kind: IntegrationKind::Gauge,
        integration: "system (Databricks cluster hosts)",
        tags: DATABRICKS_HOST,
        description: "Memory in use, bytes.",
        source: DATABRICKS_SOURCE,
    },
    IntegrationMetric {
        name: "system.mem.total",
        kind: IntegrationKind::Gauge,
        integration: "system (Databricks cluster hosts)",
        tags: DATABRICKS_HOST,
        description: "Memory installed, bytes.",
        source: DATABRICKS_SOURCE,
    },
    IntegrationMetric {
        name: "spark.executor.active_tasks",
        kind: IntegrationKind::Gauge,
        integration: "spark (Databricks)",
        tags: SPARK,
        description: "Tasks running on the cluster's executors.",
        source: "https://github.com/DataDog/integrations-core/blob/master/spark/metadata.csv",
    },
];

/// Looks an integration name up.
pub fn by_name(name: &str) -> Option<&'static IntegrationMetric> {
    INTEGRATION_METRICS.iter().find(|m| m.name == name)
}

/// The list as the Markdown table `docs/observability.md` carries.
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| name | type | integration | tags | what it is | source |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for metric in INTEGRATION_METRICS {
        table.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | [docs]({}) |\n",
            metric.name,
            metric.kind.as_str(),
            metric.integration,
            metric.tags.join(", "),
            metric.description,
            metric.source
        ));
    }
    table
}
