//! `datadog-resources apply --help` does not print `DD_API_KEY` or `DD_APP_KEY` from the environment
//! (clap shows environment values in `--help` unless told not to).

use std::process::Command;

#[test]
fn apply_help_does_not_print_the_keys() {
    let output = Command::new(env!("CARGO_BIN_EXE_datadog-resources"))
        .args(["apply", "--help"])
        .env_clear()
        .env("DD_API_KEY", "api-0123456789")
        .env("DD_APP_KEY", "app-9876543210")
        .output()
        .expect("datadog-resources runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    assert!(
        help.contains("DD_API_KEY") && help.contains("DD_APP_KEY"),
        "{help}"
    );
    assert!(
        !help.contains("0123456789") && !help.contains("9876543210"),
        "{help}"
    );
}
