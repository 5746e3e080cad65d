//! The integration tests of `telemetry`, built as one binary: each file here is a module, so the suite
//! links once instead of once per file (nextest still runs each test in a process of its own). A file
//! not named below is not compiled, and `cargo xtask lint` fails on one.

mod common;

mod agent_absent;
mod catalog;
mod catalog_doc;
mod dogstatsd_udp;
mod dogstatsd_uds;
mod grpc_layers;
mod init_twice;
mod log_correlation;
mod origin_detection;
mod propagation;
mod setting_ranges;
