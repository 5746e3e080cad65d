//! The quote store URL's password is printed neither by `--help` (clap shows environment values there
//! unless told not to) nor by the configuration's `Debug`, which the gateway logs at start.

use clap::{CommandFactory, Parser};
use gateway::Config;
use telemetry::settings::secrets_shown_by_help;
use testkit::settings::assert_help_hides;

const URL: &str = "redis://:hunter2@redis:6379";

#[tokio::test]
async fn help_does_not_print_the_quote_store_password() {
    let bin = env!("CARGO_BIN_EXE_gateway");
    assert_help_hides(bin, &[], &[("QUOTE_REDIS_URL", URL)], &["hunter2"]).await;
    assert!(secrets_shown_by_help(&Config::command()).is_empty());
}

#[test]
fn debug_shows_the_quote_store_host_but_not_the_password() {
    let config = Config::try_parse_from(["gateway", "--quote-redis-url", URL]).expect("parses");
    let printed = format!("{config:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("redis://:***@redis:6379"), "{printed}");
    assert_eq!(config.quote_redis_url.as_ref().map(|url| url.expose()), Some(URL));
}
