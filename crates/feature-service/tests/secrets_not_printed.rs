//! The Redis URL's password is printed neither by `--help` (clap shows environment values there unless
//! told not to) nor by the configuration's `Debug`, which the service logs at start.

use clap::{CommandFactory, Parser};
use feature_service::Config;
use telemetry::settings::secrets_shown_by_help;
use testkit::settings::assert_help_hides;

const URL: &str = "redis://:hunter2@redis:6379";

#[tokio::test]
async fn help_does_not_print_the_redis_password() {
    let bin = env!("CARGO_BIN_EXE_feature-service");
    assert_help_hides(bin, &[], &[("REDIS_URL", URL)], &["hunter2"]).await;
    assert!(secrets_shown_by_help(&Config::command()).is_empty());
}

#[test]
fn debug_shows_the_redis_host_but_not_the_password() {
    let config = Config::try_parse_from(["feature-service", "--redis-url", URL]).expect("parses");
    let printed = format!("{config:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("redis://:***@redis:6379"), "{printed}");
    let store = config.store_config(feature_store::Registry::bundled().expect("registry"));
    assert_eq!(store.redis.as_ref().map(|redis| redis.url.expose()), Some(URL));
}
