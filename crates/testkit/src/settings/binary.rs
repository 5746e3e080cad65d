//! The binary itself, started as a deployment would start it: refusing a bad value at once, and
//! keeping secrets out of its `--help`.

use std::process::Output;
use std::time::Duration;

/// How long a binary may take to refuse to start or to print its `--help`.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `bin` with `args` and only `env` set, as a deployment would start it; it must end within 30 s.
async fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let run = tokio::process::Command::new(bin)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(RUN_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("{bin} ends at once instead of running on"))
        .unwrap_or_else(|error| panic!("{bin} runs: {error}"))
}

/// Starts `bin` with `args` and only `env` set, one value of which is out of its range, and asserts that
/// it stops at once with clap's exit code 2, without a panic, and that the first line of its standard
/// error names `flag` (`--request-timeout-ms`) and `range` (`is not in 1..=600000`). Returns the
/// standard error, for what a binary checks besides.
pub async fn assert_refused_at_start(
    bin: &str,
    args: &[&str],
    env: &[(&str, &str)],
    flag: &str,
    range: &str,
) -> String {
    let output = run(bin, args, env).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.contains(flag) && first.contains(range), "{stderr}");
    stderr
}

/// Starts `bin` with `env` and each `TOKIO_WORKER_THREADS` a server refuses: 0 and a word, on which Tokio
/// itself panics when it reads the variable, and one past the range. Each must be refused as
/// [`assert_refused_at_start`] asserts, naming `--worker-threads`.
pub async fn assert_bad_worker_counts_refused(bin: &str, env: &[(&str, &str)]) {
    for (value, reason) in [
        ("0", "is not in 1..=1024"),
        ("1025", "is not in 1..=1024"),
        ("four", "invalid digit"),
    ] {
        let env: Vec<(&str, &str)> = env
            .iter()
            .copied()
            .chain([("TOKIO_WORKER_THREADS", value)])
            .collect();
        assert_refused_at_start(bin, &[], &env, "--worker-threads", reason).await;
    }
}

/// Runs `bin` with `args` and `--help`, with only `env` set, and asserts that the help succeeds, names
/// each variable of `env`, and prints none of `secrets` (clap shows environment values there unless
/// told not to).
pub async fn assert_help_hides(bin: &str, args: &[&str], env: &[(&str, &str)], secrets: &[&str]) {
    let args: Vec<&str> = args.iter().copied().chain(["--help"]).collect();
    let output = run(bin, &args, env).await;
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    for (variable, _) in env {
        assert!(help.contains(variable), "{help}");
    }
    for secret in secrets {
        assert!(!help.contains(secret), "{help}");
    }
}

#[cfg(test)]
mod tests {
    //! Each check on a stand-in binary (`/bin/sh -c SCRIPT`) that passes it, or fails it one way.

    use super::*;

    const RANGE: &str = "is not in 1..=600";

    /// [`assert_refused_at_start`] of `/bin/sh -c script`, refusing `--count` with `COUNT=601`.
    async fn refused(script: &str) -> String {
        let args = ["-c", script];
        assert_refused_at_start("/bin/sh", &args, &[("COUNT", "601")], "--count", RANGE).await
    }

    /// [`assert_help_hides`] of `/bin/sh -c script`, hiding the password of `URL`.
    async fn help(script: &str) {
        let env = [("URL", "redis://:hunter2@redis")];
        assert_help_hides("/bin/sh", &["-c", script], &env, &["hunter2"]).await;
    }

    #[tokio::test]
    async fn a_refusal_naming_the_flag_and_range_passes() {
        let stderr =
            refused("echo \"error: '--count' $COUNT is not in 1..=600\" >&2; echo more >&2; exit 2").await;
        assert_eq!(stderr, "error: '--count' 601 is not in 1..=600\nmore\n");
    }

    #[tokio::test]
    #[should_panic(expected = "panicked")]
    async fn a_panic_at_start_fails() {
        refused("echo \"error: --count is not in 1..=600\" >&2; echo panicked >&2; exit 2").await;
    }

    #[tokio::test]
    #[should_panic(expected = "left: Some(0)")]
    async fn starting_anyway_fails() {
        refused("true").await;
    }

    #[tokio::test]
    #[should_panic(expected = "2nd line")]
    async fn a_reason_past_the_first_line_fails() {
        refused("echo 2nd line >&2; echo \"error: --count is not in 1..=600\" >&2; exit 2").await;
    }

    #[tokio::test]
    async fn help_naming_the_variable_but_not_its_value_passes() {
        help("echo \"--url <URL>  [env: URL]\"").await;
    }

    #[tokio::test]
    #[should_panic(expected = "hunter2")]
    async fn help_printing_the_secret_fails() {
        help("echo \"--url <URL>  [env: URL=$URL]\"").await;
    }

    #[tokio::test]
    #[should_panic(expected = "--url <ADDRESS>")]
    async fn help_not_naming_the_variable_fails() {
        help("echo \"--url <ADDRESS>\"").await;
    }

    #[tokio::test]
    #[should_panic(expected = "usage error")]
    async fn a_help_that_fails_fails() {
        help("echo \"[env: URL] usage error\"; exit 1").await;
    }
}
