//! The service refuses to start without a loadable repository, and says which.

use crate::common;

use model_service::{Config, Error, run};

#[tokio::test]
async fn an_unloadable_repository_fails_start_up_naming_it() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let missing = common::bundled_repository().join("no-such-folder");
    let config = Config {
        model_repository: missing,
        ..common::config(listener.local_addr().expect("address"))
    };
    let error = run(config, listener, std::future::pending())
        .await
        .expect_err("start-up fails");
    assert!(matches!(error, Error::Repository(_)), "{error:?}");
    assert!(error.to_string().contains("no-such-folder"), "{error}");
}
