//! `materialize`: writes feature rows from CSV files into Redis in Feast's online-store layout.
//!
//! ```text
//! materialize --redis-url redis://127.0.0.1:6379 --snapshot --rebase-timestamps
//! materialize --redis-url redis-cluster://10.0.0.1:7000 --file zone_demand.csv
//! materialize --redis-url redis://127.0.0.1:6379 --file rows.csv --view customer_profile
//! ```
//!
//! It is a batch job: every run ends with `batch_job.runs{job:materialize,status}`, `batch_job.status`,
//! `batch_job.duration_s` and `batch_job.rows{feature_view}` over DogStatsD (`DD_*` variables), which
//! the "batch job failed" monitor watches, also when the inputs cannot be read.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use feature_store::{CsvFile, MATERIALIZE_JOB, MaterializeOptions, RedisConfig, RedisTls, Registry};
use telemetry::events::BatchJobFinished;
use telemetry::{Bounds, JobStatus, Secret};

const BATCH_SIZE: Bounds = Bounds::new("batch-size", 1, 100_000);
const TIMEOUT_MS: Bounds = Bounds::new("timeout-ms", 1, 600_000);
const CONNECT_TIMEOUT_MS: Bounds = Bounds::new("connect-timeout-ms", 1, 600_000);

// Its numbers have ranges (`Args::BOUNDS`) outside which the job refuses to start; the Redis URL is a
// `Secret`, so neither `Debug` nor `--help` prints its password.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Write feature rows from CSV files into Redis in Feast's online-store layout"
)]
struct Args {
    /// Redis to write to: redis://, rediss:// (TLS), redis-cluster://host:port?node=host:port...
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Secret,
    /// A CSV file of one feature view (repeatable): join key, event_timestamp, features.
    #[arg(long = "file", required_unless_present = "snapshot")]
    files: Vec<PathBuf>,
    /// Write every CSV of the bundled snapshot.
    #[arg(long, conflicts_with = "files")]
    snapshot: bool,
    /// The feature view of the --file rows; by default each file's name without `.csv`.
    #[arg(long)]
    view: Option<String>,
    /// Feast project in the keys; by default the registry's.
    #[arg(long, env = "FEAST_PROJECT")]
    project: Option<String>,
    /// Feature registry JSON; by default the bundled one.
    #[arg(long, env = "FEATURE_REGISTRY")]
    registry: Option<PathBuf>,
    /// Shift all timestamps so the newest row is now (relative ages are kept).
    #[arg(long)]
    rebase_timestamps: bool,
    /// HSET commands per pipeline (1 to 100000).
    #[arg(long, default_value_t = 500, value_parser = BATCH_SIZE.parser::<usize>())]
    batch_size: usize,
    /// Timeout of each pipeline, in milliseconds (1 to 600000: 10 min).
    #[arg(long, default_value_t = 10_000, value_parser = TIMEOUT_MS.parser::<u64>())]
    timeout_ms: u64,
    /// How long to wait for a connection to Redis before failing, in milliseconds (1 to 600000).
    #[arg(
        long,
        env = "REDIS_CONNECT_TIMEOUT_MS",
        default_value_t = 5_000,
        value_parser = CONNECT_TIMEOUT_MS.parser::<u64>()
    )]
    connect_timeout_ms: u64,
    /// PEM CA certificate(s) that sign Redis's certificate, trusted instead of the system's roots
    /// (rediss:// URLs only).
    #[arg(long, env = "REDIS_TLS_CA_FILE")]
    redis_tls_ca_file: Option<PathBuf>,
    /// PEM client certificate for Redis servers that verify clients; needs --redis-tls-key-file.
    #[arg(long, env = "REDIS_TLS_CERT_FILE", requires = "redis_tls_key_file")]
    redis_tls_cert_file: Option<PathBuf>,
    /// PEM private key of --redis-tls-cert-file.
    #[arg(long, env = "REDIS_TLS_KEY_FILE", requires = "redis_tls_cert_file")]
    redis_tls_key_file: Option<PathBuf>,
    #[command(flatten)]
    telemetry: telemetry::TelemetryConfig,
}

