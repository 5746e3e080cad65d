//! The JSON log lines a test's code writes, captured in memory (the tests' runtimes have one thread, so
//! everything the store does logs to the test's subscriber).

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use telemetry::ServiceTags;
use telemetry::logs::json_layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
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

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Logs {
    /// Captures the current thread's logs until the guard drops.
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let tags = ServiceTags {
            env: "test".into(),
            service: "feature-service".into(),
            version: "1".into(),
        };
        let logs = Logs::default();
        let guard = tracing::subscriber::set_default(
            tracing_subscriber::registry().with(json_layer(&tags, logs.clone())),
        );
        (logs, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()).expect("utf-8")
    }

    /// Every line, parsed.
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect()
    }

    /// The lines whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|line| line["message"] == message)
            .collect()
    }
}
