//! `cargo xtask <task>`: the tasks people and CI run, each the same command everywhere.
//!
//! - `demo`: builds the services in release mode, starts gateway, feature-service and model-service as
//!   separate processes on free loopback ports (embedded feature snapshot and bundled models), sends sample
//!   traffic, prints predictions and a latency summary, then stops them.
//! - `up`: the same three services in the foreground on their default ports, until Ctrl-C.
//! - `test`: installs what the tests need (cargo-nextest, redis-server, Datadog's APM test agent, helm,
//!   kubectl and the deployment checkers) when it is missing, then runs every test.
//! - `setup`: only the installing part of `test`.
//! - `lint`: every integration-test file compiled ([`suites`]), `cargo fmt --check` and clippy with
//!   warnings denied.
//! - `bench`: `cargo bench` for every crate, then the load benchmark that writes docs/PERFORMANCE.md
//!   (`--skip-micro`: the load benchmark only; `--seconds N`: closed-loop runs of N seconds).
//! - `materialize ARGS`: the Feast-layout Redis writer (`materialize --help`).
//! - `feast-registry ARGS`: the feature-service's registry JSON generated from a Feast repository with
//!   Feast's SDK (installed into `target/venvs/feast` when missing; `feast-registry --help`).
#![forbid(unsafe_code)]

mod bench;
mod feast;
mod perf;
mod process;
mod setup;
mod suites;

use std::path::PathBuf;
use std::process::ExitCode;

use process::{Services, cargo, run};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = args
        .split_first()
        .map_or(("help", &[][..]), |(t, r)| (t.as_str(), r));
    let result = match task {
        "demo" => demo(rest),
        "up" => up(),
        "test" => test(rest),
        "lint" => lint(),
        "setup" => setup::all(),
        "bench" => bench(rest),
        "materialize" => materialize(rest),
        "feast-registry" => feast::registry(rest),
        "help" | "--help" | "-h" => {
            println!("usage: cargo xtask <demo|up|test|setup|lint|bench|materialize|feast-registry> [args]");
            Ok(())
        }
        other => Err(format!("unknown task {other:?}; try `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("xtask {task}: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (this crate lives in `crates/xtask`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared target directory, honouring CARGO_TARGET_DIR.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

const SERVICES: [&str; 3] = ["model-service", "feature-service", "gateway"];

fn build_release() -> Result<PathBuf, String> {
    build_release_with(&[])
}

/// The services and the load generator in release mode, with `more` packages in the same build (one
/// build, so the dependencies they share are compiled once, with the same features).
fn build_release_with(more: &[&str]) -> Result<PathBuf, String> {
    let mut args = vec!["build", "--release"];
    for package in SERVICES.iter().chain(&["loadgen"]).chain(more) {
        args.extend(["-p", package]);
    }
    cargo(&args)?;
    Ok(target_dir().join("release"))
}

fn demo(args: &[String]) -> Result<(), String> {
    let bin = build_release()?;
    let services = Services::start(&bin, None, &[])?;
    let mut loadgen = vec!["demo".to_owned(), "--gateway".to_owned(), services.gateway_url()];
    loadgen.extend(args.iter().cloned());
    let result = run(bin.join("loadgen").as_os_str(), &loadgen, &[]);
    let stopped = services.stop();
    result.and(stopped)
}

fn up() -> Result<(), String> {
    let bin = build_release()?;
    let services = Services::start(&bin, Some([50053, 50052, 50051]), &[])?;
    println!("gateway on {}; Ctrl-C stops all three", services.gateway_url());
    services.wait()
}

fn test(args: &[String]) -> Result<(), String> {
    setup::all()?;
    // The end-to-end tests run the services' real binaries, which cargo builds only for a package's own
    // integration tests: build them all first, with the tests in the same build so that dependencies are
    // compiled once (a `--bins` build alone leaves out the dev-dependencies' features, and every
    // dependency they touch would compile twice).
    cargo(&["build", "--workspace", "--bins", "--tests"])?;
    // nextest does not run doctests; run them first so the run closes on nextest's summary.
    cargo(&["test", "--workspace", "--doc"])?;
    let mut cmd = vec!["nextest", "run", "--workspace", "--no-fail-fast"];
    cmd.extend(args.iter().map(String::as_str));
    cargo(&cmd)
}

fn lint() -> Result<(), String> {
    suites::check_listed(&root())?;
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])
}

/// Micro-benchmarks (`cargo bench`, unless `--skip-micro`), then the load benchmark that writes
/// docs/PERFORMANCE.md ([`perf::run`]; `--seconds N` for its closed-loop runs, 10 by default).
fn bench(args: &[String]) -> Result<(), String> {
    if !args.iter().any(|a| a == "--skip-micro") {
        // The Redis read benchmark runs against its own redis-server.
        setup::redis()?;
        cargo(&["bench", "--workspace"])?;
    }
    setup::redis()?;
    // feature-store: its `materialize` fills the benchmark's Redis.
    let bin = build_release_with(&["feature-store"])?;
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(10), |s| {
            s.parse::<u64>().map_err(|e| format!("--seconds {s}: {e}"))
        })?;
    perf::run(&bin, seconds)
}

fn materialize(args: &[String]) -> Result<(), String> {
    let mut cmd = vec![
        "run",
        "--release",
        "-p",
        "feature-store",
        "--bin",
        "materialize",
        "--",
    ];
    cmd.extend(args.iter().map(String::as_str));
    cargo(&cmd)
}
