//! The integration tests of `server-kit`, built as one binary: each file here is a module, so the suite
//! links once instead of once per file (nextest still runs each test in a process of its own). A file
//! not named below is not compiled, and `cargo xtask lint` fails on one.

mod common;

mod graceful_shutdown;
mod health_listener;
mod overload;
mod setting_ranges;
mod tls;
