//! Test kit: starts the real servers integration tests run against, each on an ephemeral loopback port and
//! stopped on drop, so tests need no fixed ports, no shared state and no sleeps.
//!
//! - [`redis::RedisServer`]: a private `redis-server`.
//! - [`redis::RedisCluster`]: a Redis Cluster of N primaries on loopback.
//! - [`services`]: the gateway, feature-service and model-service, each a separate gRPC server.
//! - [`features`]: Redis filled in Feast's layout through the `materialize` code.
//! - [`load`]: steady load on the gateway, each call recorded, for fault-injection tests.
//! - [`processes`]: the services as separate processes (their own telemetry, logs and signals).
//! - [`agent::TestAgent`]: Datadog's APM test agent receiving OTLP traces.
//! - [`otlp`]: the spans the test agent received, flattened.
//! - [`statsd::StatsdAgent`]: a DogStatsD stand-in on a real UDP socket.
//!
//! The system's end-to-end tests live in this crate's `tests/`, one file per behaviour.
#![forbid(unsafe_code)]

pub mod agent;
pub mod features;
pub mod load;
pub mod otlp;
pub mod processes;
pub mod redis;
pub mod services;
pub mod statsd;
