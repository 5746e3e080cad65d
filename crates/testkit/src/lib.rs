//! Test kit: fixtures any crate's tests may use — real servers on ephemeral loopback ports, stopped on
//! drop, so tests need no fixed ports, no shared state and no sleeps — without building the services (it
//! depends on no service crate; the end-to-end suites that start the services are in `system-tests`).
//!
//! - [`redis::RedisServer`]: a private `redis-server` (AUTH, TLS); [`redis::RedisCluster`]: a Redis
//!   Cluster of N primaries on loopback, with replicas if asked, and what failover tests need (the
//!   primary serving a key, killing it, waiting until its replica took over).
//! - [`statsd::StatsdAgent`]: a DogStatsD stand-in on a real UDP socket.
//! - [`agent::TestAgent`]: Datadog's APM test agent receiving OTLP traces; [`otlp`]: the spans it
//!   received, flattened.
//! - [`certs::TestPki`]: a throwaway CA with server and client certificates, as PEM files.
//! - [`models::ModelRepositoryCopy`]: a writable copy of a model repository, to add versions to.
//! - [`features`]: Feast values and `GetOnlineFeatures` requests as tests write and send them.
//! - [`settings::SettingRanges`]: the property that a binary's numeric settings are refused or kept
//!   within their documented ranges; [`settings::assert_refused_at_start`] and
//!   [`settings::assert_help_hides`]: the binary itself, started with a bad value or a secret.
//! - [`bin_dir`]: where the workspace's binaries are; [`installed`]: the tools `cargo xtask setup`
//!   installed; [`free_port`]: a loopback port to listen on.
#![forbid(unsafe_code)]

pub mod agent;
pub mod certs;
pub mod features;
pub mod models;
pub mod otlp;
pub mod redis;
pub mod settings;
pub mod statsd;

use std::net::TcpListener;
use std::path::PathBuf;

/// What `cargo xtask setup` installs under the target directory (`target/venvs/<venv>`,
/// `target/tools/<tool>`), found next to the profile directory of the running test's binaries.
pub fn installed(relative: &str) -> PathBuf {
    bin_dir().join("..").join(relative)
}

/// A loopback TCP port that was free a moment ago (for a server started with an address to bind).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

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
