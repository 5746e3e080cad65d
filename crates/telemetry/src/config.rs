//! [`TelemetryConfig`]: the flags every binary shares, each falling back to the standard Datadog or
//! OpenTelemetry environment variable so Helm and Kubernetes configure services the usual way.
//!
//! Bad values (an unparsable `DD_DOGSTATSD_URL`, an unknown `OTEL_TRACES_SAMPLER`, a number outside
//! its [`TelemetryConfig::BOUNDS`]) are rejected by clap at start-up with a one-line reason, before
//! anything is bound.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use clap::builder::BoolishValueParser;

use crate::TelemetryError;
use crate::settings::Bounds;

const DOGSTATSD_PORT: Bounds = Bounds::new("dd-dogstatsd-port", 1, 65_535);
/// 10 ms is the floor [`TelemetryConfig::metrics_flush_interval`] applied already; flushing less than once a
/// minute would land points in the agent's 10 s buckets long after they were recorded.
const METRICS_FLUSH_INTERVAL_MS: Bounds = Bounds::new("metrics-flush-interval-ms", 10, 60_000);
const METRICS_MAX_SERIES: Bounds = Bounds::new("metrics-max-series", 1, 1 << 20);
const METRICS_MAX_SAMPLES: Bounds = Bounds::new("metrics-max-samples", 1, 1 << 24);
const SPAN_QUEUE_SIZE: Bounds = Bounds::new("otel-bsp-max-queue-size", 1, 1 << 20);
/// The log writer's channel allocates every slot up front (about 32 bytes each).
const LOG_BUFFER_LINES: Bounds = Bounds::new("log-buffer-lines", 1, 1 << 20);
const SAMPLER_ARG: Bounds<f64> = Bounds::new("otel-traces-sampler-arg", 0.0, 1.0);

