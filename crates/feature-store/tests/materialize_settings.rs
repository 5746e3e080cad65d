//! The `materialize` job as Kubernetes runs it: `--help` does not print the password of `REDIS_URL`
//! (clap shows environment values there unless told not to), and a number outside its documented range
//! stops the job at start with clap's one-line reason instead of waiting forever on Redis.

use std::process::Output;
use std::time::Duration;

const URL: &str = "redis://:hunter2@127.0.0.1:1";

/// Runs the job with only `env` set; it must end within 30 s.
async fn materialize(args: &[&str], env: &[(&str, &str)]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_materialize"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("materialize ends at once")
        .expect("materialize runs")
}

#[tokio::test]
async fn help_does_not_print_the_redis_password() {
    let output = materialize(&["--help"], &[("REDIS_URL", URL)]).await;
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    assert!(help.contains("REDIS_URL"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
}

#[tokio::test]
async fn a_bad_value_in_the_environment_stops_the_job_at_start_with_one_line() {
    let output = materialize(
        &["--snapshot"],
        &[
            ("REDIS_URL", URL),
            ("REDIS_CONNECT_TIMEOUT_MS", "18446744073709551615"),
            ("DD_DOGSTATSD_DISABLE", "true"),
            ("DD_TRACE_ENABLED", "false"),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("--connect-timeout-ms") && first.contains("is not in 1..=600000"),
        "{stderr}"
    );
}