#[cfg(test)]
impl Args {
    /// The range of each numeric setting of the job's own, as its `--help` states it (the flattened
    /// ones are [`telemetry::TelemetryConfig::BOUNDS`]).
    const BOUNDS: &'static [Bounds] = &[BATCH_SIZE, TIMEOUT_MS, CONNECT_TIMEOUT_MS];
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let guard = telemetry::init(&args.telemetry, "materialize", env!("CARGO_PKG_VERSION"));
    let code = match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("materialize: {error}");
            ExitCode::FAILURE
        }
    };
    // A batch job's metrics are sent at exit: flush them (and the spans) before the process ends.
    guard.shutdown();
    code
}

async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let (registry, files) = match load_inputs(&args) {
        Ok(inputs) => inputs,
        Err(error) => {
            // `materialize` reports its own failures; inputs that cannot even be read are reported here.
            let message = error.to_string();
            BatchJobFinished {
                job: MATERIALIZE_JOB,
                status: JobStatus::Failed,
                duration: started.elapsed(),
                rows: &[],
                error: Some(&message),
            }
            .emit();
            return Err(error);
        }
    };
    let mut redis = RedisConfig::new(args.redis_url.into_inner());
    redis.timeout = Duration::from_millis(args.timeout_ms);
    redis.connect_timeout = Duration::from_millis(args.connect_timeout_ms);
    redis.tls = RedisTls {
        ca_file: args.redis_tls_ca_file,
        client_cert_file: args.redis_tls_cert_file,
        client_key_file: args.redis_tls_key_file,
    };
    let options = MaterializeOptions {
        project: args.project,
        batch_size: args.batch_size,
        rebase_timestamps: args.rebase_timestamps,
        timeout: redis.timeout,
        metrics: telemetry::metrics().clone(),
    };
    let report = feature_store::materialize(&redis, &registry, &files, &options).await?;
    let views: Vec<String> = report
        .views
        .iter()
        .map(|(view, rows)| format!("{view}={rows}"))
        .collect();
    println!(
        "materialized {} rows ({}) in {} batches, {:.1} ms",
        report.rows,
        views.join(", "),
        report.batches,
        report.elapsed.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// The registry and the CSV files to write.
fn load_inputs(args: &Args) -> anyhow::Result<(Registry, Vec<CsvFile>)> {
    let registry = Registry::load(args.registry.as_deref())?;
    let files = if args.snapshot {
        let files = CsvFile::bundled();
        anyhow::ensure!(!files.is_empty(), "this build has no bundled snapshot");
        files
    } else {
        args.files
            .iter()
            .map(|path| CsvFile::read(path, args.view.as_deref()))
            .collect::<Result<_, _>>()?
    };
    Ok((registry, files))
}

#[cfg(test)]
mod tests {
    //! Every numeric setting has a documented range that clap enforces, whatever a flag or variable
    //! holds (a zero batch size used to panic in the first pipeline); the Redis password is never in
    //! `Debug`. `tests/materialize_settings.rs` runs the binary itself.

    use clap::CommandFactory;
    use telemetry::TelemetryConfig;
    use telemetry::settings::secrets_shown_by_help;
    use testkit::settings::{SettingRanges, telemetry_numbers};

    use super::*;

    /// What the job needs besides.
    const REQUIRED: [&str; 3] = ["--redis-url", "redis://:hunter2@redis:6379", "--snapshot"];

    testkit::setting_ranges_tests!(ranges());

    /// Every numeric setting of `args`, by flag: its own and telemetry's.
    #[allow(clippy::cast_precision_loss)]
    fn numbers(args: &Args) -> Vec<(&'static str, f64)> {
        let own = [
            ("batch-size", args.batch_size as f64),
            ("timeout-ms", args.timeout_ms as f64),
            ("connect-timeout-ms", args.connect_timeout_ms as f64),
        ];
        [&own[..], &telemetry_numbers(&args.telemetry)].concat()
    }

    fn ranges() -> SettingRanges<Args> {
        SettingRanges {
            name: "materialize",
            required: &REQUIRED,
            integer: [Args::BOUNDS, TelemetryConfig::BOUNDS].concat(),
            fraction: TelemetryConfig::FRACTION_BOUNDS.to_vec(),
            numbers,
        }
    }

    #[test]
    fn debug_shows_the_redis_host_but_not_the_password() {
        let args = Args::try_parse_from(std::iter::once("materialize").chain(REQUIRED)).expect("parses");
        let printed = format!("{args:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("redis://:***@redis:6379"), "{printed}");
        assert!(secrets_shown_by_help(&Args::command()).is_empty());
        assert_eq!(args.redis_url.expose(), REQUIRED[1]);
    }
}
