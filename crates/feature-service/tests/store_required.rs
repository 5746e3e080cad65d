//! The feature-service never falls back to demo data by itself: without `REDIS_URL` it refuses to start,
//! naming the setting, unless the embedded snapshot is asked for by name (`EMBEDDED_FEATURES`), and it
//! refuses both at once. A deployment that lost its Redis setting fails loudly instead of pricing real
//! customers from made-up features.

use testkit::settings::assert_refused_at_start;

const BIN: &str = env!("CARGO_BIN_EXE_feature-service");

#[tokio::test]
async fn no_redis_and_no_embedded_snapshot_is_refused_at_start() {
    let env = [("LISTEN_ADDR", "127.0.0.1:0"), ("DD_ENV", "prod")];
    let stderr = assert_refused_at_start(BIN, &[], &env, "REDIS_URL", "is not set").await;
    assert!(
        stderr.contains("EMBEDDED_FEATURES"),
        "says how to ask for the demo data: {stderr}"
    );
}

#[tokio::test]
async fn redis_and_the_embedded_snapshot_together_are_refused_at_start() {
    let env = [
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("REDIS_URL", "redis://127.0.0.1:1"),
        ("EMBEDDED_FEATURES", "true"),
    ];
    assert_refused_at_start(BIN, &[], &env, "EMBEDDED_FEATURES", "both set").await;
}

#[tokio::test]
async fn the_embedded_snapshot_asked_for_says_so_at_start() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(BIN)
        .env_clear()
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("EMBEDDED_FEATURES", "true")
        .env("DD_DOGSTATSD_DISABLE", "true")
        .env("DD_TRACE_ENABLED", "false")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("feature-service starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let warned = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("\"level\":\"WARN\"") && line.contains("bundled demo snapshot") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        warned,
        Ok(true),
        "no start-up warning that the answers are demo data"
    );
}
