//! The `materialize` job as Kubernetes runs it: `--help` does not print the password of `REDIS_URL`
//! (clap shows environment values there unless told not to), and a number outside its documented range
//! stops the job at start with clap's one-line reason instead of waiting forever on Redis.

use testkit::settings::{assert_help_hides, assert_refused_at_start};

const BIN: &str = env!("CARGO_BIN_EXE_materialize");
const URL: &str = "redis://:hunter2@127.0.0.1:1";

#[tokio::test]
async fn help_does_not_print_the_redis_password() {
    assert_help_hides(BIN, &[], &[("REDIS_URL", URL)], &["hunter2"]).await;
}

#[tokio::test]
async fn a_bad_value_in_the_environment_stops_the_job_at_start_with_one_line() {
    let env = [
        ("REDIS_CONNECT_TIMEOUT_MS", "18446744073709551615"),
        ("REDIS_URL", URL),
        ("DD_DOGSTATSD_DISABLE", "true"),
        ("DD_TRACE_ENABLED", "false"),
    ];
    let range = "is not in 1..=600000";
    let stderr = assert_refused_at_start(BIN, &["--snapshot"], &env, "--connect-timeout-ms", range).await;
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