/// Settings shared by every binary; flatten it into a service's `Config` with `#[command(flatten)]`.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryConfig {
    /// Deployment environment (unified service tagging `env`).
    #[arg(long = "dd-env", env = "DD_ENV", default_value = "local")]
    pub env: String,
    /// Service name (unified service tagging `service`); defaults to the binary's name.
    #[arg(long = "dd-service", env = "DD_SERVICE")]
    pub service: Option<String>,
    /// Service version (unified service tagging `version`); defaults to the crate version.
    #[arg(id = "dd_version", long = "dd-version", env = "DD_VERSION")]
    pub version: Option<String>,
    /// Host of the Datadog agent (DogStatsD over UDP and the OTLP receiver).
    #[arg(long = "dd-agent-host", env = "DD_AGENT_HOST", default_value = "localhost")]
    pub agent_host: String,
    /// DogStatsD UDP port on the agent host (1 to 65535).
    #[arg(
        long = "dd-dogstatsd-port",
        env = "DD_DOGSTATSD_PORT",
        default_value_t = 8125,
        value_parser = DOGSTATSD_PORT.parser::<u16>()
    )]
    pub dogstatsd_port: u16,
    /// DogStatsD address, `unix:///var/run/datadog/dsd.socket` or `udp://host:port`; wins over host/port.
    #[arg(long = "dd-dogstatsd-url", env = "DD_DOGSTATSD_URL")]
    pub dogstatsd_url: Option<DogStatsdUrl>,
    /// Turn DogStatsD metrics off (recording becomes a no-op).
    #[arg(long = "dd-dogstatsd-disable", env = "DD_DOGSTATSD_DISABLE", default_value_t = false,
          action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub dogstatsd_disable: bool,
    /// Origin detection: send this container's id (`|c:`) and `DD_EXTERNAL_ENV` (`|e:`) on every
    /// DogStatsD line, so the agent adds the pod's tags even over UDP; `false` sends neither.
    #[arg(long = "dd-origin-detection-enabled", env = "DD_ORIGIN_DETECTION_ENABLED", default_value_t = true,
          action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub origin_detection_enabled: bool,
    /// Origin data the Datadog Admission Controller injects into each pod
    /// (`it-false,cn-<container>,pu-<pod uid>`), sent as the DogStatsD `|e:` field.
    #[arg(long = "dd-external-env", env = "DD_EXTERNAL_ENV")]
    pub external_env: Option<String>,
    /// The pod UID (downward API `metadata.uid`), sent as the tag `dd.internal.entity_id` on every
    /// line: the older origin detection, which every agent version reads.
    #[arg(long = "dd-entity-id", env = "DD_ENTITY_ID")]
    pub entity_id: Option<String>,
    /// How often aggregated metrics are sent to the agent, in milliseconds (10 to 60000).
    #[arg(
        long = "metrics-flush-interval-ms",
        env = "TELEMETRY_METRICS_FLUSH_INTERVAL_MS",
        default_value_t = 1000,
        value_parser = METRICS_FLUSH_INTERVAL_MS.parser::<u64>()
    )]
    pub metrics_flush_interval_ms: u64,
    /// Cap on metric series held between flushes (a count or distribution recorded on several threads is
    /// held once per thread); past it new series are dropped and counted (1 to 1048576).
    #[arg(
        long = "metrics-max-series",
        env = "TELEMETRY_METRICS_MAX_SERIES",
        default_value_t = 4096,
        value_parser = METRICS_MAX_SERIES.parser::<usize>()
    )]
    pub metrics_max_series: usize,
    /// Cap on distribution samples buffered between flushes; past it samples are dropped and counted
    /// (1 to 16777216).
    #[arg(
        long = "metrics-max-samples",
        env = "TELEMETRY_METRICS_MAX_SAMPLES",
        default_value_t = 262_144,
        value_parser = METRICS_MAX_SAMPLES.parser::<usize>()
    )]
    pub metrics_max_samples: usize,
    /// Send traces (OTLP/gRPC to the agent); `false` keeps propagation but records no spans.
    #[arg(long = "dd-trace-enabled", env = "DD_TRACE_ENABLED", default_value_t = true,
          action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub trace_enabled: bool,
    /// OTLP/gRPC endpoint for traces; defaults to `http://<DD_AGENT_HOST>:4317`.
    #[arg(long = "otel-exporter-otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Trace sampler, in OpenTelemetry's names.
    #[arg(long = "otel-traces-sampler", env = "OTEL_TRACES_SAMPLER", value_enum,
          default_value_t = SamplerKind::ParentBasedAlwaysOn)]
    pub sampler: SamplerKind,
    /// Ratio for the `traceidratio` samplers (0 to 1).
    #[arg(
        long = "otel-traces-sampler-arg",
        env = "OTEL_TRACES_SAMPLER_ARG",
        value_parser = SAMPLER_ARG.parser::<f64>()
    )]
    pub sampler_arg: Option<f64>,
    /// Spans waiting for export; past it spans are dropped and counted (1 to 1048576).
    #[arg(
        long = "otel-bsp-max-queue-size",
        env = "OTEL_BSP_MAX_QUEUE_SIZE",
        default_value_t = 4096,
        value_parser = SPAN_QUEUE_SIZE.parser::<usize>()
    )]
    pub span_queue_size: usize,
    /// Log format on stdout: `json` for Datadog's log collection, `pretty` for people.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, e.g. `info,gateway=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// Log lines buffered for the stdout writer thread; past it lines are dropped, not waited for
    /// (1 to 1048576).
    #[arg(
        long = "log-buffer-lines",
        env = "LOG_BUFFER_LINES",
        default_value_t = 65_536,
        value_parser = LOG_BUFFER_LINES.parser::<usize>()
    )]
    pub log_buffer_lines: usize,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line with `dd.trace_id`/`dd.span_id`, for the agent's log collection.
    Json,
    /// Human-readable, for local work.
    Pretty,
}

/// `OTEL_TRACES_SAMPLER` values this crate supports (the standard ones, minus remote samplers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SamplerKind {
    #[value(name = "always_on")]
    AlwaysOn,
    #[value(name = "always_off")]
    AlwaysOff,
    #[value(name = "traceidratio")]
    TraceIdRatio,
    #[value(name = "parentbased_always_on")]
    ParentBasedAlwaysOn,
    #[value(name = "parentbased_always_off")]
    ParentBasedAlwaysOff,
    #[value(name = "parentbased_traceidratio")]
    ParentBasedTraceIdRatio,
}

/// Where DogStatsD datagrams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DogStatsdUrl {
    /// The agent's Unix datagram socket (datagrams up to 8192 bytes).
    Unix(PathBuf),
    /// UDP to `host:port` (datagrams up to 1432 bytes).
    Udp { host: String, port: u16 },
}

