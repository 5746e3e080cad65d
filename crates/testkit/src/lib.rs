//! Test kit: fixtures any crate's tests may use — real servers on ephemeral loopback ports, stopped on
//! drop, so tests need no fixed ports, no shared state and no sleeps — without building the services (it
//! depends on no service crate; the end-to-end suites that start the services are in `system-tests`).
//!
//! - [`redis::RedisServer`]: a private `redis-server` (AUTH, TLS); [`redis::RedisCluster`]: a Redis
//!   Cluster of N primaries on loopback.
//! - [`statsd::StatsdAgent`]: a DogStatsD stand-in on a real UDP socket.
//! - [`agent::TestAgent`]: Datadog's APM test agent receiving OTLP traces; [`otlp`]: the spans it
//!   received, flattened.
//! - [`certs::TestPki`]: a throwaway CA with server and client certificates, as PEM files.
//! - [`features`]: Feast values and `GetOnlineFeatures` requests as tests write and send them.
//! - [`bin_dir`]: where the workspace's binaries are.
#![forbid(unsafe_code)]

pub mod agent;
pub mod certs;
pub mod features;
pub mod otlp;
pub mod redis;
pub mod statsd;

use std::path::PathBuf;

/// Where the workspace's binaries are: the profile directory above this test executable's `deps/`
/// (`cargo test --workspace` and `cargo xtask test` build them; `target/<profile>/`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    dir.to_path_buf()
}
