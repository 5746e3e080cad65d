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
use telemetry::JobStatus;
use telemetry::events::BatchJobFinished;

#[derive(Parser)]
#[command(
    version,
    about = "Write feature rows from CSV files into Redis in Feast's online-store layout"
)]
struct Args {
    /// Redis to write to: redis://, rediss:// (TLS), redis-cluster://host:port?node=host:port...
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
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
    /// HSET commands per pipeline.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Timeout of each pipeline, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// How long to wait for a connection to Redis before failing, in milliseconds.
    #[arg(long, env = "REDIS_CONNECT_TIMEOUT_MS", default_value_t = 5_000)]
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

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("redis_url", &feature_store::redact_url(&self.redis_url))
            .field("files", &self.files)
            .field("snapshot", &self.snapshot)
            .finish_non_exhaustive()
    }
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
    let mut redis = RedisConfig::new(args.redis_url);
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
