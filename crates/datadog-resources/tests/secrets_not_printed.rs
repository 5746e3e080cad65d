//! `datadog-resources apply --help` does not print `DD_API_KEY` or `DD_APP_KEY` from the environment
//! (clap shows environment values in `--help` unless told not to).

use testkit::settings::assert_help_hides;

#[tokio::test]
async fn apply_help_does_not_print_the_keys() {
    let env = [("DD_API_KEY", "api-0123456789"), ("DD_APP_KEY", "app-9876543210")];
    let bin = env!("CARGO_BIN_EXE_datadog-resources");
    assert_help_hides(bin, &["apply"], &env, &["0123456789", "9876543210"]).await;
}
