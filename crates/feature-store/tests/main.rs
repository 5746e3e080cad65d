//! The integration tests of `feature-store`, built as one binary: each file here is a module, so the suite
//! links once instead of once per file (nextest still runs each test in a process of its own). A file
//! not named below is not compiled, and `cargo xtask lint` fails on one.

mod common;

mod batch_job_metrics;
mod cache;
mod cluster;
mod decode_never_panics;
mod embedded;
mod feast_layout;
mod materialize_settings;
mod project_keys;
mod redis_auth;
mod redis_failure_log;
mod redis_metrics;
mod redis_outage;
mod redis_reconnect;
mod redis_tls;
mod request_caps;
mod request_properties;
mod statuses;
mod validation;