impl DogStatsdUrl {
    /// The largest datagram the agent accepts on this transport (Datadog's documented limits).
    pub fn max_datagram(&self) -> usize {
        match self {
            DogStatsdUrl::Unix(_) => 8192,
            DogStatsdUrl::Udp { .. } => 1432,
        }
    }
}

impl fmt::Display for DogStatsdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DogStatsdUrl::Unix(path) => write!(f, "unix://{}", path.display()),
            DogStatsdUrl::Udp { host, port } if host.contains(':') => write!(f, "udp://[{host}]:{port}"),
            DogStatsdUrl::Udp { host, port } => write!(f, "udp://{host}:{port}"),
        }
    }
}

impl FromStr for DogStatsdUrl {
    type Err = TelemetryError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| TelemetryError::InvalidDogStatsdUrl {
            url: url.to_owned(),
            reason,
        };
        if let Some(path) = url
            .strip_prefix("unix://")
            .or_else(|| url.strip_prefix("unixgram://"))
        {
            if !path.starts_with('/') {
                return Err(invalid("a unix socket path must be absolute (unix:///path)"));
            }
            return Ok(DogStatsdUrl::Unix(PathBuf::from(path)));
        }
        let Some(rest) = url.strip_prefix("udp://") else {
            return Err(invalid("expected unix:///path or udp://host:port"));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid("unclosed [ in IPv6 host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("empty host"));
        }
        let port = match port {
            Some(port) => port
                .parse()
                .map_err(|_| invalid("port is not a number in 1..=65535"))?,
            None => 8125,
        };
        Ok(DogStatsdUrl::Udp {
            host: host.to_owned(),
            port,
        })
    }
}

