//! The JSON log lines a test's code writes, captured in memory (the tests' runtimes have one thread, so
//! everything the store does logs to the test's subscriber).

use telemetry::ServiceTags;
pub use telemetry::logs::capture::Logs;

/// Captures the current thread's logs, tagged as the feature-service's, until the guard drops.
pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
    Logs::capture(&ServiceTags {
        env: "test".into(),
        service: "feature-service".into(),
        version: "1".into(),
    })
}
