//! The integration tests of `system-tests`, built as one binary: each file here is a module, so the suite
//! links once instead of once per file (nextest still runs each test in a process of its own). A file
//! not named below is not compiled, and `cargo xtask lint` fails on one.

mod bad_input;
mod business_per_variant;
mod crai_cache;
mod critical_log_lines;
mod downstream_failure;
mod every_rpc;
mod experiments;
mod fault_injection;
mod feast_project_without_keys;
mod feast_repo;
mod graceful_shutdown;
mod health_and_reflection;
mod labels;
mod log_volume;
mod logs_correlate_with_traces;
mod merged_calls;
mod metrics_over_dogstatsd;
mod mutual_tls;
mod no_agent;
mod overload;
mod quote_store_tls;
mod redis_cluster;
mod redis_features;
mod request_ids;
mod taken_address;
mod trace_across_services;
mod warm_start;
