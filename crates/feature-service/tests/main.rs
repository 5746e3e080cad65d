//! The integration tests of `feature-service`, built as one binary: each file here is a module, so the suite
//! links once instead of once per file (nextest still runs each test in a process of its own). A file
//! not named below is not compiled, and `cargo xtask lint` fails on one.

mod common;

mod feature_metrics;
mod get_online_features;
mod invalid_requests;
mod redis_cluster_failover;
mod redis_outage;
mod response_limit;
mod secrets_not_printed;
mod setting_ranges;
mod store_required;
mod trace_context;