impl TelemetryConfig {
    /// The range of each integer setting, as its `--help` states it.
    pub const BOUNDS: &'static [Bounds] = &[
        DOGSTATSD_PORT,
        METRICS_FLUSH_INTERVAL_MS,
        METRICS_MAX_SERIES,
        METRICS_MAX_SAMPLES,
        SPAN_QUEUE_SIZE,
        LOG_BUFFER_LINES,
    ];
    /// The range of each fractional setting, as its `--help` states it.
    pub const FRACTION_BOUNDS: &'static [Bounds<f64>] = &[SAMPLER_ARG];

    /// A configuration for tests and tools: the defaults, without reading the process's arguments or
    /// environment (pretty logs, agent on localhost).
    pub fn for_service(service: &str) -> Self {
        Self {
            env: "local".into(),
            service: Some(service.into()),
            version: None,
            agent_host: "localhost".into(),
            dogstatsd_port: 8125,
            dogstatsd_url: None,
            dogstatsd_disable: false,
            origin_detection_enabled: true,
            external_env: None,
            entity_id: None,
            metrics_flush_interval_ms: 1000,
            metrics_max_series: 4096,
            metrics_max_samples: 262_144,
            trace_enabled: true,
            otlp_endpoint: None,
            sampler: SamplerKind::ParentBasedAlwaysOn,
            sampler_arg: None,
            span_queue_size: 4096,
            log_format: LogFormat::Pretty,
            log_filter: "info".into(),
            log_buffer_lines: 65_536,
        }
    }

    /// Where DogStatsD goes: `DD_DOGSTATSD_URL` when set, else UDP to `DD_AGENT_HOST:DD_DOGSTATSD_PORT`.
    pub fn dogstatsd_target(&self) -> DogStatsdUrl {
        self.dogstatsd_url.clone().unwrap_or_else(|| DogStatsdUrl::Udp {
            host: self.agent_host.clone(),
            port: self.dogstatsd_port,
        })
    }

    /// The OTLP/gRPC endpoint: `OTEL_EXPORTER_OTLP_ENDPOINT` or `http://<DD_AGENT_HOST>:4317`.
    pub fn otlp_endpoint(&self) -> String {
        match &self.otlp_endpoint {
            Some(endpoint) => endpoint.clone(),
            None if self.agent_host.contains(':') => format!("http://[{}]:4317", self.agent_host),
            None => format!("http://{}:4317", self.agent_host),
        }
    }

    /// The metrics flush interval, at least 10 ms.
    pub fn metrics_flush_interval(&self) -> Duration {
        Duration::from_millis(self.metrics_flush_interval_ms.max(10))
    }

    /// The sampling ratio for ratio samplers (1.0 when unset), checked to lie in [0, 1].
    pub fn sampler_ratio(&self) -> Result<f64, TelemetryError> {
        match self.sampler_arg {
            None => Ok(1.0),
            Some(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
            Some(ratio) => Err(TelemetryError::InvalidSamplerArg(ratio)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        telemetry: TelemetryConfig,
    }

    #[test]
    fn parses_dogstatsd_urls() {
        assert_eq!(
            "unix:///var/run/datadog/dsd.socket".parse::<DogStatsdUrl>().ok(),
            Some(DogStatsdUrl::Unix("/var/run/datadog/dsd.socket".into()))
        );
        assert_eq!(
            "udp://agent:9125".parse::<DogStatsdUrl>().ok(),
            Some(DogStatsdUrl::Udp {
                host: "agent".into(),
                port: 9125
            })
        );
        assert_eq!(
            "udp://[::1]:8125".parse::<DogStatsdUrl>().ok(),
            Some(DogStatsdUrl::Udp {
                host: "::1".into(),
                port: 8125
            })
        );
        assert!("tcp://agent:8125".parse::<DogStatsdUrl>().is_err());
        assert!("udp://agent:http".parse::<DogStatsdUrl>().is_err());
        assert!("unix://relative/path".parse::<DogStatsdUrl>().is_err());
    }

    #[test]
    fn flags_parse_and_default() {
        let cli = Cli::parse_from([
            "bin",
            "--dd-agent-host",
            "10.0.0.7",
            "--dd-trace-enabled",
            "false",
            "--otel-traces-sampler",
            "parentbased_traceidratio",
            "--otel-traces-sampler-arg",
            "0.25",
            "--log-format",
            "pretty",
        ]);
        let config = cli.telemetry;
        assert!(!config.trace_enabled);
        assert_eq!(config.sampler, SamplerKind::ParentBasedTraceIdRatio);
        assert_eq!(config.sampler_ratio().ok(), Some(0.25));
        assert_eq!(config.otlp_endpoint(), "http://10.0.0.7:4317");
        assert_eq!(
            config.dogstatsd_target(),
            DogStatsdUrl::Udp {
                host: "10.0.0.7".into(),
                port: 8125
            }
        );
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert!(Cli::try_parse_from(["bin", "--otel-traces-sampler", "jaeger_remote"]).is_err());
        assert!(Cli::try_parse_from(["bin", "--otel-traces-sampler-arg", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["bin", "--dd-dogstatsd-url", "tcp://agent"]).is_err());
    }

    #[test]
    fn origin_detection_flags_parse_and_read_the_datadog_variables() {
        let external = "it-false,cn-gateway,pu-75a2b6d5-3949-4afb-ad0d-92ff0674e759";
        let cli = Cli::parse_from([
            "bin",
            "--dd-origin-detection-enabled",
            "false",
            "--dd-external-env",
            external,
            "--dd-entity-id",
            "75a2b6d5-3949-4afb-ad0d-92ff0674e759",
        ]);
        let config = cli.telemetry;
        assert!(!config.origin_detection_enabled);
        assert_eq!(config.external_env.as_deref(), Some(external), "commas are kept");
        assert_eq!(
            config.entity_id.as_deref(),
            Some("75a2b6d5-3949-4afb-ad0d-92ff0674e759")
        );
        assert!(Cli::try_parse_from(["bin", "--dd-origin-detection-enabled", "maybe"]).is_err());
        assert!(
            TelemetryConfig::for_service("x").origin_detection_enabled,
            "on by default"
        );

        // The variables the Datadog agent's Admission Controller and clients use.
        let command = <Cli as clap::CommandFactory>::command();
        let env_of = |id: &str| {
            command
                .get_arguments()
                .find(|arg| arg.get_id() == id)
                .and_then(|arg| arg.get_env())
                .and_then(|env| env.to_str())
                .map(str::to_owned)
        };
        assert_eq!(
            env_of("origin_detection_enabled").as_deref(),
            Some("DD_ORIGIN_DETECTION_ENABLED")
        );
        assert_eq!(env_of("external_env").as_deref(), Some("DD_EXTERNAL_ENV"));
        assert_eq!(env_of("entity_id").as_deref(), Some("DD_ENTITY_ID"));
        let default = command
            .get_arguments()
            .find(|arg| arg.get_id() == "origin_detection_enabled")
            .map(|arg| arg.get_default_values().to_vec());
        assert_eq!(default, Some(vec!["true".into()]));
    }
}
