//! `datadog-resources check` holds `deploy/datadog/` to Datadog's API, the metric catalog, the runbooks
//! and the design record; `datadog-resources apply [--dry-run]` upserts it into an organisation.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Args, Parser, Subcommand};
use datadog_resources::{
    apply::{self, ApplyOptions, Desired},
    check::{self, Report},
};
use telemetry::Secret;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Datadog dashboards, monitors, SLOs and logs indexes as code: check them, apply them."
)]
struct Cli {
    /// The repository root (holding deploy/datadog and docs); default: the nearest folder upwards from
    /// here that has deploy/datadog.
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every resource; print the problems, or a summary with the custom-metric series and cost.
    Check,
    /// Check, then create or update every resource in the Datadog organisation of the keys given.
    Apply(ApplyArgs),
}

// The keys are `Secret`s: neither `Debug` nor `--help` (`hide_env_values`) prints them.
#[derive(Debug, Args)]
struct ApplyArgs {
    /// Read and validate only; print what would change (with diffs); write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Base URL of the published runbooks (docs/runbooks), put in every monitor message, e.g.
    /// https://github.com/<org>/<repo>/blob/main/docs/runbooks.
    #[arg(long, env = "RUNBOOKS_URL")]
    runbooks_url: String,
    /// Datadog site of the organisation (datadoghq.com, datadoghq.eu, us3.datadoghq.com, ...).
    #[arg(long, env = "DD_SITE", default_value = "datadoghq.com")]
    site: String,
    /// API base URL; overrides the site's (e.g. a local stand-in).
    #[arg(long, env = "DD_API_URL")]
    api_url: Option<String>,
    /// Datadog API key.
    #[arg(long, env = "DD_API_KEY", hide_env_values = true)]
    api_key: Secret,
    /// Datadog application key (with monitors, dashboards, SLOs, logs configuration and metric
    /// configuration write permissions).
    #[arg(long, env = "DD_APP_KEY", hide_env_values = true)]
    app_key: Secret,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = match cli.root.clone().or_else(find_root) {
        Some(root) => root,
        None => {
            eprintln!("datadog-resources: no deploy/datadog here or above; pass --root");
            return ExitCode::FAILURE;
        }
    };
    let (set, report) = check::check_repository(&root);
    if !report.is_ok() {
        for problem in &report.problems {
            eprintln!("{problem}");
        }
        eprintln!(
            "datadog-resources: {} problem(s) in {}",
            report.problems.len(),
            root.display()
        );
        return ExitCode::FAILURE;
    }
    match cli.command {
        Command::Check => {
            print_summary(&set, &report);
            ExitCode::SUCCESS
        }
        Command::Apply(args) => {
            let options = ApplyOptions {
                api_url: args
                    .api_url
                    .unwrap_or_else(|| apply::api_url_for_site(&args.site)),
                api_key: args.api_key.into_inner(),
                app_key: args.app_key.into_inner(),
                dry_run: args.dry_run,
                runbooks_url: args.runbooks_url,
            };
            let desired = Desired {
                set: &set,
                percentile_metrics: report.percentile_metrics.iter().cloned().collect(),
            };
            let mut out = std::io::stdout().lock();
            match apply::run(&options, &desired, &mut out) {
                Ok(summary) => {
                    let _ = writeln!(out, "{summary}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("datadog-resources apply: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn find_root() -> Option<PathBuf> {
    let here = std::env::current_dir().ok()?;
    here.ancestors()
        .find(|dir| dir.join(datadog_resources::resources::DIR).is_dir())
        .map(Path::to_path_buf)
}

/// Writes the summary; a closed stdout (`check | head`) ends it quietly.
fn print_summary(set: &datadog_resources::resources::ResourceSet, report: &Report) {
    let _ = write_summary(&mut std::io::stdout().lock(), set, report);
}

fn write_summary(
    out: &mut dyn Write,
    set: &datadog_resources::resources::ResourceSet,
    report: &Report,
) -> std::io::Result<()> {
    use datadog_resources::resources::Kind;
    let count = |kind| set.of_kind(kind).count();
    writeln!(
        out,
        "deploy/datadog: {} dashboards, {} monitors, {} SLOs, {} logs indexes: all valid",
        count(Kind::Dashboard),
        count(Kind::Monitor),
        count(Kind::Slo),
        count(Kind::LogsIndex)
    )?;
    writeln!(
        out,
        "percentiles needed on: {}",
        report
            .percentile_metrics
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    for (metric, files) in &report.planned_in_use {
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        writeln!(
            out,
            "planned metric {metric} (not emitted yet) queried by {}",
            files.join(", ")
        )?;
    }
    if let Some(cost) = &report.cost {
        let per_env: Vec<String> = cost
            .per_environment
            .iter()
            .map(|(env, n)| format!("{n} in {env}"))
            .collect();
        writeln!(
            out,
            "custom metrics: {}, {} in all, {} included: ${:.0} a month",
            per_env.join(", "),
            cost.total,
            cost.included,
            cost.monthly_metrics
        )?;
        for (multiple, gigabytes, indexed, monthly) in &cost.logs {
            writeln!(
                out,
                "logs at {multiple}x traffic: {gigabytes:.2} GB ingested, {:.2} million events indexed: ${monthly:.2} a month",
                indexed / 1e6
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    #[test]
    fn debug_shows_neither_key() {
        let cli = Cli::try_parse_from([
            "datadog-resources",
            "apply",
            "--runbooks-url",
            "https://example.com/runbooks",
            "--api-key",
            "api-0123456789",
            "--app-key",
            "app-9876543210",
        ])
        .expect("parses");
        assert!(matches!(cli.command, Command::Apply(_)));
        let printed = format!("{cli:?}");
        assert!(
            !printed.contains("0123456789") && !printed.contains("9876543210"),
            "{printed}"
        );
        assert!(printed.contains(r#"api_key: "***""#), "{printed}");
    }
}
