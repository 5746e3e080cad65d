//! A failed Redis round trip writes one structured error line: command, bounded error type, key count
//! and the Redis URL with its password redacted; the password appears in no line.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::*;
use feature_store::{Error, StoreConfig};
use serde_json::Value;
use telemetry::ServiceTags;
use telemetry::logs::json_layer;
use testkit::redis::{RedisOptions, RedisServer};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

const PASSWORD: &str = "hunter2-s3cret";

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()).expect("utf-8")
    }
}

#[tokio::test]
async fn a_redis_timeout_is_logged_with_the_redacted_url_only() {
    let tags = ServiceTags {
        env: "test".into(),
        service: "feature-service".into(),
        version: "1".into(),
    };
    let buffer = Buffer::default();
    // The test runtime has one thread: everything the store does logs here.
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(json_layer(&tags, buffer.clone())),
    );

    let server = RedisServer::start_with(RedisOptions {
        password: Some(PASSWORD.into()),
        ..Default::default()
    })
    .expect("redis-server");
    let mut redis = redis_config(&server.url());
    redis.timeout = Duration::from_millis(150);
    let mut config = StoreConfig::new(registry());
    config.redis = Some(redis);
    config.cache = no_cache();
    let store = feature_store::OnlineStore::open(config).await.expect("store");
    server
        .command(&["CLIENT", "PAUSE", "1000", "ALL"])
        .expect("CLIENT PAUSE");
    let result = store
        .get_online_features(
            &request(
                &["zone_demand:available_drivers"],
                &[("zone_id", &["z-1", "z-2"])],
            ),
            None,
        )
        .await;
    assert!(matches!(result, Err(Error::Timeout(_))), "{result:?}");

    let text = buffer.text();
    assert!(!text.contains(PASSWORD), "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let failed: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "Redis command failed")
        .collect();
    assert_eq!(failed.len(), 1, "{text}");
    let line = failed[0];
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["error_type"], "timeout");
    assert_eq!(line["redis.command"], "HGETALL");
    assert_eq!(line["redis.keys"], 2);
    let url = line["redis.url"].as_str().expect("redis.url");
    assert!(url.starts_with("redis://") && url.contains(":***@"), "{url}");
    assert!(line["error"].as_str().is_some_and(|e| !e.is_empty()), "{line}");
}
