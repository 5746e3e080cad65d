//! The integration tests of `model-service`, built as one binary: each file here is a module, so the suite
//! links once instead of once per file (nextest still runs each test in a process of its own). A file
//! not named below is not compiled, and `cargo xtask lint` fails on one.

mod common;

mod feature_drift;
mod hot_reload;
mod inference_tracing;
mod predict_api;
mod request_errors;
mod request_properties;
mod setting_ranges;
mod startup;
mod tls;
